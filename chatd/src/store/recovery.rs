//! Connection state recovery backed by the SQLite database, so a client can recover its
//! Socket.IO session (same id, rooms, every missed event) even across a chatd restart.
//!
//! Packets and sessions go through the store's writer thread, in the same FIFO as everything
//! else: a restore always sees the packets stored before it was asked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use engineio::Sid;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use socketio::adapter::BoxFuture;
use socketio::recovery::{SavedSession, SessionStore, StoredPacket};
use tokio::sync::oneshot;

use super::now_ms;
use super::sqlite::SqliteStore;

/// Recovery sessions and packets in the chat database.
pub struct DurableRecovery {
    store: Arc<SqliteStore>,
    max_age: Duration,
    last: AtomicU64,
    stored: AtomicU64,
}

/// Offsets are `ord` in base 36: milliseconds × 1024 plus a counter, so they keep increasing
/// across restarts.
fn encode_offset(ord: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut n = ord;
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

fn decode_offset(offset: &str) -> Option<u64> {
    u64::from_str_radix(offset, 36).ok()
}

/// Attachments as one blob: each buffer as a 4-byte big-endian length and its bytes.
fn pack(attachments: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in attachments {
        out.extend_from_slice(&(a.len() as u32).to_be_bytes());
        out.extend_from_slice(a);
    }
    out
}

fn unpack(mut blob: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    while blob.len() >= 4 {
        let len = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        let Some(data) = blob.get(4..4 + len) else {
            break;
        };
        out.push(Bytes::copy_from_slice(data));
        blob = &blob[4 + len..];
    }
    out
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn rooms_of(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

impl DurableRecovery {
    /// Recovery on `store`, keeping sessions and packets for `max_age`.
    pub async fn open(store: Arc<SqliteStore>, max_age: Duration) -> Self {
        let (tx, rx) = oneshot::channel();
        let asked = store.run(move |conn| {
            let max: Option<i64> = conn
                .query_row("SELECT max(ord) FROM recovery_packets", [], |r| r.get(0))
                .unwrap_or(None);
            Box::new(move |_| {
                let _ = tx.send(max.unwrap_or(0) as u64);
            })
        });
        let last = if asked { rx.await.unwrap_or(0) } else { 0 };
        DurableRecovery {
            store,
            max_age,
            last: AtomicU64::new(last),
            stored: AtomicU64::new(0),
        }
    }

    fn next_ord(&self) -> u64 {
        let now = (now_ms().max(0) as u64).saturating_mul(1024);
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(prev + 1);
            match self
                .last
                .compare_exchange_weak(prev, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => prev = seen,
            }
        }
    }

    fn oldest_kept(&self) -> i64 {
        now_ms() - self.max_age.as_millis() as i64
    }
}

fn restore(
    conn: &Connection,
    pid: &str,
    ord: u64,
    nsp: &str,
    oldest: i64,
) -> rusqlite::Result<Option<(SavedSession, Vec<StoredPacket>)>> {
    let session = conn
        .query_row(
            "SELECT sid, rooms, data, at FROM recovery_sessions WHERE pid = ?1 AND nsp = ?2 AND at >= ?3",
            params![pid, nsp, oldest],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?)),
        )
        .optional()?;
    let Some((sid, rooms, data, at)) = session else {
        return Ok(None);
    };
    let (Some(sid), Some(pid_sid)) = (Sid::parse(&sid), Sid::parse(pid)) else {
        return Ok(None);
    };
    // The offset must still be stored: otherwise packets may have been pruned.
    let ord = i64::try_from(ord).unwrap_or(i64::MAX);
    let known: Option<i64> = conn
        .query_row(
            "SELECT ord FROM recovery_packets WHERE ord = ?1",
            params![ord],
            |r| r.get(0),
        )
        .optional()?;
    if known.is_none() {
        return Ok(None);
    }
    let session = SavedSession {
        sid,
        pid: pid_sid,
        nsp: nsp.to_owned(),
        rooms: rooms_of(&rooms),
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
        disconnected_at: UNIX_EPOCH + Duration::from_millis(at.max(0) as u64),
    };
    let mut stmt = conn.prepare_cached(
        "SELECT ord, data, attachments, rooms, except_rooms FROM recovery_packets
         WHERE ord > ?1 AND nsp = ?2 ORDER BY ord",
    )?;
    let missed = stmt
        .query_map(params![ord, nsp], |r| {
            Ok(StoredPacket {
                offset: encode_offset(r.get::<_, i64>(0)? as u64),
                nsp: nsp.to_owned(),
                data: serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or(Value::Null),
                attachments: unpack(&r.get::<_, Vec<u8>>(2)?),
                rooms: rooms_of(&r.get::<_, String>(3)?),
                except: rooms_of(&r.get::<_, String>(4)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter(|p| p.reaches(&session.rooms))
        .collect();
    conn.execute("DELETE FROM recovery_sessions WHERE pid = ?1", params![pid])?;
    Ok(Some((session, missed)))
}

impl SessionStore for DurableRecovery {
    fn store_packet(&self, make: &mut dyn FnMut(&str) -> StoredPacket) -> String {
        let ord = self.next_ord();
        let offset = encode_offset(ord);
        let packet = make(&offset);
        let oldest = self.oldest_kept();
        let prune = self
            .stored
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(256);
        self.store.run(move |conn| {
            let result = conn.execute(
                "INSERT INTO recovery_packets (ord, nsp, data, attachments, rooms, except_rooms, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    ord as i64,
                    packet.nsp,
                    to_json(&packet.data),
                    pack(&packet.attachments),
                    to_json(&packet.rooms),
                    to_json(&packet.except),
                    now_ms()
                ],
            );
            if let Err(err) = result {
                tracing::warn!(%err, "recovery packet not stored");
            }
            // Pruning rides along with one insert in 256.
            if prune {
                let _ = conn.execute(
                    "DELETE FROM recovery_packets WHERE at < ?1",
                    params![oldest],
                );
                let _ = conn.execute(
                    "DELETE FROM recovery_sessions WHERE at < ?1",
                    params![oldest],
                );
            }
            Box::new(|_| {})
        });
        offset
    }

    fn save_session(&self, session: SavedSession) {
        let at = session
            .disconnected_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_else(|_| now_ms());
        self.store.run(move |conn| {
            let result = conn.execute(
                "INSERT OR REPLACE INTO recovery_sessions (pid, sid, nsp, rooms, data, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    session.pid.as_str(),
                    session.sid.as_str(),
                    session.nsp,
                    to_json(&session.rooms),
                    to_json(&session.data),
                    at
                ],
            );
            if let Err(err) = result {
                tracing::warn!(%err, "recovery session not stored");
            }
            Box::new(|_| {})
        });
    }

    fn restore_session(
        &self,
        pid: Sid,
        offset: String,
        nsp: &str,
    ) -> BoxFuture<Option<(SavedSession, Vec<StoredPacket>)>> {
        let Some(ord) = decode_offset(&offset) else {
            return Box::pin(std::future::ready(None));
        };
        let (tx, rx) = oneshot::channel();
        let nsp = nsp.to_owned();
        let oldest = self.oldest_kept();
        let asked = self.store.run(move |conn| {
            let found = restore(conn, pid.as_str(), ord, &nsp, oldest).unwrap_or_else(|err| {
                tracing::warn!(%err, "recovery lookup failed");
                None
            });
            // Handed over only once the deletion of the session committed.
            Box::new(move |committed| {
                let _ = tx.send(found.filter(|_| committed));
            })
        });
        Box::pin(async move {
            if !asked {
                return None;
            }
            rx.await.unwrap_or(None)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(nsp: &str, rooms: &[&str]) -> impl FnMut(&str) -> StoredPacket {
        let nsp = nsp.to_owned();
        let rooms: Vec<String> = rooms.iter().map(|r| r.to_string()).collect();
        move |offset| StoredPacket {
            offset: offset.to_owned(),
            nsp: nsp.clone(),
            data: serde_json::json!(["ev", offset]),
            attachments: vec![Bytes::from_static(b"\x01\x02"), Bytes::new()],
            rooms: rooms.clone(),
            except: Vec::new(),
        }
    }

    #[tokio::test]
    async fn sessions_and_missed_packets_survive_a_reopen() {
        let dir = std::env::temp_dir().join(format!("chatd-recovery-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chat.db");
        let (sid, pid) = (Sid::random(), Sid::random());
        let (first, in_a, other_room, other_nsp);
        {
            let store = Arc::new(SqliteStore::open(&path).unwrap());
            let rec = DurableRecovery::open(store.clone(), Duration::from_secs(60)).await;
            first = rec.store_packet(&mut packet("/chat", &[]));
            rec.save_session(SavedSession {
                sid,
                pid,
                nsp: "/chat".into(),
                rooms: vec![sid.to_string(), "a".into()],
                data: serde_json::json!({"user": "alice"}),
                disconnected_at: SystemTime::now(),
            });
            in_a = rec.store_packet(&mut packet("/chat", &["a"]));
            other_room = rec.store_packet(&mut packet("/chat", &["b"]));
            other_nsp = rec.store_packet(&mut packet("/", &[]));
            super::super::Store::close(store.as_ref()).await;
        }
        // chatd restarts.
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        let rec = DurableRecovery::open(store.clone(), Duration::from_secs(60)).await;
        let newer = rec.store_packet(&mut packet("/chat", &[]));
        assert!(
            decode_offset(&newer) > decode_offset(&other_nsp),
            "offsets keep increasing"
        );
        assert!(
            rec.restore_session(pid, first.clone(), "/").await.is_none(),
            "wrong namespace"
        );
        assert!(
            rec.restore_session(pid, "zzzz".into(), "/chat")
                .await
                .is_none(),
            "unknown offset"
        );
        let (session, missed) = rec
            .restore_session(pid, first.clone(), "/chat")
            .await
            .unwrap();
        assert_eq!((session.sid, session.pid), (sid, pid));
        assert_eq!(session.data, serde_json::json!({"user": "alice"}));
        let offsets: Vec<_> = missed.iter().map(|p| p.offset.clone()).collect();
        assert_eq!(offsets, vec![in_a, newer]);
        assert_ne!(offsets[0], other_room);
        assert_eq!(
            missed[0].attachments,
            vec![Bytes::from_static(b"\x01\x02"), Bytes::new()]
        );
        // Restored once.
        assert!(rec.restore_session(pid, first, "/chat").await.is_none());
        super::super::Store::close(store.as_ref()).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn attachments_pack_and_unpack() {
        let a = vec![
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from(vec![7u8; 300]),
        ];
        assert_eq!(unpack(&pack(&a)), a);
        assert!(unpack(&[0, 0, 0, 9, 1]).is_empty());
    }
}
