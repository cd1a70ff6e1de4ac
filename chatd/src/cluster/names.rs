//! Online names across the cluster: each held name is a Redis key leased by the nodes that
//! hold it. The key holds `token \n name`: the same token shares the name (tabs, devices,
//! nodes), another is refused. Beside it, `<key>:holders` is a sorted set of the nodes holding
//! the name, scored by when their lease ends. A node renews the leases of the names it holds
//! (connected, or within the grace period) and gives a name back when its grace ends: the last
//! holder deletes the key, so the name is free at once. A name nobody renews (a dead node's)
//! expires after [`Names::lease`].

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

/// Grants a name unless one of its keys holds another token; answers `{granted, value}`.
/// ARGV: token prefix, value, lease ms, node, now ms.
const CLAIM: &str = r"
local found = nil
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v then
    if string.sub(v, 1, #ARGV[1]) ~= ARGV[1] then return {0, v} end
    found = v
  end
end
local value = found or ARGV[2]
for _, k in ipairs(KEYS) do
  redis.call('SET', k, value, 'PX', ARGV[3])
  redis.call('ZADD', k .. ':holders', tonumber(ARGV[5]) + tonumber(ARGV[3]), ARGV[4])
  redis.call('PEXPIRE', k .. ':holders', ARGV[3])
end
return {1, value}
";

/// Extends a lease, or takes the name again if it expired meanwhile (a Redis restart).
/// ARGV: as [`CLAIM`].
const RENEW: &str = r"
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if (not v) or string.sub(v, 1, #ARGV[1]) == ARGV[1] then
    redis.call('SET', k, ARGV[2], 'PX', ARGV[3])
    redis.call('ZADD', k .. ':holders', tonumber(ARGV[5]) + tonumber(ARGV[3]), ARGV[4])
    redis.call('PEXPIRE', k .. ':holders', ARGV[3])
  end
end
return 1
";

/// This node no longer holds the name; the last live holder deletes it.
/// ARGV: as [`CLAIM`].
const RELEASE: &str = r"
for _, k in ipairs(KEYS) do
  local h = k .. ':holders'
  redis.call('ZREM', h, ARGV[4])
  redis.call('ZREMRANGEBYSCORE', h, '-inf', ARGV[5])
  if redis.call('ZCARD', h) == 0 then
    local v = redis.call('GET', k)
    if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then redis.call('DEL', k) end
    redis.call('DEL', h)
  end
end
return 1
";

/// A name held by this node, as renewed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The name's keys (its primary key and its look-alike key), without the Redis prefix.
    pub keys: Vec<String>,
    /// Token.
    pub token: String,
    /// The name as spelled by its first holder.
    pub name: String,
}

/// Name leases in Redis.
pub struct Names {
    conn: ConnectionManager,
    prefix: String,
    node: String,
    lease: Duration,
    claim: Script,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn value(token: &str, name: &str) -> String {
    format!("{token}\n{name}")
}

fn split(value: &str) -> Option<(&str, &str)> {
    value.split_once('\n')
}

impl Names {
    /// Leases of `node` under `{prefix}:name:`, each lasting `lease` unless renewed.
    pub fn new(conn: ConnectionManager, prefix: &str, node: &str, lease: Duration) -> Names {
        Names {
            conn,
            prefix: prefix.to_owned(),
            node: node.to_owned(),
            lease,
            claim: Script::new(CLAIM),
        }
    }

    /// How long a lease lasts without renewal.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The Redis key of a name key.
    pub fn key(&self, name_key: &str) -> String {
        format!("{}:name:{name_key}", self.prefix)
    }

    /// Claims a name under its keys with `token`: `Some((name, token))` as held (the first
    /// holder's spelling when shared), `None` when another token holds it.
    pub async fn claim(
        &self,
        keys: &[String],
        name: &str,
        token: &str,
    ) -> Result<Option<(String, String)>, String> {
        let mut conn = self.conn.clone();
        let mut call = self.claim.prepare_invoke();
        for k in keys {
            call.key(k);
        }
        call.arg(format!("{token}\n"))
            .arg(value(token, name))
            .arg(self.lease.as_millis() as u64)
            .arg(&self.node)
            .arg(crate::store::now_ms());
        let (granted, held): (i64, String) =
            tokio::time::timeout(Duration::from_secs(2), call.invoke_async(&mut conn))
                .await
                .map_err(|_| "redis did not answer".to_string())?
                .map_err(|e| e.to_string())?;
        if granted != 1 {
            return Ok(None);
        }
        Ok(split(&held).map(|(t, n)| (n.to_owned(), t.to_owned())))
    }

    /// Renews the leases of the names this node holds.
    pub async fn renew(&self, leases: &[Lease]) -> Result<(), String> {
        self.each(RENEW, leases).await
    }

    /// Gives back names this node no longer holds (their grace ended here).
    pub async fn release(&self, leases: &[Lease]) -> Result<(), String> {
        self.each(RELEASE, leases).await
    }

    /// Runs `script` for every lease, in one round trip (ARGV as [`CLAIM`]'s).
    async fn each(&self, script: &str, leases: &[Lease]) -> Result<(), String> {
        if leases.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for lease in leases {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(script).arg(lease.keys.len());
            for k in &lease.keys {
                cmd.arg(self.key(k));
            }
            cmd.arg(format!("{}\n", lease.token))
                .arg(value(&lease.token, &lease.name))
                .arg(self.lease.as_millis() as u64)
                .arg(&self.node)
                .arg(crate::store::now_ms());
            pipe.add_command(cmd).ignore();
        }
        tokio::time::timeout(Duration::from_secs(2), pipe.query_async::<()>(&mut conn))
            .await
            .map_err(|_| "redis did not answer".to_string())?
            .map_err(|e| e.to_string())
    }

    /// Whether someone holds exactly this name (case aside) anywhere in the cluster.
    pub async fn online(&self, key: &str, name: &str) -> Result<bool, String> {
        let mut conn = self.conn.clone();
        let held: Option<String> = tokio::time::timeout(
            Duration::from_secs(2),
            redis::cmd("GET").arg(key).query_async(&mut conn),
        )
        .await
        .map_err(|_| "redis did not answer".to_string())?
        .map_err(|e| e.to_string())?;
        Ok(held
            .as_deref()
            .and_then(split)
            .is_some_and(|(_, n)| n.to_lowercase() == name.to_lowercase()))
    }
}
