//! The messages of `@socket.io/redis-streams-adapter` 0.3: the ClusterAdapter message model
//! `{uid, nsp, type, data}` as stream entries and as pub/sub payloads, the stored sessions, and
//! the stream names and offsets.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use socketio::adapter::BroadcastOptions;
use socketio::recovery::SavedSession;
use socketio::{Data, Packet, Room, Sid};

use crate::msgpack;
use crate::proto::{self, as_u64, field, str_field, MessageError};

/// Message types (the `type` field).
pub mod kind {
    /// A node starts (heartbeat-based adapters only).
    pub const INITIAL_HEARTBEAT: u64 = 1;
    /// A node is alive (heartbeat-based adapters only).
    pub const HEARTBEAT: u64 = 2;
    /// A broadcast; with a `requestId`, a broadcast that collects acknowledgements.
    pub const BROADCAST: u64 = 3;
    /// Make sockets join rooms.
    pub const SOCKETS_JOIN: u64 = 4;
    /// Make sockets leave rooms.
    pub const SOCKETS_LEAVE: u64 = 5;
    /// Disconnect sockets.
    pub const DISCONNECT_SOCKETS: u64 = 6;
    /// Describe sockets (`fetchSockets`).
    pub const FETCH_SOCKETS: u64 = 7;
    /// A node's answer to `FETCH_SOCKETS`.
    pub const FETCH_SOCKETS_RESPONSE: u64 = 8;
    /// An event for the server-side listeners of the other nodes.
    pub const SERVER_SIDE_EMIT: u64 = 9;
    /// A node's answer to `SERVER_SIDE_EMIT`.
    pub const SERVER_SIDE_EMIT_RESPONSE: u64 = 10;
    /// How many clients a node sent a broadcast with acks to.
    pub const BROADCAST_CLIENT_COUNT: u64 = 11;
    /// One client's acknowledgement of a broadcast with acks.
    pub const BROADCAST_ACK: u64 = 12;
    /// A node leaves.
    pub const ADAPTER_CLOSE: u64 = 13;
}

/// One message of the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The sender's uid (16 hex characters; `emitter` for an emitter).
    pub uid: String,
    /// The namespace.
    pub nsp: String,
    /// The message type, see [`kind`].
    pub kind: u64,
    /// The payload, absent for heartbeats.
    pub data: Option<Data>,
}

/// Types whose data may carry binary, and is then MessagePack instead of JSON in the stream.
fn may_contain_binary(kind: u64) -> bool {
    matches!(
        kind,
        kind::BROADCAST
            | kind::FETCH_SOCKETS_RESPONSE
            | kind::SERVER_SIDE_EMIT
            | kind::SERVER_SIDE_EMIT_RESPONSE
            | kind::BROADCAST_ACK
    )
}

/// Whether a message travels by pub/sub rather than through the stream (0.3): broadcasts with
/// acks, server-side emits and fetch requests.
pub fn is_ephemeral(message: &Message) -> bool {
    match message.kind {
        kind::BROADCAST => message
            .data
            .as_ref()
            .is_some_and(|d| field(d, "requestId").is_some()),
        kind::SERVER_SIDE_EMIT | kind::FETCH_SOCKETS => true,
        _ => false,
    }
}

impl Message {
    /// The fields of its stream entry: `uid`, `nsp`, `type` (decimal text) and `data` (JSON
    /// text, or base64 of MessagePack when it holds binary, unless `only_plaintext`).
    pub fn to_fields(
        &self,
        only_plaintext: bool,
    ) -> Result<Vec<(&'static str, String)>, MessageError> {
        let mut fields = vec![
            ("uid", self.uid.clone()),
            ("nsp", self.nsp.clone()),
            ("type", self.kind.to_string()),
        ];
        if let Some(data) = &self.data {
            let text = if !only_plaintext && may_contain_binary(self.kind) && data.has_binary() {
                BASE64.encode(msgpack::encode(data)?)
            } else {
                proto::to_json(data.clone()).to_string()
            };
            fields.push(("data", text));
        }
        Ok(fields)
    }

    /// Reads a stream entry's fields.
    pub fn from_fields<'a>(
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Message, MessageError> {
        let (mut uid, mut nsp, mut kind, mut data) = (None, None, None, None);
        for (k, v) in fields {
            match k {
                "uid" => uid = Some(v),
                "nsp" => nsp = Some(v),
                "type" => kind = Some(v),
                "data" => data = Some(v),
                _ => {}
            }
        }
        let nsp = nsp.ok_or(MessageError::Shape("entry has no nsp"))?;
        let kind = kind
            .and_then(|k| k.parse::<u64>().ok())
            .ok_or(MessageError::Shape("entry type is not a number"))?;
        let data = match data {
            None | Some("") => None,
            Some(text) if text.starts_with('{') => Some(Data::Json(
                serde_json::from_str(text).map_err(|e| MessageError::Json(e.to_string()))?,
            )),
            Some(text) => {
                let bytes = BASE64
                    .decode(text)
                    .map_err(|_| MessageError::Shape("data is neither JSON nor base64"))?;
                Some(msgpack::decode(&bytes)?)
            }
        };
        Ok(Message {
            uid: uid.unwrap_or_default().to_owned(),
            nsp: nsp.to_owned(),
            kind,
            data,
        })
    }

    /// The pub/sub payload: the whole message as MessagePack.
    pub fn to_msgpack(&self) -> Result<Vec<u8>, MessageError> {
        let mut map = vec![
            ("uid".to_owned(), Data::from(self.uid.as_str())),
            ("nsp".to_owned(), Data::from(self.nsp.as_str())),
            ("type".to_owned(), Data::Json(json!(self.kind))),
        ];
        if let Some(data) = &self.data {
            map.push(("data".to_owned(), data.clone()));
        }
        Ok(msgpack::encode(&Data::Object(map))?)
    }

    /// Reads a pub/sub payload.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Message, MessageError> {
        let map = msgpack::decode(bytes)?;
        if !matches!(map, Data::Json(Value::Object(_)) | Data::Object(_)) {
            return Err(MessageError::Shape("message is not a map"));
        }
        let nsp = str_field(&map, "nsp").ok_or(MessageError::Shape("message has no nsp"))?;
        let kind = field(&map, "type")
            .and_then(|t| as_u64(&t))
            .ok_or(MessageError::Shape("message type is not a number"))?;
        Ok(Message {
            uid: str_field(&map, "uid").unwrap_or_default(),
            nsp,
            kind,
            data: field(&map, "data").filter(|d| !matches!(d, Data::Json(Value::Null))),
        })
    }
}

/// A broadcast's data, `{packet: {type: 2, data, nsp}, opts, requestId?}`.
pub fn broadcast_data(
    packet: &Packet,
    opts: &BroadcastOptions,
    request_id: Option<&str>,
) -> Result<Data, MessageError> {
    let mut map = vec![
        ("packet".to_owned(), proto::packet_data(packet)?),
        ("opts".to_owned(), Data::Json(proto::opts_json(opts, true))),
    ];
    if let Some(id) = request_id {
        map.push(("requestId".to_owned(), Data::from(id)));
    }
    Ok(Data::Object(map))
}

/// A broadcast read back: the event `[name, …args]`, its options and its request id.
#[derive(Clone, Debug, PartialEq)]
pub struct Broadcast {
    /// `[name, …args]`.
    pub data: Data,
    /// Rooms, except and flags.
    pub opts: BroadcastOptions,
    /// Present for a broadcast with acks.
    pub request_id: Option<String>,
}

impl Broadcast {
    /// Reads a broadcast's data. The namespace is the message's: Node leaves it out of the
    /// packet.
    pub fn parse(data: &Data) -> Result<Broadcast, MessageError> {
        let packet = field(data, "packet").ok_or(MessageError::Shape("broadcast has no packet"))?;
        let (_, event) = proto::event_of(&packet)?;
        Ok(Broadcast {
            data: event,
            opts: proto::parse_opts(field(data, "opts").as_ref())?,
            request_id: str_field(data, "requestId"),
        })
    }

    /// The packet to deliver in namespace `nsp`, with `offset` appended as its last argument.
    pub fn packet(&self, nsp: &str, offset: Option<&str>) -> Packet {
        let mut packet = Packet::event(nsp, self.data.clone(), None);
        if let (Some(offset), Some(Value::Array(items))) = (offset, packet.data.as_mut()) {
            items.push(Value::String(offset.to_owned()));
        }
        packet
    }
}

/// The stream a namespace writes to: `name`, or `name-<i>` with `i = hash(nsp) % count`
/// (JavaScript's remainder, which keeps the sign of the hash).
pub fn stream_name(name: &str, count: usize, nsp: &str) -> String {
    if count <= 1 {
        return name.to_owned();
    }
    let count = i32::try_from(count).unwrap_or(i32::MAX);
    format!("{name}-{}", hash_code(nsp) % count)
}

/// Java's `String.hashCode` over UTF-16 code units, as the Node adapter computes it.
pub fn hash_code(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Splits a stream entry id `<ms>-<seq>`; `None` unless it is two decimal numbers.
pub fn parse_offset(offset: &str) -> Option<(u64, u64)> {
    let (ms, seq) = offset.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The smallest entry id after `offset` (XRANGE's exclusive start, which Redis < 6.2 lacks).
pub fn next_offset(offset: &str) -> Option<String> {
    let (ms, seq) = parse_offset(offset)?;
    match seq.checked_add(1) {
        Some(seq) => Some(format!("{ms}-{seq}")),
        None => Some(format!("{}-0", ms.checked_add(1)?)),
    }
}

/// A stored session: base64 of MessagePack `{sid, pid, rooms, data}`.
pub fn encode_session(session: &SavedSession) -> Result<String, MessageError> {
    let map = Data::Object(vec![
        ("sid".to_owned(), Data::from(session.sid.as_str())),
        ("pid".to_owned(), Data::from(session.pid.as_str())),
        ("rooms".to_owned(), Data::Json(json!(session.rooms))),
        ("data".to_owned(), Data::Json(session.data.clone())),
    ]);
    Ok(BASE64.encode(msgpack::encode(&map)?))
}

/// A session read back; `nsp` is where it is restored.
pub fn decode_session(text: &str, nsp: &str) -> Result<SavedSession, MessageError> {
    let bytes = BASE64
        .decode(text.trim())
        .map_err(|_| MessageError::Shape("session is not base64"))?;
    let map = msgpack::decode(&bytes)?;
    let sid = str_field(&map, "sid")
        .and_then(|s| Sid::parse(&s))
        .ok_or(MessageError::Shape("session has no valid sid"))?;
    let pid = str_field(&map, "pid")
        .and_then(|s| Sid::parse(&s))
        .ok_or(MessageError::Shape("session has no valid pid"))?;
    let rooms: Vec<Room> = proto::rooms(field(&map, "rooms").as_ref())?;
    Ok(SavedSession {
        sid,
        pid,
        nsp: nsp.to_owned(),
        rooms,
        data: field(&map, "data")
            .map(proto::to_json)
            .unwrap_or(Value::Null),
        disconnected_at: std::time::SystemTime::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_follow_the_js_hash() {
        assert_eq!(hash_code(""), 0);
        assert_eq!(hash_code("/"), 47);
        // "hello".hashCode() in Java/JavaScript.
        assert_eq!(hash_code("hello"), 99162322);
        assert_eq!(stream_name("socket.io", 1, "/chat"), "socket.io");
        assert_eq!(stream_name("s", 3, "/"), "s-2");
        // Overflows to a negative hash: the index keeps the sign, as `%` does in JavaScript.
        let h = hash_code("/a-long-namespace-name");
        assert!(h < 0);
        assert_eq!(
            stream_name("s", 7, "/a-long-namespace-name"),
            format!("s-{}", h % 7)
        );
        assert!(stream_name("s", 7, "/a-long-namespace-name").starts_with("s--"));
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("1700000000000-0"), Some((1700000000000, 0)));
        assert_eq!(next_offset("5-41").as_deref(), Some("5-42"));
        assert_eq!(
            next_offset(&format!("5-{}", u64::MAX)).as_deref(),
            Some("6-0")
        );
        for bad in [
            "", "-", "1-", "-1", "1-2-3", "a-1", "1-+2", " 1-2", "$", "0",
        ] {
            assert_eq!(parse_offset(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fields_round_trip_json_and_binary() {
        let packet = Packet::event("/", json!(["ev", 1]), None);
        let m = Message {
            uid: "0123456789abcdef".into(),
            nsp: "/".into(),
            kind: kind::BROADCAST,
            data: Some(broadcast_data(&packet, &BroadcastOptions::default(), None).unwrap()),
        };
        let fields = m.to_fields(false).unwrap();
        assert_eq!(fields[2], ("type", "3".to_owned()));
        assert!(fields[3].1.starts_with('{'));
        let back = Message::from_fields(fields.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        let b = Broadcast::parse(back.data.as_ref().unwrap()).unwrap();
        assert_eq!(b.data, Data::Json(json!(["ev", 1])));
        assert_eq!(
            b.packet("/", Some("1-0")).data,
            Some(json!(["ev", 1, "1-0"]))
        );

        let bin = Data::Array(vec![
            Data::from("ev"),
            Data::Binary(bytes::Bytes::from_static(&[1, 2])),
        ]);
        let packet = Packet::event("/", bin, None);
        let m = Message {
            data: Some(broadcast_data(&packet, &BroadcastOptions::default(), None).unwrap()),
            ..m
        };
        let fields = m.to_fields(false).unwrap();
        assert!(!fields[3].1.starts_with('{'));
        let back = Message::from_fields(fields.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        let p = Broadcast::parse(back.data.as_ref().unwrap())
            .unwrap()
            .packet("/", Some("2-0"));
        assert_eq!(p.attachments.len(), 1);
        assert_eq!(
            p.data,
            Some(json!(["ev", {"_placeholder": true, "num": 0}, "2-0"]))
        );
        // Plaintext only: binary goes as JSON (as `Buffer.toJSON`).
        assert!(m.to_fields(true).unwrap()[3].1.starts_with('{'));
    }

    #[test]
    fn malformed_entries_are_errors() {
        let bad: [&[(&str, &str)]; 5] = [
            &[("uid", "u"), ("type", "3")],
            &[("uid", "u"), ("nsp", "/"), ("type", "x")],
            &[("uid", "u"), ("nsp", "/"), ("type", "3"), ("data", "{nope")],
            &[("uid", "u"), ("nsp", "/"), ("type", "3"), ("data", "!!!")],
            &[("uid", "u"), ("nsp", "/"), ("type", "3"), ("data", "AAEC")],
        ];
        for fields in bad {
            assert!(
                Message::from_fields(fields.iter().copied()).is_err(),
                "{fields:?}"
            );
        }
        assert!(Message::from_msgpack(&[0xc1]).is_err());
        assert!(Message::from_msgpack(&msgpack::encode_json(&json!([1])).unwrap()).is_err());
        assert!(
            Broadcast::parse(&Data::Json(json!({"packet": {"type": 2, "data": [1]}}))).is_err()
        );
    }

    #[test]
    fn sessions_round_trip() {
        let s = SavedSession {
            sid: Sid::random(),
            pid: Sid::random(),
            nsp: "/".into(),
            rooms: vec!["a".into()],
            data: json!({"user": "bob"}),
            disconnected_at: std::time::SystemTime::now(),
        };
        let back = decode_session(&encode_session(&s).unwrap(), "/").unwrap();
        assert_eq!(
            (back.sid, back.pid, &back.rooms, &back.data),
            (s.sid, s.pid, &s.rooms, &s.data)
        );
        assert!(decode_session("not base64!", "/").is_err());
        assert!(decode_session(&BASE64.encode([0x80]), "/").is_err());
    }
}
