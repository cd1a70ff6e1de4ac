//! The Streams codec against what the real Node package wrote (`@socket.io/redis-streams-adapter`
//! 0.3.1, socket.io 4.8.4, @msgpack/msgpack 2.8.0), captured by `tests/redis/capture-streams.mjs`
//! into `tests/fixtures/node-streams.json`.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use socketio::{Data, Sid};
use socketio_redis::proto::{field, str_field};
use socketio_redis::streams::proto::{self, kind, Broadcast, Message};

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/node-streams.json")).expect("fixture is JSON")
}

/// The stream entries of a step, decoded, with their ids.
fn entries(step: &str) -> Vec<(String, Message)> {
    let found: Vec<(String, Message)> = fixture()["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["step"] == step)
        .map(|e| {
            let fields = e["fields"].as_object().expect("fields");
            let msg = Message::from_fields(
                fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str().expect("field is text"))),
            )
            .expect("entry decodes");
            (e["id"].as_str().expect("id").to_owned(), msg)
        })
        .collect();
    assert!(!found.is_empty(), "no entry for {step}");
    found
}

fn one_entry(step: &str) -> (String, Message) {
    let mut all = entries(step);
    assert_eq!(all.len(), 1, "{step}");
    all.remove(0)
}

/// The pub/sub messages of a step: `(channel, message)`.
fn messages(step: &str) -> Vec<(String, Message)> {
    let found: Vec<(String, Message)> = fixture()["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["step"] == step)
        .map(|m| {
            let hex = m["hex"].as_str().expect("hex");
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
                .collect();
            let msg = Message::from_msgpack(&bytes).expect("message decodes");
            (m["channel"].as_str().expect("channel").to_owned(), msg)
        })
        .collect();
    assert!(!found.is_empty(), "no message for {step}");
    found
}

fn broadcast(msg: &Message) -> Broadcast {
    assert_eq!(msg.kind, kind::BROADCAST);
    Broadcast::parse(msg.data.as_ref().expect("data")).expect("broadcast")
}

#[test]
fn json_broadcast_entry() {
    let (id, msg) = one_entry("emit-all");
    assert_eq!(msg.uid.len(), 16);
    assert_eq!(msg.nsp, "/");
    let b = broadcast(&msg);
    assert_eq!(
        b.data,
        Data::Json(
            json!(["ev", 1, "two", {"a": [true, null]}, 1.5, -3, 300, 70000, 5_000_000_000u64])
        )
    );
    assert!(b.opts.rooms.is_empty() && b.opts.except.is_empty());
    assert!(!b.opts.flags.volatile);
    assert_eq!(b.request_id, None);
    // Delivered with the entry id as the recovery offset.
    let packet = b.packet("/", Some(&id));
    let data = packet.data.expect("data");
    assert_eq!(data[9], json!(id));
    assert!(proto::parse_offset(&id).is_some());
}

#[test]
fn binary_broadcast_entry_is_base64_msgpack() {
    let (_, msg) = one_entry("emit-room-binary");
    let b = broadcast(&msg);
    assert_eq!(b.opts.rooms, vec!["room1".to_string()]);
    assert_eq!(
        b.data,
        Data::Array(vec![
            Data::from("bin"),
            Data::Binary(Bytes::from_static(&[1, 2, 3])),
            Data::Object(vec![(
                "nested".into(),
                Data::Binary(Bytes::from_static(&[4]))
            )]),
        ])
    );
    let packet = b.packet("/", Some("1-0"));
    assert_eq!(packet.attachments.len(), 2);
}

#[test]
fn options_and_namespaces() {
    let b = broadcast(&one_entry("emit-rooms-except-volatile").1);
    assert_eq!(b.opts.rooms, vec!["r1".to_string(), "r2".to_string()]);
    assert_eq!(b.opts.except, vec!["r3".to_string()]);
    assert!(b.opts.flags.volatile);
    let (_, chat) = one_entry("emit-nsp");
    assert_eq!(chat.nsp, "/chat");
    // Node leaves the namespace out of the packet: the message's is used.
    assert_eq!(broadcast(&chat).packet("/chat", None).nsp, "/chat");
    // A socket's own emit goes through the stream to its own-id room.
    let direct = broadcast(&one_entry("socket-emit").1);
    assert_eq!(direct.opts.rooms.len(), 1);
    assert!(Sid::parse(&direct.opts.rooms[0]).is_some());
}

#[test]
fn room_and_disconnect_entries() {
    let (_, join) = one_entry("sockets-join");
    assert_eq!(join.kind, kind::SOCKETS_JOIN);
    let data = join.data.expect("data");
    assert_eq!(
        socketio_redis::proto::rooms(field(&data, "rooms").as_ref()).unwrap(),
        vec!["room2".to_string()]
    );
    let (_, leave) = one_entry("sockets-leave");
    assert_eq!(leave.kind, kind::SOCKETS_LEAVE);
    let opts =
        socketio_redis::proto::parse_opts(field(leave.data.as_ref().unwrap(), "opts").as_ref())
            .unwrap();
    assert_eq!(opts.except, vec!["room9".to_string()]);
    let (_, disc) = one_entry("disconnect-sockets");
    assert_eq!(disc.kind, kind::DISCONNECT_SOCKETS);
    assert_eq!(
        field(disc.data.as_ref().unwrap(), "close"),
        Some(Data::Json(json!(true)))
    );
}

#[test]
fn requests_and_responses_by_pubsub() {
    let emit = messages("server-side-emit");
    assert_eq!(emit[0].0, "socket.io#/#");
    assert_eq!(emit[0].1.kind, kind::SERVER_SIDE_EMIT);
    let data = emit[0].1.data.clone().unwrap();
    assert_eq!(
        field(&data, "packet"),
        Some(Data::Json(json!(["hello", "world", 1])))
    );
    assert_eq!(str_field(&data, "requestId"), None);

    let ack = messages("server-side-emit-ack");
    let request_id = str_field(ack[0].1.data.as_ref().unwrap(), "requestId").expect("id");
    assert_eq!(request_id.len(), 16);
    let (channel, response) = &ack[1];
    assert_eq!(channel, &format!("socket.io#/#{}#", ack[0].1.uid));
    assert_eq!(response.kind, kind::SERVER_SIDE_EMIT_RESPONSE);
    let data = response.data.clone().unwrap();
    assert_eq!(str_field(&data, "requestId"), Some(request_id));
    assert_eq!(field(&data, "packet"), Some(Data::Json(json!({"got": 42}))));

    let fetch = messages("fetch-sockets");
    assert_eq!(fetch[0].1.kind, kind::FETCH_SOCKETS);
    let sockets = field(fetch[1].1.data.as_ref().unwrap(), "sockets").expect("sockets");
    let sockets = socketio_redis::proto::to_json(sockets);
    assert_eq!(sockets[0]["data"], json!({"user": "bob"}));
    assert!(sockets[0]["rooms"]
        .as_array()
        .unwrap()
        .contains(&json!("room1")));

    let bwa = messages("broadcast-with-ack");
    let b = broadcast(&bwa[0].1);
    assert_eq!(b.opts.flags.timeout, Some(Duration::from_millis(2000)));
    assert!(b.request_id.is_some());
    assert!(proto::is_ephemeral(&bwa[0].1));
    assert_eq!(bwa[1].1.kind, kind::BROADCAST_CLIENT_COUNT);
    assert_eq!(
        field(bwa[1].1.data.as_ref().unwrap(), "clientCount"),
        Some(Data::Json(json!(1)))
    );
    assert_eq!(bwa[2].1.kind, kind::BROADCAST_ACK);
    assert_eq!(
        field(bwa[2].1.data.as_ref().unwrap(), "packet"),
        Some(Data::Binary(Bytes::from_static(&[7, 8])))
    );
}

#[test]
fn our_messages_read_as_node_writes_them() {
    // Round trip of a captured message through our encoder gives the same message.
    for step in [
        "server-side-emit-ack",
        "fetch-sockets",
        "broadcast-with-ack",
    ] {
        for (_, msg) in messages(step) {
            let again = Message::from_msgpack(&msg.to_msgpack().unwrap()).unwrap();
            assert_eq!(
                again.data.map(socketio_redis::proto::to_json),
                msg.data.map(socketio_redis::proto::to_json)
            );
        }
    }
    // And stream entries: JSON stays JSON, binary becomes base64 MessagePack again.
    for step in ["emit-all", "emit-room-binary"] {
        let (_, msg) = one_entry(step);
        let fields = msg.to_fields(false).unwrap();
        let again = Message::from_fields(fields.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(broadcast(&again), broadcast(&msg));
    }
}

#[test]
fn stored_session() {
    let f = fixture();
    let s = &f["session"];
    let session = proto::decode_session(s["text"].as_str().unwrap(), "/").expect("session");
    assert_eq!(session.sid.as_str(), s["sid"].as_str().unwrap());
    assert_eq!(session.pid.as_str(), s["pid"].as_str().unwrap());
    assert!(session.rooms.contains(&"room1".to_string()));
    assert!(session.rooms.contains(&session.sid.to_string()));
    assert_eq!(session.data, json!({"user": "bob"}));
    // Ours decodes to the same.
    let again = proto::decode_session(&proto::encode_session(&session).unwrap(), "/").unwrap();
    assert_eq!(
        (again.sid, again.pid, again.rooms, again.data),
        (session.sid, session.pid, session.rooms, session.data)
    );
}
