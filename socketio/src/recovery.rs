//! Connection state recovery: saved sessions and the packets they missed.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde_json::Value;

use crate::adapter::{BoxFuture, Room};
use engineio::Sid;

/// A socket that disconnected for a recoverable reason.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedSession {
    /// The socket id, given back on recovery.
    pub sid: Sid,
    /// The private id the client presents to recover.
    pub pid: Sid,
    /// The namespace.
    pub nsp: String,
    /// Rooms the socket was in (its own-id room included).
    pub rooms: Vec<Room>,
    /// Its `socket.data`.
    pub data: Value,
    /// When it disconnected.
    pub disconnected_at: SystemTime,
}

/// A broadcast event kept for replay.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredPacket {
    /// The offset appended to its arguments.
    pub offset: String,
    /// Namespace.
    pub nsp: String,
    /// The event array in wire form (placeholders for binary), offset included.
    pub data: Value,
    /// Binary attachments.
    pub attachments: Vec<Bytes>,
    /// Rooms targeted (empty: the whole namespace).
    pub rooms: Vec<Room>,
    /// Rooms excluded.
    pub except: Vec<Room>,
}

impl StoredPacket {
    /// Whether a socket in `rooms` (its own-id room included) was a target of this packet.
    pub fn reaches(&self, rooms: &[Room]) -> bool {
        let included = self.rooms.is_empty() || self.rooms.iter().any(|r| rooms.contains(r));
        included && !self.except.iter().any(|r| rooms.contains(r))
    }
}

/// Where recovery data lives. The in-memory [`MemoryStore`] is the default; a durable store
/// (a database, Redis streams) implements the same trait.
pub trait SessionStore: Send + Sync + 'static {
    /// Keeps a broadcast packet; `make_offset` is called with the offset this store assigns,
    /// so the caller can append it to the packet before it is stored and sent.
    fn store_packet(&self, packet: &mut dyn FnMut(&str) -> StoredPacket) -> String;
    /// Keeps a disconnected session.
    fn save_session(&self, session: SavedSession);
    /// Takes a session of namespace `nsp` back with every packet after `offset` that reached
    /// it; `None` (leaving the store as it was) when no session of that namespace has this
    /// `pid`, it expired, or the offset is no longer stored.
    fn restore_session(
        &self,
        pid: Sid,
        offset: String,
        nsp: &str,
    ) -> BoxFuture<Option<(SavedSession, Vec<StoredPacket>)>>;
    /// The packets of namespace `nsp` recorded after `offset` that reach `rooms`, when the store
    /// can tell at once (no IO): a restore asks again just before the socket joins its rooms,
    /// for what was recorded since it read. `None` (the default): it cannot, and a packet
    /// recorded in that moment may be missed.
    fn recorded_after(
        &self,
        _offset: &str,
        _nsp: &str,
        _rooms: &[Room],
    ) -> Option<Vec<StoredPacket>> {
        None
    }
}

/// The default, in-process [`SessionStore`]: sessions and packets expire after the
/// configured `max_disconnection_duration`.
pub struct MemoryStore {
    max_age: Duration,
    inner: Mutex<MemoryInner>,
}

struct MemoryInner {
    sessions: HashMap<Sid, (Instant, SavedSession)>,
    packets: VecDeque<(Instant, u64, StoredPacket)>,
    next: u64,
    prefix: String,
}

impl MemoryStore {
    /// A store keeping data for `max_age`.
    pub fn new(max_age: Duration) -> Self {
        MemoryStore {
            max_age,
            inner: Mutex::new(MemoryInner {
                sessions: HashMap::new(),
                packets: VecDeque::new(),
                next: 0,
                // Offsets from another process never match this one's.
                prefix: Sid::random().as_str()[..6].to_owned(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn prune(&self, inner: &mut MemoryInner, now: Instant) {
        while inner
            .packets
            .front()
            .is_some_and(|(at, _, _)| now.duration_since(*at) > self.max_age)
        {
            inner.packets.pop_front();
        }
        if inner.sessions.len() > 64 || inner.packets.is_empty() {
            let max_age = self.max_age;
            inner
                .sessions
                .retain(|_, (at, _)| now.duration_since(*at) <= max_age);
        }
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryStore")
            .field("sessions", &inner.sessions.len())
            .field("packets", &inner.packets.len())
            .finish()
    }
}

fn parse_offset(prefix: &str, offset: &str) -> Option<u64> {
    // The prefix is URL-safe base64 and may itself hold a `-`: split at the last one.
    let (p, n) = offset.rsplit_once('-')?;
    (p == prefix)
        .then(|| u64::from_str_radix(n, 36).ok())
        .flatten()
}

fn to_base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

impl SessionStore for MemoryStore {
    fn store_packet(&self, make: &mut dyn FnMut(&str) -> StoredPacket) -> String {
        let now = Instant::now();
        let mut inner = self.lock();
        self.prune(&mut inner, now);
        let seq = inner.next;
        inner.next += 1;
        let offset = format!("{}-{}", inner.prefix, to_base36(seq));
        let packet = make(&offset);
        inner.packets.push_back((now, seq, packet));
        offset
    }

    fn save_session(&self, session: SavedSession) {
        let now = Instant::now();
        let mut inner = self.lock();
        self.prune(&mut inner, now);
        inner.sessions.insert(session.pid, (now, session));
    }

    fn restore_session(
        &self,
        pid: Sid,
        offset: String,
        nsp: &str,
    ) -> BoxFuture<Option<(SavedSession, Vec<StoredPacket>)>> {
        let now = Instant::now();
        let mut inner = self.lock();
        self.prune(&mut inner, now);
        let found = (|| {
            let seq = parse_offset(&inner.prefix, &offset)?;
            let (at, session) = inner.sessions.get(&pid).filter(|(_, s)| s.nsp == nsp)?;
            if now.duration_since(*at) > self.max_age {
                return None;
            }
            // The offset must still be stored, or packets may have been lost.
            let start = inner.packets.iter().position(|(_, s, _)| *s == seq)?;
            let missed = inner
                .packets
                .iter()
                .skip(start + 1)
                .map(|(_, _, p)| p)
                .filter(|p| p.nsp == session.nsp && p.reaches(&session.rooms))
                .cloned()
                .collect::<Vec<_>>();
            Some((session.clone(), missed))
        })();
        if found.is_some() {
            inner.sessions.remove(&pid);
        }
        Box::pin(std::future::ready(found))
    }

    fn recorded_after(&self, offset: &str, nsp: &str, rooms: &[Room]) -> Option<Vec<StoredPacket>> {
        let inner = self.lock();
        let seq = parse_offset(&inner.prefix, offset)?;
        Some(
            inner
                .packets
                .iter()
                .filter(|(_, s, p)| *s > seq && p.nsp == nsp && p.reaches(rooms))
                .map(|(_, _, p)| p.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(nsp: &str, rooms: &[&str], except: &[&str]) -> impl FnMut(&str) -> StoredPacket {
        let nsp = nsp.to_owned();
        let rooms: Vec<Room> = rooms.iter().map(|r| r.to_string()).collect();
        let except: Vec<Room> = except.iter().map(|r| r.to_string()).collect();
        move |offset| StoredPacket {
            offset: offset.to_owned(),
            nsp: nsp.clone(),
            data: serde_json::json!(["ev", offset]),
            attachments: Vec::new(),
            rooms: rooms.clone(),
            except: except.clone(),
        }
    }

    fn session(rooms: &[&str]) -> SavedSession {
        let sid = Sid::random();
        let mut rooms: Vec<Room> = rooms.iter().map(|r| r.to_string()).collect();
        rooms.push(sid.to_string());
        SavedSession {
            sid,
            pid: Sid::random(),
            nsp: "/".into(),
            rooms,
            data: Value::Null,
            disconnected_at: SystemTime::now(),
        }
    }

    #[tokio::test]
    async fn restores_missed_packets_for_its_rooms() {
        let store = MemoryStore::new(Duration::from_secs(60));
        let first = store.store_packet(&mut packet("/", &[], &[]));
        let s = session(&["a"]);
        store.save_session(s.clone());
        let to_a = store.store_packet(&mut packet("/", &["a"], &[]));
        store.store_packet(&mut packet("/", &["b"], &[]));
        store.store_packet(&mut packet("/", &[], &["a"]));
        store.store_packet(&mut packet("/other", &[], &[]));
        let all = store.store_packet(&mut packet("/", &[], &[]));
        let (restored, missed) = store
            .restore_session(s.pid, first.clone(), "/")
            .await
            .expect("restored");
        assert_eq!(restored, s);
        let offsets: Vec<_> = missed.iter().map(|p| p.offset.clone()).collect();
        assert_eq!(offsets, vec![to_a, all]);
        // A session is restored once.
        assert!(store.restore_session(s.pid, first, "/").await.is_none());
    }

    #[tokio::test]
    async fn unknown_offset_or_pid_fails() {
        let store = MemoryStore::new(Duration::from_secs(60));
        let offset = store.store_packet(&mut packet("/", &[], &[]));
        let s = session(&[]);
        store.save_session(s.clone());
        assert!(store
            .restore_session(s.pid, "nope-0".into(), "/")
            .await
            .is_none());
        assert!(store
            .restore_session(Sid::random(), offset.clone(), "/")
            .await
            .is_none());
        assert!(store.restore_session(s.pid, offset, "/").await.is_some());
    }

    #[tokio::test]
    async fn prefix_with_a_dash_and_other_namespaces() {
        let store = MemoryStore::new(Duration::from_secs(60));
        store.lock().prefix = "a-b_c-".to_owned();
        store.store_packet(&mut packet("/", &[], &[]));
        let s = session(&[]);
        store.save_session(s.clone());
        let offset = store.store_packet(&mut packet("/", &[], &[]));
        // Presented on another namespace: not found there, and not consumed.
        assert!(store
            .restore_session(s.pid, offset.clone(), "/other")
            .await
            .is_none());
        let (_, missed) = store
            .restore_session(s.pid, "a-b_c--0".into(), "/")
            .await
            .expect("restored");
        assert_eq!(missed.len(), 1);
        assert_eq!(missed[0].offset, offset);
    }

    #[tokio::test]
    async fn expired_sessions_are_gone() {
        let store = MemoryStore::new(Duration::from_millis(0));
        let offset = store.store_packet(&mut packet("/", &[], &[]));
        let s = session(&[]);
        store.save_session(s.clone());
        std::thread::sleep(Duration::from_millis(2));
        assert!(store.restore_session(s.pid, offset, "/").await.is_none());
    }
}
