//! In-process store with the same semantics as the SQLite one; for tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

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
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Room>) -> T) -> T {
        f(&mut self.rooms.lock().unwrap_or_else(|e| e.into_inner()))
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
}
