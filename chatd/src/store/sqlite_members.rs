//! [`MemberStore`] on SQLite (migration 3 of [`super::sqlite`]).

use rusqlite::{params, OptionalExtension};

use super::members::{Member, MemberStore, MyRoom, NewMember, Role, RoomInvite, MAX_UNREAD};
use super::sqlite::{db_err, kind_str};
use super::{BoxFuture, RoomInfo, SqliteStore, StoreError};

fn row_member(r: &rusqlite::Row<'_>) -> rusqlite::Result<Member> {
    let role: String = r.get(1)?;
    Ok(Member {
        name: r.get(0)?,
        role: Role::parse(&role).unwrap_or(Role::Member),
        joined_at: r.get(2)?,
    })
}

fn insert_member(conn: &rusqlite::Connection, m: &NewMember) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT OR IGNORE INTO room_members (room, user_key, name, role, joined_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![m.room, m.key, m.name, m.role.as_str(), m.joined_at],
    )
}

impl MemberStore for SqliteStore {
    fn create_room_owned(
        &self,
        info: RoomInfo,
        private: bool,
        owner: Option<NewMember>,
    ) -> BoxFuture<Result<bool, StoreError>> {
        // One job of the writer: one transaction.
        self.call(move |conn| {
            let created = conn
                .execute(
                    "INSERT OR IGNORE INTO rooms (name, topic, kind, created_at, private)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        info.name,
                        info.topic,
                        kind_str(info.kind),
                        info.created_at,
                        private
                    ],
                )
                .map_err(db_err)?
                == 1;
            if let (true, Some(owner)) = (created, &owner) {
                insert_member(conn, owner).map_err(db_err)?;
            }
            Ok(created)
        })
    }

    fn is_private(&self, room: &str) -> BoxFuture<Result<bool, StoreError>> {
        let room = room.to_owned();
        self.call(move |conn| {
            conn.query_row(
                "SELECT private FROM rooms WHERE name = ?1",
                params![room],
                |r| r.get::<_, bool>(0),
            )
            .optional()
            .map(|p| p.unwrap_or(false))
            .map_err(db_err)
        })
    }

    fn private_rooms(&self) -> BoxFuture<Result<Vec<String>, StoreError>> {
        self.call(|conn| {
            conn.prepare_cached("SELECT name FROM rooms WHERE private ORDER BY name")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(db_err)
        })
    }

    fn add_member(&self, member: NewMember) -> BoxFuture<Result<Role, StoreError>> {
        self.call(move |conn| {
            insert_member(conn, &member).map_err(db_err)?;
            let role: String = conn
                .query_row(
                    "SELECT role FROM room_members WHERE room = ?1 AND user_key = ?2",
                    params![member.room, member.key],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            Ok(Role::parse(&role).unwrap_or(Role::Member))
        })
    }

    fn set_role(&self, room: &str, key: &str, role: Role) -> BoxFuture<Result<bool, StoreError>> {
        let (room, key) = (room.to_owned(), key.to_owned());
        self.call(move |conn| {
            conn.execute(
                "UPDATE room_members SET role = ?3 WHERE room = ?1 AND user_key = ?2",
                params![room, key, role.as_str()],
            )
            .map(|n| n == 1)
            .map_err(db_err)
        })
    }

    fn remove_member(&self, room: &str, key: &str) -> BoxFuture<Result<bool, StoreError>> {
        let (room, key) = (room.to_owned(), key.to_owned());
        self.call(move |conn| {
            conn.execute(
                "DELETE FROM room_members WHERE room = ?1 AND user_key = ?2",
                params![room, key],
            )
            .map(|n| n == 1)
            .map_err(db_err)
        })
    }

    fn member(&self, room: &str, key: &str) -> BoxFuture<Result<Option<Member>, StoreError>> {
        let (room, key) = (room.to_owned(), key.to_owned());
        self.call(move |conn| {
            conn.query_row(
                "SELECT name, role, joined_at FROM room_members WHERE room = ?1 AND user_key = ?2",
                params![room, key],
                row_member,
            )
            .optional()
            .map_err(db_err)
        })
    }

    fn members(&self, room: &str) -> BoxFuture<Result<Vec<Member>, StoreError>> {
        let room = room.to_owned();
        self.call(move |conn| {
            conn.prepare_cached(
                "SELECT name, role, joined_at FROM room_members WHERE room = ?1 ORDER BY name",
            )
            .and_then(|mut s| s.query_map(params![room], row_member)?.collect())
            .map_err(db_err)
        })
    }

    fn rooms_of(&self, key: &str, sender: &str) -> BoxFuture<Result<Vec<MyRoom>, StoreError>> {
        let (key, sender) = (key.to_owned(), sender.to_owned());
        self.call(move |conn| {
            conn.prepare_cached(
                "SELECT m.room, m.role, m.read_seq,
                     (SELECT count(*) FROM (SELECT 1 FROM messages g
                         WHERE g.room = m.room AND g.seq > m.read_seq AND g.sender_key <> ?2
                         LIMIT ?3))
                 FROM room_members m WHERE m.user_key = ?1 ORDER BY m.room",
            )
            .and_then(|mut s| {
                s.query_map(params![key, sender, MAX_UNREAD as i64], |r| {
                    let role: String = r.get(1)?;
                    Ok(MyRoom {
                        room: r.get(0)?,
                        role: Role::parse(&role).unwrap_or(Role::Member),
                        read: r.get::<_, i64>(2)?.max(0) as u64,
                        unread: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                })?
                .collect()
            })
            .map_err(db_err)
        })
    }

    fn set_read(
        &self,
        room: &str,
        key: &str,
        seq: u64,
    ) -> BoxFuture<Result<Option<u64>, StoreError>> {
        let (room, key) = (room.to_owned(), key.to_owned());
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        self.call(move |conn| {
            conn.execute(
                "UPDATE room_members SET read_seq = max(read_seq,
                     min(?3, (SELECT last_seq FROM rooms WHERE name = ?1)))
                 WHERE room = ?1 AND user_key = ?2",
                params![room, key, seq],
            )
            .map_err(db_err)?;
            conn.query_row(
                "SELECT read_seq FROM room_members WHERE room = ?1 AND user_key = ?2",
                params![room, key],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|r| r.map(|s| s.max(0) as u64))
            .map_err(db_err)
        })
    }

    fn create_room_invite(&self, invite: RoomInvite) -> BoxFuture<Result<(), StoreError>> {
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO room_invites (token_hash, room, created_by, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    invite.token_hash,
                    invite.room,
                    invite.created_by,
                    invite.created_at,
                    invite.expires_at
                ],
            )
            .map(drop)
            .map_err(db_err)
        })
    }

    fn room_invite(
        &self,
        token_hash: &str,
        now: i64,
    ) -> BoxFuture<Result<Option<String>, StoreError>> {
        let token_hash = token_hash.to_owned();
        self.call(move |conn| {
            conn.query_row(
                "SELECT room FROM room_invites WHERE token_hash = ?1 AND expires_at > ?2",
                params![token_hash, now],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)
        })
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn sqlite_member_store_contract() {
        let dir = std::env::temp_dir().join(format!("chatd-members-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = super::SqliteStore::open(&dir.join("chat.db")).unwrap();
        super::super::members::contract::run(&store).await;
        crate::store::Store::close(&store).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
