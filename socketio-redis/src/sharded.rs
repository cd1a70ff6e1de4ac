//! The sharded variant: the protocol of Node's `createShardedAdapter` (8.2+), over Redis 7
//! sharded pub/sub.
//!
//! Per namespace `N` and prefix `P`, a node subscribes (`SSUBSCRIBE`) to `P#N#` (every
//! message of the cluster) and `P#N#<uid>#` (answers to its requests), and to `P#N#<room>#`
//! for each room it has that is not a socket id (Node's default `dynamic` mode): broadcasts
//! without acks to exactly one such room go there. Messages are the cluster messages of
//! `socket.io-adapter`: `{type, data, uid, nsp}`, JSON unless they carry binary, then
//! MessagePack. Unlike the classic adapter, join/leave/disconnect requests are applied locally
//! and published, and receivers skip their own uid. The server count is
//! `PUBSUB SHARDNUMSUB P#N#`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::RngCore;
use serde_json::{json, Value};
use socketio::adapter::{
    Adapter, AdapterError, BoxFuture, BroadcastAcks, BroadcastOptions, LocalNamespace,
    MemoryAdapter, SocketInfo,
};
use socketio::{Args, Data, Packet, Room, Sid};
use tokio::sync::mpsc;
use tokio::time::timeout_at;

use crate::adapter::{deadline, Route, Shared};
use crate::msgpack;
use crate::proto::{self, as_u64, field, str_field};

/// Message types of the cluster protocol (`socket.io-adapter`'s `MessageType`).
pub mod kind {
    /// A broadcast (with `requestId` when it collects acks).
    pub const BROADCAST: u64 = 3;
    /// Make sockets join rooms.
    pub const SOCKETS_JOIN: u64 = 4;
    /// Make sockets leave rooms.
    pub const SOCKETS_LEAVE: u64 = 5;
    /// Disconnect sockets.
    pub const DISCONNECT_SOCKETS: u64 = 6;
    /// Describe sockets.
    pub const FETCH_SOCKETS: u64 = 7;
    /// The answer to `FETCH_SOCKETS`.
    pub const FETCH_SOCKETS_RESPONSE: u64 = 8;
    /// An event for the server-side listeners of the other nodes.
    pub const SERVER_SIDE_EMIT: u64 = 9;
    /// The answer to `SERVER_SIDE_EMIT`.
    pub const SERVER_SIDE_EMIT_RESPONSE: u64 = 10;
    /// How many clients a node sent a broadcast with acks to.
    pub const BROADCAST_CLIENT_COUNT: u64 = 11;
    /// One client's acknowledgement.
    pub const BROADCAST_ACK: u64 = 12;
}

/// Encodes a cluster message `{type, data, uid, nsp}` (Node's key order): MessagePack when
/// `data` holds binary, JSON otherwise.
pub fn encode_message(
    kind: u64,
    data: Option<Data>,
    uid: &str,
    nsp: &str,
) -> Result<Vec<u8>, msgpack::CodecError> {
    let binary = data.as_ref().is_some_and(has_binary);
    let mut msg = vec![("type".to_owned(), Data::Json(json!(kind)))];
    if let Some(data) = data {
        msg.push(("data".to_owned(), data));
    }
    msg.push(("uid".to_owned(), Data::from(uid)));
    msg.push(("nsp".to_owned(), Data::from(nsp)));
    let msg = Data::Object(msg);
    if binary {
        msgpack::encode(&msg)
    } else {
        Ok(proto::to_json(msg).to_string().into_bytes())
    }
}

/// Whether there is binary anywhere in `data`.
pub fn has_binary(data: &Data) -> bool {
    match data {
        Data::Json(_) => false,
        Data::Binary(_) => true,
        Data::Array(items) => items.iter().any(has_binary),
        Data::Object(entries) => entries.iter().any(|(_, v)| has_binary(v)),
    }
}

/// `{packet: {type: 2, data}, [requestId], opts}`: the data of a BROADCAST (the namespace is
/// the message's, not the packet's).
pub fn broadcast_data(
    packet: &Packet,
    request_id: Option<&str>,
    opts: &BroadcastOptions,
) -> Result<Data, proto::MessageError> {
    let mut packet = proto::packet_data(packet)?;
    if let Data::Object(entries) = &mut packet {
        entries.retain(|(k, _)| k != "nsp");
    }
    let mut data = vec![("packet".to_owned(), packet)];
    if let Some(id) = request_id {
        data.push(("requestId".to_owned(), Data::from(id)));
    }
    data.push(("opts".to_owned(), Data::Json(proto::opts_json(opts, true))));
    Ok(Data::Object(data))
}

/// Where a broadcast without acks goes: `P#N#<room>#` when it targets exactly one room that
/// is not a socket id, else `P#N#` (`base`).
pub fn broadcast_channel(base: &str, opts: &BroadcastOptions) -> String {
    match opts.rooms.as_slice() {
        [room] if !looks_like_a_socket_id(room) => format!("{base}{room}#"),
        _ => base.to_owned(),
    }
}

/// `{opts, rooms}`: the data of SOCKETS_JOIN and SOCKETS_LEAVE.
pub fn rooms_data(opts: &BroadcastOptions, rooms: &[Room]) -> Data {
    Data::Json(json!({"opts": proto::opts_json(opts, true), "rooms": rooms}))
}

/// `{opts, close}`: the data of DISCONNECT_SOCKETS.
pub fn disconnect_data(opts: &BroadcastOptions, close: bool) -> Data {
    Data::Json(json!({"opts": proto::opts_json(opts, true), "close": close}))
}

/// `{opts, requestId}`: the data of FETCH_SOCKETS.
pub fn fetch_data(opts: &BroadcastOptions, request_id: &str) -> Data {
    Data::Json(json!({"opts": proto::opts_json(opts, true), "requestId": request_id}))
}

/// `{[requestId], packet: [event, …args]}`: the data of SERVER_SIDE_EMIT.
pub fn server_side_emit_data(request_id: Option<&str>, args: Vec<Data>) -> Data {
    let mut data = Vec::new();
    if let Some(id) = request_id {
        data.push(("requestId".to_owned(), Data::from(id)));
    }
    data.push(("packet".to_owned(), Data::Array(args)));
    Data::Object(data)
}

/// `{requestId, [packet]}`: one answer (SERVER_SIDE_EMIT_RESPONSE, BROADCAST_ACK), `packet`
/// left out when there is no argument.
pub fn answer_data(request_id: &str, first: Option<Data>) -> Data {
    let mut data = vec![("requestId".to_owned(), Data::from(request_id))];
    if let Some(first) = first {
        data.push(("packet".to_owned(), first));
    }
    Data::Object(data)
}

/// Whether a room name looks like a socket id (20 characters): such rooms get no channel of
/// their own.
fn looks_like_a_socket_id(room: &str) -> bool {
    room.chars().count() == 20
}

type Table = Mutex<HashMap<String, mpsc::UnboundedSender<Data>>>;

fn lock(t: &Table) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Data>>> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a pending request when its future ends or is dropped.
struct Pending {
    adapter: Arc<ShardedAdapter>,
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
        lock(table).remove(&self.id);
    }
}

/// The adapter of one namespace in a sharded cluster (see [`RedisAdapterConfig::sharded`]):
/// rooms and local delivery as in [`MemoryAdapter`], plus the protocol of Node's
/// `createShardedAdapter` in its default `dynamic` subscription mode.
///
/// Room channels are subscribed to when a room first appears on this node and stay subscribed
/// afterwards (messages for a room without local members are simply not delivered).
///
/// [`RedisAdapterConfig::sharded`]: crate::RedisAdapterConfig::sharded
pub struct ShardedAdapter {
    me: Weak<ShardedAdapter>,
    local: MemoryAdapter,
    ns: LocalNamespace,
    uid: String,
    /// `P#N#`.
    channel: String,
    /// `P#N#<uid>#`.
    response_channel: String,
    shared: Arc<Shared>,
    requests: Table,
    ack_requests: Table,
    /// Rooms whose channel is subscribed (or being subscribed).
    room_channels: Mutex<HashSet<Room>>,
}

pub(crate) fn create(shared: Arc<Shared>, ns: LocalNamespace) -> Arc<dyn Adapter> {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    let uid: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let channel = format!("{}#{}#", shared.config.key, ns.name());
    let response_channel = format!("{channel}{uid}#");
    let adapter = Arc::new_cyclic(|me| ShardedAdapter {
        me: me.clone(),
        local: MemoryAdapter::new(ns.clone()),
        ns,
        uid,
        channel: channel.clone(),
        response_channel: response_channel.clone(),
        shared: shared.clone(),
        requests: Mutex::new(HashMap::new()),
        ack_requests: Mutex::new(HashMap::new()),
        room_channels: Mutex::new(HashSet::new()),
    });
    let route: Arc<dyn Route> = adapter.clone();
    shared.add_route(Arc::downgrade(&route));
    subscribe(&shared, vec![channel, response_channel]);
    adapter
}

/// `SSUBSCRIBE`s, retrying until it succeeds; counted in the factory's `ready()`. The
/// connection manager records the subscriptions and renews them after a reconnect.
fn subscribe(shared: &Arc<Shared>, channels: Vec<String>) {
    shared.pending.send_modify(|n| *n += 1);
    let weak = Arc::downgrade(shared);
    let mut sub = shared.subscriber.clone();
    shared.runtime.spawn(async move {
        let mut delay = Duration::from_millis(100);
        // One channel per command: the connection matches one confirmation to each command.
        let mut todo = channels.into_iter();
        let mut current = todo.next();
        while let Some(channel) = current.take() {
            let res = redis::cmd("SSUBSCRIBE")
                .arg(&channel)
                .query_async::<redis::Value>(&mut sub)
                .await;
            match res {
                Ok(_) => current = todo.next(),
                Err(e) => {
                    tracing::warn!(error = %e, channel, "redis ssubscribe failed, retrying");
                    if weak.strong_count() == 0 {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    current = Some(channel);
                }
            }
        }
        if let Some(shared) = weak.upgrade() {
            shared.pending.send_modify(|n| *n = n.saturating_sub(1));
        }
    });
}

fn request_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn data_field(msg: &Data, key: &str) -> Option<Data> {
    field(&field(msg, "data")?, key)
}

impl ShardedAdapter {
    /// This node's uid in the namespace (16 hex digits).
    pub fn uid(&self) -> &str {
        &self.uid
    }

    fn this(&self) -> Option<Arc<ShardedAdapter>> {
        self.me.upgrade()
    }

    fn timeout(&self) -> Duration {
        self.shared.config.requests_timeout
    }

    fn send(&self, channel: String, kind: u64, data: Data) {
        match encode_message(kind, Some(data), &self.uid, self.ns.name()) {
            Ok(bytes) => self.shared.publish(channel, bytes),
            Err(e) => tracing::warn!(error = %e, kind, "cannot encode cluster message"),
        }
    }

    fn respond(&self, requester: &str, kind: u64, data: Data) {
        self.send(format!("{}{requester}#", self.channel), kind, data);
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

    async fn server_total(&self) -> Result<usize, AdapterError> {
        self.shared
            .count_subscribers("SHARDNUMSUB", &self.channel)
            .await
    }

    /// Subscribes to the channels of rooms that appear on this node (socket-id rooms
    /// excepted).
    fn watch_rooms(&self, rooms: &[Room]) {
        let new: Vec<String> = {
            let mut known = self.room_channels.lock().unwrap_or_else(|e| e.into_inner());
            rooms
                .iter()
                .filter(|r| Sid::parse(r).and_then(|s| self.ns.socket(&s)).is_none())
                .filter(|r| known.insert((*r).clone()))
                .map(|r| format!("{}{r}#", self.channel))
                .collect()
        };
        if !new.is_empty() {
            subscribe(&self.shared, new);
        }
    }

    fn on_message(&self, payload: &[u8], is_response_channel: bool) {
        let msg = match proto::decode_request(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring malformed cluster message");
                return;
            }
        };
        let Some(kind) = field(&msg, "type").and_then(|t| as_u64(&t)) else {
            return;
        };
        let uid = str_field(&msg, "uid");
        if uid.as_deref() == Some(self.uid.as_str()) {
            return;
        }
        if str_field(&msg, "nsp").as_deref() != Some(self.ns.name()) {
            return;
        }
        if is_response_channel
            || matches!(
                kind,
                kind::FETCH_SOCKETS_RESPONSE
                    | kind::SERVER_SIDE_EMIT_RESPONSE
                    | kind::BROADCAST_CLIENT_COUNT
                    | kind::BROADCAST_ACK
            )
        {
            return self.on_response(kind, msg);
        }
        let opts = match proto::parse_opts(data_field(&msg, "opts").as_ref()) {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring cluster message with malformed opts");
                return;
            }
        };
        let request_id = data_field(&msg, "requestId").and_then(|d| match d {
            Data::Json(Value::String(s)) => Some(s),
            _ => None,
        });
        match kind {
            kind::BROADCAST => {
                let Some(packet) = data_field(&msg, "packet") else {
                    return;
                };
                // The packet carries no namespace: the message's was checked above.
                let Ok((_, data)) = proto::event_of(&packet) else {
                    return;
                };
                let nsp = self.ns.name();
                match (request_id, uid) {
                    (Some(id), Some(requester)) => {
                        self.answer_broadcast_with_ack(id, requester, data, &opts)
                    }
                    (Some(_), None) => {}
                    (None, _) => self.local.broadcast(Packet::event(nsp, data, None), &opts),
                }
            }
            kind::SOCKETS_JOIN | kind::SOCKETS_LEAVE => {
                let Ok(rooms) = proto::rooms(data_field(&msg, "rooms").as_ref()) else {
                    return;
                };
                if kind == kind::SOCKETS_JOIN {
                    self.add_sockets_locally(&opts, &rooms);
                } else {
                    self.local.del_sockets(&opts, &rooms);
                }
            }
            kind::DISCONNECT_SOCKETS => {
                let close = matches!(
                    data_field(&msg, "close"),
                    Some(Data::Json(Value::Bool(true)))
                );
                self.local.disconnect_sockets(&opts, close);
            }
            kind::FETCH_SOCKETS => {
                let (Some(id), Some(requester)) = (request_id, uid) else {
                    return;
                };
                let sockets: Vec<Value> = self
                    .local_infos(&opts)
                    .into_iter()
                    .map(|s| {
                        json!({"id": s.id.to_string(), "handshake": s.handshake, "rooms": s.rooms, "data": s.data})
                    })
                    .collect();
                self.respond(
                    &requester,
                    kind::FETCH_SOCKETS_RESPONSE,
                    Data::Json(json!({"requestId": id, "sockets": sockets})),
                );
            }
            kind::SERVER_SIDE_EMIT => {
                let args = match data_field(&msg, "packet") {
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
                let (Some(id), Some(requester)) = (request_id, uid) else {
                    tokio::spawn(answer);
                    return;
                };
                let Some(me) = self.this() else { return };
                tokio::spawn(async move {
                    // Always answered, so that the requester does not wait for a node
                    // without a listener.
                    let first = answer.await.and_then(|a| a.0.into_iter().next());
                    me.respond(
                        &requester,
                        kind::SERVER_SIDE_EMIT_RESPONSE,
                        answer_data(&id, first),
                    );
                });
            }
            other => tracing::debug!(kind = other, "ignoring unknown cluster message type"),
        }
    }

    fn on_response(&self, kind: u64, msg: Data) {
        let Some(Data::Json(Value::String(id))) = data_field(&msg, "requestId") else {
            return;
        };
        let table = match kind {
            kind::BROADCAST_CLIENT_COUNT | kind::BROADCAST_ACK => &self.ack_requests,
            kind::FETCH_SOCKETS_RESPONSE | kind::SERVER_SIDE_EMIT_RESPONSE => &self.requests,
            _ => return,
        };
        let tx = lock(table).get(&id).cloned();
        if let Some(tx) = tx {
            let _ = tx.send(msg);
        }
    }

    /// Another node's broadcast with acks: send it to the local targets, report how many,
    /// then relay each acknowledgement (its first argument) as it comes.
    fn answer_broadcast_with_ack(
        &self,
        request_id: String,
        requester: String,
        data: Data,
        opts: &BroadcastOptions,
    ) {
        let mut args = match data {
            Data::Json(Value::Array(items)) => Args(items.into_iter().map(Data::Json).collect()),
            Data::Array(items) => Args(items),
            _ => return,
        };
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
        self.respond(
            &requester,
            kind::BROADCAST_CLIENT_COUNT,
            Data::Json(json!({"requestId": request_id, "clientCount": waits.len()})),
        );
        let Some(me) = self.this() else { return };
        tokio::spawn(async move {
            while let Some(result) = waits.next().await {
                let Ok(answer) = result else { continue };
                let first = answer.0.into_iter().next();
                me.respond(
                    &requester,
                    kind::BROADCAST_ACK,
                    answer_data(&request_id, first),
                );
            }
        });
    }

    fn add_sockets_locally(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        let any = !self.local.sockets(opts).is_empty();
        self.local.add_sockets(opts, rooms);
        if any {
            self.watch_rooms(rooms);
        }
    }

    fn local_infos(&self, opts: &BroadcastOptions) -> Vec<SocketInfo> {
        self.local
            .sockets(opts)
            .iter()
            .filter_map(|id| self.ns.socket(id))
            .map(|s| s.info())
            .collect()
    }

    /// Publishes a request and gathers one answer from each other node.
    async fn gather(
        self: Arc<Self>,
        kind: u64,
        data: impl FnOnce(&str) -> Data,
        mut keep: impl FnMut(Data) + Send,
        timeout: Duration,
    ) -> Result<(), AdapterError> {
        let others = self.server_total().await?.saturating_sub(1);
        if others == 0 {
            return Ok(());
        }
        let Some((pending, mut rx)) = self.register(false) else {
            return Ok(());
        };
        self.send(self.channel.clone(), kind, data(&pending.id));
        let deadline = deadline(timeout);
        for received in 0..others {
            match timeout_at(deadline, rx.recv()).await {
                Ok(Some(resp)) => keep(resp),
                _ => {
                    return Err(AdapterError(format!(
                        "timeout reached: only {received} responses received out of {others}"
                    )))
                }
            }
        }
        Ok(())
    }
}

impl Route for ShardedAdapter {
    fn route(&self, channel: &str, payload: &[u8]) -> bool {
        if channel == self.response_channel {
            self.on_message(payload, true);
        } else if channel.starts_with(&self.channel) {
            self.on_message(payload, false);
        } else {
            return false;
        }
        true
    }
}

impl Adapter for ShardedAdapter {
    fn add_all(&self, id: Sid, rooms: &[Room]) {
        self.local.add_all(id, rooms);
        let own = id.to_string();
        let rooms: Vec<Room> = rooms.iter().filter(|r| **r != own).cloned().collect();
        self.watch_rooms(&rooms);
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
            let channel = broadcast_channel(&self.channel, opts);
            match broadcast_data(&packet, None, opts) {
                Ok(data) => self.send(channel, kind::BROADCAST, data),
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
        match broadcast_data(&packet, Some(&pending.id), &opts) {
            Ok(data) => self.send(self.channel.clone(), kind::BROADCAST, data),
            Err(e) => tracing::warn!(error = %e, "cannot encode broadcast"),
        }
        let local = self.local.broadcast_with_ack(packet, &opts);
        Box::pin(async move {
            let adapter = pending.adapter.clone();
            let remote = async move {
                let _pending = pending;
                // Unknown (Redis unreachable): take the other nodes as absent.
                let servers = adapter.server_total().await.unwrap_or(1).saturating_sub(1);
                let (mut reported, mut expected) = (0usize, 0usize);
                let mut responses = Vec::new();
                while reported < servers || responses.len() < expected {
                    let Ok(Some(msg)) = timeout_at(deadline, rx.recv()).await else {
                        break;
                    };
                    match field(&msg, "type").and_then(|t| as_u64(&t)) {
                        Some(kind::BROADCAST_CLIENT_COUNT) => {
                            reported += 1;
                            expected += data_field(&msg, "clientCount")
                                .and_then(|c| as_u64(&c))
                                .unwrap_or(0) as usize;
                        }
                        Some(kind::BROADCAST_ACK) => {
                            responses.push(Args(data_field(&msg, "packet").into_iter().collect()));
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
        if !opts.flags.local {
            self.send(
                self.channel.clone(),
                kind::SOCKETS_JOIN,
                rooms_data(opts, rooms),
            );
        }
        self.add_sockets_locally(opts, rooms);
    }

    fn del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        if !opts.flags.local {
            self.send(
                self.channel.clone(),
                kind::SOCKETS_LEAVE,
                rooms_data(opts, rooms),
            );
        }
        self.local.del_sockets(opts, rooms)
    }

    fn disconnect_sockets(&self, opts: &BroadcastOptions, close: bool) {
        if !opts.flags.local {
            self.send(
                self.channel.clone(),
                kind::DISCONNECT_SOCKETS,
                disconnect_data(opts, close),
            );
        }
        self.local.disconnect_sockets(opts, close)
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
        let selector = opts.clone();
        let timeout = opts.flags.timeout.unwrap_or(self.timeout());
        Box::pin(async move {
            let mut out = local;
            me.gather(
                kind::FETCH_SOCKETS,
                |id| fetch_data(&selector, id),
                |resp| {
                    if let Some(Data::Json(Value::Array(sockets))) = data_field(&resp, "sockets") {
                        out.extend(sockets.iter().filter_map(crate::adapter::socket_info));
                    }
                },
                timeout,
            )
            .await?;
            Ok(out)
        })
    }

    fn server_side_emit(&self, args: Args) -> BoxFuture<Result<Vec<Args>, AdapterError>> {
        let Some(me) = self.this() else {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        };
        let timeout = self.timeout();
        Box::pin(async move {
            let mut answers = Vec::new();
            me.gather(
                kind::SERVER_SIDE_EMIT,
                |id| server_side_emit_data(Some(id), args.0),
                |resp| answers.push(Args(data_field(&resp, "packet").into_iter().collect())),
                timeout,
            )
            .await?;
            Ok(answers)
        })
    }

    fn server_count(&self) -> BoxFuture<usize> {
        let Some(me) = self.this() else {
            return Box::pin(std::future::ready(1));
        };
        Box::pin(async move {
            match me.server_total().await {
                Ok(n) => n.max(1),
                Err(e) => {
                    tracing::warn!(error = %e.0, "cannot count servers");
                    1
                }
            }
        })
    }
}
