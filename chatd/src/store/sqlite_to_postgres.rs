//! `chatd migrate-sqlite-to-postgres`: one node's rooms and messages, copied from its SQLite
//! database into PostgreSQL with the same sequence numbers, ids and times.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use rusqlite::{params, Connection, OpenFlags};
use tokio_postgres::NoTls;

use super::postgres::{describe, migrate, pg_config, pg_err};
use super::StoreError;

/// Messages read from SQLite and written to PostgreSQL at a time.
const CHUNK: i64 = 1000;

/// What was copied of one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopiedRoom {
    /// The room's name.
    pub name: String,
    /// False when PostgreSQL already had the room (an earlier run, or a node's lobby).
    pub created: bool,
    /// Messages written.
    pub copied: u64,
    /// Messages that PostgreSQL already had, identical.
    pub present: u64,
    /// The room's last sequence number in PostgreSQL afterwards.
    pub last_seq: u64,
}

/// The outcome of a migration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Every room of the SQLite database, by name.
    pub rooms: Vec<CopiedRoom>,
}

impl Migrated {
    /// Messages written, all rooms.
    pub fn copied(&self) -> u64 {
        self.rooms.iter().map(|r| r.copied).sum()
    }

    /// Messages already there, all rooms.
    pub fn present(&self) -> u64 {
        self.rooms.iter().map(|r| r.present).sum()
    }
}

/// One line per room, then the totals.
impl fmt::Display for Migrated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.rooms {
            writeln!(
                f,
                "room {}{}: {} messages copied, {} already there, last seq {}",
                r.name,
                if r.created { " (new)" } else { "" },
                r.copied,
                r.present,
                r.last_seq
            )?;
        }
        write!(
            f,
            "{} rooms ({} new), {} messages copied, {} already there",
            self.rooms.len(),
            self.rooms.iter().filter(|r| r.created).count(),
            self.copied(),
            self.present()
        )
    }
}

/// A message as SQLite has it.
#[derive(PartialEq, Eq)]
struct Message {
    seq: i64,
    client_id: String,
    sender: String,
    sender_key: String,
    text: String,
    ts: i64,
}

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(format!("SQLite: {e}"))
}

/// Copies the rooms and messages of the SQLite database `db` (a node's `chat.db`) into the
/// PostgreSQL database at `url`, migrating its schema first, in one transaction: all or nothing.
/// Each room's `last_seq` becomes at least SQLite's. Messages PostgreSQL already has are left
/// as they are, so a second run changes nothing; one that differs from SQLite's at the same
/// sequence number fails the whole copy. Run it with the node stopped: it copies what SQLite
/// had when it started reading.
pub async fn migrate_sqlite_to_postgres(db: &Path, url: &str) -> Result<Migrated, StoreError> {
    // Never creates the file: a wrong path is an error, not an empty copy.
    let sqlite = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| StoreError::Database(format!("cannot open {}: {e}", db.display())))?;
    // One read transaction: a consistent snapshot even if the file is being written.
    sqlite.execute_batch("BEGIN").map_err(sqlite_err)?;
    let rooms = read_rooms(&sqlite)?;

    let (mut client, connection) = pg_config(url)?.connect(NoTls).await.map_err(|e| {
        StoreError::Database(format!("cannot connect to PostgreSQL: {}", describe(&e)))
    })?;
    let connection = tokio::spawn(connection);
    let result = async {
        migrate(&mut client).await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let mut migrated = Migrated::default();
        for room in rooms {
            migrated.rooms.push(copy_room(&sqlite, &tx, room).await?);
        }
        copy_members(&sqlite, &tx).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(migrated)
    }
    .await;
    drop(client);
    let _ = connection.await;
    result
}

/// Which rooms are private, and their members, when the SQLite schema has them (version 3).
async fn copy_members(
    sqlite: &Connection,
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<(), StoreError> {
    let version: i64 = sqlite
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    if version < 3 {
        return Ok(());
    }
    let private: Vec<String> = sqlite
        .prepare("SELECT name FROM rooms WHERE private")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sqlite_err)?;
    for name in private {
        tx.execute("UPDATE rooms SET private = true WHERE name = $1", &[&name])
            .await
            .map_err(pg_err)?;
    }
    type MemberRow = (String, String, String, String, i64, i64);
    let members: Vec<MemberRow> = sqlite
        .prepare("SELECT room, user_key, name, role, joined_at, read_seq FROM room_members")
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect()
        })
        .map_err(sqlite_err)?;
    for (room, key, name, role, joined_at, read) in members {
        tx.execute(
            "INSERT INTO room_members (room, user_key, name, role, joined_at, read_seq)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (room, user_key) DO NOTHING",
            &[&room, &key, &name, &role, &joined_at, &read],
        )
        .await
        .map_err(pg_err)?;
    }
    Ok(())
}

/// A room row of SQLite: name, topic, kind, created_at, last_seq.
type RoomRow = (String, String, String, i64, i64);

fn read_rooms(sqlite: &Connection) -> Result<Vec<RoomRow>, StoreError> {
    let mut stmt = sqlite
        .prepare("SELECT name, topic, kind, created_at, last_seq FROM rooms ORDER BY name")
        .map_err(sqlite_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(sqlite_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sqlite_err)
}

fn read_messages(sqlite: &Connection, room: &str, after: i64) -> Result<Vec<Message>, StoreError> {
    let mut stmt = sqlite
        .prepare_cached(
            "SELECT seq, client_id, sender, sender_key, text, ts FROM messages
             WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )
        .map_err(sqlite_err)?;
    let rows = stmt
        .query_map(params![room, after, CHUNK], |r| {
            Ok(Message {
                seq: r.get(0)?,
                client_id: r.get(1)?,
                sender: r.get(2)?,
                sender_key: r.get(3)?,
                text: r.get(4)?,
                ts: r.get(5)?,
            })
        })
        .map_err(sqlite_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sqlite_err)
}

async fn copy_room(
    sqlite: &Connection,
    tx: &tokio_postgres::Transaction<'_>,
    (name, topic, kind, created_at, last_seq): RoomRow,
) -> Result<CopiedRoom, StoreError> {
    let created = tx
        .execute(
            "INSERT INTO rooms (name, topic, kind, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING",
            &[&name, &topic, &kind, &created_at],
        )
        .await
        .map_err(pg_err)?
        == 1;
    // Running nodes wait for the commit before appending to this room.
    tx.execute("SELECT 1 FROM rooms WHERE name = $1 FOR UPDATE", &[&name])
        .await
        .map_err(pg_err)?;
    let insert = tx
        .prepare(
            "INSERT INTO messages (room, seq, client_id, sender, sender_key, text, ts)
             SELECT $1::text, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[],
                 $6::text[], $7::bigint[])
             ON CONFLICT DO NOTHING
             RETURNING seq",
        )
        .await
        .map_err(pg_err)?;
    let existing = tx
        .prepare(
            "SELECT seq, client_id, sender, sender_key, text, ts FROM messages
             WHERE room = $1 AND seq = ANY($2)",
        )
        .await
        .map_err(pg_err)?;
    let (mut copied, mut present, mut after) = (0, 0, 0);
    loop {
        let chunk = read_messages(sqlite, &name, after)?;
        let Some(last) = chunk.last() else { break };
        after = last.seq;
        let column = |f: fn(&Message) -> &String| chunk.iter().map(f).collect::<Vec<_>>();
        let seqs: Vec<i64> = chunk.iter().map(|m| m.seq).collect();
        let stamps: Vec<i64> = chunk.iter().map(|m| m.ts).collect();
        let inserted: HashSet<i64> = tx
            .query(
                &insert,
                &[
                    &name,
                    &seqs,
                    &column(|m| &m.client_id),
                    &column(|m| &m.sender),
                    &column(|m| &m.sender_key),
                    &column(|m| &m.text),
                    &stamps,
                ],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(pg_err)?;
        copied += inserted.len() as u64;
        let skipped: Vec<&Message> = chunk
            .iter()
            .filter(|m| !inserted.contains(&m.seq))
            .collect();
        if skipped.is_empty() {
            continue;
        }
        // Left out: PostgreSQL had them. Only identical ones are fine.
        let wanted: Vec<i64> = skipped.iter().map(|m| m.seq).collect();
        let there: HashMap<i64, Message> = tx
            .query(&existing, &[&name, &wanted])
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| {
                let m = Message {
                    seq: r.try_get(0)?,
                    client_id: r.try_get(1)?,
                    sender: r.try_get(2)?,
                    sender_key: r.try_get(3)?,
                    text: r.try_get(4)?,
                    ts: r.try_get(5)?,
                };
                Ok((m.seq, m))
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(pg_err)?;
        for m in skipped {
            if there.get(&m.seq) != Some(m) {
                return Err(StoreError::Database(format!(
                    "room {name}: PostgreSQL has another message at seq {} (or this one at \
                     another seq); nothing was copied",
                    m.seq
                )));
            }
            present += 1;
        }
    }
    let last_seq: i64 = tx
        .query_one(
            "UPDATE rooms SET last_seq = GREATEST(last_seq, $2) WHERE name = $1
             RETURNING last_seq",
            &[&name, &last_seq.max(after)],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(pg_err)?;
    Ok(CopiedRoom {
        name,
        created,
        copied,
        present,
        last_seq: u64::try_from(last_seq).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::super::pg_server::PgServer;
    use super::super::{
        now_ms, MemberStore, NewMember, NewMessage, PostgresStore, Role, RoomInfo, RoomKind,
        SqliteStore, Store,
    };
    use super::*;

    fn room(name: &str, kind: RoomKind) -> RoomInfo {
        RoomInfo {
            name: name.into(),
            topic: format!("about {name}"),
            kind,
            created_at: now_ms() - 1000,
        }
    }

    /// Everything a store holds of these rooms.
    async fn dump(store: &dyn Store, rooms: &[&str]) -> Vec<(RoomInfo, u64, Vec<StoredRow>)> {
        let mut out = Vec::new();
        for name in rooms {
            let info = store.room(name).await.unwrap().unwrap();
            let last = store.last_seq(name).await.unwrap();
            let messages = store.messages_after(name, 0, 10_000).await.unwrap();
            out.push((info, last, messages));
        }
        out
    }

    type StoredRow = super::super::StoredMessage;

    #[tokio::test]
    async fn copies_a_node_with_the_same_seqs_and_a_second_run_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("chatd-migrate-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("chat.db");
        let sqlite = SqliteStore::open(&db).unwrap();
        sqlite
            .create_room(room("lobby", RoomKind::Room))
            .await
            .unwrap();
        sqlite
            .create_room(room("rust", RoomKind::Room))
            .await
            .unwrap();
        sqlite
            .create_room(room("@alice:bob", RoomKind::Direct))
            .await
            .unwrap();
        sqlite
            .create_room(room("empty", RoomKind::Room))
            .await
            .unwrap();
        // A private room and its owner go along.
        let owner = NewMember {
            room: "secret".into(),
            key: "ann".into(),
            name: "Ann".into(),
            role: Role::Owner,
            joined_at: 5,
        };
        sqlite
            .create_room_owned(room("secret", RoomKind::Room), true, Some(owner))
            .await
            .unwrap();
        // More than one chunk in the lobby.
        for i in 0..(CHUNK + 5) {
            let user = if i % 2 == 0 { "Alice" } else { "bob" };
            sqlite
                .append(NewMessage {
                    room: "lobby".into(),
                    client_id: format!("m{i}"),
                    user: user.into(),
                    text: format!("message {i} ✓"),
                    ts: now_ms() + i,
                })
                .await
                .unwrap();
        }
        for (room, n) in [("rust", 3), ("@alice:bob", 2)] {
            for i in 0..n {
                sqlite
                    .append(NewMessage {
                        room: room.into(),
                        client_id: format!("x{i}"),
                        user: "alice".into(),
                        text: format!("{room} {i}"),
                        ts: now_ms(),
                    })
                    .await
                    .unwrap();
            }
        }
        let rooms = ["@alice:bob", "empty", "lobby", "rust"];
        let before = dump(&sqlite, &rooms).await;
        sqlite.close().await;

        let pg = PgServer::new();
        let url = pg.database("chatd").await;
        let migrated = migrate_sqlite_to_postgres(&db, &url).await.unwrap();
        assert_eq!(
            migrated
                .rooms
                .iter()
                .map(|r| (r.name.as_str(), r.created, r.copied, r.last_seq))
                .collect::<Vec<_>>(),
            vec![
                ("@alice:bob", true, 2, 2),
                ("empty", true, 0, 0),
                ("lobby", true, CHUNK as u64 + 5, CHUNK as u64 + 5),
                ("rust", true, 3, 3),
                ("secret", true, 0, 0)
            ]
        );
        assert_eq!(
            (migrated.copied(), migrated.present()),
            (CHUNK as u64 + 10, 0)
        );
        let report = migrated.to_string();
        assert!(
            report
                .contains("room lobby (new): 1005 messages copied, 0 already there, last seq 1005"),
            "{report}"
        );
        assert!(
            report.ends_with("5 rooms (5 new), 1010 messages copied, 0 already there"),
            "{report}"
        );

        let store = PostgresStore::open(&url).await.unwrap();
        assert_eq!(dump(&store, &rooms).await, before);
        assert_eq!(store.private_rooms().await.unwrap(), ["secret"]);
        let mine = store.rooms_of("ann", "ann").await.unwrap();
        assert_eq!(
            mine.iter()
                .map(|r| (r.room.as_str(), r.role))
                .collect::<Vec<_>>(),
            [("secret", Role::Owner)]
        );
        // Again: nothing changes.
        let again = migrate_sqlite_to_postgres(&db, &url).await.unwrap();
        assert_eq!((again.copied(), again.present()), (0, CHUNK as u64 + 10));
        assert!(again.rooms.iter().all(|r| !r.created));
        assert_eq!(dump(&store, &rooms).await, before);
        // The copy goes on where SQLite stopped; a resend of a copied message is recognised.
        let next = store
            .append(NewMessage {
                room: "rust".into(),
                client_id: "x3".into(),
                user: "alice".into(),
                text: "next".into(),
                ts: now_ms(),
            })
            .await
            .unwrap();
        assert_eq!((next.message.seq, next.duplicate), (4, false));
        let resend = store
            .append(NewMessage {
                room: "lobby".into(),
                client_id: "m0".into(),
                user: "alice".into(),
                text: "message 0 ✓".into(),
                ts: now_ms(),
            })
            .await
            .unwrap();
        assert!(resend.duplicate);
        assert_eq!(resend.message.seq, 1);
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_conflicting_message_in_postgres_fails_the_whole_copy() {
        let dir = std::env::temp_dir().join(format!("chatd-migrate-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("chat.db");
        let sqlite = SqliteStore::open(&db).unwrap();
        for name in ["a", "b"] {
            sqlite
                .create_room(room(name, RoomKind::Room))
                .await
                .unwrap();
            sqlite
                .append(NewMessage {
                    room: name.into(),
                    client_id: "1".into(),
                    user: "alice".into(),
                    text: "from sqlite".into(),
                    ts: now_ms(),
                })
                .await
                .unwrap();
        }
        sqlite.close().await;
        let pg = PgServer::new();
        let url = pg.database("chatd").await;
        let store = PostgresStore::open(&url).await.unwrap();
        store.create_room(room("b", RoomKind::Room)).await.unwrap();
        store
            .append(NewMessage {
                room: "b".into(),
                client_id: "other".into(),
                user: "carol".into(),
                text: "from a node".into(),
                ts: now_ms(),
            })
            .await
            .unwrap();
        let Err(StoreError::Database(e)) = migrate_sqlite_to_postgres(&db, &url).await else {
            panic!("a conflicting copy succeeded");
        };
        assert!(
            e.contains("room b: PostgreSQL has another message at seq 1"),
            "{e}"
        );
        // Room `a`, copied before `b` in the same transaction, is not there.
        assert_eq!(store.room("a").await, Ok(None));
        let missing = migrate_sqlite_to_postgres(&dir.join("nope.db"), &url).await;
        assert!(matches!(missing, Err(StoreError::Database(e)) if e.contains("cannot open")));
        assert!(!dir.join("nope.db").exists());
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
