//! The sharded protocol against what Node's `createShardedAdapter` (`@socket.io/redis-adapter`
//! 8.3.0, socket.io 4.8.4) published, captured by `tests/redis/capture.mjs` into
//! `tests/fixtures/node.json` (steps `sharded-*`).

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use socketio::adapter::{BroadcastFlags, BroadcastOptions};
use socketio::{Data, Packet};
use socketio_redis::proto::{self, as_u64, field, str_field};
use socketio_redis::sharded::{self, kind};

struct Message {
    channel: String,
    bytes: Vec<u8>,
}

fn step(name: &str) -> Vec<Message> {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/node.json")).expect("fixture is JSON");
    let found: Vec<Message> = fixture["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["step"] == name)
        .map(|m| {
            let hex = m["hex"].as_str().expect("hex");
            Message {
                channel: m["channel"].as_str().expect("channel").to_owned(),
                bytes: (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
                    .collect(),
            }
        })
        .collect();
    assert!(!found.is_empty(), "no fixture for {name}");
    found
}

fn only(name: &str) -> Message {
    let mut found = step(name);
    assert_eq!(found.len(), 1, "{name}");
    found.remove(0)
}

fn opts(rooms: &[&str], except: &[&str], volatile: bool) -> BroadcastOptions {
    BroadcastOptions {
        rooms: rooms.iter().map(|s| s.to_string()).collect(),
        except: except.iter().map(|s| s.to_string()).collect(),
        flags: BroadcastFlags {
            volatile,
            ..Default::default()
        },
    }
}

fn bin(b: &'static [u8]) -> Data {
    Data::Binary(Bytes::from_static(b))
}

/// The sender's uid and the message.
fn decode(m: &Message) -> (String, Data) {
    let msg = proto::decode_request(&m.bytes).expect("decodes");
    (str_field(&msg, "uid").expect("uid"), msg)
}

fn data_str(msg: &Data, key: &str) -> String {
    field(msg, "data")
        .and_then(|d| str_field(&d, key))
        .expect(key)
}

#[test]
fn broadcasts_encode_like_node() {
    let cases = [
        (
            "sharded-emit-all",
            Data::Json(json!(["ev", 1, "two", {"a": [true, null]}, 1.5, -3, 5000000000u64])),
            opts(&[], &[], false),
        ),
        (
            "sharded-emit-room",
            Data::Json(json!(["r", "x"])),
            opts(&["room1"], &[], false),
        ),
        (
            "sharded-emit-binary",
            Data::Array(vec![
                Data::from("bin"),
                bin(&[1, 2, 3]),
                Data::Object(vec![("nested".into(), bin(&[4]))]),
            ]),
            opts(&[], &[], false),
        ),
        (
            "sharded-emit-rooms-except-volatile",
            Data::Json(json!(["v"])),
            opts(&["r1", "r2"], &["r3"], true),
        ),
        (
            "sharded-emit-socket-id",
            Data::Json(json!(["s"])),
            opts(&["abcdefghijklmnopqrst"], &[], false),
        ),
    ];
    for (name, data, opts) in cases {
        let m = only(name);
        let (uid, msg) = decode(&m);
        let packet = Packet::event("/", data.clone(), None);
        let ours = sharded::encode_message(
            kind::BROADCAST,
            Some(sharded::broadcast_data(&packet, None, &opts).unwrap()),
            &uid,
            "/",
        )
        .unwrap();
        assert_eq!(ours, m.bytes, "{name}");
        // JSON unless there is binary.
        assert_eq!(m.bytes[0] == b'{', name != "sharded-emit-binary", "{name}");
        assert_eq!(sharded::broadcast_channel("socket.io#/#", &opts), m.channel);
        let parsed = proto::parse_opts(field(&field(&msg, "data").unwrap(), "opts").as_ref());
        assert_eq!(parsed.unwrap(), opts, "{name}");
    }
}

#[test]
fn selector_messages_match_node() {
    let (uid, _) = decode(&only("sharded-sockets-join"));
    let encode = |kind, data| sharded::encode_message(kind, Some(data), &uid, "/").unwrap();
    assert_eq!(
        encode(
            kind::SOCKETS_JOIN,
            sharded::rooms_data(&opts(&["room1"], &[], false), &["room2".into()])
        ),
        only("sharded-sockets-join").bytes
    );
    assert_eq!(
        encode(
            kind::SOCKETS_LEAVE,
            sharded::rooms_data(&opts(&[], &["room9"], false), &["room2".into()])
        ),
        only("sharded-sockets-leave").bytes
    );
    assert_eq!(
        encode(
            kind::DISCONNECT_SOCKETS,
            sharded::disconnect_data(&opts(&["nobody"], &[], false), true)
        ),
        only("sharded-disconnect-sockets").bytes
    );
    let args = vec![
        Data::from("hello"),
        Data::from("world"),
        Data::Json(json!(1)),
    ];
    assert_eq!(
        encode(
            kind::SERVER_SIDE_EMIT,
            sharded::server_side_emit_data(None, args)
        ),
        only("sharded-server-side-emit").bytes
    );
    for m in step("sharded-emit-all") {
        assert_eq!(m.channel, "socket.io#/#");
    }
}

#[test]
fn requests_and_answers_match_node() {
    // serverSideEmit with ack: request on P#N#, answer on the requester's channel.
    let sse = step("sharded-server-side-emit-ack");
    let (requester, req) = decode(&sse[0]);
    let id = data_str(&req, "requestId");
    assert_eq!(id.len(), 16);
    assert_eq!(
        sharded::encode_message(
            kind::SERVER_SIDE_EMIT,
            Some(sharded::server_side_emit_data(
                Some(&id),
                vec![Data::from("ask"), Data::Json(json!(42))]
            )),
            &requester,
            "/"
        )
        .unwrap(),
        sse[0].bytes
    );
    let (answerer, _) = decode(&sse[1]);
    assert_eq!(sse[1].channel, format!("socket.io#/#{requester}#"));
    assert_eq!(
        sharded::encode_message(
            kind::SERVER_SIDE_EMIT_RESPONSE,
            Some(sharded::answer_data(
                &id,
                Some(Data::Json(json!({"got": 42})))
            )),
            &answerer,
            "/"
        )
        .unwrap(),
        sse[1].bytes
    );

    // fetchSockets.
    let fetch = step("sharded-fetch-sockets");
    let (_, req) = decode(&fetch[0]);
    let id = data_str(&req, "requestId");
    assert_eq!(
        sharded::encode_message(
            kind::FETCH_SOCKETS,
            Some(sharded::fetch_data(&opts(&[], &[], false), &id)),
            &requester,
            "/"
        )
        .unwrap(),
        fetch[0].bytes
    );
    let (_, reply) = decode(&fetch[1]);
    assert_eq!(
        field(&reply, "type").and_then(|t| as_u64(&t)),
        Some(kind::FETCH_SOCKETS_RESPONSE)
    );
    let Some(Data::Json(data)) = field(&reply, "data") else {
        panic!("fetch reply data")
    };
    assert_eq!(data["requestId"], json!(id));
    assert_eq!(data["sockets"][0]["data"], json!({"user": "dan"}));
    assert!(data["sockets"][0]["rooms"]
        .as_array()
        .unwrap()
        .contains(&json!("room1")));

    // Broadcast with acks: request (JSON, timeout flag), client count (JSON), ack (binary
    // first argument, so MessagePack).
    let bwa = step("sharded-broadcast-with-ack");
    assert_eq!(bwa.len(), 3);
    let (_, req) = decode(&bwa[0]);
    let id = data_str(&req, "requestId");
    let mut o = opts(&[], &[], false);
    o.flags.timeout = Some(Duration::from_millis(2000));
    let packet = Packet::event("/", json!(["ev-ack", "q"]), None);
    assert_eq!(
        sharded::encode_message(
            kind::BROADCAST,
            Some(sharded::broadcast_data(&packet, Some(&id), &o).unwrap()),
            &requester,
            "/"
        )
        .unwrap(),
        bwa[0].bytes
    );
    assert_eq!(bwa[0].channel, "socket.io#/#");
    assert_eq!(
        serde_json::from_slice::<Value>(&bwa[1].bytes).unwrap(),
        json!({"type": kind::BROADCAST_CLIENT_COUNT, "data": {"requestId": id, "clientCount": 1}, "uid": answerer, "nsp": "/"})
    );
    assert_eq!(
        sharded::encode_message(
            kind::BROADCAST_ACK,
            Some(sharded::answer_data(&id, Some(bin(&[7, 8])))),
            &answerer,
            "/"
        )
        .unwrap(),
        bwa[2].bytes
    );
    assert_eq!(bwa[2].channel, format!("socket.io#/#{requester}#"));
}
