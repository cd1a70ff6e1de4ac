//! The messages of the classic `@socket.io/redis-adapter` protocol: channel names, broadcasts,
//! requests and responses.

use std::time::Duration;

use serde_json::{json, Map, Value};
use socketio::adapter::{BroadcastFlags, BroadcastOptions};
use socketio::{Data, Packet, PacketType, Room};

use crate::msgpack::{self, CodecError};

/// Request and response types (the `type` field).
pub mod kind {
    /// Ids of the sockets in some rooms (legacy `allSockets`).
    pub const SOCKETS: u64 = 0;
    /// Every room of every node.
    pub const ALL_ROOMS: u64 = 1;
    /// Make sockets join rooms.
    pub const REMOTE_JOIN: u64 = 2;
    /// Make sockets leave rooms.
    pub const REMOTE_LEAVE: u64 = 3;
    /// Disconnect sockets.
    pub const REMOTE_DISCONNECT: u64 = 4;
    /// Describe sockets (`fetchSockets`).
    pub const REMOTE_FETCH: u64 = 5;
    /// An event for the server-side listeners of the other nodes; also its answer.
    pub const SERVER_SIDE_EMIT: u64 = 6;
    /// A broadcast that collects acknowledgements.
    pub const BROADCAST: u64 = 7;
    /// How many clients a node sent such a broadcast to.
    pub const BROADCAST_CLIENT_COUNT: u64 = 8;
    /// One client's acknowledgement of such a broadcast.
    pub const BROADCAST_ACK: u64 = 9;
}

/// A message that does not have the expected shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not valid MessagePack.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Not valid JSON.
    #[error("json: {0}")]
    Json(String),
    /// Valid encoding, wrong shape.
    #[error("malformed message: {0}")]
    Shape(&'static str),
}

/// The channel names of one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channels {
    /// `P#N#`: broadcasts (with a room and `#` appended for single-room broadcasts).
    pub broadcast: String,
    /// `P-request#N#`: requests.
    pub request: String,
    /// `P-response#N#`: the shared response channel.
    pub response: String,
    /// `P-response#N#U#`: this node's own response channel.
    pub own_response: String,
}

impl Channels {
    /// The channels for key prefix `prefix`, namespace `nsp` and node uid `uid`.
    pub fn new(prefix: &str, nsp: &str, uid: &str) -> Self {
        let response = format!("{prefix}-response#{nsp}#");
        Channels {
            broadcast: format!("{prefix}#{nsp}#"),
            request: format!("{prefix}-request#{nsp}#"),
            own_response: format!("{response}{uid}#"),
            response,
        }
    }

    /// The pattern that matches every broadcast channel of the namespace.
    pub fn broadcast_pattern(&self) -> String {
        format!("{}*", self.broadcast)
    }

    /// Where a broadcast with these options is published: the room channel when exactly one
    /// room is targeted.
    pub fn broadcast_channel(&self, opts: &BroadcastOptions) -> String {
        match opts.rooms.as_slice() {
            [room] => format!("{}{room}#", self.broadcast),
            _ => self.broadcast.clone(),
        }
    }

    /// The room a broadcast channel names (`None` for the namespace-wide channel or a channel
    /// of another namespace).
    pub fn room_of<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.broadcast.as_str())?
            .strip_suffix('#')
            .filter(|r| !r.is_empty())
    }

    /// Where a reply to a requester goes.
    pub fn reply_channel(&self, specific: bool, requester: Option<&str>) -> String {
        match (specific, requester) {
            (true, Some(uid)) => format!("{}{uid}#", self.response),
            _ => self.response.clone(),
        }
    }
}

/// A broadcast as published on a broadcast channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Broadcast {
    /// The sender's uid (`"emitter"` for `@socket.io/redis-emitter`).
    pub uid: String,
    /// The packet's namespace (`/` when the sender left it out).
    pub nsp: String,
    /// The event: `[name, …args]`.
    pub data: Data,
    /// Rooms, except and flags.
    pub opts: BroadcastOptions,
}

impl Broadcast {
    /// The packet to deliver locally.
    pub fn packet(&self) -> Packet {
        Packet::event(self.nsp.as_str(), self.data.clone(), None)
    }
}

/// `{type: 2, data, nsp}` for an event packet.
pub fn packet_data(packet: &Packet) -> Result<Data, MessageError> {
    let data = packet
        .clone()
        .take_data()
        .map_err(|_| MessageError::Shape("bad placeholders"))?
        .unwrap_or(Data::Json(Value::Array(Vec::new())));
    Ok(Data::Object(vec![
        ("type".into(), Data::Json(json!(2))),
        ("data".into(), data),
        ("nsp".into(), Data::Json(Value::String(packet.nsp.clone()))),
    ]))
}

/// `{rooms, except, flags}`; `with_flags` adds the flags that matter to receivers.
pub fn opts_json(opts: &BroadcastOptions, with_flags: bool) -> Value {
    let mut out = Map::new();
    out.insert("rooms".into(), json!(opts.rooms));
    out.insert("except".into(), json!(opts.except));
    if with_flags {
        let mut flags = Map::new();
        if opts.flags.volatile {
            flags.insert("volatile".into(), Value::Bool(true));
        }
        if let Some(t) = opts.flags.timeout {
            flags.insert("timeout".into(), json!(t.as_millis() as u64));
        }
        out.insert("flags".into(), Value::Object(flags));
    }
    Value::Object(out)
}

/// Encodes `[uid, {type, data, nsp}, {rooms, except, flags}]`.
pub fn encode_broadcast(
    uid: &str,
    packet: &Packet,
    opts: &BroadcastOptions,
) -> Result<Vec<u8>, MessageError> {
    let msg = Data::Array(vec![
        Data::from(uid),
        packet_data(packet)?,
        Data::Json(opts_json(opts, true)),
    ]);
    Ok(msgpack::encode(&msg)?)
}

/// `{uid, type, opts: {rooms, except}, rooms}`: REMOTE_JOIN or REMOTE_LEAVE by selector.
pub fn rooms_request(uid: &str, kind: u64, opts: &BroadcastOptions, rooms: &[Room]) -> Value {
    json!({"uid": uid, "type": kind, "opts": opts_json(opts, false), "rooms": rooms})
}

/// `{uid, type: 4, opts: {rooms, except}, close}`.
pub fn disconnect_request(uid: &str, opts: &BroadcastOptions, close: bool) -> Value {
    json!({"uid": uid, "type": kind::REMOTE_DISCONNECT, "opts": opts_json(opts, false), "close": close})
}

/// The MessagePack request of a broadcast with acks:
/// `{uid, requestId, type: 7, packet, opts: {rooms, except, flags}}`.
pub fn encode_broadcast_request(
    uid: &str,
    request_id: &str,
    packet: &Packet,
    opts: &BroadcastOptions,
) -> Result<Vec<u8>, MessageError> {
    let msg = Data::Object(vec![
        ("uid".into(), Data::from(uid)),
        ("requestId".into(), Data::from(request_id)),
        ("type".into(), Data::Json(json!(kind::BROADCAST))),
        ("packet".into(), packet_data(packet)?),
        ("opts".into(), Data::Json(opts_json(opts, true))),
    ]);
    Ok(msgpack::encode(&msg)?)
}

/// The MessagePack reply carrying one client's acknowledgement (its first argument):
/// `{type: 9, requestId, packet}`, `packet` left out when the client gave no argument.
pub fn encode_broadcast_ack(
    request_id: &str,
    first: Option<Data>,
) -> Result<Vec<u8>, MessageError> {
    let mut reply = vec![
        ("type".to_owned(), Data::Json(json!(kind::BROADCAST_ACK))),
        ("requestId".to_owned(), Data::from(request_id)),
    ];
    if let Some(first) = first {
        reply.push(("packet".to_owned(), first));
    }
    Ok(msgpack::encode(&Data::Object(reply))?)
}

/// Decodes a broadcast message.
pub fn decode_broadcast(bytes: &[u8]) -> Result<Broadcast, MessageError> {
    let items = match msgpack::decode(bytes)? {
        Data::Json(Value::Array(items)) => items.into_iter().map(Data::Json).collect(),
        Data::Array(items) => items,
        _ => return Err(MessageError::Shape("broadcast is not an array")),
    };
    let mut items = items.into_iter();
    let (Some(uid), Some(packet), Some(opts)) = (items.next(), items.next(), items.next()) else {
        return Err(MessageError::Shape("broadcast needs [uid, packet, opts]"));
    };
    let uid = match uid {
        Data::Json(Value::String(s)) => s,
        _ => return Err(MessageError::Shape("uid is not a string")),
    };
    let (nsp, data) = event_of(&packet)?;
    Ok(Broadcast {
        uid,
        nsp,
        data,
        opts: parse_opts(Some(&opts))?,
    })
}

/// The namespace and `[name, …args]` of a packet map; only events are accepted.
pub fn event_of(packet: &Data) -> Result<(String, Data), MessageError> {
    let kind = field(packet, "type").and_then(|t| as_u64(&t));
    // Senders write 2 (EVENT) even with binary; 5 (BINARY_EVENT) is taken too.
    if !matches!(kind, Some(2) | Some(5)) {
        return Err(MessageError::Shape("packet is not an event"));
    }
    let nsp = match field(packet, "nsp") {
        None | Some(Data::Json(Value::Null)) => "/".to_owned(),
        Some(Data::Json(Value::String(s))) => s,
        Some(_) => return Err(MessageError::Shape("nsp is not a string")),
    };
    let data = field(packet, "data").ok_or(MessageError::Shape("packet has no data"))?;
    let first_is_name = match &data {
        Data::Json(Value::Array(items)) => matches!(items.first(), Some(Value::String(_))),
        Data::Array(items) => matches!(items.first(), Some(Data::Json(Value::String(_)))),
        _ => false,
    };
    if !first_is_name {
        return Err(MessageError::Shape("event data is not [name, ...args]"));
    }
    Ok((nsp, data))
}

const MAX_TIMEOUT_MS: f64 = 2_147_483_647.0;

/// `{rooms, except, flags}`; missing parts are empty; `flags.timeout` is capped at 2³¹ − 1 ms.
pub fn parse_opts(opts: Option<&Data>) -> Result<BroadcastOptions, MessageError> {
    let Some(opts) = opts else {
        return Ok(BroadcastOptions::default());
    };
    let flags = field(opts, "flags");
    let flag = |name| flags.as_ref().and_then(|f| field(f, name));
    Ok(BroadcastOptions {
        rooms: rooms(field(opts, "rooms").as_ref())?,
        except: rooms(field(opts, "except").as_ref())?,
        flags: BroadcastFlags {
            volatile: matches!(flag("volatile"), Some(Data::Json(Value::Bool(true)))),
            local: false,
            // Node's timers take at most 2^31 - 1 ms.
            timeout: flag("timeout")
                .and_then(|t| as_f64(&t))
                .filter(|ms| ms.is_finite() && *ms >= 0.0)
                .map(|ms| Duration::from_millis(ms.min(MAX_TIMEOUT_MS) as u64)),
        },
    })
}

/// A list of room names; numbers are taken as their decimal text, as JavaScript would.
pub fn rooms(value: Option<&Data>) -> Result<Vec<Room>, MessageError> {
    let items = match value {
        None | Some(Data::Json(Value::Null)) => return Ok(Vec::new()),
        Some(Data::Json(Value::Array(items))) => items,
        Some(_) => return Err(MessageError::Shape("rooms is not an array of strings")),
    };
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(MessageError::Shape("room is not a string")),
        })
        .collect()
}

/// A field of a map (a clone; binary is reference-counted).
pub fn field(map: &Data, key: &str) -> Option<Data> {
    match map {
        Data::Json(Value::Object(m)) => m.get(key).cloned().map(Data::Json),
        Data::Object(entries) => entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone()),
        _ => None,
    }
}

/// A string field.
pub fn str_field(map: &Data, key: &str) -> Option<String> {
    match field(map, key)? {
        Data::Json(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// A non-negative integer (integral floats included).
pub fn as_u64(d: &Data) -> Option<u64> {
    match d {
        Data::Json(Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

fn as_f64(d: &Data) -> Option<f64> {
    match d {
        Data::Json(Value::Number(n)) => n.as_f64(),
        _ => None,
    }
}

/// Decodes a request or response: JSON when it starts with `{`, MessagePack otherwise.
pub fn decode_request(bytes: &[u8]) -> Result<Data, MessageError> {
    let data = if bytes.first() == Some(&b'{') {
        Data::Json(serde_json::from_slice(bytes).map_err(|e| MessageError::Json(e.to_string()))?)
    } else {
        msgpack::decode(bytes)?
    };
    if !matches!(data, Data::Json(Value::Object(_)) | Data::Object(_)) {
        return Err(MessageError::Shape("request is not a map"));
    }
    Ok(data)
}

/// Converts JSON-unsafe values (binary) the way `JSON.stringify` shows a Node `Buffer`.
pub fn to_json(data: Data) -> Value {
    match data {
        Data::Json(v) => v,
        Data::Binary(b) => json!({"type": "Buffer", "data": b.to_vec()}),
        Data::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Data::Object(entries) => {
            Value::Object(entries.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
    }
}

/// Whether a packet may be broadcast through Redis (events only).
pub fn is_event(packet: &Packet) -> bool {
    matches!(packet.kind, PacketType::Event | PacketType::BinaryEvent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        let c = Channels::new("socket.io", "/", "abcdef");
        assert_eq!(c.broadcast, "socket.io#/#");
        assert_eq!(c.request, "socket.io-request#/#");
        assert_eq!(c.response, "socket.io-response#/#");
        assert_eq!(c.own_response, "socket.io-response#/#abcdef#");
        assert_eq!(c.broadcast_pattern(), "socket.io#/#*");
        assert_eq!(c.room_of("socket.io#/#room1#"), Some("room1"));
        assert_eq!(c.room_of("socket.io#/#"), None);
        assert_eq!(c.room_of("socket.io#/chat#"), None);
        let opts = BroadcastOptions {
            rooms: vec!["r".into()],
            ..Default::default()
        };
        assert_eq!(c.broadcast_channel(&opts), "socket.io#/#r#");
        let c = Channels::new("p", "/chat", "u");
        assert_eq!(c.broadcast, "p#/chat#");
        assert_eq!(c.reply_channel(true, Some("x")), "p-response#/chat#x#");
        assert_eq!(c.reply_channel(false, Some("x")), "p-response#/chat#");
    }

    #[test]
    fn broadcast_round_trip() {
        let packet = Packet::event("/", json!(["ev", 1, {"a": "b"}]), None);
        let opts = BroadcastOptions {
            rooms: vec!["r1".into(), "r2".into()],
            except: vec!["x".into()],
            flags: BroadcastFlags {
                volatile: true,
                ..Default::default()
            },
        };
        let bytes = encode_broadcast("abcdef", &packet, &opts).unwrap();
        let b = decode_broadcast(&bytes).unwrap();
        assert_eq!(b.uid, "abcdef");
        assert_eq!(b.nsp, "/");
        assert_eq!(b.data, Data::Json(json!(["ev", 1, {"a": "b"}])));
        assert_eq!(b.opts, opts);
        assert_eq!(b.packet(), packet);
    }

    #[test]
    fn malformed_broadcasts_are_errors() {
        let bad = [
            json!("x"),
            json!(["u", {"type": 2, "data": ["e"]}]),
            json!([1, {"type": 2, "data": ["e"]}, {}]),
            json!(["u", {"type": 3, "data": ["e"]}, {}]),
            json!(["u", {"type": 2, "data": [1]}, {}]),
            json!(["u", {"type": 2, "data": ["e"]}, {"rooms": "r"}]),
            json!(["u", {"type": 2, "data": ["e"], "nsp": 4}, {}]),
        ];
        for v in bad {
            let bytes = msgpack::encode_json(&v).unwrap();
            assert!(decode_broadcast(&bytes).is_err(), "{v}");
        }
        let ok = msgpack::encode_json(&json!(["u", {"type": 2, "data": ["e"]}, {"rooms": [1]}]))
            .unwrap();
        let b = decode_broadcast(&ok).unwrap();
        assert_eq!(b.nsp, "/");
        assert_eq!(b.opts.rooms, vec!["1".to_string()]);
    }

    #[test]
    fn huge_timeouts_are_capped() {
        let opts = Data::Json(json!({"flags": {"timeout": 1e300}}));
        let parsed = parse_opts(Some(&opts)).unwrap();
        assert_eq!(
            parsed.flags.timeout,
            Some(Duration::from_millis(2_147_483_647))
        );
        let opts = Data::Json(json!({"flags": {"timeout": -5}}));
        assert_eq!(parse_opts(Some(&opts)).unwrap().flags.timeout, None);
    }

    #[test]
    fn requests_branch_on_the_first_byte() {
        let j = decode_request(br#"{"type":1,"requestId":"abc"}"#).unwrap();
        assert_eq!(field(&j, "type").and_then(|t| as_u64(&t)), Some(1));
        let m = decode_request(&msgpack::encode_json(&json!({"type": 7})).unwrap()).unwrap();
        assert_eq!(field(&m, "type").and_then(|t| as_u64(&t)), Some(7));
        assert!(decode_request(b"{nope").is_err());
        assert!(decode_request(&[0x01]).is_err());
        assert!(decode_request(&[]).is_err());
    }
}
