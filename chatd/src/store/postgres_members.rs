//! [`MemberStore`] on PostgreSQL (migration 3 of [`super::postgres`]).

use tokio_postgres::Row;

use super::members::{Member, MemberStore, MyRoom, NewMember, Role, RoomInvite, MAX_UNREAD};
use super::postgres::{kind_str, pg_err};
use super::{BoxFuture, PostgresStore, RoomInfo, StoreError};

const INSERT_MEMBER: &str = "INSERT INTO room_members (room, user_key, name, role, joined_at)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room, user_key) DO NOTHING";

fn role_of(s: &str) -> Role {
    Role::parse(s).unwrap_or(Role::Member)
}

fn row_member(r: &Row) -> Result<Member, StoreError> {
    let role: String = r.try_get(1).map_err(pg_err)?;
    Ok(Member {
        name: r.try_get(0).map_err(pg_err)?,
        role: role_of(&role),
        joined_at: r.try_get(2).map_err(pg_err)?,
    })
}

impl MemberStore for PostgresStore {
    fn create_room_owned(
        &self,
        info: RoomInfo,
        private: bool,
        owner: Option<NewMember>,
    ) -> BoxFuture<Result<bool, StoreError>> {
        self.call(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await.map_err(pg_err)?;
                let created = tx
                    .execute(
                        "INSERT INTO rooms (name, topic, kind, created_at, private)
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                        &[
                            &info.name,
                            &info.topic,
                            &kind_str(info.kind),
                            &info.created_at,
                            &private,
                        ],
                    )
                    .await
                    .map_err(pg_err)?
                    == 1;
                if let (true, Some(m)) = (created, &owner) {
                    tx.execute(
                        INSERT_MEMBER,
                        &[&m.room, &m.key, &m.name, &m.role.as_str(), &m.joined_at],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                tx.commit().await.map_err(pg_err)?;
                Ok(created)
            })
        })
    }

    fn is_private(&self, room: &str) -> BoxFuture<Result<bool, StoreError>> {
        let room = room.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt("SELECT private FROM rooms WHERE name = $1", &[&room])
                    .await
                    .map_err(pg_err)?;
                match row {
                    Some(r) => r.try_get(0).map_err(pg_err),
                    None => Ok(false),
                }
            })
        })
    }

    fn private_rooms(&self) -> BoxFuture<Result<Vec<String>, StoreError>> {
        self.call(|c| {
            Box::pin(async move {
                c.query("SELECT name FROM rooms WHERE private ORDER BY name", &[])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(|r| r.try_get(0).map_err(pg_err))
                    .collect()
            })
        })
    }

    fn add_member(&self, m: NewMember) -> BoxFuture<Result<Role, StoreError>> {
        self.call(move |c| {
            Box::pin(async move {
                c.execute(
                    INSERT_MEMBER,
                    &[&m.room, &m.key, &m.name, &m.role.as_str(), &m.joined_at],
                )
                .await
                .map_err(pg_err)?;
                let row = c
                    .query_one(
                        "SELECT role FROM room_members WHERE room = $1 AND user_key = $2",
                        &[&m.room, &m.key],
                    )
                    .await
                    .map_err(pg_err)?;
                let role: String = row.try_get(0).map_err(pg_err)?;
                Ok(role_of(&role))
            })
        })
    }

    fn set_role(&self, room: &str, key: &str, role: Role) -> BoxFuture<Result<bool, StoreError>> {
        let (room, key) = (room.to_owned(), key.to_owned());
        self.call(move |c| {
            Box::pin(async move {
                c.execute(
                    "UPDATE room_members SET role = $3 WHERE room = $1 AND user_key = $2",
                    &[&room, &key, &role.as_str()],
                )
                .await
                .map(|n| n == 1)
                .map_err(pg_err)
            })
        })
    }

    fn remove_member(&self, room: &str, key: &str) -> BoxFuture<Result<bool, StoreError>> {
        let (room, key) = (room.to_owned(), key.to_owned());
        self.call(move |c| {
            Box::pin(async move {
                c.execute(
                    "DELETE FROM room_members WHERE room = $1 AND user_key = $2",
                    &[&room, &key],
                )
                .await
                .map(|n| n == 1)
                .map_err(pg_err)
            })
        })
    }

    fn member(&self, room: &str, key: &str) -> BoxFuture<Result<Option<Member>, StoreError>> {
        let (room, key) = (room.to_owned(), key.to_owned());
        self.call(move |c| {
            Box::pin(async move {
                c.query_opt(
                    "SELECT name, role, joined_at FROM room_members
                     WHERE room = $1 AND user_key = $2",
                    &[&room, &key],
                )
                .await
                .map_err(pg_err)?
                .as_ref()
                .map(row_member)
                .transpose()
            })
        })
    }

    fn members(&self, room: &str) -> BoxFuture<Result<Vec<Member>, StoreError>> {
        let room = room.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                c.query(
                    "SELECT name, role, joined_at FROM room_members WHERE room = $1
                     ORDER BY name",
                    &[&room],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(row_member)
                .collect()
            })
        })
    }

    fn rooms_of(&self, key: &str, sender: &str) -> BoxFuture<Result<Vec<MyRoom>, StoreError>> {
        let (key, sender) = (key.to_owned(), sender.to_owned());
        self.call(move |c| {
            Box::pin(async move {
                c.query(
                    "SELECT m.room, m.role, m.read_seq,
                         (SELECT count(*) FROM (SELECT 1 FROM messages g
                             WHERE g.room = m.room AND g.seq > m.read_seq
                             AND g.sender_key <> $2 LIMIT $3) AS u)
                     FROM room_members m WHERE m.user_key = $1 ORDER BY m.room",
                    &[&key, &sender, &(MAX_UNREAD as i64)],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| {
                    let role: String = r.try_get(1).map_err(pg_err)?;
                    let read: i64 = r.try_get(2).map_err(pg_err)?;
                    let unread: i64 = r.try_get(3).map_err(pg_err)?;
                    Ok(MyRoom {
                        room: r.try_get(0).map_err(pg_err)?,
                        role: role_of(&role),
                        read: read.max(0) as u64,
                        unread: unread.max(0) as u64,
                    })
                })
                .collect()
            })
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
        self.call(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "UPDATE room_members SET read_seq = GREATEST(read_seq,
                             LEAST($3, (SELECT last_seq FROM rooms WHERE name = $1)))
                         WHERE room = $1 AND user_key = $2 RETURNING read_seq",
                        &[&room, &key, &seq],
                    )
                    .await
                    .map_err(pg_err)?;
                match row {
                    Some(r) => {
                        let read: i64 = r.try_get(0).map_err(pg_err)?;
                        Ok(Some(read.max(0) as u64))
                    }
                    None => Ok(None),
                }
            })
        })
    }

    fn create_room_invite(&self, i: RoomInvite) -> BoxFuture<Result<(), StoreError>> {
        self.call(move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO room_invites (token_hash, room, created_by, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &i.token_hash,
                        &i.room,
                        &i.created_by,
                        &i.created_at,
                        &i.expires_at,
                    ],
                )
                .await
                .map(drop)
                .map_err(pg_err)
            })
        })
    }

    fn room_invite(
        &self,
        token_hash: &str,
        now: i64,
    ) -> BoxFuture<Result<Option<String>, StoreError>> {
        let token_hash = token_hash.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                c.query_opt(
                    "SELECT room FROM room_invites WHERE token_hash = $1 AND expires_at > $2",
                    &[&token_hash, &now],
                )
                .await
                .map_err(pg_err)?
                .map(|r| r.try_get(0).map_err(pg_err))
                .transpose()
            })
        })
    }
}
