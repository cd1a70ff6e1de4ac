//! Durable storage of rooms and messages, and of accounts ([`AccountStore`]).
//!
//! The [`Store`] trait is what the room actors and handlers use; [`SqliteStore`] is the default
//! (one writer thread, batched transactions, replies only after commit), [`PostgresStore`] the
//! one for several nodes on one database, and [`MemoryStore`] the in-process one for tests. A
//! cluster store (Redis) implements the same trait.

pub mod accounts;
pub mod members;
mod memory;
#[cfg(test)]
pub(crate) mod pg_server;
mod postgres;
mod postgres_members;
mod recovery;
mod sqlite;
mod sqlite_members;
mod sqlite_to_postgres;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub use accounts::{Account, AccountStore, Created, Invite, NewAccount, NewSession, SessionInfo};
pub use members::{Member, MemberStore, MyRoom, NewMember, Role, RoomInvite};
pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use recovery::DurableRecovery;
pub use sqlite::SqliteStore;
pub use sqlite_to_postgres::{migrate_sqlite_to_postgres, CopiedRoom, Migrated};

/// A boxed future returned by store operations.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Room name (`@alice:bob` for a direct conversation).
    pub room: String,
    /// Per-room sequence number, from 1, without gaps.
    pub seq: u64,
    /// The client-generated id, unique per sender and room.
    pub id: String,
    /// The sender's user name.
    pub user: String,
    /// Plain text.
    pub text: String,
    /// Server time of storage, milliseconds since the Unix epoch.
    pub ts: i64,
}

/// A message to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// Room name.
    pub room: String,
    /// The client-generated id.
    pub client_id: String,
    /// Sender's user name.
    pub user: String,
    /// Text.
    pub text: String,
    /// Server time, ms since the epoch.
    pub ts: i64,
}

/// The outcome of an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The stored message (the earlier one when this was a resend).
    pub message: StoredMessage,
    /// True when the same sender had already stored this client id in this room.
    pub duplicate: bool,
}

/// What a room is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// A public room.
    Room,
    /// A direct conversation between two users.
    Direct,
}

/// A room's stored description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoomInfo {
    /// Name.
    pub name: String,
    /// Topic.
    pub topic: String,
    /// Kind.
    pub kind: RoomKind,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
}

/// A store failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The room does not exist.
    #[error("no such room")]
    NoSuchRoom,
    /// The store is closed (shutting down).
    #[error("store closed")]
    Closed,
    /// The store's queue is full.
    #[error("store overloaded")]
    Overloaded,
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(String),
}

/// Rooms and messages, durably.
pub trait Store: Send + Sync + 'static {
    /// Stores a message with the room's next sequence number, or returns the earlier one for a
    /// resend. Resolves once durable.
    fn append(&self, message: NewMessage) -> BoxFuture<Result<Appended, StoreError>>;
    /// Messages with `seq > after`, oldest first, at most `limit`.
    fn messages_after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> BoxFuture<Result<Vec<StoredMessage>, StoreError>>;
    /// The `limit` messages just before `before`, oldest first.
    fn messages_before(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> BoxFuture<Result<Vec<StoredMessage>, StoreError>>;
    /// The room's last sequence number (0 when empty).
    fn last_seq(&self, room: &str) -> BoxFuture<Result<u64, StoreError>>;
    /// Every room of kind [`RoomKind::Room`].
    fn rooms(&self) -> BoxFuture<Result<Vec<RoomInfo>, StoreError>>;
    /// One room.
    fn room(&self, name: &str) -> BoxFuture<Result<Option<RoomInfo>, StoreError>>;
    /// Creates a room; false when it already existed.
    fn create_room(&self, info: RoomInfo) -> BoxFuture<Result<bool, StoreError>>;
    /// Changes a room's topic.
    fn set_topic(&self, room: &str, topic: &str) -> BoxFuture<Result<(), StoreError>>;
    /// Whether the store can serve now (for `/healthz`): a local store while it is open, a
    /// database server when it answers within a short timeout.
    fn health(&self) -> BoxFuture<Result<(), StoreError>>;
    /// Resolves when everything submitted before is durable; the store then refuses new work.
    fn close(&self) -> BoxFuture<()>;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod contract {
    //! The behaviour every store must have; run against each implementation.
    use super::*;

    fn msg(room: &str, id: &str, user: &str, text: &str) -> NewMessage {
        NewMessage {
            room: room.into(),
            client_id: id.into(),
            user: user.into(),
            text: text.into(),
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

    pub(crate) async fn run(store: &dyn Store) {
        assert!(store.create_room(room("lobby")).await.unwrap());
        assert!(!store.create_room(room("lobby")).await.unwrap());
        assert_eq!(
            store.append(msg("nowhere", "1", "a", "x")).await,
            Err(StoreError::NoSuchRoom)
        );
        let first = store
            .append(msg("lobby", "c1", "alice", "hi"))
            .await
            .unwrap();
        assert_eq!((first.message.seq, first.duplicate), (1, false));
        let second = store
            .append(msg("lobby", "c2", "alice", "there"))
            .await
            .unwrap();
        assert_eq!(second.message.seq, 2);
        // Same client id from another sender is a different message.
        let other = store.append(msg("lobby", "c1", "bob", "yo")).await.unwrap();
        assert_eq!(other.message.seq, 3);
        // A resend returns the original, without a new sequence number.
        let again = store
            .append(msg("lobby", "c1", "alice", "hi"))
            .await
            .unwrap();
        assert!(again.duplicate);
        assert_eq!(again.message, first.message);
        assert_eq!(store.last_seq("lobby").await.unwrap(), 3);
        let after = store.messages_after("lobby", 1, 10).await.unwrap();
        assert_eq!(after.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2, 3]);
        let before = store.messages_before("lobby", 3, 1).await.unwrap();
        assert_eq!(before.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2]);
        let latest = store.messages_before("lobby", u64::MAX, 2).await.unwrap();
        assert_eq!(latest.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2, 3]);
        store.set_topic("lobby", "general").await.unwrap();
        let info = store.room("lobby").await.unwrap().unwrap();
        assert_eq!(info.topic, "general");
        let mut dm = room("@a:b");
        dm.kind = RoomKind::Direct;
        store.create_room(dm).await.unwrap();
        let names: Vec<_> = store
            .rooms()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, vec!["lobby".to_string()]);
        assert_eq!(store.room("nope").await.unwrap(), None);
    }
}
