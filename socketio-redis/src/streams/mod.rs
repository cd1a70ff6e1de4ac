//! The Redis Streams adapter, wire-compatible with Node's `@socket.io/redis-streams-adapter`
//! 0.3, and its connection-state-recovery store.
//!
//! Per namespace `N` (stream `socket.io`, channel prefix `socket.io` by default):
//!
//! - broadcasts, room joins and leaves and disconnects are `XADD`ed to the stream as entries
//!   `uid nsp type data`; every node reads the stream (`XREAD BLOCK`) and applies what the
//!   others wrote. A broadcast is delivered to this node's own sockets once `XADD` returned
//!   its entry id, which, with connection state recovery on, is appended to the event as its
//!   offset;
//! - broadcasts with acks, `server_side_emit` and `fetch_sockets` are published as MessagePack
//!   on `socket.io#N#`, answers on the requester's `socket.io#N#<uid>#`;
//! - the server count is `PUBSUB NUMSUB socket.io#N#`: a node that dies leaves it as soon as
//!   Redis drops its connection.
//!
//! Recovery: [`RedisStreamsFactory::session_store`] keeps sessions where Node does
//! (`sio:session:<pid>`, base64 MessagePack `{sid, pid, rooms, data}`) and replays missed
//! packets from the stream, so Node nodes and these recover each other's clients. Unlike Node,
//! these nodes also save each connected socket's session ahead of time (on connect, on room
//! changes and every [`RedisStreamsConfig::session_refresh`]): a client whose node was killed
//! can still be recovered by another node.
//!
//! ```no_run
//! use socketio::{Config, Recovery, SocketIo};
//! use socketio_redis::streams::{RedisStreamsConfig, RedisStreamsFactory};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let recovery = Recovery::default();
//! let options = RedisStreamsConfig {
//!     // The sessions must live as long as the server keeps them.
//!     max_disconnection_duration: recovery.max_disconnection_duration,
//!     ..Default::default()
//! };
//! let redis = RedisStreamsFactory::connect("redis://127.0.0.1:6379/", options).await?;
//! let io = SocketIo::builder(Config::builder().recovery(recovery).build())
//!     .adapter(redis.clone())
//!     .recovery_store(redis.session_store())
//!     .build();
//! io.of("/").on_connection(|socket| async move {
//!     // `true` when the client came back, here or on another node, within two minutes.
//!     println!("recovered: {}", socket.recovered());
//! });
//! redis.ready().await;
//! # Ok(())
//! # }
//! ```

pub mod proto;
mod store;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::RngCore;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError};
use serde_json::{json, Value};
use socketio::adapter::{
    Adapter, AdapterError, AdapterFactory, BoxFuture, BroadcastAcks, BroadcastOptions,
    LocalNamespace, MemoryAdapter, SocketInfo,
};
use socketio::recovery::SessionStore;
use socketio::{Args, Data, Packet, Room, Sid};
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout_at, Instant};

pub use proto::{kind, Broadcast, Message};
pub use store::RedisSessionStore;

use crate::proto::{as_u64, field, str_field};

/// Options of the Streams adapter; the defaults are those of the Node adapter.
#[derive(Clone, Debug)]
pub struct RedisStreamsConfig {
    /// The stream (Node's `streamName`), `socket.io`.
    pub stream_name: String,
    /// Number of streams (Node's `streamCount`), 1; namespaces are spread by a hash of
    /// their name.
    pub stream_count: usize,
    /// Prefix of the pub/sub channels (Node's `channelPrefix`), `socket.io`.
    pub channel_prefix: String,
    /// Approximate maximum length of the stream (`MAXLEN ~`), 10000.
    pub max_len: usize,
    /// Entries read per `XREAD`, 100.
    pub read_count: usize,
    /// How long one `XREAD` blocks, 5 s.
    pub block_time: Duration,
    /// Prefix of the session keys, `sio:session:`.
    pub session_key_prefix: String,
    /// How long a request to the other nodes waits for their answers, 5 s.
    pub requests_timeout: Duration,
    /// How long a session is kept: must be the server's
    /// [`Recovery::max_disconnection_duration`](socketio::Recovery) (2 minutes by default).
    pub max_disconnection_duration: Duration,
    /// How often the sessions of connected sockets are saved again (their data may have
    /// changed, and their keys must not expire), 5 s; at most half of
    /// `max_disconnection_duration`.
    pub session_refresh: Duration,
    /// Always write data as JSON, binary included (Node's `onlyPlaintext`).
    pub only_plaintext: bool,
    /// Commands waiting to be sent; past this, new ones are dropped with a warning (and a
    /// broadcast is delivered locally without an offset) so that Redis never blocks the server.
    pub publish_queue: usize,
}

impl Default for RedisStreamsConfig {
    fn default() -> Self {
        RedisStreamsConfig {
            stream_name: "socket.io".to_owned(),
            stream_count: 1,
            channel_prefix: "socket.io".to_owned(),
            max_len: 10_000,
            read_count: 100,
            block_time: Duration::from_secs(5),
            session_key_prefix: "sio:session:".to_owned(),
            requests_timeout: Duration::from_secs(5),
            max_disconnection_duration: Duration::from_secs(120),
            session_refresh: Duration::from_secs(5),
            only_plaintext: false,
            publish_queue: 8192,
        }
    }
}

impl RedisStreamsConfig {
    fn refresh(&self) -> Duration {
        self.session_refresh
            .min(self.max_disconnection_duration / 2)
            .max(Duration::from_millis(50))
    }

    fn session_key(&self, pid: &Sid) -> String {
        format!("{}{pid}", self.session_key_prefix)
    }
}

type Then = Box<dyn FnOnce(Option<String>) + Send>;

/// A command for the writing task.
enum Job {
    /// `XADD`; `then` gets the entry id (`None` if it failed).
    Xadd {
        stream: String,
        max_len: usize,
        fields: Vec<(&'static str, String)>,
        then: Option<Then>,
    },
    Publish {
        channel: String,
        payload: Vec<u8>,
    },
    Set {
        key: String,
        value: String,
        ttl: Duration,
    },
    Del {
        key: String,
    },
}

struct Shared {
    config: RedisStreamsConfig,
    /// `PUBSUB NUMSUB`, `XRANGE`, sessions; also the writes.
    commands: ConnectionManager,
    /// RESP3, subscribed; resubscribes by itself after a reconnect.
    subscriber: ConnectionManager,
    outgoing: mpsc::Sender<Job>,
    adapters: RwLock<HashMap<String, Weak<RedisStreamsAdapter>>>,
    /// Namespaces whose subscriptions are not confirmed yet.
    pending: watch::Sender<usize>,
    /// Sockets whose session was just saved on disconnect: their key is kept.
    saved: Mutex<HashSet<Sid>>,
    runtime: tokio::runtime::Handle,
}

impl Shared {
    fn adapter(&self, nsp: &str) -> Option<Arc<RedisStreamsAdapter>> {
        self.adapters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(nsp)
            .and_then(Weak::upgrade)
    }

    /// Queues a command; never waits. A full queue drops it (an `XADD`'s `then` runs with
    /// `None`).
    fn send(&self, job: Job) {
        match self.outgoing.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job))
            | Err(mpsc::error::TrySendError::Closed(job)) => {
                tracing::warn!("redis write queue full or closed; command dropped");
                if let Job::Xadd {
                    then: Some(then), ..
                } = job
                {
                    then(None);
                }
            }
        }
    }
}

/// Creates a [`RedisStreamsAdapter`] for each namespace; all of them share four Redis
/// connections (writes and queries, pub/sub, and one per stream for `XREAD`). Cheap to clone.
#[derive(Clone)]
pub struct RedisStreamsFactory {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisStreamsFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreamsFactory")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl RedisStreamsFactory {
    /// Connects to Redis (`redis://host:port/db`). The connections reconnect by themselves
    /// later on; this fails only if Redis cannot be reached now. Must run inside a Tokio
    /// runtime, which the adapter's tasks then use.
    pub async fn connect(url: &str, config: RedisStreamsConfig) -> Result<Self, RedisError> {
        let info = url.into_connection_info()?;
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.clone())?;
        let commands = client
            .get_connection_manager_with_config(
                ConnectionManagerConfig::new().set_response_timeout(Some(
                    config.requests_timeout.max(Duration::from_secs(1)),
                )),
            )
            .await?;
        let (push_tx, push_rx) = mpsc::unbounded_channel::<PushInfo>();
        let subscriber = redis::Client::open(info.set_redis_settings(resp3))?
            .get_connection_manager_with_config(
                ConnectionManagerConfig::new()
                    .set_number_of_retries(3)
                    .set_push_sender(push_tx)
                    .set_automatic_resubscription(),
            )
            .await?;
        let mut readers = Vec::new();
        for i in 0..config.stream_count.max(1) {
            let stream = if config.stream_count <= 1 {
                config.stream_name.clone()
            } else {
                format!("{}-{i}", config.stream_name)
            };
            let conn = client
                .get_connection_manager_with_config(
                    ConnectionManagerConfig::new()
                        .set_response_timeout(Some(config.block_time + Duration::from_secs(5))),
                )
                .await?;
            readers.push((stream, conn));
        }
        let (outgoing, outgoing_rx) = mpsc::channel(config.publish_queue.max(1));
        let shared = Arc::new(Shared {
            config,
            commands: commands.clone(),
            subscriber,
            outgoing,
            adapters: RwLock::new(HashMap::new()),
            pending: watch::Sender::new(0),
            saved: Mutex::new(HashSet::new()),
            runtime: tokio::runtime::Handle::current(),
        });
        tokio::spawn(write_loop(outgoing_rx, commands));
        tokio::spawn(dispatch_loop(Arc::downgrade(&shared), push_rx));
        tokio::spawn(keepalive(Arc::downgrade(&shared)));
        shared.pending.send_modify(|n| *n += readers.len());
        for (stream, conn) in readers {
            tokio::spawn(read_loop(Arc::downgrade(&shared), stream, conn));
        }
        Ok(RedisStreamsFactory { shared })
    }

    /// Resolves once every namespace created so far is subscribed to its channels and the
    /// stream readers know where the stream ends (what is written later reaches this node).
    pub async fn ready(&self) {
        let mut rx = self.shared.pending.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// The options.
    pub fn config(&self) -> &RedisStreamsConfig {
        &self.shared.config
    }

    /// The recovery store to give the server
    /// ([`Builder::recovery_store`](socketio::Builder::recovery_store)) alongside this
    /// adapter: sessions in Redis, missed packets from the stream.
    pub fn session_store(&self) -> Arc<dyn SessionStore> {
        Arc::new(RedisSessionStore::new(self.shared.clone()))
    }
}

impl AdapterFactory for RedisStreamsFactory {
    fn create(&self, ns: LocalNamespace) -> Arc<dyn Adapter> {
        let shared = self.shared.clone();
        let mut bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut bytes);
        let uid: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let cfg = &shared.config;
        let public = format!("{}#{}#", cfg.channel_prefix, ns.name());
        let private = format!("{public}{uid}#");
        let adapter = Arc::new_cyclic(|me| RedisStreamsAdapter {
            me: me.clone(),
            local: MemoryAdapter::new(ns.clone()),
            stream: proto::stream_name(&cfg.stream_name, cfg.stream_count, ns.name()),
            ns: ns.clone(),
            uid,
            public: public.clone(),
            private: private.clone(),
            shared: shared.clone(),
            requests: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        });
        shared
            .adapters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns.name().to_owned(), Arc::downgrade(&adapter));
        shared.pending.send_modify(|n| *n += 1);
        let weak = Arc::downgrade(&shared);
        let mut sub = shared.subscriber.clone();
        shared.runtime.spawn(async move {
            let mut delay = Duration::from_millis(100);
            while let Err(e) = sub.subscribe(&[public.as_str(), private.as_str()]).await {
                tracing::warn!(error = %e, channel = %public, "redis subscribe failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                if weak.strong_count() == 0 {
                    return;
                }
            }
            if let Some(shared) = weak.upgrade() {
                shared.pending.send_modify(|n| *n = n.saturating_sub(1));
            }
        });
        shared
            .runtime
            .spawn(refresh_sessions(Arc::downgrade(&adapter), cfg.refresh()));
        adapter
    }
}

/// Sends queued commands in order, pipelining whatever has piled up; then hands each `XADD`
/// its entry id. A batch that failed on a dropped connection is sent once more.
async fn write_loop(mut rx: mpsc::Receiver<Job>, mut conn: ConnectionManager) {
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, 64).await > 0 {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for job in &batch {
            match job {
                Job::Xadd {
                    stream,
                    max_len,
                    fields,
                    ..
                } => {
                    let cmd = pipe.cmd("XADD").arg(stream);
                    cmd.arg("MAXLEN").arg("~").arg(*max_len).arg("*");
                    for (k, v) in fields {
                        cmd.arg(*k).arg(v);
                    }
                }
                Job::Publish { channel, payload } => {
                    pipe.cmd("PUBLISH").arg(channel).arg(payload.as_slice());
                }
                Job::Set { key, value, ttl } => {
                    pipe.cmd("SET")
                        .arg(key)
                        .arg(value)
                        .arg("PX")
                        .arg(ttl.as_millis().max(1) as u64);
                }
                Job::Del { key } => {
                    pipe.cmd("DEL").arg(key);
                }
            }
        }
        let mut result = pipe.query_async::<Vec<redis::Value>>(&mut conn).await;
        if let Err(e) = &result {
            if e.is_connection_dropped() || e.is_io_error() || e.is_timeout() {
                result = pipe.query_async::<Vec<redis::Value>>(&mut conn).await;
            }
        }
        let mut replies = match result {
            Ok(values) => values.into_iter().map(Some).collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(error = %e, commands = batch.len(), "redis write failed; messages lost");
                Vec::new()
            }
        };
        replies.resize(batch.len(), None);
        for (job, reply) in batch.drain(..).zip(replies) {
            if let Job::Xadd {
                then: Some(then), ..
            } = job
            {
                let id = reply.as_ref().and_then(value_str);
                if id.is_none() {
                    tracing::warn!(reply = ?reply, "redis XADD failed");
                }
                then(id);
            } else if let Some(redis::Value::ServerError(e)) = reply {
                tracing::warn!(error = ?e, "redis command failed");
            }
        }
    }
}

fn value_str(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        redis::Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// Reads one stream from its end, routing each entry to its namespace's adapter.
async fn read_loop(shared: Weak<Shared>, stream: String, mut conn: ConnectionManager) {
    let mut delay = Duration::from_millis(100);
    // The current end as a concrete id rather than `$`, so that nothing written after
    // `ready()` resolved is missed before the first XREAD reaches Redis.
    let mut last = loop {
        let reply = redis::cmd("XREVRANGE")
            .arg(&stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async::<redis::Value>(&mut conn)
            .await;
        match reply {
            Ok(r) => {
                break stream_entries(&r)
                    .into_iter()
                    .next()
                    .map_or_else(|| "0-0".to_owned(), |(id, _)| id)
            }
            Err(e) => {
                tracing::warn!(error = %e, %stream, "redis XREVRANGE failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                if shared.strong_count() == 0 {
                    return;
                }
            }
        }
    };
    match shared.upgrade() {
        Some(s) => s.pending.send_modify(|n| *n = n.saturating_sub(1)),
        None => return,
    }
    loop {
        let Some((block, count)) = shared
            .upgrade()
            .map(|s| (s.config.block_time, s.config.read_count))
        else {
            return;
        };
        let reply = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("STREAMS")
            .arg(&stream)
            .arg(&last)
            .query_async::<redis::Value>(&mut conn)
            .await;
        let reply = match reply {
            Ok(r) => {
                delay = Duration::from_millis(100);
                r
            }
            Err(e) => {
                tracing::warn!(error = %e, %stream, "redis XREAD failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        for (id, fields) in xread_entries(&reply) {
            last = id.clone();
            match Message::from_fields(fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                Ok(msg) => {
                    if let Some(adapter) = shared.adapter(&msg.nsp) {
                        adapter.on_message(msg, Some(&id));
                    }
                }
                Err(e) => {
                    tracing::info!(error = %e, %id, %stream, "ignoring malformed stream entry")
                }
            }
        }
    }
}

/// The entries of the first stream of an `XREAD` reply (`[[key, entries]]` in RESP2,
/// `{key: entries}` in RESP3; nil when it timed out).
fn xread_entries(reply: &redis::Value) -> Vec<(String, Vec<(String, String)>)> {
    use redis::Value as V;
    let entries = match reply {
        V::Array(streams) => match streams.first() {
            Some(V::Array(s)) if s.len() == 2 => &s[1],
            _ => return Vec::new(),
        },
        V::Map(pairs) => match pairs.first() {
            Some((_, entries)) => entries,
            None => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    stream_entries(entries)
}

/// `(id, fields)` of each entry of an `XRANGE` / `XREVRANGE` reply.
pub(crate) fn stream_entries(entries: &redis::Value) -> Vec<(String, Vec<(String, String)>)> {
    use redis::Value as V;
    let V::Array(entries) = entries else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let V::Array(parts) = entry else { return None };
            let id = value_str(parts.first()?)?;
            let fields = match parts.get(1)? {
                V::Array(flat) => flat
                    .chunks(2)
                    .filter_map(|kv| Some((value_str(kv.first()?)?, value_str(kv.get(1)?)?)))
                    .collect(),
                V::Map(pairs) => pairs
                    .iter()
                    .filter_map(|(k, v)| Some((value_str(k)?, value_str(v)?)))
                    .collect(),
                _ => Vec::new(),
            };
            Some((id, fields))
        })
        .collect()
}

const KEEPALIVE: Duration = Duration::from_millis(500);

/// Pings the subscriber connection so that it reconnects (and resubscribes) after an outage
/// longer than the connection manager's own retries.
async fn keepalive(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(mut sub) = shared.upgrade().map(|s| s.subscriber.clone()) else {
            return;
        };
        let ping = redis::cmd("PING");
        let _ =
            tokio::time::timeout(KEEPALIVE * 4, ping.query_async::<redis::Value>(&mut sub)).await;
    }
}

/// Routes pub/sub messages to the namespace whose channel they came on.
async fn dispatch_loop(shared: Weak<Shared>, mut rx: mpsc::UnboundedReceiver<PushInfo>) {
    while let Some(push) = rx.recv().await {
        let (PushKind::Message, [channel, payload]) = (push.kind, push.data.as_slice()) else {
            continue;
        };
        let (Some(channel), Some(payload)) = (bytes_of(channel), bytes_of(payload)) else {
            continue;
        };
        let Ok(channel) = std::str::from_utf8(channel) else {
            continue;
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let adapters: Vec<Arc<RedisStreamsAdapter>> = shared
            .adapters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        drop(shared);
        if let Some(adapter) = adapters
            .into_iter()
            .find(|a| a.public == channel || a.private == channel)
        {
            match Message::from_msgpack(payload) {
                Ok(msg) => adapter.on_message(msg, None),
                Err(e) => tracing::info!(error = %e, channel, "ignoring malformed message"),
            }
        }
    }
}

fn bytes_of(v: &redis::Value) -> Option<&[u8]> {
    match v {
        redis::Value::BulkString(b) => Some(b),
        redis::Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// Saves the sessions of an adapter's connected sockets again, until the adapter is gone.
async fn refresh_sessions(adapter: Weak<RedisStreamsAdapter>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(adapter) = adapter.upgrade() else {
            return;
        };
        let ids: Vec<Sid> = adapter.lock_sessions().keys().copied().collect();
        for id in ids {
            adapter.persist(id);
        }
    }
}

/// Answers of one request, as they arrive.
type Table = Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>;

/// Removes a pending request when its future ends or is dropped.
struct Pending {
    adapter: Arc<RedisStreamsAdapter>,
    id: String,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.adapter
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// The adapter of one namespace: rooms and local delivery as in [`MemoryAdapter`], plus the
/// protocol of `@socket.io/redis-streams-adapter` 0.3 to reach the other nodes.
pub struct RedisStreamsAdapter {
    me: Weak<RedisStreamsAdapter>,
    local: MemoryAdapter,
    ns: LocalNamespace,
    uid: String,
    stream: String,
    public: String,
    private: String,
    shared: Arc<Shared>,
    requests: Table,
    /// Local sockets whose session is saved ahead of time: id → pid.
    sessions: Mutex<HashMap<Sid, Sid>>,
}

fn random_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `timeout` from now; a timeout too long to represent waits for a year.
fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

impl RedisStreamsAdapter {
    /// This node's uid in the namespace (16 hex characters).
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The stream this namespace writes to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<Sid, Sid>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_requests(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Message>>> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn message(&self, kind: u64, data: Option<Data>) -> Message {
        Message {
            uid: self.uid.clone(),
            nsp: self.ns.name().to_owned(),
            kind,
            data,
        }
    }

    /// Appends a message to the stream; `then` gets its entry id.
    fn xadd(&self, msg: &Message, then: Option<Then>) {
        let fields = match msg.to_fields(self.shared.config.only_plaintext) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode message");
                if let Some(then) = then {
                    then(None);
                }
                return;
            }
        };
        self.shared.send(Job::Xadd {
            stream: self.stream.clone(),
            max_len: self.shared.config.max_len,
            fields,
            then,
        });
    }

    /// Publishes a message by pub/sub.
    fn publish(&self, channel: String, msg: &Message) {
        match msg.to_msgpack() {
            Ok(payload) => self.shared.send(Job::Publish { channel, payload }),
            Err(e) => tracing::warn!(error = %e, "cannot encode message"),
        }
    }

    fn respond(&self, requester: &str, kind: u64, data: Data) {
        let channel = format!("{}{requester}#", self.public);
        self.publish(channel, &self.message(kind, Some(data)));
    }

    fn recovery_on(&self) -> bool {
        self.ns.recovery_store().is_some()
    }

    /// Saves a local socket's session now (no-op unless it can be recovered).
    fn persist(&self, id: Sid) {
        if !self.recovery_on() {
            return;
        }
        let Some(session) = self.ns.live_session(&id) else {
            return;
        };
        self.lock_sessions().insert(id, session.pid);
        store::save(&self.shared, &session);
    }

    fn register(&self) -> Option<(Pending, mpsc::UnboundedReceiver<Message>)> {
        let adapter = self.me.upgrade()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let id = random_id();
        self.lock_requests().insert(id.clone(), tx);
        Some((Pending { adapter, id }, rx))
    }

    async fn num_sub(&self) -> Result<usize, AdapterError> {
        let mut conn = self.shared.commands.clone();
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg("NUMSUB").arg(&self.public);
        let query = cmd.query_async::<redis::Value>(&mut conn);
        match tokio::time::timeout(self.shared.config.requests_timeout, query).await {
            Ok(Ok(v)) => numsub_count(&v)
                .ok_or_else(|| AdapterError("unexpected PUBSUB NUMSUB reply".to_owned())),
            Ok(Err(e)) => Err(AdapterError(format!("redis: {e}"))),
            Err(_) => Err(AdapterError(
                "timeout reached while counting servers".to_owned(),
            )),
        }
    }

    /// A message from the stream (with its entry id) or from pub/sub.
    fn on_message(&self, msg: Message, offset: Option<&str>) {
        if msg.uid == self.uid || msg.nsp != self.ns.name() {
            return;
        }
        let data = msg.data.clone().unwrap_or(Data::Json(Value::Null));
        let opts = || match crate::proto::parse_opts(field(&data, "opts").as_ref()) {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::info!(error = %e, "ignoring message with malformed opts");
                None
            }
        };
        match msg.kind {
            kind::BROADCAST => {
                let b = match Broadcast::parse(&data) {
                    Ok(b) => b,
                    Err(e) => return tracing::info!(error = %e, "ignoring malformed broadcast"),
                };
                match b.request_id.clone() {
                    Some(request_id) => self.answer_broadcast_with_ack(&msg.uid, request_id, b),
                    None => {
                        let offset =
                            offset.filter(|_| self.recovery_on() && !b.opts.flags.volatile);
                        self.local
                            .deliver(&b.packet(self.ns.name(), offset), &b.opts);
                    }
                }
            }
            kind::SOCKETS_JOIN | kind::SOCKETS_LEAVE => {
                let (Some(opts), Ok(rooms)) =
                    (opts(), crate::proto::rooms(field(&data, "rooms").as_ref()))
                else {
                    return;
                };
                self.apply_rooms(msg.kind == kind::SOCKETS_JOIN, &opts, &rooms);
            }
            kind::DISCONNECT_SOCKETS => {
                let Some(opts) = opts() else { return };
                let close = matches!(field(&data, "close"), Some(Data::Json(Value::Bool(true))));
                self.local.disconnect_sockets(&opts, close);
            }
            kind::FETCH_SOCKETS => {
                let (Some(opts), Some(request_id)) = (opts(), str_field(&data, "requestId")) else {
                    return;
                };
                let sockets: Vec<Value> = self
                    .local
                    .sockets(&opts)
                    .iter()
                    .filter_map(|id| self.ns.socket(id))
                    .map(|s| {
                        let info = s.info();
                        json!({"id": info.id.to_string(), "handshake": info.handshake, "rooms": info.rooms, "data": info.data})
                    })
                    .collect();
                self.respond(
                    &msg.uid,
                    kind::FETCH_SOCKETS_RESPONSE,
                    Data::Json(json!({"requestId": request_id, "sockets": sockets})),
                );
            }
            kind::SERVER_SIDE_EMIT => {
                let args = match field(&data, "packet") {
                    Some(Data::Json(Value::Array(items))) => {
                        Args(items.into_iter().map(Data::Json).collect())
                    }
                    Some(Data::Array(items)) => Args(items),
                    _ => return,
                };
                if !matches!(args.json(0), Some(Value::String(_))) {
                    return;
                }
                let answer = self.ns.server_side_event(args);
                let Some(request_id) = str_field(&data, "requestId") else {
                    tokio::spawn(answer);
                    return;
                };
                let Some(me) = self.me.upgrade() else { return };
                let requester = msg.uid;
                tokio::spawn(async move {
                    // Always answered, so that the requester does not wait for a node without
                    // a listener.
                    let mut reply = vec![("requestId".to_owned(), Data::from(request_id.as_str()))];
                    if let Some(first) = answer.await.and_then(|a| a.0.into_iter().next()) {
                        reply.push(("packet".to_owned(), first));
                    }
                    me.respond(
                        &requester,
                        kind::SERVER_SIDE_EMIT_RESPONSE,
                        Data::Object(reply),
                    );
                });
            }
            kind::FETCH_SOCKETS_RESPONSE
            | kind::SERVER_SIDE_EMIT_RESPONSE
            | kind::BROADCAST_CLIENT_COUNT
            | kind::BROADCAST_ACK => {
                let Some(id) = str_field(&data, "requestId") else {
                    return;
                };
                let tx = self.lock_requests().get(&id).cloned();
                if let Some(tx) = tx {
                    let _ = tx.send(msg);
                }
            }
            kind::INITIAL_HEARTBEAT | kind::HEARTBEAT | kind::ADAPTER_CLOSE => {}
            other => tracing::info!(kind = other, "ignoring unknown message type"),
        }
    }

    /// Joins or leaves rooms for the targeted local sockets, and saves their sessions.
    fn apply_rooms(&self, join: bool, opts: &BroadcastOptions, rooms: &[Room]) {
        let targets = self.local.sockets(opts);
        if join {
            self.local.add_sockets(opts, rooms);
        } else {
            self.local.del_sockets(opts, rooms);
        }
        for id in targets {
            if self.lock_sessions().contains_key(&id) {
                self.persist(id);
            }
        }
    }

    /// Another node's broadcast with acks: send it to the local targets, report how many,
    /// then relay each acknowledgement (its first argument).
    fn answer_broadcast_with_ack(&self, requester: &str, request_id: String, b: Broadcast) {
        let mut args = match b.data {
            Data::Json(Value::Array(items)) => Args(items.into_iter().map(Data::Json).collect()),
            Data::Array(items) => Args(items),
            _ => return,
        };
        let event = match args.0.first() {
            Some(Data::Json(Value::String(name))) => name.clone(),
            _ => return,
        };
        args.0.remove(0);
        let timeout = b
            .opts
            .flags
            .timeout
            .unwrap_or(self.shared.config.requests_timeout);
        let mut waits = FuturesUnordered::new();
        for id in self.local.sockets(&b.opts) {
            if let Some(socket) = self.ns.socket(&id) {
                let (event, args) = (event.clone(), args.clone());
                waits
                    .push(async move { socket.emit_with_ack_timeout(&event, args, timeout).await });
            }
        }
        self.respond(
            requester,
            kind::BROADCAST_CLIENT_COUNT,
            Data::Json(json!({"requestId": request_id, "clientCount": waits.len()})),
        );
        let Some(me) = self.me.upgrade() else { return };
        let requester = requester.to_owned();
        tokio::spawn(async move {
            while let Some(result) = waits.next().await {
                let Ok(answer) = result else { continue };
                let mut reply = vec![("requestId".to_owned(), Data::from(request_id.as_str()))];
                if let Some(first) = answer.0.into_iter().next() {
                    reply.push(("packet".to_owned(), first));
                }
                me.respond(&requester, kind::BROADCAST_ACK, Data::Object(reply));
            }
        });
    }
}

/// The subscriber count in a `PUBSUB NUMSUB` reply (an array in RESP2, a map in RESP3).
fn numsub_count(v: &redis::Value) -> Option<usize> {
    let n = match v {
        redis::Value::Array(items) => items.get(1)?,
        redis::Value::Map(pairs) => &pairs.first()?.1,
        _ => return None,
    };
    match n {
        redis::Value::Int(n) => usize::try_from(*n).ok(),
        other => value_str(other).and_then(|s| s.parse().ok()),
    }
}

fn selector(opts: &BroadcastOptions) -> Value {
    crate::proto::opts_json(opts, true)
}

impl Adapter for RedisStreamsAdapter {
    fn add_all(&self, id: Sid, rooms: &[Room]) {
        self.local.add_all(id, rooms);
        self.persist(id);
    }

    fn del(&self, id: Sid, room: &str) {
        self.local.del(id, room);
        if self.lock_sessions().contains_key(&id) {
            self.persist(id);
        }
    }

    fn del_all(&self, id: Sid) {
        self.local.del_all(id);
        let saved = self
            .shared
            .saved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let Some(pid) = self.lock_sessions().remove(&id) else {
            return;
        };
        if !saved {
            // Gone for good (not a recoverable disconnect): its saved-ahead session too.
            self.shared.send(Job::Del {
                key: self.shared.config.session_key(&pid),
            });
        }
    }

    fn socket_rooms(&self, id: Sid) -> Vec<Room> {
        self.local.socket_rooms(id)
    }

    fn rooms(&self) -> Vec<Room> {
        self.local.rooms()
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        self.local.sockets(opts)
    }

    fn broadcast(&self, mut packet: Packet, opts: &BroadcastOptions) {
        packet.nsp = self.ns.name().to_owned();
        if opts.flags.local || !crate::proto::is_event(&packet) {
            return self.local.deliver(&packet, opts);
        }
        let data = match proto::broadcast_data(&packet, opts, None) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode broadcast");
                return self.local.deliver(&packet, opts);
            }
        };
        let msg = self.message(kind::BROADCAST, Some(data));
        let Some(me) = self.me.upgrade() else { return };
        let opts = opts.clone();
        let offset_wanted = self.recovery_on() && packet.id.is_none() && !opts.flags.volatile;
        // Delivered here once the entry has its id, which becomes the recovery offset.
        self.xadd(
            &msg,
            Some(Box::new(move |id: Option<String>| {
                if let (true, Some(id), Some(Value::Array(items))) =
                    (offset_wanted, id, packet.data.as_mut())
                {
                    items.push(Value::String(id));
                }
                me.local.deliver(&packet, &opts);
            })),
        );
    }

    fn broadcast_with_ack(
        &self,
        mut packet: Packet,
        opts: &BroadcastOptions,
    ) -> BoxFuture<BroadcastAcks> {
        packet.nsp = self.ns.name().to_owned();
        let registered = if opts.flags.local {
            None
        } else {
            self.register()
        };
        let Some((pending, mut rx)) = registered else {
            return self.local.broadcast_with_ack(packet, opts);
        };
        let mut opts = opts.clone();
        let timeout = *opts
            .flags
            .timeout
            .get_or_insert(self.shared.config.requests_timeout);
        let deadline = deadline(timeout);
        match proto::broadcast_data(&packet, &opts, Some(&pending.id)) {
            Ok(data) => self.publish(
                self.public.clone(),
                &self.message(kind::BROADCAST, Some(data)),
            ),
            Err(e) => tracing::warn!(error = %e, "cannot encode broadcast"),
        }
        let local = self.local.broadcast_with_ack(packet, &opts);
        Box::pin(async move {
            let adapter = pending.adapter.clone();
            let remote = async move {
                let _pending = pending;
                let servers = adapter.num_sub().await.unwrap_or(1).saturating_sub(1);
                let (mut reported, mut expected) = (0usize, 0usize);
                let mut responses = Vec::new();
                while reported < servers || responses.len() < expected {
                    let Ok(Some(msg)) = timeout_at(deadline, rx.recv()).await else {
                        break;
                    };
                    let data = msg.data.unwrap_or(Data::Json(Value::Null));
                    match msg.kind {
                        kind::BROADCAST_CLIENT_COUNT => {
                            reported += 1;
                            expected += field(&data, "clientCount")
                                .and_then(|c| as_u64(&c))
                                .unwrap_or(0) as usize;
                        }
                        kind::BROADCAST_ACK => {
                            responses.push(Args(field(&data, "packet").into_iter().collect()));
                        }
                        _ => {}
                    }
                }
                let missing =
                    expected.saturating_sub(responses.len()) + (servers - reported.min(servers));
                (responses, missing)
            };
            let (mut acks, (responses, missing)) = tokio::join!(local, remote);
            acks.responses.extend(responses);
            acks.missing += missing;
            acks
        })
    }

    fn add_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        if !opts.flags.local {
            let data = json!({"opts": selector(opts), "rooms": rooms});
            self.xadd(
                &self.message(kind::SOCKETS_JOIN, Some(Data::Json(data))),
                None,
            );
        }
        self.apply_rooms(true, opts, rooms);
    }

    fn del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        if !opts.flags.local {
            let data = json!({"opts": selector(opts), "rooms": rooms});
            self.xadd(
                &self.message(kind::SOCKETS_LEAVE, Some(Data::Json(data))),
                None,
            );
        }
        self.apply_rooms(false, opts, rooms);
    }

    fn disconnect_sockets(&self, opts: &BroadcastOptions, close: bool) {
        if !opts.flags.local {
            let data = json!({"opts": selector(opts), "close": close});
            self.xadd(
                &self.message(kind::DISCONNECT_SOCKETS, Some(Data::Json(data))),
                None,
            );
        }
        self.local.disconnect_sockets(opts, close);
    }

    fn fetch_sockets(
        &self,
        opts: &BroadcastOptions,
    ) -> BoxFuture<Result<Vec<SocketInfo>, AdapterError>> {
        let local: Vec<SocketInfo> = self
            .local
            .sockets(opts)
            .iter()
            .filter_map(|id| self.ns.socket(id))
            .map(|s| s.info())
            .collect();
        let me = match self.me.upgrade() {
            Some(me) if !opts.flags.local => me,
            _ => return Box::pin(std::future::ready(Ok(local))),
        };
        let timeout = opts
            .flags
            .timeout
            .unwrap_or(me.shared.config.requests_timeout);
        let selector = selector(opts);
        Box::pin(async move {
            let expected = me.num_sub().await?.saturating_sub(1);
            let mut out = local;
            if expected == 0 {
                return Ok(out);
            }
            let Some((pending, mut rx)) = me.register() else {
                return Ok(out);
            };
            let data = json!({"opts": selector, "requestId": pending.id});
            me.publish(
                me.public.clone(),
                &me.message(kind::FETCH_SOCKETS, Some(Data::Json(data))),
            );
            let deadline = deadline(timeout);
            let mut current = 0;
            while current < expected {
                let Ok(Some(msg)) = timeout_at(deadline, rx.recv()).await else {
                    return Err(AdapterError(format!(
                        "timeout reached: only {current} responses received out of {expected}"
                    )));
                };
                if msg.kind != kind::FETCH_SOCKETS_RESPONSE {
                    continue;
                }
                current += 1;
                if let Some(Value::Array(sockets)) = msg
                    .data
                    .and_then(|d| field(&d, "sockets"))
                    .map(crate::proto::to_json)
                {
                    out.extend(sockets.iter().filter_map(socket_info));
                }
            }
            Ok(out)
        })
    }

    fn server_side_emit(&self, args: Args) -> BoxFuture<Result<Vec<Args>, AdapterError>> {
        let Some(me) = self.me.upgrade() else {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        };
        Box::pin(async move {
            let expected = me.num_sub().await?.saturating_sub(1);
            if expected == 0 {
                return Ok(Vec::new());
            }
            let Some((pending, mut rx)) = me.register() else {
                return Ok(Vec::new());
            };
            let data = Data::Object(vec![
                ("requestId".to_owned(), Data::from(pending.id.as_str())),
                ("packet".to_owned(), Data::Array(args.0)),
            ]);
            me.publish(
                me.public.clone(),
                &me.message(kind::SERVER_SIDE_EMIT, Some(data)),
            );
            let deadline = deadline(me.shared.config.requests_timeout);
            let mut answers = Vec::new();
            while answers.len() < expected {
                match timeout_at(deadline, rx.recv()).await {
                    Ok(Some(msg)) if msg.kind == kind::SERVER_SIDE_EMIT_RESPONSE => {
                        answers.push(Args(
                            msg.data
                                .and_then(|d| field(&d, "packet"))
                                .into_iter()
                                .collect(),
                        ))
                    }
                    Ok(Some(_)) => {}
                    _ => {
                        return Err(AdapterError(format!(
                            "timeout reached: only {} responses received out of {expected}",
                            answers.len()
                        )))
                    }
                }
            }
            Ok(answers)
        })
    }

    fn server_count(&self) -> BoxFuture<usize> {
        let Some(me) = self.me.upgrade() else {
            return Box::pin(std::future::ready(1));
        };
        Box::pin(async move {
            match me.num_sub().await {
                Ok(n) => n.max(1),
                Err(e) => {
                    tracing::warn!(error = %e.0, "cannot count servers");
                    1
                }
            }
        })
    }
}

fn socket_info(v: &Value) -> Option<SocketInfo> {
    let id = Sid::parse(v.get("id")?.as_str()?)?;
    let rooms = match v.get("rooms") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|r| match r {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(SocketInfo {
        id,
        rooms,
        data: v.get("data").cloned().unwrap_or(Value::Null),
        handshake: v.get("handshake").cloned().unwrap_or(Value::Null),
    })
}
