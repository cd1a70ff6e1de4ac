//! Online names across the cluster: each held name is a Redis key leased by the nodes that
//! hold it. A node renews the leases of the names it holds (connected, or within the grace
//! period); a name nobody renews expires after [`Names::lease`], so a dead node frees its names
//! by itself. The key holds `token \n name`: the same token shares the name (tabs, devices,
//! nodes), another is refused.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

/// Grants a name unless one of its keys holds another token; answers `{granted, value}`.
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
for _, k in ipairs(KEYS) do redis.call('SET', k, value, 'PX', ARGV[3]) end
return {1, value}
";

/// Extends a lease, or takes the name again if it expired meanwhile (a Redis restart).
const RENEW: &str = r"
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if (not v) or string.sub(v, 1, #ARGV[1]) == ARGV[1] then
    redis.call('SET', k, ARGV[2], 'PX', ARGV[3])
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
    /// Leases under `{prefix}:name:`, each lasting `lease` unless renewed.
    pub fn new(conn: ConnectionManager, prefix: &str, lease: Duration) -> Names {
        Names {
            conn,
            prefix: prefix.to_owned(),
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
            .arg(self.lease.as_millis() as u64);
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
        if leases.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        let ttl = self.lease.as_millis() as u64;
        for lease in leases {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(RENEW).arg(lease.keys.len());
            for k in &lease.keys {
                cmd.arg(self.key(k));
            }
            cmd.arg(format!("{}\n", lease.token))
                .arg(value(&lease.token, &lease.name))
                .arg(ttl);
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
