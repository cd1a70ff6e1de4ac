//! In-process store with the same semantics as the SQLite one; for tests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use super::accounts::{
    Account, AccountStore, Created, Invite, NewAccount, NewSession, SessionInfo,
};
use super::members::{Member, MemberStore, MyRoom, NewMember, Role, RoomInvite, MAX_UNREAD};
use super::{
    Appended, BoxFuture, NewMessage, RoomInfo, RoomKind, Store, StoreError, StoredMessage,
};

#[derive(Default)]
struct Room {
    info: Option<RoomInfo>,
    messages: Vec<StoredMessage>,
    by_client: HashMap<(String, String), usize>,
}

/// Keeps everything in memory; nothing survives the process.
#[derive(Default)]
pub struct MemoryStore {
    rooms: Mutex<BTreeMap<String, Room>>,
    accounts: Mutex<Accounts>,
    members: Mutex<Members>,
}

#[derive(Default)]
struct Members {
    private: BTreeSet<String>,
    /// Room → name key → member and read marker.
    by_room: BTreeMap<String, BTreeMap<String, (Member, u64)>>,
    invites: HashMap<String, RoomInvite>,
}

#[derive(Default)]
struct Accounts {
    /// By id, with their keys.
    all: BTreeMap<i64, (Account, String, String)>,
    /// By token hash.
    sessions: HashMap<String, SessionInfo>,
    invites: HashMap<String, Invite>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Room>) -> T) -> T {
        f(&mut self.rooms.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn accounts<T>(&self, f: impl FnOnce(&mut Accounts) -> T) -> T {
        f(&mut self.accounts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn members<T>(&self, f: impl FnOnce(&mut Members) -> T) -> T {
        f(&mut self.members.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn stored(m: &NewMember) -> Member {
    Member {
        name: m.name.clone(),
        role: m.role,
        joined_at: m.joined_at,
    }
}

impl MemberStore for MemoryStore {
    fn create_room_owned(
        &self,
        info: RoomInfo,
        private: bool,
        owner: Option<NewMember>,
    ) -> BoxFuture<Result<bool, StoreError>> {
        ready(Ok(self.with(|rooms| {
            let room = rooms.entry(info.name.clone()).or_default();
            if room.info.is_some() {
                return false;
            }
            self.members(|m| {
                if private {
                    m.private.insert(info.name.clone());
                }
                if let Some(owner) = &owner {
                    m.by_room
                        .entry(info.name.clone())
                        .or_default()
                        .insert(owner.key.clone(), (stored(owner), 0));
                }
            });
            room.info = Some(info);
            true
        })))
    }

    fn is_private(&self, room: &str) -> BoxFuture<Result<bool, StoreError>> {
        ready(Ok(self.members(|m| m.private.contains(room))))
    }

    fn private_rooms(&self) -> BoxFuture<Result<Vec<String>, StoreError>> {
        ready(Ok(self.members(|m| m.private.iter().cloned().collect())))
    }

    fn add_member(&self, member: NewMember) -> BoxFuture<Result<Role, StoreError>> {
        ready(Ok(self.members(|m| {
            m.by_room
                .entry(member.room.clone())
                .or_default()
                .entry(member.key.clone())
                .or_insert_with(|| (stored(&member), 0))
                .0
                .role
        })))
    }

    fn set_role(&self, room: &str, key: &str, role: Role) -> BoxFuture<Result<bool, StoreError>> {
        ready(Ok(self.members(|m| {
            match m.by_room.get_mut(room).and_then(|r| r.get_mut(key)) {
                Some((member, _)) => {
                    member.role = role;
                    true
                }
                None => false,
            }
        })))
    }

    fn remove_member(&self, room: &str, key: &str) -> BoxFuture<Result<bool, StoreError>> {
        ready(Ok(self.members(|m| {
            m.by_room
                .get_mut(room)
                .is_some_and(|r| r.remove(key).is_some())
        })))
    }

    fn member(&self, room: &str, key: &str) -> BoxFuture<Result<Option<Member>, StoreError>> {
        ready(Ok(self.members(|m| {
            m.by_room
                .get(room)
                .and_then(|r| r.get(key))
                .map(|(m, _)| m.clone())
        })))
    }

    fn members(&self, room: &str) -> BoxFuture<Result<Vec<Member>, StoreError>> {
        ready(Ok(self.members(|m| {
            let mut list: Vec<Member> = m
                .by_room
                .get(room)
                .map(|r| r.values().map(|(m, _)| m.clone()).collect())
                .unwrap_or_default();
            list.sort_by(|a, b| a.name.cmp(&b.name));
            list
        })))
    }

    fn rooms_of(&self, key: &str, sender: &str) -> BoxFuture<Result<Vec<MyRoom>, StoreError>> {
        let mine: Vec<(String, Role, u64)> = self.members(|m| {
            m.by_room
                .iter()
                .filter_map(|(room, r)| r.get(key).map(|(x, read)| (room.clone(), x.role, *read)))
                .collect()
        });
        ready(Ok(self.with(|rooms| {
            mine.into_iter()
                .map(|(room, role, read)| {
                    let unread = rooms.get(&room).map_or(0, |r| {
                        r.messages
                            .iter()
                            .filter(|m| m.seq > read && m.user.to_lowercase() != sender)
                            .take(MAX_UNREAD as usize)
                            .count() as u64
                    });
                    MyRoom {
                        room,
                        role,
                        read,
                        unread,
                    }
                })
                .collect()
        })))
    }

    fn set_read(
        &self,
        room: &str,
        key: &str,
        seq: u64,
    ) -> BoxFuture<Result<Option<u64>, StoreError>> {
        let last = self.with(|rooms| {
            rooms
                .get(room)
                .and_then(|r| r.messages.last())
                .map_or(0, |m| m.seq)
        });
        ready(Ok(self.members(|m| {
            let (_, read) = m.by_room.get_mut(room)?.get_mut(key)?;
            *read = (*read).max(seq.min(last));
            Some(*read)
        })))
    }

    fn create_room_invite(&self, invite: RoomInvite) -> BoxFuture<Result<(), StoreError>> {
        self.members(|m| m.invites.insert(invite.token_hash.clone(), invite));
        ready(Ok(()))
    }

    fn room_invite(
        &self,
        token_hash: &str,
        now: i64,
    ) -> BoxFuture<Result<Option<String>, StoreError>> {
        ready(Ok(self.members(|m| {
            m.invites
                .get(token_hash)
                .filter(|i| i.expires_at > now)
                .map(|i| i.room.clone())
        })))
    }
}

impl Accounts {
    fn find(&self, key: &str, alias: &str) -> Option<&Account> {
        self.all
            .values()
            .find(|(_, k, a)| [k, a].iter().any(|x| *x == key || *x == alias))
            .map(|(account, _, _)| account)
    }
}

impl AccountStore for MemoryStore {
    fn create_account(
        &self,
        new: NewAccount,
        invite: Option<String>,
    ) -> BoxFuture<Result<Created, StoreError>> {
        ready(Ok(self.accounts(|accounts| {
            if accounts.find(&new.key, &new.alias).is_some() {
                return Created::NameTaken;
            }
            if let Some(code) = invite {
                match accounts.invites.get(&code) {
                    Some(i) if i.expires_at > new.created_at => {
                        accounts.invites.remove(&code);
                    }
                    _ => return Created::BadInvite,
                }
            }
            let id = accounts.all.keys().next_back().map_or(1, |id| id + 1);
            let account = Account {
                id,
                name: new.name,
                password_hash: new.password_hash,
                admin: new.admin,
                created_at: new.created_at,
            };
            accounts
                .all
                .insert(id, (account.clone(), new.key, new.alias));
            Created::Created(account)
        })))
    }

    fn find_account(
        &self,
        key: &str,
        alias: &str,
    ) -> BoxFuture<Result<Option<Account>, StoreError>> {
        ready(Ok(self.accounts(|a| a.find(key, alias).cloned())))
    }

    fn accounts(&self) -> BoxFuture<Result<Vec<Account>, StoreError>> {
        ready(Ok(self.accounts(|a| {
            let mut all: Vec<Account> = a.all.values().map(|(x, _, _)| x.clone()).collect();
            all.sort_by(|x, y| x.name.cmp(&y.name));
            all
        })))
    }

    fn set_password(
        &self,
        account: i64,
        password_hash: String,
        keep: Option<String>,
    ) -> BoxFuture<Result<bool, StoreError>> {
        ready(Ok(self.accounts(|a| {
            let Some((stored, _, _)) = a.all.get_mut(&account) else {
                return false;
            };
            stored.password_hash = password_hash;
            a.sessions
                .retain(|_, s| s.account_id != account || Some(&s.id) == keep.as_ref());
            true
        })))
    }

    fn create_session(&self, session: NewSession) -> BoxFuture<Result<(), StoreError>> {
        self.accounts(|a| {
            let (owner, now) = (session.info.account_id, session.info.created_at);
            a.sessions
                .retain(|_, s| s.account_id != owner || s.expires_at > now);
            a.sessions.insert(session.token_hash, session.info);
        });
        ready(Ok(()))
    }

    fn session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> BoxFuture<Result<Option<(SessionInfo, Account)>, StoreError>> {
        ready(Ok(self.accounts(|a| {
            let s = a.sessions.get(token_hash).filter(|s| s.expires_at > now)?;
            let (account, _, _) = a.all.get(&s.account_id)?;
            Some((s.clone(), account.clone()))
        })))
    }

    fn sessions(&self, account: i64, now: i64) -> BoxFuture<Result<Vec<SessionInfo>, StoreError>> {
        ready(Ok(self.accounts(|a| {
            let mut list: Vec<SessionInfo> = a
                .sessions
                .values()
                .filter(|s| s.account_id == account && s.expires_at > now)
                .cloned()
                .collect();
            list.sort_by(|x, y| (x.created_at, &x.id).cmp(&(y.created_at, &y.id)));
            list
        })))
    }

    fn delete_session(&self, account: i64, id: &str) -> BoxFuture<Result<bool, StoreError>> {
        ready(Ok(self.accounts(|a| {
            let before = a.sessions.len();
            a.sessions
                .retain(|_, s| !(s.account_id == account && s.id == id));
            a.sessions.len() < before
        })))
    }

    fn create_invite(&self, invite: Invite) -> BoxFuture<Result<(), StoreError>> {
        self.accounts(|a| {
            a.invites.insert(invite.code_hash.clone(), invite);
        });
        ready(Ok(()))
    }
}

fn ready<T: Send + 'static>(v: T) -> BoxFuture<T> {
    Box::pin(std::future::ready(v))
}

impl Store for MemoryStore {
    fn append(&self, m: NewMessage) -> BoxFuture<Result<Appended, StoreError>> {
        ready(self.with(|rooms| {
            let room = rooms
                .get_mut(&m.room)
                .filter(|r| r.info.is_some())
                .ok_or(StoreError::NoSuchRoom)?;
            let key = (m.user.to_lowercase(), m.client_id.clone());
            if let Some(i) = room.by_client.get(&key) {
                return Ok(Appended {
                    message: room.messages[*i].clone(),
                    duplicate: true,
                });
            }
            let message = StoredMessage {
                room: m.room,
                seq: room.messages.len() as u64 + 1,
                id: m.client_id,
                user: m.user,
                text: m.text,
                ts: m.ts,
            };
            room.by_client.insert(key, room.messages.len());
            room.messages.push(message.clone());
            Ok(Appended {
                message,
                duplicate: false,
            })
        }))
    }

    fn messages_after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> BoxFuture<Result<Vec<StoredMessage>, StoreError>> {
        ready(Ok(self.with(|rooms| {
            rooms
                .get(room)
                .map(|r| {
                    r.messages
                        .iter()
                        .filter(|m| m.seq > after)
                        .take(limit)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        })))
    }

    fn messages_before(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> BoxFuture<Result<Vec<StoredMessage>, StoreError>> {
        ready(Ok(self.with(|rooms| {
            let Some(r) = rooms.get(room) else {
                return Vec::new();
            };
            let older: Vec<_> = r.messages.iter().filter(|m| m.seq < before).collect();
            older[older.len().saturating_sub(limit)..]
                .iter()
                .map(|m| (*m).clone())
                .collect()
        })))
    }

    fn last_seq(&self, room: &str) -> BoxFuture<Result<u64, StoreError>> {
        ready(self.with(|rooms| {
            rooms
                .get(room)
                .filter(|r| r.info.is_some())
                .map(|r| r.messages.len() as u64)
                .ok_or(StoreError::NoSuchRoom)
        }))
    }

    fn rooms(&self) -> BoxFuture<Result<Vec<RoomInfo>, StoreError>> {
        ready(Ok(self.with(|rooms| {
            rooms
                .values()
                .filter_map(|r| r.info.clone())
                .filter(|i| i.kind == RoomKind::Room)
                .collect()
        })))
    }

    fn room(&self, name: &str) -> BoxFuture<Result<Option<RoomInfo>, StoreError>> {
        ready(Ok(
            self.with(|rooms| rooms.get(name).and_then(|r| r.info.clone()))
        ))
    }

    fn create_room(&self, info: RoomInfo) -> BoxFuture<Result<bool, StoreError>> {
        ready(Ok(self.with(|rooms| {
            let room = rooms.entry(info.name.clone()).or_default();
            if room.info.is_some() {
                return false;
            }
            room.info = Some(info);
            true
        })))
    }

    fn set_topic(&self, name: &str, topic: &str) -> BoxFuture<Result<(), StoreError>> {
        ready(self.with(|rooms| {
            let info = rooms
                .get_mut(name)
                .and_then(|r| r.info.as_mut())
                .ok_or(StoreError::NoSuchRoom)?;
            info.topic = topic.to_owned();
            Ok(())
        }))
    }

    fn health(&self) -> BoxFuture<Result<(), StoreError>> {
        ready(Ok(()))
    }

    fn close(&self) -> BoxFuture<()> {
        ready(())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_contract() {
        super::super::contract::run(&super::MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn memory_account_store_contract() {
        super::super::accounts::contract::run(&super::MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn memory_member_store_contract() {
        super::super::members::contract::run(&super::MemoryStore::new()).await;
    }
}
