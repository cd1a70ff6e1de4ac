//! SQLite store: one writer thread owns the connection and runs jobs in batched transactions.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::accounts::{
    Account, AccountStore, Created, Invite, NewAccount, NewSession, SessionInfo,
};
use super::{
    Appended, BoxFuture, NewMessage, RoomInfo, RoomKind, Store, StoreError, StoredMessage,
};

/// What a job does once its batch committed (`true`) or failed (`false`).
pub(crate) type Reply = Box<dyn FnOnce(bool) + Send>;

/// Jobs run by the writer thread; each replies once its transaction has committed.
enum Job {
    Append(NewMessage, oneshot::Sender<Result<Appended, StoreError>>),
    After(
        String,
        u64,
        usize,
        oneshot::Sender<Result<Vec<StoredMessage>, StoreError>>,
    ),
    Before(
        String,
        u64,
        usize,
        oneshot::Sender<Result<Vec<StoredMessage>, StoreError>>,
    ),
    LastSeq(String, oneshot::Sender<Result<u64, StoreError>>),
    Rooms(oneshot::Sender<Result<Vec<RoomInfo>, StoreError>>),
    Room(
        String,
        oneshot::Sender<Result<Option<RoomInfo>, StoreError>>,
    ),
    CreateRoom(RoomInfo, oneshot::Sender<Result<bool, StoreError>>),
    SetTopic(String, String, oneshot::Sender<Result<(), StoreError>>),
    Close(oneshot::Sender<()>),
    /// Work of another module on the same connection and transaction.
    Run(Box<dyn FnOnce(&Connection) -> Reply + Send>),
}

/// The default store: a SQLite database in WAL mode with `synchronous=FULL`, so an
/// acknowledged message survives a crash of the process or the machine.
///
/// Jobs queue to one thread that takes everything waiting (up to 512 jobs), runs it in one
/// transaction and answers after the commit: under load one fsync covers many messages. The
/// queue holds 16 384 (`QUEUE`) jobs at most; a job that finds it full fails at once with
/// [`StoreError::Overloaded`]. Connection-recovery writes (which follow broadcasts, so stop
/// when appends are refused) may go up to twice that, so that they are not the first lost.
pub struct SqliteStore {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// Jobs waiting for the writer thread at most.
pub const QUEUE: usize = 16384;

pub(super) fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS rooms (
    name TEXT PRIMARY KEY,
    topic TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'room',
    created_at INTEGER NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    client_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_key TEXT NOT NULL,
    text TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_resend ON messages (room, sender_key, client_id);
CREATE TABLE IF NOT EXISTS recovery_packets (
    ord INTEGER PRIMARY KEY,
    nsp TEXT NOT NULL,
    data TEXT NOT NULL,
    attachments BLOB NOT NULL,
    rooms TEXT NOT NULL,
    except_rooms TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS recovery_packets_at ON recovery_packets (at);
CREATE TABLE IF NOT EXISTS recovery_sessions (
    pid TEXT PRIMARY KEY,
    sid TEXT NOT NULL,
    nsp TEXT NOT NULL,
    rooms TEXT NOT NULL,
    data TEXT NOT NULL,
    at INTEGER NOT NULL
);
";

/// The schema after [`SCHEMA`] (version 1), step by step: step `i` brings `user_version` to
/// `i + 2`. Steps are only ever appended; a released one is never edited.
const MIGRATIONS: &[&str] = &[
    // 2: accounts, their sessions (token hashes) and invites (code hashes).
    "CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        name_key TEXT NOT NULL UNIQUE,
        alias_key TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        admin INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX accounts_alias ON accounts (alias_key);
    CREATE TABLE account_sessions (
        token_hash TEXT PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        user_agent TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX account_sessions_account ON account_sessions (account_id);
    CREATE TABLE invites (
        code_hash TEXT PRIMARY KEY,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );",
    // 3: private rooms, room members with their roles and read markers, invite links (token
    // hashes).
    "ALTER TABLE rooms ADD COLUMN private INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE room_members (
        room TEXT NOT NULL REFERENCES rooms (name),
        user_key TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        joined_at INTEGER NOT NULL,
        read_seq INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (room, user_key)
    );
    CREATE INDEX room_members_user ON room_members (user_key);
    CREATE TABLE room_invites (
        token_hash TEXT PRIMARY KEY,
        room TEXT NOT NULL REFERENCES rooms (name),
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );",
];

/// Brings the schema to the newest version in one transaction; refuses a database of a newer
/// chatd.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA).map_err(db_err)?;
    let tx = conn.transaction().map_err(db_err)?;
    let current: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    let known = MIGRATIONS.len() as i64 + 1;
    if current > known {
        return Err(StoreError::Database(format!(
            "schema version {current} is newer than this chatd supports ({known})"
        )));
    }
    for (version, step) in (2_i64..).zip(MIGRATIONS) {
        if version <= current {
            continue;
        }
        tx.execute_batch(step).map_err(db_err)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(db_err)?;
    }
    tx.commit().map_err(db_err)
}

impl SqliteStore {
    /// Opens (or creates) the database file and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, QUEUE)
    }

    /// [`SqliteStore::open`] with a queue of `queue` jobs.
    pub(crate) fn open_with(path: &Path, queue: usize) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path).map_err(db_err)?;
        migrate(&mut conn)?;
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let taken = queued.clone();
        std::thread::Builder::new()
            .name("chatd-store".into())
            .spawn(move || writer(conn, rx, &taken))
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(SqliteStore {
            jobs: Mutex::new(Some(tx)),
            queued,
            limit: queue.max(1),
        })
    }

    /// Runs `f` on the writer thread, inside the next batch's transaction; `f` returns what to
    /// do once the batch committed (or failed: the flag). False when the store is closed or
    /// its queue full.
    pub(crate) fn run(&self, f: impl FnOnce(&Connection) -> Reply + Send + 'static) -> bool {
        let queued = self.queue(Job::Run(Box::new(f)), self.limit * 2);
        if queued == Err(StoreError::Overloaded) {
            tracing::warn!("store queue full: a recovery write is dropped");
        }
        queued.is_ok()
    }

    /// Queues a job without waiting, unless `limit` jobs are waiting.
    fn queue(&self, job: Job, limit: usize) -> Result<(), StoreError> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let jobs = jobs.as_ref().ok_or(StoreError::Closed)?;
        if self.queued.fetch_add(1, Ordering::AcqRel) >= limit {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Overloaded);
        }
        jobs.send(job).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            StoreError::Closed
        })
    }

    /// Runs `f` on the writer thread in the next batch; answers after the commit.
    pub(super) fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<Result<T, StoreError>> {
        let (tx, rx) = oneshot::channel();
        let job = Job::Run(Box::new(move |conn| {
            let result = f(conn);
            Box::new(move |committed| {
                let _ = tx.send(if committed {
                    result
                } else {
                    Err(StoreError::Database("commit failed".into()))
                });
            })
        }));
        let queued = self.queue(job, self.limit);
        Box::pin(async move {
            queued?;
            rx.await.unwrap_or(Err(StoreError::Closed))
        })
    }

    fn submit<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> BoxFuture<Result<T, StoreError>> {
        let (tx, rx) = oneshot::channel();
        let queued = self.queue(make(tx), self.limit);
        Box::pin(async move {
            queued?;
            rx.await.unwrap_or(Err(StoreError::Closed))
        })
    }
}

pub(super) fn kind_str(k: RoomKind) -> &'static str {
    match k {
        RoomKind::Room => "room",
        RoomKind::Direct => "direct",
    }
}

fn row_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        room: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        id: r.get(2)?,
        user: r.get(3)?,
        text: r.get(4)?,
        ts: r.get(5)?,
    })
}

fn row_room(r: &rusqlite::Row<'_>) -> rusqlite::Result<RoomInfo> {
    let kind: String = r.get(2)?;
    Ok(RoomInfo {
        name: r.get(0)?,
        topic: r.get(1)?,
        kind: if kind == "direct" {
            RoomKind::Direct
        } else {
            RoomKind::Room
        },
        created_at: r.get(3)?,
    })
}

fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn append(conn: &Connection, m: &NewMessage) -> Result<Appended, StoreError> {
    let key = m.user.to_lowercase();
    // Cached statements: this runs for every message, and parsing SQL showed in profiles.
    let existing = conn
        .prepare_cached(
            "SELECT room, seq, client_id, sender, text, ts FROM messages
             WHERE room = ?1 AND sender_key = ?2 AND client_id = ?3",
        )
        .and_then(|mut s| {
            s.query_row(params![m.room, key, m.client_id], row_message)
                .optional()
        })
        .map_err(db_err)?;
    if let Some(message) = existing {
        return Ok(Appended {
            message,
            duplicate: true,
        });
    }
    let seq: Option<i64> = conn
        .prepare_cached(
            "UPDATE rooms SET last_seq = last_seq + 1 WHERE name = ?1 RETURNING last_seq",
        )
        .and_then(|mut s| s.query_row(params![m.room], |r| r.get(0)).optional())
        .map_err(db_err)?;
    let seq = seq.ok_or(StoreError::NoSuchRoom)?;
    conn.prepare_cached(
        "INSERT INTO messages (room, seq, client_id, sender, sender_key, text, ts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| s.execute(params![m.room, seq, m.client_id, m.user, key, m.text, m.ts]))
    .map_err(db_err)?;
    Ok(Appended {
        message: StoredMessage {
            room: m.room.clone(),
            seq: seq as u64,
            id: m.client_id.clone(),
            user: m.user.clone(),
            text: m.text.clone(),
            ts: m.ts,
        },
        duplicate: false,
    })
}

fn query_messages(
    conn: &Connection,
    sql: &str,
    room: &str,
    seq: u64,
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt
        .query_map(params![room, seq_param(seq), limit as i64], row_message)
        .map_err(db_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
}

/// Runs one job inside the open transaction; returns the reply to send after commit.
fn run(conn: &Connection, job: Job) -> Reply {
    fn reply<T: Send + 'static>(
        tx: oneshot::Sender<Result<T, StoreError>>,
        result: Result<T, StoreError>,
    ) -> Reply {
        Box::new(move |committed| {
            let _ = tx.send(if committed {
                result
            } else {
                Err(StoreError::Database("commit failed".into()))
            });
        })
    }
    match job {
        Job::Append(m, tx) => reply(tx, append(conn, &m)),
        Job::After(room, after, limit, tx) => reply(
            tx,
            query_messages(
                conn,
                "SELECT room, seq, client_id, sender, text, ts FROM messages
                 WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                &room,
                after,
                limit,
            ),
        ),
        Job::Before(room, before, limit, tx) => reply(
            tx,
            query_messages(
                conn,
                "SELECT * FROM (SELECT room, seq, client_id, sender, text, ts FROM messages
                 WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3) ORDER BY seq",
                &room,
                before,
                limit,
            ),
        ),
        Job::LastSeq(room, tx) => reply(
            tx,
            conn.query_row("SELECT last_seq FROM rooms WHERE name = ?1", params![room], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map_err(db_err)
            .and_then(|s| s.map(|s| s as u64).ok_or(StoreError::NoSuchRoom)),
        ),
        Job::Rooms(tx) => reply(tx, {
            conn.prepare_cached(
                "SELECT name, topic, kind, created_at FROM rooms WHERE kind = 'room' ORDER BY name",
            )
            .and_then(|mut s| s.query_map([], row_room)?.collect::<Result<Vec<_>, _>>())
            .map_err(db_err)
        }),
        Job::Room(name, tx) => reply(
            tx,
            conn.query_row(
                "SELECT name, topic, kind, created_at FROM rooms WHERE name = ?1",
                params![name],
                row_room,
            )
            .optional()
            .map_err(db_err),
        ),
        Job::CreateRoom(info, tx) => reply(
            tx,
            conn.execute(
                "INSERT OR IGNORE INTO rooms (name, topic, kind, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![info.name, info.topic, kind_str(info.kind), info.created_at],
            )
            .map(|n| n == 1)
            .map_err(db_err),
        ),
        Job::SetTopic(room, topic, tx) => reply(
            tx,
            conn.execute("UPDATE rooms SET topic = ?2 WHERE name = ?1", params![room, topic])
                .map_err(db_err)
                .and_then(|n| if n == 1 { Ok(()) } else { Err(StoreError::NoSuchRoom) }),
        ),
        Job::Close(tx) => Box::new(move |_| {
            let _ = tx.send(());
        }),
        Job::Run(f) => f(conn),
    }
}

fn writer(mut conn: Connection, jobs: mpsc::Receiver<Job>, queued: &AtomicUsize) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        queued.fetch_sub(batch.len(), Ordering::AcqRel);
        let closing = batch.iter().any(|j| matches!(j, Job::Close(_)));
        match conn.transaction() {
            Ok(tx) => {
                let replies: Vec<_> = batch.into_iter().map(|job| run(&tx, job)).collect();
                let committed = match tx.commit() {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::error!(%err, "store commit failed");
                        false
                    }
                };
                for reply in replies {
                    reply(committed);
                }
            }
            Err(err) => {
                // Dropping the jobs fails them (their callers see the store as unavailable).
                tracing::error!(%err, "store transaction failed to start");
                drop(batch);
            }
        }
        if closing {
            break;
        }
    }
    tracing::debug!("store writer stopped");
}

impl Store for SqliteStore {
    fn append(&self, message: NewMessage) -> BoxFuture<Result<Appended, StoreError>> {
        self.submit(|tx| Job::Append(message, tx))
    }
    fn messages_after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> BoxFuture<Result<Vec<StoredMessage>, StoreError>> {
        let room = room.to_owned();
        self.submit(move |tx| Job::After(room, after, limit, tx))
    }
    fn messages_before(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> BoxFuture<Result<Vec<StoredMessage>, StoreError>> {
        let room = room.to_owned();
        self.submit(move |tx| Job::Before(room, before, limit, tx))
    }
    fn last_seq(&self, room: &str) -> BoxFuture<Result<u64, StoreError>> {
        let room = room.to_owned();
        self.submit(move |tx| Job::LastSeq(room, tx))
    }
    fn rooms(&self) -> BoxFuture<Result<Vec<RoomInfo>, StoreError>> {
        self.submit(Job::Rooms)
    }
    fn room(&self, name: &str) -> BoxFuture<Result<Option<RoomInfo>, StoreError>> {
        let name = name.to_owned();
        self.submit(move |tx| Job::Room(name, tx))
    }
    fn create_room(&self, info: RoomInfo) -> BoxFuture<Result<bool, StoreError>> {
        self.submit(move |tx| Job::CreateRoom(info, tx))
    }
    fn set_topic(&self, room: &str, topic: &str) -> BoxFuture<Result<(), StoreError>> {
        let (room, topic) = (room.to_owned(), topic.to_owned());
        self.submit(move |tx| Job::SetTopic(room, topic, tx))
    }
    fn health(&self) -> BoxFuture<Result<(), StoreError>> {
        // Not a job: a busy writer is not an unhealthy one.
        let open = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        Box::pin(std::future::ready(if open {
            Ok(())
        } else {
            Err(StoreError::Closed)
        }))
    }
    fn close(&self) -> BoxFuture<()> {
        let (tx, rx) = oneshot::channel();
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        // Behind everything queued, whatever the limit.
        if let Some(jobs) = jobs {
            self.queued.fetch_add(1, Ordering::AcqRel);
            let _ = jobs.send(Job::Close(tx));
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

const ACCOUNT_COLUMNS: &str = "id, name, password_hash, admin, created_at";

fn row_account(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        name: r.get(1)?,
        password_hash: r.get(2)?,
        admin: r.get(3)?,
        created_at: r.get(4)?,
    })
}

const SESSION_COLUMNS: &str = "id, account_id, created_at, expires_at, user_agent";

fn row_session(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionInfo> {
    Ok(SessionInfo {
        id: r.get(0)?,
        account_id: r.get(1)?,
        created_at: r.get(2)?,
        expires_at: r.get(3)?,
        user_agent: r.get(4)?,
    })
}

fn find_account(conn: &Connection, key: &str, alias: &str) -> Result<Option<Account>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts
         WHERE name_key IN (?1, ?2) OR alias_key IN (?1, ?2) ORDER BY id LIMIT 1"
    ))
    .and_then(|mut s| s.query_row(params![key, alias], row_account).optional())
    .map_err(db_err)
}

fn create_account(
    conn: &Connection,
    new: &NewAccount,
    invite: Option<&str>,
) -> Result<Created, StoreError> {
    if find_account(conn, &new.key, &new.alias)?.is_some() {
        return Ok(Created::NameTaken);
    }
    if let Some(code) = invite {
        let used = conn
            .execute(
                "DELETE FROM invites WHERE code_hash = ?1 AND expires_at > ?2",
                params![code, new.created_at],
            )
            .map_err(db_err)?;
        if used == 0 {
            return Ok(Created::BadInvite);
        }
    }
    conn.execute(
        "INSERT INTO accounts (name, name_key, alias_key, password_hash, admin, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            new.name,
            new.key,
            new.alias,
            new.password_hash,
            new.admin,
            new.created_at
        ],
    )
    .map_err(db_err)?;
    Ok(Created::Created(Account {
        id: conn.last_insert_rowid(),
        name: new.name.clone(),
        password_hash: new.password_hash.clone(),
        admin: new.admin,
        created_at: new.created_at,
    }))
}

impl AccountStore for SqliteStore {
    fn create_account(
        &self,
        account: NewAccount,
        invite: Option<String>,
    ) -> BoxFuture<Result<Created, StoreError>> {
        self.call(move |conn| create_account(conn, &account, invite.as_deref()))
    }

    fn find_account(
        &self,
        key: &str,
        alias: &str,
    ) -> BoxFuture<Result<Option<Account>, StoreError>> {
        let (key, alias) = (key.to_owned(), alias.to_owned());
        self.call(move |conn| find_account(conn, &key, &alias))
    }

    fn accounts(&self) -> BoxFuture<Result<Vec<Account>, StoreError>> {
        self.call(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY name"
            ))
            .and_then(|mut s| s.query_map([], row_account)?.collect())
            .map_err(db_err)
        })
    }

    fn set_password(
        &self,
        account: i64,
        password_hash: String,
        keep: Option<String>,
    ) -> BoxFuture<Result<bool, StoreError>> {
        self.call(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE accounts SET password_hash = ?2 WHERE id = ?1",
                    params![account, password_hash],
                )
                .map_err(db_err)?;
            conn.execute(
                "DELETE FROM account_sessions WHERE account_id = ?1 AND id IS NOT ?2",
                params![account, keep],
            )
            .map_err(db_err)?;
            Ok(changed == 1)
        })
    }

    fn create_session(&self, session: NewSession) -> BoxFuture<Result<(), StoreError>> {
        self.call(move |conn| {
            let info = &session.info;
            conn.execute(
                "DELETE FROM account_sessions WHERE account_id = ?1 AND expires_at <= ?2",
                params![info.account_id, info.created_at],
            )
            .map_err(db_err)?;
            conn.execute(
                "INSERT INTO account_sessions
                 (token_hash, id, account_id, created_at, expires_at, user_agent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    session.token_hash,
                    info.id,
                    info.account_id,
                    info.created_at,
                    info.expires_at,
                    info.user_agent
                ],
            )
            .map_err(db_err)?;
            Ok(())
        })
    }

    fn session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> BoxFuture<Result<Option<(SessionInfo, Account)>, StoreError>> {
        let token_hash = token_hash.to_owned();
        self.call(move |conn| {
            conn.prepare_cached(
                "SELECT s.id, s.account_id, s.created_at, s.expires_at, s.user_agent,
                        a.id, a.name, a.password_hash, a.admin, a.created_at
                 FROM account_sessions s JOIN accounts a ON a.id = s.account_id
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![token_hash, now], |r| {
                    Ok((
                        row_session(r)?,
                        Account {
                            id: r.get(5)?,
                            name: r.get(6)?,
                            password_hash: r.get(7)?,
                            admin: r.get(8)?,
                            created_at: r.get(9)?,
                        },
                    ))
                })
                .optional()
            })
            .map_err(db_err)
        })
    }

    fn sessions(&self, account: i64, now: i64) -> BoxFuture<Result<Vec<SessionInfo>, StoreError>> {
        self.call(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM account_sessions
                 WHERE account_id = ?1 AND expires_at > ?2 ORDER BY created_at, id"
            ))
            .and_then(|mut s| s.query_map(params![account, now], row_session)?.collect())
            .map_err(db_err)
        })
    }

    fn delete_session(&self, account: i64, id: &str) -> BoxFuture<Result<bool, StoreError>> {
        let id = id.to_owned();
        self.call(move |conn| {
            conn.execute(
                "DELETE FROM account_sessions WHERE account_id = ?1 AND id = ?2",
                params![account, id],
            )
            .map(|n| n > 0)
            .map_err(db_err)
        })
    }

    fn create_invite(&self, invite: Invite) -> BoxFuture<Result<(), StoreError>> {
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO invites (code_hash, created_by, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    invite.code_hash,
                    invite.created_by,
                    invite.created_at,
                    invite.expires_at
                ],
            )
            .map(drop)
            .map_err(db_err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_store_contract() {
        let dir = std::env::temp_dir().join(format!("chatd-store-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open(&dir.join("chat.db")).unwrap();
        super::super::contract::run(&store).await;
        store.close().await;
        // Durable across reopening.
        let store = SqliteStore::open(&dir.join("chat.db")).unwrap();
        assert_eq!(store.last_seq("lobby").await.unwrap(), 3);
        assert_eq!(store.health().await, Ok(()));
        store.close().await;
        assert_eq!(store.last_seq("lobby").await, Err(StoreError::Closed));
        assert_eq!(store.health().await, Err(StoreError::Closed));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn sqlite_account_store_contract_and_migration() {
        let dir = std::env::temp_dir().join(format!("chatd-store-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chat.db");
        // A database of the version before accounts: version 1, no accounts table.
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        crate::store::accounts::contract::run(&store).await;
        store.close().await;
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.accounts().await.unwrap().len(), 2, "durable");
        store.close().await;
        let version: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64 + 1);
        // A newer schema is refused.
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", version + 1)
            .unwrap();
        let Err(StoreError::Database(e)) = SqliteStore::open(&path) else {
            panic!("a newer schema was accepted");
        };
        assert!(e.contains("newer than this chatd"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_full_queue_answers_overloaded_at_once_then_recovers() {
        let dir = std::env::temp_dir().join(format!("chatd-store-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open_with(&dir.join("chat.db"), 4).unwrap();
        // Hold the writer inside a job.
        let (inside_tx, inside) = mpsc::channel();
        let (release, held) = mpsc::channel::<()>();
        assert!(store.run(move |_| {
            let _ = inside_tx.send(());
            let _ = held.recv();
            Box::new(|_| {})
        }));
        inside.recv().unwrap();
        let queued: Vec<_> = (0..4).map(|_| store.rooms()).collect();
        assert_eq!(store.rooms().await, Err(StoreError::Overloaded));
        release.send(()).unwrap();
        for job in queued {
            assert_eq!(job.await, Ok(vec![]));
        }
        assert_eq!(store.rooms().await, Ok(vec![]));
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
