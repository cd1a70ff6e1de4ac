//! PostgreSQL store: several chatd nodes on one database.
//!
//! Each call takes a connection from a pool, runs in its own transaction and answers after the
//! commit. A room's sequence numbers come from `rooms.last_seq`, incremented under the room
//! row's lock, so appends from every node to one room are ordered, unique and gap-free.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
    TimeoutType,
};
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Row};

use super::accounts::{
    Account, AccountStore, Created, Invite, NewAccount, NewSession, SessionInfo,
};
use super::{
    Appended, BoxFuture, NewMessage, RoomInfo, RoomKind, Store, StoreError, StoredMessage,
};

/// How long a call waits for a free pooled connection, for a new one, or for the check of an
/// idle one: with the server down every call fails within about this.
const POOL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one operation may take once it has a connection. A connection that overran is
/// closed rather than reused: its server may be hung, or its transaction still open.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `/healthz` waits for `SELECT 1`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections one node keeps at most.
const POOL_SIZE: usize = 16;
/// The advisory lock held while the schema is migrated ("chatd" in ASCII): nodes starting
/// together migrate one after the other.
const MIGRATION_LOCK: i64 = 0x63_6861_7464;
/// The advisory lock a registration holds ("chatdacc"): names and their look-alikes are checked
/// and inserted by one node at a time.
const ACCOUNTS_LOCK: i64 = 0x6368_6174_6461_6363;

/// The schema, step by step: step `i` brings it to version `i + 1`. Steps are only ever
/// appended; a released one is never edited.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: rooms and messages. `sender_key` is the lowercased sender: a resend is recognised
    // whatever the case of the name, as in the SQLite store. (`user` is a reserved word.)
    "CREATE TABLE rooms (
        name text PRIMARY KEY,
        topic text NOT NULL DEFAULT '',
        kind text NOT NULL DEFAULT 'room' CHECK (kind IN ('room', 'direct')),
        created_at bigint NOT NULL,
        last_seq bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        room text NOT NULL REFERENCES rooms (name),
        seq bigint NOT NULL,
        client_id text NOT NULL,
        sender text NOT NULL,
        sender_key text NOT NULL,
        text text NOT NULL,
        ts bigint NOT NULL,
        PRIMARY KEY (room, seq),
        CONSTRAINT messages_resend UNIQUE (room, sender_key, client_id)
    );",
    // 2: accounts, their sessions (token hashes) and invites (code hashes).
    "CREATE TABLE accounts (
        id bigserial PRIMARY KEY,
        name text NOT NULL,
        name_key text NOT NULL UNIQUE,
        alias_key text NOT NULL,
        password_hash text NOT NULL,
        admin boolean NOT NULL DEFAULT false,
        created_at bigint NOT NULL
    );
    CREATE INDEX accounts_alias ON accounts (alias_key);
    CREATE TABLE account_sessions (
        token_hash text PRIMARY KEY,
        id text NOT NULL UNIQUE,
        account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        created_at bigint NOT NULL,
        expires_at bigint NOT NULL,
        user_agent text NOT NULL DEFAULT ''
    );
    CREATE INDEX account_sessions_account ON account_sessions (account_id);
    CREATE TABLE invites (
        code_hash text PRIMARY KEY,
        created_by text NOT NULL,
        created_at bigint NOT NULL,
        expires_at bigint NOT NULL
    );",
    // 3: private rooms, room members with their roles and read markers, invite links (token
    // hashes).
    "ALTER TABLE rooms ADD COLUMN private boolean NOT NULL DEFAULT false;
    CREATE TABLE room_members (
        room text NOT NULL REFERENCES rooms (name),
        user_key text NOT NULL,
        name text NOT NULL,
        role text NOT NULL CHECK (role IN ('owner', 'moderator', 'member')),
        joined_at bigint NOT NULL,
        read_seq bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (room, user_key)
    );
    CREATE INDEX room_members_user ON room_members (user_key);
    CREATE TABLE room_invites (
        token_hash text PRIMARY KEY,
        room text NOT NULL REFERENCES rooms (name),
        created_by text NOT NULL,
        created_at bigint NOT NULL,
        expires_at bigint NOT NULL
    );",
];

/// The schema version this binary knows.
pub(crate) fn schema_version() -> i32 {
    i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX)
}

/// Rooms and messages in a PostgreSQL database shared by several chatd nodes.
///
/// Connections come from a pool (deadpool-postgres) with short timeouts: with the server down
/// every call fails within a few seconds with [`StoreError::Database`], and once it is back the
/// pool opens new connections (broken ones are dropped when next taken), so the store recovers
/// by itself.
pub struct PostgresStore {
    pool: Pool,
    gate: Arc<watch::Sender<Gate>>,
}

/// Work in flight, and whether new work is refused.
#[derive(Default)]
struct Gate {
    closed: bool,
    in_flight: usize,
}

/// One call in flight; `close` waits until none is left.
struct Entered(Arc<watch::Sender<Gate>>);

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.send_modify(|g| g.in_flight -= 1);
    }
}

/// The future of an operation on a borrowed connection.
type OnClient<'c, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>;

/// The `tokio_postgres` error with its cause (the server's message is in the cause).
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    StoreError::Database(describe(&e))
}

fn pool_err(e: PoolError) -> StoreError {
    match e {
        PoolError::Closed => StoreError::Closed,
        // Every connection is busy: the node has more work than its pool.
        PoolError::Timeout(TimeoutType::Wait) => StoreError::Overloaded,
        PoolError::Timeout(_) => StoreError::Database(format!(
            "no connection to PostgreSQL within {}s",
            POOL_TIMEOUT.as_secs()
        )),
        PoolError::Backend(e) => {
            StoreError::Database(format!("cannot connect to PostgreSQL: {}", describe(&e)))
        }
        other => StoreError::Database(other.to_string()),
    }
}

/// Parses a `postgres://` URL, with chatd's connection defaults where the URL sets none.
pub(crate) fn pg_config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    // The error never quotes the URL: it may hold a password.
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {}", describe(&e))))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(POOL_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("chatd");
    }
    Ok(config)
}

/// Brings the schema to [`MIGRATIONS`]' version in one transaction under an advisory lock, so
/// that nodes starting at once do not race; refuses a database migrated by a newer chatd.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_err)?;
    // Checked first: a role without the right to create tables can use a migrated database.
    let exists: bool = tx
        .query_one("SELECT to_regclass('chatd_schema') IS NOT NULL", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(pg_err)?;
    if !exists {
        tx.batch_execute(
            "CREATE TABLE chatd_schema (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(pg_err)?;
    }
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM chatd_schema", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(pg_err)?;
    let known = schema_version();
    if current > known {
        return Err(StoreError::Database(format!(
            "schema version {current} is newer than this chatd supports ({known})"
        )));
    }
    for (version, step) in (1_i32..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(current).unwrap_or(0))
    {
        tx.batch_execute(step).await.map_err(pg_err)?;
        tx.execute(
            "INSERT INTO chatd_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(pg_err)?;
        tracing::info!(version, "PostgreSQL schema migrated");
    }
    tx.commit().await.map_err(pg_err)
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`) and migrates
    /// its schema. Fails when the server cannot be reached or its schema is newer than this
    /// binary's.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let manager = Manager::from_config(
            pg_config(url)?,
            NoTls,
            ManagerConfig {
                // Only checks that the connection is open: no round trip per call.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let mut client = pool.get().await.map_err(pool_err)?;
        migrate(&mut client).await?;
        drop(client);
        Ok(PostgresStore {
            pool,
            gate: Arc::new(watch::Sender::new(Gate::default())),
        })
    }

    /// Counts a call in, unless the store is closed.
    fn enter(&self) -> Result<Entered, StoreError> {
        let entered = self.gate.send_if_modified(|g| {
            if g.closed {
                return false;
            }
            g.in_flight += 1;
            true
        });
        if entered {
            Ok(Entered(self.gate.clone()))
        } else {
            Err(StoreError::Closed)
        }
    }

    /// Runs `op` on a pooled connection within [`OPERATION_TIMEOUT`]. The call counts as in
    /// flight from now (not from the first poll), as with a queued job of the SQLite store.
    pub(super) fn call<T, F>(&self, op: F) -> BoxFuture<Result<T, StoreError>>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut ClientWrapper) -> OnClient<'c, T> + Send + 'static,
    {
        let entered = self.enter();
        let pool = self.pool.clone();
        Box::pin(async move {
            let _entered = entered?;
            with_client(&pool, OPERATION_TIMEOUT, op).await
        })
    }
}

async fn with_client<T, F>(pool: &Pool, limit: Duration, op: F) -> Result<T, StoreError>
where
    F: for<'c> FnOnce(&'c mut ClientWrapper) -> OnClient<'c, T>,
{
    let mut client = pool.get().await.map_err(pool_err)?;
    match tokio::time::timeout(limit, op(&mut client)).await {
        Ok(result) => result,
        Err(_) => {
            // Out of the pool: dropping it closes the connection.
            drop(Object::take(client));
            Err(StoreError::Database(format!(
                "PostgreSQL did not answer within {}s",
                limit.as_secs()
            )))
        }
    }
}

fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn seq_value(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

pub(super) fn kind_str(k: RoomKind) -> &'static str {
    match k {
        RoomKind::Room => "room",
        RoomKind::Direct => "direct",
    }
}

/// A row of `room, seq, client_id, sender, text, ts`.
fn row_message(r: &Row) -> Result<StoredMessage, StoreError> {
    Ok(StoredMessage {
        room: r.try_get(0).map_err(pg_err)?,
        seq: seq_value(r.try_get(1).map_err(pg_err)?),
        id: r.try_get(2).map_err(pg_err)?,
        user: r.try_get(3).map_err(pg_err)?,
        text: r.try_get(4).map_err(pg_err)?,
        ts: r.try_get(5).map_err(pg_err)?,
    })
}

/// A row of `name, topic, kind, created_at`.
fn row_room(r: &Row) -> Result<RoomInfo, StoreError> {
    let kind: String = r.try_get(2).map_err(pg_err)?;
    Ok(RoomInfo {
        name: r.try_get(0).map_err(pg_err)?,
        topic: r.try_get(1).map_err(pg_err)?,
        kind: if kind == "direct" {
            RoomKind::Direct
        } else {
            RoomKind::Room
        },
        created_at: r.try_get(3).map_err(pg_err)?,
    })
}

const RESENT: &str = "SELECT room, seq, client_id, sender, text, ts FROM messages
     WHERE room = $1 AND sender_key = $2 AND client_id = $3";

/// An append in one statement, so one round trip: the resend check, the room's next sequence
/// number and the insert. Outside a transaction block it is its own transaction, committed
/// before the server reports it complete (the client reads up to ReadyForQuery), so the ack
/// still follows the commit. A resend does not touch the room row. Otherwise the `UPDATE` takes
/// the room row's lock, which orders this room's appends across every node until the commit;
/// under READ COMMITTED it then increments the latest committed `last_seq`. Any error (the
/// same message stored meanwhile through another node: `messages_resend`) undoes the whole
/// statement, the increment too, so sequence numbers stay gap-free. No row: no such room.
/// Columns: those of [`row_message`], then `duplicate`.
const APPEND: &str = "WITH resent AS (
         SELECT room, seq, client_id, sender, text, ts FROM messages
         WHERE room = $1 AND sender_key = $2 AND client_id = $3
     ), next AS (
         UPDATE rooms SET last_seq = last_seq + 1
         WHERE name = $1 AND NOT EXISTS (SELECT FROM resent)
         RETURNING last_seq
     ), stored AS (
         INSERT INTO messages (room, seq, client_id, sender, sender_key, text, ts)
         SELECT $1, last_seq, $3, $4::text, $2, $5::text, $6::bigint FROM next
         RETURNING room, seq, client_id, sender, text, ts
     )
     SELECT room, seq, client_id, sender, text, ts, false FROM stored
     UNION ALL
     SELECT room, seq, client_id, sender, text, ts, true FROM resent";

async fn append(c: &mut ClientWrapper, m: NewMessage) -> Result<Appended, StoreError> {
    let key = m.user.to_lowercase();
    let append = c.prepare_cached(APPEND).await.map_err(pg_err)?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&m.room, &key, &m.client_id, &m.user, &m.text, &m.ts];
    let (row, duplicate) = match c.query_opt(&append, &params).await {
        Ok(Some(row)) => {
            let duplicate = row.try_get(6).map_err(pg_err)?;
            (row, duplicate)
        }
        Ok(None) => return Err(StoreError::NoSuchRoom),
        Err(e) if is_resend_conflict(&e) => {
            // The same message came in through another connection (another node) meanwhile:
            // answer with that one.
            let resent = c.prepare_cached(RESENT).await.map_err(pg_err)?;
            let row = c
                .query_opt(&resent, &[&m.room, &key, &m.client_id])
                .await
                .map_err(pg_err)?
                .ok_or_else(|| StoreError::Database("a resent message vanished".into()))?;
            (row, true)
        }
        Err(e) => return Err(pg_err(e)),
    };
    Ok(Appended {
        message: row_message(&row)?,
        duplicate,
    })
}

fn is_resend_conflict(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some("messages_resend")
    })
}

async fn query_messages(
    c: &ClientWrapper,
    sql: &str,
    room: &str,
    seq: u64,
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    let stmt = c.prepare_cached(sql).await.map_err(pg_err)?;
    c.query(&stmt, &[&room, &seq_param(seq), &limit_param(limit)])
        .await
        .map_err(pg_err)?
        .iter()
        .map(row_message)
        .collect()
}

impl Store for PostgresStore {
    fn append(&self, message: NewMessage) -> BoxFuture<Result<Appended, StoreError>> {
        self.call(move |c| Box::pin(append(c, message)))
    }

    fn messages_after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> BoxFuture<Result<Vec<StoredMessage>, StoreError>> {
        let room = room.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                query_messages(
                    c,
                    "SELECT room, seq, client_id, sender, text, ts FROM messages
                     WHERE room = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    &room,
                    after,
                    limit,
                )
                .await
            })
        })
    }

    fn messages_before(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> BoxFuture<Result<Vec<StoredMessage>, StoreError>> {
        let room = room.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                query_messages(
                    c,
                    "SELECT * FROM (SELECT room, seq, client_id, sender, text, ts FROM messages
                     WHERE room = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3) AS page
                     ORDER BY seq",
                    &room,
                    before,
                    limit,
                )
                .await
            })
        })
    }

    fn last_seq(&self, room: &str) -> BoxFuture<Result<u64, StoreError>> {
        let room = room.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt("SELECT last_seq FROM rooms WHERE name = $1", &[&room])
                    .await
                    .map_err(pg_err)?
                    .ok_or(StoreError::NoSuchRoom)?;
                Ok(seq_value(row.try_get(0).map_err(pg_err)?))
            })
        })
    }

    fn rooms(&self) -> BoxFuture<Result<Vec<RoomInfo>, StoreError>> {
        self.call(|c| {
            Box::pin(async move {
                c.query(
                    "SELECT name, topic, kind, created_at FROM rooms WHERE kind = 'room'
                     ORDER BY name",
                    &[],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(row_room)
                .collect()
            })
        })
    }

    fn room(&self, name: &str) -> BoxFuture<Result<Option<RoomInfo>, StoreError>> {
        let name = name.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                c.query_opt(
                    "SELECT name, topic, kind, created_at FROM rooms WHERE name = $1",
                    &[&name],
                )
                .await
                .map_err(pg_err)?
                .as_ref()
                .map(row_room)
                .transpose()
            })
        })
    }

    fn create_room(&self, info: RoomInfo) -> BoxFuture<Result<bool, StoreError>> {
        self.call(move |c| {
            Box::pin(async move {
                let created = c
                    .execute(
                        "INSERT INTO rooms (name, topic, kind, created_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (name) DO NOTHING",
                        &[
                            &info.name,
                            &info.topic,
                            &kind_str(info.kind),
                            &info.created_at,
                        ],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(created == 1)
            })
        })
    }

    fn set_topic(&self, room: &str, topic: &str) -> BoxFuture<Result<(), StoreError>> {
        let (room, topic) = (room.to_owned(), topic.to_owned());
        self.call(move |c| {
            Box::pin(async move {
                let changed = c
                    .execute(
                        "UPDATE rooms SET topic = $2 WHERE name = $1",
                        &[&room, &topic],
                    )
                    .await
                    .map_err(pg_err)?;
                if changed == 1 {
                    Ok(())
                } else {
                    Err(StoreError::NoSuchRoom)
                }
            })
        })
    }

    fn health(&self) -> BoxFuture<Result<(), StoreError>> {
        let entered = self.enter();
        let pool = self.pool.clone();
        Box::pin(async move {
            let _entered = entered?;
            let check = with_client(&pool, HEALTH_TIMEOUT, |c| {
                Box::pin(async move {
                    c.simple_query("SELECT 1").await.map_err(pg_err)?;
                    Ok(())
                })
            });
            // Bounds the wait for a connection too.
            tokio::time::timeout(HEALTH_TIMEOUT, check)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Database(format!(
                        "PostgreSQL did not answer within {}s",
                        HEALTH_TIMEOUT.as_secs()
                    )))
                })
        })
    }

    fn close(&self) -> BoxFuture<()> {
        self.gate.send_modify(|g| g.closed = true);
        let mut gate = self.gate.subscribe();
        let pool = self.pool.clone();
        Box::pin(async move {
            let _ = gate.wait_for(|g| g.in_flight == 0).await;
            pool.close();
        })
    }
}

const ACCOUNT_COLUMNS: &str = "id, name, password_hash, admin, created_at";

/// A row of [`ACCOUNT_COLUMNS`] from column `at`.
fn row_account(r: &Row, at: usize) -> Result<Account, StoreError> {
    Ok(Account {
        id: r.try_get(at).map_err(pg_err)?,
        name: r.try_get(at + 1).map_err(pg_err)?,
        password_hash: r.try_get(at + 2).map_err(pg_err)?,
        admin: r.try_get(at + 3).map_err(pg_err)?,
        created_at: r.try_get(at + 4).map_err(pg_err)?,
    })
}

const SESSION_COLUMNS: &str = "id, account_id, created_at, expires_at, user_agent";

fn row_session(r: &Row) -> Result<SessionInfo, StoreError> {
    Ok(SessionInfo {
        id: r.try_get(0).map_err(pg_err)?,
        account_id: r.try_get(1).map_err(pg_err)?,
        created_at: r.try_get(2).map_err(pg_err)?,
        expires_at: r.try_get(3).map_err(pg_err)?,
        user_agent: r.try_get(4).map_err(pg_err)?,
    })
}

const FIND_ACCOUNT: &str = "SELECT id, name, password_hash, admin, created_at FROM accounts
     WHERE name_key IN ($1, $2) OR alias_key IN ($1, $2) ORDER BY id LIMIT 1";

async fn create_account(
    c: &mut ClientWrapper,
    new: NewAccount,
    invite: Option<String>,
) -> Result<Created, StoreError> {
    let tx = c.transaction().await.map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ACCOUNTS_LOCK])
        .await
        .map_err(pg_err)?;
    if tx
        .query_opt(FIND_ACCOUNT, &[&new.key, &new.alias])
        .await
        .map_err(pg_err)?
        .is_some()
    {
        return Ok(Created::NameTaken);
    }
    if let Some(code) = invite {
        let used = tx
            .execute(
                "DELETE FROM invites WHERE code_hash = $1 AND expires_at > $2",
                &[&code, &new.created_at],
            )
            .await
            .map_err(pg_err)?;
        if used == 0 {
            return Ok(Created::BadInvite);
        }
    }
    let row = tx
        .query_one(
            "INSERT INTO accounts (name, name_key, alias_key, password_hash, admin, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &new.name,
                &new.key,
                &new.alias,
                &new.password_hash,
                &new.admin,
                &new.created_at,
            ],
        )
        .await
        .map_err(pg_err)?;
    let id: i64 = row.try_get(0).map_err(pg_err)?;
    tx.commit().await.map_err(pg_err)?;
    Ok(Created::Created(Account {
        id,
        name: new.name,
        password_hash: new.password_hash,
        admin: new.admin,
        created_at: new.created_at,
    }))
}

impl AccountStore for PostgresStore {
    fn create_account(
        &self,
        account: NewAccount,
        invite: Option<String>,
    ) -> BoxFuture<Result<Created, StoreError>> {
        self.call(move |c| Box::pin(create_account(c, account, invite)))
    }

    fn find_account(
        &self,
        key: &str,
        alias: &str,
    ) -> BoxFuture<Result<Option<Account>, StoreError>> {
        let (key, alias) = (key.to_owned(), alias.to_owned());
        self.call(move |c| {
            Box::pin(async move {
                let stmt = c.prepare_cached(FIND_ACCOUNT).await.map_err(pg_err)?;
                c.query_opt(&stmt, &[&key, &alias])
                    .await
                    .map_err(pg_err)?
                    .map(|r| row_account(&r, 0))
                    .transpose()
            })
        })
    }

    fn accounts(&self) -> BoxFuture<Result<Vec<Account>, StoreError>> {
        self.call(|c| {
            Box::pin(async move {
                c.query(
                    &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY name"),
                    &[],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| row_account(r, 0))
                .collect()
            })
        })
    }

    fn set_password(
        &self,
        account: i64,
        password_hash: String,
        keep: Option<String>,
    ) -> BoxFuture<Result<bool, StoreError>> {
        self.call(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await.map_err(pg_err)?;
                let changed = tx
                    .execute(
                        "UPDATE accounts SET password_hash = $2 WHERE id = $1",
                        &[&account, &password_hash],
                    )
                    .await
                    .map_err(pg_err)?;
                tx.execute(
                    "DELETE FROM account_sessions
                     WHERE account_id = $1 AND id IS DISTINCT FROM $2",
                    &[&account, &keep],
                )
                .await
                .map_err(pg_err)?;
                tx.commit().await.map_err(pg_err)?;
                Ok(changed == 1)
            })
        })
    }

    fn create_session(&self, session: NewSession) -> BoxFuture<Result<(), StoreError>> {
        self.call(move |c| {
            Box::pin(async move {
                let info = &session.info;
                let tx = c.transaction().await.map_err(pg_err)?;
                tx.execute(
                    "DELETE FROM account_sessions WHERE account_id = $1 AND expires_at <= $2",
                    &[&info.account_id, &info.created_at],
                )
                .await
                .map_err(pg_err)?;
                tx.execute(
                    "INSERT INTO account_sessions
                     (token_hash, id, account_id, created_at, expires_at, user_agent)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &session.token_hash,
                        &info.id,
                        &info.account_id,
                        &info.created_at,
                        &info.expires_at,
                        &info.user_agent,
                    ],
                )
                .await
                .map_err(pg_err)?;
                tx.commit().await.map_err(pg_err)
            })
        })
    }

    fn session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> BoxFuture<Result<Option<(SessionInfo, Account)>, StoreError>> {
        let token_hash = token_hash.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                let stmt = c
                    .prepare_cached(
                        "SELECT s.id, s.account_id, s.created_at, s.expires_at, s.user_agent,
                                a.id, a.name, a.password_hash, a.admin, a.created_at
                         FROM account_sessions s JOIN accounts a ON a.id = s.account_id
                         WHERE s.token_hash = $1 AND s.expires_at > $2",
                    )
                    .await
                    .map_err(pg_err)?;
                let Some(row) = c
                    .query_opt(&stmt, &[&token_hash, &now])
                    .await
                    .map_err(pg_err)?
                else {
                    return Ok(None);
                };
                Ok(Some((row_session(&row)?, row_account(&row, 5)?)))
            })
        })
    }

    fn sessions(&self, account: i64, now: i64) -> BoxFuture<Result<Vec<SessionInfo>, StoreError>> {
        self.call(move |c| {
            Box::pin(async move {
                c.query(
                    &format!(
                        "SELECT {SESSION_COLUMNS} FROM account_sessions
                         WHERE account_id = $1 AND expires_at > $2 ORDER BY created_at, id"
                    ),
                    &[&account, &now],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(row_session)
                .collect()
            })
        })
    }

    fn delete_session(&self, account: i64, id: &str) -> BoxFuture<Result<bool, StoreError>> {
        let id = id.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                c.execute(
                    "DELETE FROM account_sessions WHERE account_id = $1 AND id = $2",
                    &[&account, &id],
                )
                .await
                .map(|n| n > 0)
                .map_err(pg_err)
            })
        })
    }

    fn create_invite(&self, invite: Invite) -> BoxFuture<Result<(), StoreError>> {
        self.call(move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO invites (code_hash, created_by, created_at, expires_at)
                     VALUES ($1, $2, $3, $4)",
                    &[
                        &invite.code_hash,
                        &invite.created_by,
                        &invite.created_at,
                        &invite.expires_at,
                    ],
                )
                .await
                .map(drop)
                .map_err(pg_err)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use futures_util::FutureExt;

    use super::super::pg_server::PgServer;
    use super::super::{contract, now_ms};
    use super::*;

    fn msg(room: &str, id: &str, user: &str) -> NewMessage {
        NewMessage {
            room: room.into(),
            client_id: id.into(),
            user: user.into(),
            text: format!("{user} says {id}"),
            ts: now_ms(),
        }
    }

    fn room(name: &str) -> RoomInfo {
        RoomInfo {
            name: name.into(),
            topic: String::new(),
            kind: RoomKind::Room,
            created_at: now_ms(),
        }
    }

    #[tokio::test]
    async fn postgres_store_contract() {
        let pg = PgServer::new();
        let url = pg.database("chatd").await;
        let store = PostgresStore::open(&url).await.unwrap();
        contract::run(&store).await;
        // A resend whose sender name differs in case is still the same message.
        let again = store.append(msg("lobby", "c1", "ALICE")).await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.message.seq, 1);
        assert_eq!(store.health().await, Ok(()));
        store.close().await;
        assert_eq!(store.last_seq("lobby").await, Err(StoreError::Closed));
        assert_eq!(store.health().await, Err(StoreError::Closed));
        // Durable, and the schema is not migrated twice.
        let store = PostgresStore::open(&url).await.unwrap();
        assert_eq!(store.last_seq("lobby").await, Ok(3));
        store.close().await;
    }

    #[tokio::test]
    async fn postgres_member_store_contract() {
        let pg = PgServer::new();
        let url = pg.database("chatd").await;
        let store = PostgresStore::open(&url).await.unwrap();
        crate::store::members::contract::run(&store).await;
        store.close().await;
    }

    #[tokio::test]
    async fn postgres_account_store_contract_shared_by_two_nodes() {
        let pg = PgServer::new();
        let url = pg.database("chatd").await;
        let store = PostgresStore::open(&url).await.unwrap();
        crate::store::accounts::contract::run(&store).await;
        // Another node on the same database sees the accounts and sessions.
        let other = PostgresStore::open(&url).await.unwrap();
        assert_eq!(other.accounts().await.unwrap().len(), 2);
        let sessions = other.sessions(2, 2000).await.unwrap();
        assert_eq!(sessions.len(), 1);
        assert!(other.session("token b1", 2000).await.unwrap().is_some());
        // Registrations of one name on both nodes at once: one wins.
        let new = crate::store::accounts::contract::new_account;
        let (a, b) = tokio::join!(
            store.create_account(new("Dora", false), None),
            other.create_account(new("dora", false), None)
        );
        let mut outcomes = [a.unwrap(), b.unwrap()]
            .map(|c| matches!(c, Created::Created(_)))
            .to_vec();
        outcomes.sort();
        assert_eq!(outcomes, [false, true]);
        store.close().await;
        other.close().await;
    }

    #[tokio::test]
    async fn a_schema_newer_than_the_binary_is_refused() {
        let pg = PgServer::new();
        let url = pg.database("chatd").await;
        PostgresStore::open(&url).await.unwrap().close().await;
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        let connection = tokio::spawn(connection);
        let newer = schema_version() + 1;
        client
            .execute("INSERT INTO chatd_schema (version) VALUES ($1)", &[&newer])
            .await
            .unwrap();
        drop(client);
        let _ = connection.await;
        let Err(StoreError::Database(e)) = PostgresStore::open(&url).await else {
            panic!("a newer schema was accepted");
        };
        let expected = format!(
            "schema version {newer} is newer than this chatd supports ({newer_minus_one})",
            newer_minus_one = newer - 1
        );
        assert!(e.contains(&expected), "{e}");
    }

    /// Two nodes starting together on an empty database, then appending to one room at once,
    /// with some messages sent to both (a client retrying through another node).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_append_to_one_room_with_unique_gap_free_seqs() {
        let pg = PgServer::new();
        let url = pg.database("chatd").await;
        let (a, b) = tokio::join!(PostgresStore::open(&url), PostgresStore::open(&url));
        let nodes = [Arc::new(a.unwrap()), Arc::new(b.unwrap())];
        assert!(nodes[0].create_room(room("lobby")).await.unwrap());
        assert!(!nodes[1].create_room(room("lobby")).await.unwrap());
        let mut tasks = Vec::new();
        for (n, node) in nodes.iter().enumerate() {
            for i in 0..100 {
                let node = node.clone();
                tasks.push(tokio::spawn(async move {
                    node.append(msg("lobby", &format!("{n}-{i}"), "alice"))
                        .await
                }));
            }
            // Sent to both nodes: stored once.
            for i in 0..20 {
                let node = node.clone();
                tasks.push(tokio::spawn(async move {
                    node.append(msg("lobby", &format!("both-{i}"), "bob")).await
                }));
            }
        }
        let mut stored = Vec::new();
        for task in tasks {
            stored.push(task.await.unwrap().unwrap());
        }
        let firsts: Vec<_> = stored.iter().filter(|s| !s.duplicate).collect();
        assert_eq!(firsts.len(), 220);
        let seqs: BTreeSet<u64> = firsts.iter().map(|s| s.message.seq).collect();
        assert_eq!(seqs, (1..=220).collect());
        for resend in stored.iter().filter(|s| s.duplicate) {
            assert!(firsts.iter().any(|s| s.message == resend.message));
        }
        assert_eq!(nodes[1].last_seq("lobby").await, Ok(220));
        let all = nodes[0].messages_after("lobby", 0, 1000).await.unwrap();
        assert_eq!(
            all.iter().map(|m| m.seq).collect::<Vec<_>>(),
            (1..=220).collect::<Vec<_>>()
        );
        for node in nodes {
            node.close().await;
        }
    }

    /// The same message stored through another node while this append waits for the room:
    /// the append finds it on its insert and answers with it, and the sequence number it had
    /// taken is given back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_resend_stored_elsewhere_while_waiting_for_the_room_is_answered_with_that_one() {
        let pg = PgServer::new();
        let url = pg.database("chatd").await;
        let store = Arc::new(PostgresStore::open(&url).await.unwrap());
        store.create_room(room("lobby")).await.unwrap();
        // The other node's append, by hand, left uncommitted: it holds the room row.
        let (mut other, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        let connection = tokio::spawn(connection);
        let tx = other.transaction().await.unwrap();
        tx.execute(
            "UPDATE rooms SET last_seq = last_seq + 1 WHERE name = 'lobby'",
            &[],
        )
        .await
        .unwrap();
        tx.execute(
            "INSERT INTO messages (room, seq, client_id, sender, sender_key, text, ts)
             VALUES ('lobby', 1, 'c1', 'Alice', 'alice', 'first', 1)",
            &[],
        )
        .await
        .unwrap();
        let resend = tokio::spawn({
            let store = store.clone();
            async move { store.append(msg("lobby", "c1", "alice")).await }
        });
        // Until the append waits for the room row's lock (pg_locks is read afresh each time).
        let waiting = async {
            loop {
                let row = tx
                    .query_one("SELECT count(*) FROM pg_locks WHERE NOT granted", &[])
                    .await
                    .unwrap();
                if row.get::<_, i64>(0) > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the append never waited for the room");
        tx.commit().await.unwrap();
        let appended = resend.await.unwrap().unwrap();
        assert!(appended.duplicate);
        assert_eq!(
            (appended.message.seq, appended.message.text.as_str()),
            (1, "first")
        );
        assert_eq!(store.last_seq("lobby").await, Ok(1));
        let next = store.append(msg("lobby", "c2", "alice")).await.unwrap();
        assert_eq!((next.message.seq, next.duplicate), (2, false));
        drop(other);
        let _ = connection.await;
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_fail_fast_while_the_server_is_down_and_work_again_once_it_is_back() {
        let pg = PgServer::new();
        let url = pg.database("chatd").await;
        let store = PostgresStore::open(&url).await.unwrap();
        store.create_room(room("lobby")).await.unwrap();
        assert_eq!(
            store
                .append(msg("lobby", "1", "a"))
                .await
                .unwrap()
                .message
                .seq,
            1
        );
        pg.stop();
        let within = Duration::from_secs(5);
        for id in ["2", "3"] {
            let failed = tokio::time::timeout(within, store.append(msg("lobby", id, "a"))).await;
            assert!(
                matches!(failed, Ok(Err(StoreError::Database(_)))),
                "{failed:?}"
            );
        }
        let health = tokio::time::timeout(within, store.health()).await;
        assert!(
            matches!(health, Ok(Err(StoreError::Database(_)))),
            "{health:?}"
        );
        pg.start();
        // The same store, without a restart: the pool connects anew.
        let appended = store.append(msg("lobby", "2", "a")).await.unwrap();
        assert_eq!((appended.message.seq, appended.duplicate), (2, false));
        assert_eq!(store.health().await, Ok(()));
        assert_eq!(store.last_seq("lobby").await, Ok(2));
        store.close().await;
    }

    async fn backend_pid(store: &PostgresStore) -> i32 {
        with_client(&store.pool, OPERATION_TIMEOUT, |c| {
            Box::pin(async move {
                let row = c
                    .query_one("SELECT pg_backend_pid()", &[])
                    .await
                    .map_err(pg_err)?;
                row.try_get(0).map_err(pg_err)
            })
        })
        .await
        .unwrap()
    }

    fn signal(signal: &str, pid: i32) {
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// A server process that stops answering (stopped here with SIGSTOP) costs one call
    /// [`OPERATION_TIMEOUT`], and its connection is not used again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_connection_times_out_and_is_replaced() {
        let pg = PgServer::new();
        let url = pg.database("chatd").await;
        let store = PostgresStore::open(&url).await.unwrap();
        store.create_room(room("lobby")).await.unwrap();
        let hung = backend_pid(&store).await;
        signal("-STOP", hung);
        let appended =
            tokio::time::timeout(OPERATION_TIMEOUT * 2, store.append(msg("lobby", "1", "a"))).await;
        signal("-CONT", hung);
        assert!(
            matches!(&appended, Ok(Err(StoreError::Database(e))) if e.contains("did not answer")),
            "{appended:?}"
        );
        assert_ne!(backend_pid(&store).await, hung);
        let appended = store.append(msg("lobby", "1", "a")).await.unwrap();
        assert_eq!((appended.message.seq, appended.duplicate), (1, false));
        store.close().await;
    }

    #[tokio::test]
    async fn close_refuses_new_work_and_waits_for_work_in_flight() {
        let pg = PgServer::new();
        let url = pg.database("chatd").await;
        let store = PostgresStore::open(&url).await.unwrap();
        store.create_room(room("lobby")).await.unwrap();
        let in_flight = store.append(msg("lobby", "1", "a"));
        let mut closing = store.close();
        assert_eq!(store.rooms().await, Err(StoreError::Closed));
        assert!((&mut closing).now_or_never().is_none());
        assert_eq!(in_flight.await.unwrap().message.seq, 1);
        closing.await;
    }
}
