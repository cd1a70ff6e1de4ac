//! The adapter, its factory and the tasks that talk to Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::distr::{Alphanumeric, SampleString};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError};
use serde_json::{json, Value};
use socketio::adapter::{
    Adapter, AdapterError, AdapterFactory, BoxFuture, BroadcastAcks, BroadcastOptions,
    LocalNamespace, MemoryAdapter, SocketInfo,
};
use socketio::{Args, Data, Packet, Room, Sid};
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout_at, Instant};

use crate::proto::{self, as_u64, field, kind, str_field, Channels};

/// Options of the Redis adapter; the defaults are those of the Node adapter.
#[derive(Clone, Debug)]
pub struct RedisAdapterConfig {
    /// Prefix of every channel name (Node's `key`), `socket.io` by default.
    pub key: String,
    /// How long a request to the other nodes waits for their answers (5 s).
    pub requests_timeout: Duration,
    /// Reply on the requester's own response channel instead of the shared one (Node's
    /// `publishOnSpecificResponseChannel`, off by default). Every node listens on both.
    pub publish_on_specific_response_channel: bool,
    /// Messages waiting to be published; past this, new ones are dropped with a warning so
    /// that a slow or unreachable Redis never blocks the server.
    pub publish_queue: usize,
    /// Speak the protocol of Node's `createShardedAdapter` (Redis 7 sharded pub/sub,
    /// `SPUBLISH`/`SSUBSCRIBE`) instead of the classic one. Every node of a cluster must use
    /// the same protocol; `@socket.io/redis-emitter` only reaches classic nodes.
    pub sharded: bool,
}

impl Default for RedisAdapterConfig {
    fn default() -> Self {
        RedisAdapterConfig {
            key: "socket.io".to_owned(),
            requests_timeout: Duration::from_secs(5),
            publish_on_specific_response_channel: false,
            publish_queue: 8192,
            sharded: false,
        }
    }
}

/// What the factory's connections went through, for the application to watch (see
/// [`RedisAdapterFactory::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedisStats {
    /// Whether the subscribed connection answered its last keepalive ping (every 500 ms).
    pub connected: bool,
    /// Times the subscribed connection was found down (each logged as a warning).
    pub outages: u64,
    /// Times it came back, subscriptions renewed (each logged).
    pub reconnects: u64,
    /// Messages that never reached Redis: the publish queue was full, or the publish failed
    /// twice.
    pub dropped_publishes: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    connected: std::sync::atomic::AtomicBool,
    outages: AtomicU64,
    reconnects: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    fn dropped(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Records a keepalive result; logs the transitions.
    fn alive(&self, up: bool) {
        if self.connected.swap(up, Ordering::Relaxed) == up {
            return;
        }
        if up {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("redis connection restored; subscriptions renewed");
        } else {
            self.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("redis connection lost; reaching only local sockets until it is back");
        }
    }
}

pub(crate) struct Outgoing {
    pub(crate) channel: String,
    pub(crate) payload: Vec<u8>,
}

/// Where the dispatch task hands subscribed messages.
pub(crate) trait Route: Send + Sync {
    /// Handles a message; `false` if the channel is not this adapter's.
    fn route(&self, channel: &str, payload: &[u8]) -> bool;
}

pub(crate) struct Shared {
    pub(crate) config: RedisAdapterConfig,
    /// Commands (`PUBSUB NUMSUB`); also publishes.
    pub(crate) commands: ConnectionManager,
    /// RESP3, subscribed; messages arrive through the push channel. Resubscribes by itself
    /// after a reconnect.
    pub(crate) subscriber: ConnectionManager,
    pub(crate) outgoing: mpsc::Sender<Outgoing>,
    pub(crate) adapters: RwLock<Vec<Weak<dyn Route>>>,
    /// Namespaces whose subscriptions are not confirmed yet.
    pub(crate) pending: watch::Sender<usize>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) counters: Arc<Counters>,
}

impl Shared {
    /// Queues a message; never waits.
    pub(crate) fn publish(&self, channel: String, payload: Vec<u8>) {
        match self.outgoing.try_send(Outgoing { channel, payload }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(m)) => {
                self.counters.dropped(1);
                tracing::warn!(channel = %m.channel, "redis publish queue full; message dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Registers an adapter with the dispatch task.
    pub(crate) fn add_route(&self, route: Weak<dyn Route>) {
        let mut all = self.adapters.write().unwrap_or_else(|e| e.into_inner());
        all.retain(|a| a.strong_count() > 0);
        all.push(route);
    }

    /// The number of subscribers of `channel` (`PUBSUB <kind> channel`), this node included.
    pub(crate) async fn count_subscribers(
        &self,
        kind: &str,
        channel: &str,
    ) -> Result<usize, AdapterError> {
        let mut conn = self.commands.clone();
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg(kind).arg(channel);
        let query = cmd.query_async::<redis::Value>(&mut conn);
        match tokio::time::timeout(self.config.requests_timeout, query).await {
            Ok(Ok(v)) => numsub_count(&v)
                .ok_or_else(|| AdapterError(format!("unexpected PUBSUB {kind} reply"))),
            Ok(Err(e)) => Err(AdapterError(format!("redis: {e}"))),
            Err(_) => Err(AdapterError(
                "timeout reached while counting servers".to_owned(),
            )),
        }
    }
}

/// Creates a [`RedisAdapter`] for each namespace; all of them share two Redis connections
/// (one to publish and query, one subscribed). Cheap to clone.
#[derive(Clone)]
pub struct RedisAdapterFactory {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisAdapterFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdapterFactory")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl RedisAdapterFactory {
    /// Connects to Redis (`redis://host:port/db`). Both connections reconnect by themselves
    /// later on; this fails only if Redis cannot be reached now. Must run inside a Tokio
    /// runtime, which the adapter's tasks then use.
    pub async fn connect(url: &str, config: RedisAdapterConfig) -> Result<Self, RedisError> {
        let info = url.into_connection_info()?;
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let commands = redis::Client::open(info.clone())?
            .get_connection_manager()
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
        let (outgoing, outgoing_rx) = mpsc::channel(config.publish_queue.max(1));
        let counters = Arc::new(Counters::default());
        counters.connected.store(true, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            config,
            commands: commands.clone(),
            subscriber,
            outgoing,
            adapters: RwLock::new(Vec::new()),
            pending: watch::Sender::new(0),
            runtime: tokio::runtime::Handle::current(),
            counters: counters.clone(),
        });
        let publish = if shared.config.sharded {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        tokio::spawn(publish_loop(outgoing_rx, commands, publish, counters));
        tokio::spawn(dispatch_loop(Arc::downgrade(&shared), push_rx));
        tokio::spawn(keepalive(Arc::downgrade(&shared)));
        Ok(RedisAdapterFactory { shared })
    }

    /// Resolves once every namespace created so far is subscribed to its channels (and
    /// therefore counted by the other nodes and reached by their broadcasts).
    pub async fn ready(&self) {
        let mut rx = self.shared.pending.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Outages, reconnections and lost messages so far. During an outage each node reaches
    /// only its own sockets; what it publishes meanwhile is lost (counted in
    /// `dropped_publishes` once the publish fails or the queue is full).
    pub fn stats(&self) -> RedisStats {
        let c = &self.shared.counters;
        RedisStats {
            connected: c.connected.load(Ordering::Relaxed),
            outages: c.outages.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            dropped_publishes: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// The options.
    pub fn config(&self) -> &RedisAdapterConfig {
        &self.shared.config
    }
}

impl AdapterFactory for RedisAdapterFactory {
    fn create(&self, ns: LocalNamespace) -> Arc<dyn Adapter> {
        let shared = self.shared.clone();
        if shared.config.sharded {
            return crate::sharded::create(shared, ns);
        }
        let uid = Alphanumeric.sample_string(&mut rand::rng(), 6);
        let channels = Channels::new(&shared.config.key, ns.name(), &uid);
        let adapter = Arc::new_cyclic(|me| RedisAdapter {
            me: me.clone(),
            local: MemoryAdapter::new(ns.clone()),
            ns,
            uid,
            channels: channels.clone(),
            shared: shared.clone(),
            requests: Mutex::new(HashMap::new()),
            ack_requests: Mutex::new(HashMap::new()),
        });
        let route: Arc<dyn Route> = adapter.clone();
        shared.add_route(Arc::downgrade(&route));
        shared.pending.send_modify(|n| *n += 1);
        let weak = Arc::downgrade(&shared);
        let mut sub = shared.subscriber.clone();
        shared.runtime.spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                let res = async {
                    sub.psubscribe(channels.broadcast_pattern()).await?;
                    sub.subscribe(&[
                        channels.request.as_str(),
                        channels.response.as_str(),
                        channels.own_response.as_str(),
                    ])
                    .await
                }
                .await;
                match res {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, channels = ?channels, "redis subscribe failed, retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
                if weak.strong_count() == 0 {
                    return;
                }
            }
            if let Some(shared) = weak.upgrade() {
                shared.pending.send_modify(|n| *n = n.saturating_sub(1));
            }
        });
        adapter
    }
}

/// Publishes queued messages in order, pipelining whatever has piled up. A batch that failed
/// on a dropped connection is sent once more, on the connection the manager opens instead.
async fn publish_loop(
    mut rx: mpsc::Receiver<Outgoing>,
    mut conn: ConnectionManager,
    command: &'static str,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, 64).await > 0 {
        let mut pipe = redis::pipe();
        let size = batch.len();
        for m in batch.drain(..) {
            pipe.cmd(command).arg(m.channel).arg(m.payload).ignore();
        }
        let mut result = pipe.query_async::<()>(&mut conn).await;
        if let Err(e) = &result {
            if e.is_connection_dropped() || e.is_io_error() {
                result = pipe.query_async::<()>(&mut conn).await;
            }
        }
        if let Err(e) = result {
            counters.dropped(size);
            tracing::warn!(error = %e, lost = size, "redis publish failed; messages lost");
        }
    }
}

/// How often the subscriber connection is checked.
const KEEPALIVE: Duration = Duration::from_millis(500);

/// Pings the subscriber connection. The connection manager stops retrying after a few attempts
/// and tries again only when a command fails; without commands of its own, the subscriber would
/// stay deaf after an outage longer than those attempts.
async fn keepalive(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some((mut sub, counters)) = shared
            .upgrade()
            .map(|s| (s.subscriber.clone(), s.counters.clone()))
        else {
            return;
        };
        let ping = redis::cmd("PING");
        let pong =
            tokio::time::timeout(KEEPALIVE * 4, ping.query_async::<redis::Value>(&mut sub)).await;
        counters.alive(matches!(pong, Ok(Ok(_))));
    }
}

/// Routes subscribed messages to the namespace they belong to.
async fn dispatch_loop(shared: Weak<Shared>, mut rx: mpsc::UnboundedReceiver<PushInfo>) {
    while let Some(push) = rx.recv().await {
        let (channel, payload) = match (push.kind, push.data.as_slice()) {
            (PushKind::Message | PushKind::SMessage, [channel, payload]) => (channel, payload),
            (PushKind::PMessage, [_pattern, channel, payload]) => (channel, payload),
            _ => continue,
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
        let adapters: Vec<Arc<dyn Route>> = shared
            .adapters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        drop(shared);
        for adapter in adapters {
            if adapter.route(channel, payload) {
                break;
            }
        }
    }
}

pub(crate) fn bytes_of(v: &redis::Value) -> Option<&[u8]> {
    match v {
        redis::Value::BulkString(b) => Some(b),
        redis::Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
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
        other => bytes_of(other)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse().ok()),
    }
}

type Table = Mutex<HashMap<String, mpsc::UnboundedSender<Data>>>;

/// Removes a pending request when its future ends or is dropped.
struct Pending {
    adapter: Arc<RedisAdapter>,
    id: String,
    acks: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let table = if self.acks {
            &self.adapter.ack_requests
        } else {
            &self.adapter.requests
        };
        table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// The adapter of one namespace: rooms and local delivery as in [`MemoryAdapter`], plus the
/// classic `@socket.io/redis-adapter` protocol to reach the other nodes.
///
/// As in the Node adapter, `sockets_join`, `sockets_leave` and `disconnect_sockets` (without
/// `local`) are only published: every node, this one included, applies them when the request
/// comes back from Redis.
pub struct RedisAdapter {
    me: Weak<RedisAdapter>,
    local: MemoryAdapter,
    ns: LocalNamespace,
    uid: String,
    channels: Channels,
    shared: Arc<Shared>,
    requests: Table,
    ack_requests: Table,
}

fn lock(t: &Table) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Data>>> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

fn request_id() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 6)
}

impl RedisAdapter {
    /// This node's uid in the namespace (6 characters).
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The channel names.
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    fn this(&self) -> Option<Arc<RedisAdapter>> {
        self.me.upgrade()
    }

    fn timeout(&self) -> Duration {
        self.shared.config.requests_timeout
    }

    /// Queues a message; never waits.
    fn publish(&self, channel: String, payload: Vec<u8>) {
        self.shared.publish(channel, payload)
    }

    fn publish_json(&self, channel: String, value: &Value) {
        self.publish(channel, value.to_string().into_bytes());
    }

    fn register(&self, acks: bool) -> Option<(Pending, mpsc::UnboundedReceiver<Data>)> {
        let adapter = self.this()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let table = if acks {
            &self.ack_requests
        } else {
            &self.requests
        };
        let mut map = lock(table);
        let id = loop {
            let id = request_id();
            if !map.contains_key(&id) {
                break id;
            }
        };
        map.insert(id.clone(), tx);
        Some((Pending { adapter, id, acks }, rx))
    }

    /// Number of nodes subscribed to the request channel, this one included.
    async fn num_sub(&self) -> Result<usize, AdapterError> {
        self.shared
            .count_subscribers("NUMSUB", &self.channels.request)
            .await
    }

    fn local_infos(&self, opts: &BroadcastOptions) -> Vec<SocketInfo> {
        self.local
            .sockets(opts)
            .iter()
            .filter_map(|id| self.ns.socket(id))
            .map(|s| s.info())
            .collect()
    }

    /// Handles a message on one of the subscribed channels; `false` if the channel is not
    /// this namespace's.
    fn route_message(&self, channel: &str, payload: &[u8]) -> bool {
        if channel.starts_with(&self.channels.broadcast) {
            self.on_broadcast(channel, payload);
        } else if channel == self.channels.request {
            self.on_request(payload);
        } else if channel.starts_with(&self.channels.response) {
            self.on_response(payload);
        } else {
            return false;
        }
        true
    }

    fn on_broadcast(&self, channel: &str, payload: &[u8]) {
        if let Some(room) = self.channels.room_of(channel) {
            // Checked before decoding: most nodes have no member of most rooms.
            if self.local.sockets(&one_room(room)).is_empty() {
                return;
            }
        }
        let msg = match proto::decode_broadcast(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, channel, "ignoring malformed broadcast");
                return;
            }
        };
        if msg.uid == self.uid || msg.nsp != self.ns.name() {
            return;
        }
        self.local.broadcast(msg.packet(), &msg.opts);
    }

    fn on_request(&self, payload: &[u8]) {
        let req = match proto::decode_request(payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring malformed request");
                return;
            }
        };
        let Some(kind) = field(&req, "type").and_then(|t| as_u64(&t)) else {
            return;
        };
        let request_id = str_field(&req, "requestId");
        let uid = str_field(&req, "uid");
        let own_request = |t: &Table| {
            request_id
                .as_ref()
                .is_some_and(|id| lock(t).contains_key(id))
        };
        let reply_to = self.channels.reply_channel(
            self.shared.config.publish_on_specific_response_channel,
            uid.as_deref(),
        );
        let opts = field(&req, "opts");
        let parsed_opts = match proto::parse_opts(opts.as_ref()) {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring request with malformed opts");
                return;
            }
        };
        match kind {
            kind::SOCKETS => {
                if own_request(&self.requests) {
                    return;
                }
                let Ok(rooms) = proto::rooms(field(&req, "rooms").as_ref()) else {
                    return;
                };
                let opts = BroadcastOptions {
                    rooms,
                    ..Default::default()
                };
                let ids: Vec<String> = self
                    .local
                    .sockets(&opts)
                    .iter()
                    .map(Sid::to_string)
                    .collect();
                self.publish_json(reply_to, &json!({"requestId": request_id, "sockets": ids}));
            }
            kind::ALL_ROOMS => {
                if own_request(&self.requests) {
                    return;
                }
                let rooms = self.local.rooms();
                self.publish_json(reply_to, &json!({"requestId": request_id, "rooms": rooms}));
            }
            kind::REMOTE_JOIN | kind::REMOTE_LEAVE => {
                if opts.is_some() {
                    let Ok(rooms) = proto::rooms(field(&req, "rooms").as_ref()) else {
                        return;
                    };
                    if kind == kind::REMOTE_JOIN {
                        self.local.add_sockets(&parsed_opts, &rooms);
                    } else {
                        self.local.del_sockets(&parsed_opts, &rooms);
                    }
                    return;
                }
                // Legacy form: one socket by id, answered by its node.
                let (Some(socket), Some(room)) =
                    (self.legacy_socket(&req), str_field(&req, "room"))
                else {
                    return;
                };
                if kind == kind::REMOTE_JOIN {
                    socket.join(room);
                } else {
                    socket.leave(&room);
                }
                self.publish_json(reply_to, &json!({"requestId": request_id}));
            }
            kind::REMOTE_DISCONNECT => {
                let close = matches!(field(&req, "close"), Some(Data::Json(Value::Bool(true))));
                if opts.is_some() {
                    self.local.disconnect_sockets(&parsed_opts, close);
                    return;
                }
                let Some(socket) = self.legacy_socket(&req) else {
                    return;
                };
                if close {
                    socket.disconnect_and_close();
                } else {
                    socket.disconnect();
                }
                self.publish_json(reply_to, &json!({"requestId": request_id}));
            }
            kind::REMOTE_FETCH => {
                if own_request(&self.requests) {
                    return;
                }
                let sockets: Vec<Value> = self
                    .local_infos(&parsed_opts)
                    .into_iter()
                    .map(|s| {
                        json!({"id": s.id.to_string(), "handshake": s.handshake, "rooms": s.rooms, "data": s.data})
                    })
                    .collect();
                self.publish_json(
                    reply_to,
                    &json!({"requestId": request_id, "sockets": sockets}),
                );
            }
            kind::SERVER_SIDE_EMIT => {
                if uid.as_deref() == Some(self.uid.as_str()) {
                    return;
                }
                let args = match field(&req, "data") {
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
                let Some(request_id) = request_id else {
                    tokio::spawn(answer);
                    return;
                };
                let Some(me) = self.this() else { return };
                tokio::spawn(async move {
                    // Always answered (on the shared channel, as Node does), so that the
                    // requester does not wait for a node without a listener.
                    let mut reply =
                        json!({"type": kind::SERVER_SIDE_EMIT, "requestId": request_id});
                    if let Some(first) = answer.await.and_then(|a| a.0.into_iter().next()) {
                        reply["data"] = proto::to_json(first);
                    }
                    me.publish_json(me.channels.response.clone(), &reply);
                });
            }
            kind::BROADCAST => {
                if own_request(&self.ack_requests) {
                    return;
                }
                let Some(request_id) = request_id else { return };
                let Some(packet) = field(&req, "packet") else {
                    return;
                };
                let Ok((nsp, data)) = proto::event_of(&packet) else {
                    return;
                };
                if nsp != self.ns.name() {
                    return;
                }
                self.answer_broadcast_with_ack(request_id, reply_to, data, &parsed_opts);
            }
            other => tracing::debug!(kind = other, "ignoring unknown request type"),
        }
    }

    fn legacy_socket(&self, req: &Data) -> Option<socketio::Socket> {
        let sid = Sid::parse(&str_field(req, "sid")?)?;
        self.ns.socket(&sid)
    }

    /// Another node's broadcast with acks: send it to the local targets, report how many,
    /// then relay each acknowledgement (its first argument) as it comes.
    fn answer_broadcast_with_ack(
        &self,
        request_id: String,
        reply_to: String,
        data: Data,
        opts: &BroadcastOptions,
    ) {
        let mut args = proto_args(data);
        let event = match args.0.first() {
            Some(Data::Json(Value::String(name))) => name.clone(),
            _ => return,
        };
        args.0.remove(0);
        let timeout = opts.flags.timeout.unwrap_or(self.timeout());
        let mut waits = FuturesUnordered::new();
        for id in self.local.sockets(opts) {
            if let Some(socket) = self.ns.socket(&id) {
                let (event, args) = (event.clone(), args.clone());
                waits
                    .push(async move { socket.emit_with_ack_timeout(&event, args, timeout).await });
            }
        }
        self.publish_json(
            reply_to.clone(),
            &json!({"type": kind::BROADCAST_CLIENT_COUNT, "requestId": request_id, "clientCount": waits.len()}),
        );
        let Some(me) = self.this() else { return };
        tokio::spawn(async move {
            while let Some(result) = waits.next().await {
                let Ok(answer) = result else { continue };
                match proto::encode_broadcast_ack(&request_id, answer.0.into_iter().next()) {
                    Ok(bytes) => me.publish(reply_to.clone(), bytes),
                    Err(e) => tracing::warn!(error = %e, "cannot encode broadcast ack"),
                }
            }
        });
    }

    fn on_response(&self, payload: &[u8]) {
        let Ok(resp) = proto::decode_request(payload) else {
            tracing::debug!("ignoring malformed response");
            return;
        };
        let Some(id) = str_field(&resp, "requestId") else {
            return;
        };
        let tx = lock(&self.ack_requests)
            .get(&id)
            .cloned()
            .or_else(|| lock(&self.requests).get(&id).cloned());
        if let Some(tx) = tx {
            let _ = tx.send(resp);
        }
    }

    /// Publishes a request and gathers one answer from each other node (`None` on timeout).
    async fn gather(
        self: Arc<Self>,
        request: Value,
        mut keep: impl FnMut(Data) + Send,
    ) -> Result<bool, AdapterError> {
        let servers = self.num_sub().await?;
        if servers <= 1 {
            return Ok(true);
        }
        let Some((pending, mut rx)) = self.register(false) else {
            return Ok(true);
        };
        let mut request = request;
        request["uid"] = json!(self.uid);
        request["requestId"] = json!(pending.id);
        self.publish_json(self.channels.request.clone(), &request);
        let deadline = deadline(self.timeout());
        for _ in 1..servers {
            match timeout_at(deadline, rx.recv()).await {
                Ok(Some(resp)) => keep(resp),
                _ => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// `timeout` from now; a timeout too long to represent waits for a year.
pub(crate) fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

fn one_room(room: &str) -> BroadcastOptions {
    BroadcastOptions {
        rooms: vec![room.to_owned()],
        ..Default::default()
    }
}

fn proto_args(data: Data) -> Args {
    match data {
        Data::Json(Value::Array(items)) => Args(items.into_iter().map(Data::Json).collect()),
        Data::Array(items) => Args(items),
        other => Args(vec![other]),
    }
}

pub(crate) fn socket_info(v: &Value) -> Option<SocketInfo> {
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

fn selector(opts: &BroadcastOptions) -> Value {
    proto::opts_json(opts, false)
}

impl Route for RedisAdapter {
    fn route(&self, channel: &str, payload: &[u8]) -> bool {
        self.route_message(channel, payload)
    }
}

impl Adapter for RedisAdapter {
    fn add_all(&self, id: Sid, rooms: &[Room]) {
        self.local.add_all(id, rooms)
    }

    fn del(&self, id: Sid, room: &str) {
        self.local.del(id, room)
    }

    fn del_all(&self, id: Sid) {
        self.local.del_all(id)
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
        if !opts.flags.local && proto::is_event(&packet) {
            match proto::encode_broadcast(&self.uid, &packet, opts) {
                Ok(bytes) => self.publish(self.channels.broadcast_channel(opts), bytes),
                Err(e) => tracing::warn!(error = %e, "cannot encode broadcast"),
            }
        }
        self.local.broadcast(packet, opts)
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
            self.register(true)
        };
        let Some((pending, mut rx)) = registered else {
            return self.local.broadcast_with_ack(packet, opts);
        };
        let mut opts = opts.clone();
        let timeout = *opts.flags.timeout.get_or_insert(self.timeout());
        let deadline = deadline(timeout);
        match proto::encode_broadcast_request(&self.uid, &pending.id, &packet, &opts) {
            Ok(bytes) => self.publish(self.channels.request.clone(), bytes),
            Err(e) => tracing::warn!(error = %e, "cannot encode broadcast"),
        }
        let local = self.local.broadcast_with_ack(packet, &opts);
        Box::pin(async move {
            let adapter = pending.adapter.clone();
            let remote = async move {
                let _pending = pending;
                // Unknown (Redis unreachable): take the other nodes as absent.
                let servers = adapter.num_sub().await.unwrap_or(1).saturating_sub(1);
                let (mut reported, mut expected) = (0usize, 0usize);
                let mut responses = Vec::new();
                while reported < servers || responses.len() < expected {
                    let Ok(Some(msg)) = timeout_at(deadline, rx.recv()).await else {
                        break;
                    };
                    match field(&msg, "type").and_then(|t| as_u64(&t)) {
                        Some(kind::BROADCAST_CLIENT_COUNT) => {
                            reported += 1;
                            expected += field(&msg, "clientCount")
                                .and_then(|c| as_u64(&c))
                                .unwrap_or(0) as usize;
                        }
                        Some(kind::BROADCAST_ACK) => {
                            responses.push(Args(field(&msg, "packet").into_iter().collect()));
                        }
                        _ => {}
                    }
                }
                // A node that never reported counts as one missing answer.
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
        if opts.flags.local {
            return self.local.add_sockets(opts, rooms);
        }
        self.publish_json(
            self.channels.request.clone(),
            &proto::rooms_request(&self.uid, kind::REMOTE_JOIN, opts, rooms),
        );
    }

    fn del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        if opts.flags.local {
            return self.local.del_sockets(opts, rooms);
        }
        self.publish_json(
            self.channels.request.clone(),
            &proto::rooms_request(&self.uid, kind::REMOTE_LEAVE, opts, rooms),
        );
    }

    fn disconnect_sockets(&self, opts: &BroadcastOptions, close: bool) {
        if opts.flags.local {
            return self.local.disconnect_sockets(opts, close);
        }
        self.publish_json(
            self.channels.request.clone(),
            &proto::disconnect_request(&self.uid, opts, close),
        );
    }

    fn fetch_sockets(
        &self,
        opts: &BroadcastOptions,
    ) -> BoxFuture<Result<Vec<SocketInfo>, AdapterError>> {
        let local = self.local_infos(opts);
        let me = match self.this() {
            Some(me) if !opts.flags.local => me,
            _ => return Box::pin(std::future::ready(Ok(local))),
        };
        let request = json!({"type": kind::REMOTE_FETCH, "opts": selector(opts)});
        Box::pin(async move {
            let mut out = local;
            let complete = me
                .gather(request, |resp| {
                    if let Some(Data::Json(Value::Array(sockets))) = field(&resp, "sockets") {
                        out.extend(sockets.iter().filter_map(socket_info));
                    }
                })
                .await?;
            if !complete {
                return Err(AdapterError(
                    "timeout reached while waiting for fetchSockets response".to_owned(),
                ));
            }
            Ok(out)
        })
    }

    fn server_side_emit(&self, args: Args) -> BoxFuture<Result<Vec<Args>, AdapterError>> {
        let Some(me) = self.this() else {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        };
        Box::pin(async move {
            let others = me.num_sub().await?.saturating_sub(1);
            if others == 0 {
                return Ok(Vec::new());
            }
            let Some((pending, mut rx)) = me.register(false) else {
                return Ok(Vec::new());
            };
            let data: Vec<Value> = args.0.into_iter().map(proto::to_json).collect();
            me.publish_json(
                me.channels.request.clone(),
                &json!({"uid": me.uid, "requestId": pending.id, "type": kind::SERVER_SIDE_EMIT, "data": data}),
            );
            let deadline = deadline(me.timeout());
            let mut answers = Vec::new();
            while answers.len() < others {
                match timeout_at(deadline, rx.recv()).await {
                    Ok(Some(resp)) => {
                        answers.push(Args(field(&resp, "data").into_iter().collect()))
                    }
                    _ => {
                        return Err(AdapterError(format!(
                            "timeout reached: only {} responses received out of {others}",
                            answers.len()
                        )))
                    }
                }
            }
            Ok(answers)
        })
    }

    fn server_count(&self) -> BoxFuture<usize> {
        let Some(me) = self.this() else {
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

    fn all_rooms(&self) -> BoxFuture<Result<Vec<Room>, AdapterError>> {
        let local = self.local.rooms();
        let Some(me) = self.this() else {
            return Box::pin(std::future::ready(Ok(local)));
        };
        Box::pin(async move {
            let mut all: std::collections::BTreeSet<Room> = local.into_iter().collect();
            let complete = me
                .gather(json!({"type": kind::ALL_ROOMS}), |resp| {
                    if let Ok(rooms) = proto::rooms(field(&resp, "rooms").as_ref()) {
                        all.extend(rooms);
                    }
                })
                .await?;
            if !complete {
                return Err(AdapterError(
                    "timeout reached while waiting for allRooms response".to_owned(),
                ));
            }
            Ok(all.into_iter().collect())
        })
    }
}
