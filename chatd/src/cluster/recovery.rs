//! Socket.IO connection state recovery on any node of the cluster.
//!
//! Each node process appends the packets it broadcasts to Redis streams of its own: one per room
//! it sent to (`{prefix}:recovery:{node}.{instance}:{room}`, a socket's own id being a room)
//! and one for the whole namespace (`{prefix}:recovery:{node}.{instance}`), trimmed to the
//! recovery window and gone a window after their last packet; offsets are
//! `{node}.{instance}:{ord}`, the entries' ids. A restore reads the streams of its session's
//! rooms only: what the process sent to others is not read. A process of its own, not a node:
//! a node restarted under the same id must not make its predecessor's clients believe they
//! got what only the new process sent.
//! A disconnected session is a Redis key (`{prefix}:session:{pid}`) with the sequence number
//! of the last message the node had sent it per chat room. A client that comes back, on this
//! node or another, gets the packets its first node sent after its offset; its chat rooms are
//! then not restored by Socket.IO but handed to chatd as [`REJOIN`] in the session data: each
//! room sends it what it committed after the last message the client got, then the live ones,
//! in order and once (the first node may be gone, and the room of the new node decides when
//! the connection goes live).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use engineio::Sid;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use socketio::adapter::BoxFuture;
use socketio::recovery::{SavedSession, SessionStore, StoredPacket};
use tokio::sync::mpsc;

use crate::store::now_ms;

/// Writes waiting for Redis at most; more are dropped (those packets cannot be replayed).
const QUEUE: usize = 65_536;
/// Stream entries read per call, and calls per restore at most.
const PAGE: usize = 1000;
const MAX_PAGES: usize = 100;
/// The key of the session data under which a restore hands chatd the chat rooms to rejoin:
/// room name to the last message sequence number the client got (`null`: unknown).
pub const REJOIN: &str = "rejoin";
/// The key of the session data under which chatd keeps the [`REJOIN`] points it was restored
/// with: what the client had when it came to this node.
pub const REJOINED: &str = "rejoined";
/// The key of the session data under which chatd keeps, per chat room a connection is being
/// caught up in (not yet among the room's live receivers), the last message sent to it: a
/// session saved meanwhile still has the room, from there.
pub const JOINING: &str = "joining";

#[derive(Serialize, Deserialize)]
struct Packet {
    nsp: String,
    data: Value,
    #[serde(default)]
    attachments: Vec<String>,
    rooms: Vec<String>,
    except: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Session {
    sid: String,
    pid: String,
    nsp: String,
    rooms: Vec<String>,
    data: Value,
    at: u64,
    /// Per chat room: the last message sequence number the node had sent to this session.
    seqs: HashMap<String, u64>,
    /// The stream of the process that saved it (`{node}.{instance}`).
    #[serde(default)]
    stream: String,
}

enum Job {
    Packet {
        ord: u64,
        body: String,
        /// The rooms it went to (empty: the whole namespace).
        rooms: Vec<String>,
    },
    Session {
        key: String,
        body: String,
    },
    /// Answered once everything queued before is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The cluster's recovery store.
pub struct ClusterRecovery {
    node: String,
    prefix: String,
    conn: ConnectionManager,
    /// The last offset given; held while a packet is queued, so that packets reach the
    /// stream in offset order (the stream refuses a smaller id).
    last: Mutex<u64>,
    /// Per chat room, the last message sequence number broadcast by this node.
    sent: Mutex<HashMap<String, u64>>,
    jobs: mpsc::Sender<Job>,
    dropped: AtomicU64,
}

/// The stream of what process `node` sent to a whole namespace; what it sent to rooms is in
/// [`room_stream_key`]s, so that a restore reads the streams of its session's rooms only, not
/// everything the process sent to anyone.
fn stream_key(prefix: &str, node: &str) -> String {
    format!("{prefix}:recovery:{node}")
}

fn room_stream_key(prefix: &str, node: &str, room: &str) -> String {
    format!("{prefix}:recovery:{node}:{room}")
}

fn session_key(prefix: &str, pid: &str) -> String {
    format!("{prefix}:session:{pid}")
}

/// Set while some node drains: its clients' sessions may reach Redis after the clients do.
fn draining_key(prefix: &str) -> String {
    format!("{prefix}:draining")
}

/// How long a restore waits for a session not written yet while a node drains, and how often
/// it looks.
const DRAIN_WAIT: Duration = Duration::from_secs(3);
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// The chat room and message sequence number of a `message` packet.
fn chat_message(data: &Value) -> Option<(&str, u64)> {
    let args = data.as_array()?;
    if args.first()?.as_str()? != "message" {
        return None;
    }
    let m = args.get(1)?;
    Some((m.get("room")?.as_str()?, m.get("seq")?.as_u64()?))
}

impl ClusterRecovery {
    /// Recovery for the process `instance` of `node`, keeping sessions and packets for
    /// `max_age`.
    pub fn open(
        conn: ConnectionManager,
        prefix: &str,
        node: &str,
        instance: &str,
        max_age: Duration,
    ) -> Arc<Self> {
        let node = format!("{node}.{instance}");
        let (jobs, rx) = mpsc::channel(QUEUE);
        let me = Arc::new(ClusterRecovery {
            node: node.clone(),
            prefix: prefix.to_owned(),
            conn: conn.clone(),
            last: Mutex::new(0),
            sent: Mutex::new(HashMap::new()),
            jobs,
            dropped: AtomicU64::new(0),
        });
        tokio::spawn(write_loop(
            rx,
            conn,
            prefix.to_owned(),
            node.clone(),
            max_age,
        ));
        me
    }

    /// Writes everything queued so far (a stopping node: its clients recover elsewhere from
    /// this stream). Waits at most 2 s.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.jobs.send(Job::Flush(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
    }

    fn queue(&self, job: Job) {
        if self.jobs.try_send(job).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tells the cluster, for `ttl`, that this node is draining: a client it moves may ask
    /// another node for its session before this one has written it, and is then waited for.
    pub async fn announce_drain(&self, ttl: Duration) {
        let mut conn = self.conn.clone();
        let mut set = redis::cmd("SET");
        set.arg(draining_key(&self.prefix))
            .arg(&self.node)
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        match tokio::time::timeout(Duration::from_secs(2), set.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "drain not announced"),
            Err(_) => tracing::warn!("drain not announced: redis did not answer"),
        }
    }

    /// A connection here joined `room` and got its messages up to `seq`.
    pub fn joined(&self, room: &str, seq: u64) {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let last = sent.entry(room.to_owned()).or_default();
        *last = (*last).max(seq);
    }

    /// Packets and sessions lost because the queue to Redis was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_loop(
    mut rx: mpsc::Receiver<Job>,
    mut conn: ConnectionManager,
    prefix: String,
    node: String,
    max_age: Duration,
) {
    let mut batch = Vec::with_capacity(128);
    let mut streams = HashSet::new();
    while rx.recv_many(&mut batch, 128).await > 0 {
        let oldest = (now_ms().max(0) as u64)
            .saturating_sub(max_age.as_millis() as u64)
            .saturating_mul(1024);
        let mut pipe = redis::pipe();
        let mut flushes = Vec::new();
        streams.clear();
        streams.insert(stream_key(&prefix, &node));

        for job in batch.drain(..) {
            match job {
                Job::Flush(done) => flushes.push(done),
                Job::Packet { ord, body, rooms } => {
                    let keys: Vec<String> = if rooms.is_empty() {
                        vec![stream_key(&prefix, &node)]
                    } else {
                        rooms
                            .iter()
                            .map(|r| room_stream_key(&prefix, &node, r))
                            .collect()
                    };
                    for key in keys {
                        pipe.cmd("XADD")
                            .arg(&key)
                            .arg("MINID")
                            .arg("~")
                            .arg(format!("{oldest}-0"))
                            .arg(format!("{ord}-0"))
                            .arg("p")
                            .arg(&body)
                            .ignore();
                        streams.insert(key);
                    }
                }
                Job::Session { key, body } => {
                    pipe.cmd("SET")
                        .arg(key)
                        .arg(body)
                        .arg("PX")
                        .arg(max_age.as_millis() as u64)
                        .ignore();
                }
            }
        }
        // A stream outlives its last packet, and so its process, by one window at most.
        for stream in &streams {
            pipe.cmd("PEXPIRE")
                .arg(stream)
                .arg(max_age.as_millis() as u64)
                .ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::warn!(error = %e, "recovery data not written: those sessions will not recover");
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

impl SessionStore for ClusterRecovery {
    fn store_packet(&self, make: &mut dyn FnMut(&str) -> StoredPacket) -> String {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let ord = ((now_ms().max(0) as u64).saturating_mul(1024)).max(*last + 1);
        *last = ord;
        let offset = format!("{}:{ord}", self.node);
        let packet = make(&offset);
        if let Some((room, seq)) = chat_message(&packet.data) {
            let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
            let last = sent.entry(room.to_owned()).or_default();
            *last = (*last).max(seq);
        }
        let rooms = packet.rooms.clone();
        let body = Packet {
            nsp: packet.nsp,
            data: packet.data,
            attachments: packet
                .attachments
                .iter()
                .map(|a| STANDARD.encode(a))
                .collect(),
            rooms: packet.rooms,
            except: packet.except,
        };
        if let Ok(body) = serde_json::to_string(&body) {
            self.queue(Job::Packet { ord, body, rooms });
        }
        drop(last);
        offset
    }

    fn save_session(&self, mut session: SavedSession) {
        let mut seqs: HashMap<String, u64> = {
            let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
            session
                .rooms
                .iter()
                .filter_map(|r| r.strip_prefix("r:"))
                .filter_map(|room| sent.get(room).map(|s| (room.to_owned(), *s)))
                .collect()
        };
        // Rooms it was still being caught up in: not among its Socket.IO rooms yet, but its.
        let joining = session.data.as_object_mut().and_then(|d| d.remove(JOINING));
        if let Some(Value::Object(joining)) = joining {
            for (room, seq) in joining {
                let group = format!("r:{room}");
                if let (false, Some(seq)) = (session.rooms.contains(&group), seq.as_u64()) {
                    session.rooms.push(group);
                    seqs.insert(room, seq);
                }
            }
        }
        tracing::debug!(socket = %session.sid, rooms = ?session.rooms, seqs = ?seqs, "session saved");
        let at = session
            .disconnected_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let body = Session {
            sid: session.sid.to_string(),
            pid: session.pid.to_string(),
            nsp: session.nsp,
            rooms: session.rooms,
            data: session.data,
            at,
            seqs,
            stream: self.node.clone(),
        };
        if let Ok(body) = serde_json::to_string(&body) {
            self.queue(Job::Session {
                key: session_key(&self.prefix, session.pid.as_str()),
                body,
            });
        }
    }

    fn restore_session(
        &self,
        pid: Sid,
        offset: String,
        nsp: &str,
    ) -> BoxFuture<Option<(SavedSession, Vec<StoredPacket>)>> {
        let (conn, prefix, nsp) = (self.conn.clone(), self.prefix.clone(), nsp.to_owned());
        Box::pin(async move {
            let restored = tokio::time::timeout(
                Duration::from_secs(5),
                restore(conn, &prefix, pid, &offset, &nsp),
            )
            .await;
            match restored {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "session not recovered");
                    None
                }
                Err(_) => {
                    tracing::warn!("session not recovered: redis did not answer");
                    None
                }
            }
        })
    }
}

type Entries = Vec<(String, HashMap<String, String>)>;

async fn restore(
    mut conn: ConnectionManager,
    prefix: &str,
    pid: Sid,
    offset: &str,
    nsp: &str,
) -> Result<Option<(SavedSession, Vec<StoredPacket>)>, String> {
    let key = session_key(prefix, pid.as_str());
    let mut text: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if text.is_none() {
        // A node moving its clients saves each session as the connection closes, through a
        // queue that may lag behind the client's reconnection: wait for it a little.
        let draining: bool = redis::cmd("EXISTS")
            .arg(draining_key(prefix))
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let until = tokio::time::Instant::now() + DRAIN_WAIT;
        while draining && text.is_none() && tokio::time::Instant::now() < until {
            tokio::time::sleep(DRAIN_POLL).await;
            text = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let Some(session) = text.and_then(|t| serde_json::from_str::<Session>(&t).ok()) else {
        return Ok(None);
    };
    let Some((node, ord)) = offset
        .split_once(':')
        .and_then(|(n, o)| Some((n, o.parse::<u64>().ok()?)))
    else {
        return Ok(None);
    };
    let (Some(sid), Some(pid)) = (Sid::parse(&session.sid), Sid::parse(&session.pid)) else {
        return Ok(None);
    };
    if session.nsp != nsp {
        return Ok(None);
    }
    let mut saved = SavedSession {
        sid,
        pid,
        nsp: session.nsp.clone(),
        rooms: session.rooms.clone(),
        data: session.data.clone(),
        disconnected_at: UNIX_EPOCH + Duration::from_millis(session.at),
    };
    let mut missed = Vec::new();
    // An offset from the saving process's stream: the client got each packet up to it, and
    // gets the rest now, so it has every message that process sent it. An offset from an
    // earlier process's stream: it got nothing the saving process recorded, so it has what
    // it came there with (the points that process rejoined it from) and the packets now due.
    let mut covered = starting_points(&session, node);
    // What the process sent to the whole namespace and to each of the session's rooms after
    // the offset, in the process's order, each packet once (one sent to several rooms is in
    // each of their streams).
    let mut keys = vec![stream_key(prefix, node)];
    keys.extend(saved.rooms.iter().map(|r| room_stream_key(prefix, node, r)));
    let mut entries: BTreeMap<u64, String> = BTreeMap::new();
    for key in keys {
        let mut from = format!("({ord}-0");
        for _ in 0..MAX_PAGES {
            let page: Entries = redis::cmd("XRANGE")
                .arg(&key)
                .arg(&from)
                .arg("+")
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let n = page.len();
            for (id, mut fields) in page {
                from = format!("({id}");
                let at = id.split('-').next().and_then(|o| o.parse::<u64>().ok());
                if let (Some(at), Some(body)) = (at, fields.remove("p")) {
                    entries.entry(at).or_insert(body);
                }
            }
            if n < PAGE {
                break;
            }
        }
        if entries.len() > PAGE * MAX_PAGES {
            return Err("too much missed to restore".into());
        }
    }
    for body in entries.into_values() {
        let Ok(p) = serde_json::from_str::<Packet>(&body) else {
            continue;
        };
        let packet = StoredPacket {
            offset: String::new(),
            nsp: p.nsp,
            data: p.data,
            attachments: p
                .attachments
                .iter()
                .filter_map(|a| STANDARD.decode(a).ok())
                .map(Bytes::from)
                .collect(),
            rooms: p.rooms,
            except: p.except,
        };
        if packet.nsp != nsp || !packet.reaches(&saved.rooms) {
            continue;
        }
        if let Some((room, seq)) = chat_message(&packet.data) {
            let c = covered.entry(room.to_owned()).or_default();
            *c = (*c).max(seq);
        }
        missed.push(packet);
    }
    tracing::debug!(
        socket = %session.sid, %offset, saved_by = %session.stream, seqs = ?session.seqs,
        covered = ?covered, replayed = missed.len(), "session restored"
    );
    // The chat rooms go back through their room actors, from what the client got.
    let mut rejoin = serde_json::Map::new();
    saved.rooms.retain(|r| match r.strip_prefix("r:") {
        Some(room) => {
            rejoin.insert(room.to_owned(), json!(covered.get(room)));
            false
        }
        None => true,
    });
    if let Value::Object(data) = &mut saved.data {
        data.insert(REJOIN.into(), Value::Object(rejoin));
    }
    let deleted: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if deleted != 1 {
        // Another node restored it meanwhile.
        return Ok(None);
    }
    Ok(Some((saved, missed)))
}

/// Per chat room, the last message a client resuming `session` from an offset of `stream`
/// had before the packets replayed now.
fn starting_points(session: &Session, stream: &str) -> HashMap<String, u64> {
    if session.stream.is_empty() || session.stream == stream {
        return session.seqs.clone();
    }
    session
        .data
        .get(REJOINED)
        .and_then(Value::as_object)
        .map(|rooms| {
            rooms
                .iter()
                .filter_map(|(room, seq)| Some((room.clone(), seq.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_without_a_packet_of_the_saving_process_starts_where_it_came_in() {
        let session = Session {
            sid: "s".into(),
            pid: "p".into(),
            nsp: "/chat".into(),
            rooms: vec!["r:lobby".into()],
            data: json!({ REJOINED: {"lobby": 7, "dm": null} }),
            at: 0,
            seqs: HashMap::from([("lobby".to_owned(), 9)]),
            stream: "b.2".into(),
        };
        // It got b.2's packets up to its offset and gets the rest: all it sent, up to 9.
        assert_eq!(starting_points(&session, "b.2")["lobby"], 9);
        // Its offset is a.1's: it never got what b.2 sent, so it has what it came with.
        let from_a = starting_points(&session, "a.1");
        assert_eq!(from_a.get("lobby"), Some(&7));
        assert_eq!(from_a.get("dm"), None);
    }

    #[test]
    fn message_packets_name_their_room_and_seq() {
        let data = json!(["message", {"room": "general", "seq": 4, "text": "hi"}, "a:1"]);
        assert_eq!(chat_message(&data), Some(("general", 4)));
        assert_eq!(chat_message(&json!(["presence", {"room": "x"}])), None);
        assert_eq!(chat_message(&json!("nope")), None);
    }
}
