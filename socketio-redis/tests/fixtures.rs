//! The codec against bytes published by the real Node packages (`@socket.io/redis-adapter`
//! 8.3.0, `@socket.io/redis-emitter` 5.1.0, socket.io 4.8.4, notepack.io 3.0.1), captured by
//! `tests/redis/capture.mjs` into `tests/fixtures/node.json`.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use socketio::adapter::{BroadcastFlags, BroadcastOptions};
use socketio::{Data, Packet};
use socketio_redis::msgpack;
use socketio_redis::proto::{self, as_u64, field, kind, str_field};

struct Message {
    step: String,
    channel: String,
    bytes: Vec<u8>,
}

fn messages() -> Vec<Message> {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/node.json")).expect("fixture is JSON");
    fixture["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let hex = m["hex"].as_str().expect("hex");
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
                .collect();
            Message {
                step: m["step"].as_str().expect("step").to_owned(),
                channel: m["channel"].as_str().expect("channel").to_owned(),
                bytes,
            }
        })
        .collect()
}

fn step(name: &str) -> Vec<Message> {
    let found: Vec<Message> = messages().into_iter().filter(|m| m.step == name).collect();
    assert!(!found.is_empty(), "no fixture for {name}");
    found
}

fn only(name: &str) -> Message {
    let mut found = step(name);
    assert_eq!(found.len(), 1, "{name}");
    found.remove(0)
}

fn bin(b: &'static [u8]) -> Data {
    Data::Binary(Bytes::from_static(b))
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

/// Every MessagePack message re-encodes to the same bytes (dates aside: they decode to text).
#[test]
fn msgpack_round_trips_byte_for_byte() {
    let mut checked = 0;
    for m in messages() {
        if m.bytes.first() == Some(&b'{') || m.step == "emit-date-undefined" {
            continue;
        }
        let data = msgpack::decode(&m.bytes).unwrap_or_else(|e| panic!("{}: {e}", m.step));
        assert_eq!(msgpack::encode(&data).unwrap(), m.bytes, "{}", m.step);
        checked += 1;
    }
    assert!(checked >= 10, "{checked}");
}

/// Our broadcasts are byte-identical to Node's for the same emit.
#[test]
fn broadcasts_encode_like_node() {
    let cases = [
        (
            "emit-all",
            "/",
            Data::Json(
                json!(["ev", 1, "two", {"a": [true, null]}, 1.5, -3, 300, 70000, 5000000000u64]),
            ),
            opts(&[], &[], false),
        ),
        (
            "emit-room-binary",
            "/",
            Data::Array(vec![
                Data::from("bin"),
                bin(&[1, 2, 3]),
                Data::Object(vec![("nested".into(), bin(&[4]))]),
            ]),
            opts(&["room1"], &[], false),
        ),
        (
            "emit-rooms-except-volatile",
            "/",
            Data::Json(json!(["v"])),
            opts(&["r1", "r2"], &["r3"], true),
        ),
        (
            "emit-nsp",
            "/chat",
            Data::Json(json!(["chat", "hi"])),
            opts(&[], &[], false),
        ),
        (
            "emit-long-string",
            "/",
            Data::Json(json!(["long", "x".repeat(40), "y".repeat(300), "é"])),
            opts(&[], &[], false),
        ),
    ];
    for (name, nsp, data, opts) in cases {
        let m = only(name);
        let decoded = proto::decode_broadcast(&m.bytes).unwrap();
        let packet = Packet::event(nsp, data.clone(), None);
        let ours = proto::encode_broadcast(&decoded.uid, &packet, &opts).unwrap();
        assert_eq!(ours, m.bytes, "{name}");
        assert_eq!(decoded.nsp, nsp, "{name}");
        assert_eq!(decoded.data, data.normalized(), "{name}");
        assert_eq!(decoded.opts, opts, "{name}");
        assert_eq!(decoded.packet(), packet, "{name}");
        let channels = proto::Channels::new("socket.io", nsp, "abcdef");
        assert_eq!(channels.broadcast_channel(&opts), m.channel, "{name}");
    }
}

#[test]
fn node_specific_broadcasts_decode() {
    // compress is ignored; dates become ISO text; undefined is dropped or null.
    let c = proto::decode_broadcast(&only("emit-compress").bytes).unwrap();
    assert_eq!(c.opts, opts(&[], &[], false));
    let d = proto::decode_broadcast(&only("emit-date-undefined").bytes).unwrap();
    assert_eq!(
        d.data,
        Data::Json(json!(["dates", "2021-01-01T00:00:00.005Z", {"n": null}, null]))
    );
    // The emitter: uid "emitter", its own key order.
    let e = proto::decode_broadcast(&only("emitter-emit").bytes).unwrap();
    assert_eq!(e.uid, "emitter");
    assert_eq!(
        e.data,
        Data::Array(vec![
            Data::from("from-emitter"),
            Data::Json(json!(1)),
            bin(&[9])
        ])
    );
    assert_eq!(e.opts, opts(&["room1"], &[], false));
    let m = only("emitter-emit-nsp-except");
    let e = proto::decode_broadcast(&m.bytes).unwrap();
    assert_eq!(
        (e.nsp.as_str(), m.channel.as_str()),
        ("/chat", "socket.io#/chat#")
    );
    assert_eq!(e.opts, opts(&[], &["x"], true));
    // A local broadcast publishes nothing.
    assert!(messages().iter().all(|m| m.step != "emit-local"));
}

fn json_of(m: &Message) -> Value {
    assert_eq!(m.bytes.first(), Some(&b'{'), "{} is JSON", m.step);
    serde_json::from_slice(&m.bytes).unwrap()
}

#[test]
fn selector_requests_match_node() {
    let join = only("sockets-join");
    assert_eq!(join.channel, "socket.io-request#/#");
    let join = json_of(&join);
    let uid = join["uid"].as_str().unwrap();
    assert_eq!(
        join,
        proto::rooms_request(
            uid,
            kind::REMOTE_JOIN,
            &opts(&["room1"], &[], false),
            &["room2".into()]
        )
    );
    let leave = json_of(&only("sockets-leave"));
    assert_eq!(
        leave,
        proto::rooms_request(
            uid,
            kind::REMOTE_LEAVE,
            &opts(&[], &["room9"], false),
            &["room2".into()]
        )
    );
    assert_eq!(
        json_of(&only("disconnect-sockets")),
        proto::disconnect_request(uid, &opts(&["nobody"], &[], false), true)
    );
    // The emitter's requests carry no uid; they parse the same way.
    for name in [
        "emitter-sockets-join",
        "emitter-sockets-leave",
        "emitter-disconnect",
    ] {
        let req = proto::decode_request(&only(name).bytes).unwrap();
        assert_eq!(str_field(&req, "uid"), None);
        assert!(
            proto::parse_opts(field(&req, "opts").as_ref()).is_ok(),
            "{name}"
        );
    }
}

#[test]
fn broadcast_with_ack_matches_node() {
    let msgs = step("broadcast-with-ack");
    assert_eq!(msgs.len(), 3);
    // The request is MessagePack, byte for byte what we write.
    let req = proto::decode_request(&msgs[0].bytes).unwrap();
    let uid = str_field(&req, "uid").unwrap();
    let id = str_field(&req, "requestId").unwrap();
    let mut o = opts(&[], &[], false);
    o.flags.timeout = Some(Duration::from_millis(2000));
    let packet = Packet::event("/", json!(["ev-ack", "q"]), None);
    assert_eq!(
        proto::encode_broadcast_request(&uid, &id, &packet, &o).unwrap(),
        msgs[0].bytes
    );
    let parsed = proto::parse_opts(field(&req, "opts").as_ref()).unwrap();
    assert_eq!(parsed, o);
    // Client count as JSON, then the ack (binary first argument) as MessagePack.
    assert_eq!(msgs[1].channel, "socket.io-response#/#");
    assert_eq!(
        json_of(&msgs[1]),
        json!({"type": kind::BROADCAST_CLIENT_COUNT, "requestId": id, "clientCount": 1})
    );
    let ours = proto::encode_broadcast_ack(&id, Some(bin(&[7, 8]))).unwrap();
    assert_eq!(ours, msgs[2].bytes);
    let ack = proto::decode_request(&msgs[2].bytes).unwrap();
    assert_eq!(field(&ack, "type").and_then(|t| as_u64(&t)), Some(9));
    assert_eq!(field(&ack, "packet"), Some(bin(&[7, 8])));
}

#[test]
fn other_requests_and_replies_parse() {
    let sse = json_of(&only("server-side-emit"));
    assert_eq!(sse["type"], json!(kind::SERVER_SIDE_EMIT));
    assert_eq!(sse["data"], json!(["hello", "world", 1]));
    assert!(sse.get("requestId").is_none());
    let ack = step("server-side-emit-ack");
    assert_eq!(json_of(&ack[1])["data"], json!({"got": 42}));
    assert_eq!(json_of(&ack[0])["requestId"], json_of(&ack[1])["requestId"]);
    let fetch = step("fetch-sockets");
    let reply = json_of(&fetch[1]);
    let socket = &reply["sockets"][0];
    assert_eq!(socket["id"].as_str().map(str::len), Some(20));
    assert_eq!(socket["data"], json!({"user": "bob"}));
    assert_eq!(socket["handshake"]["auth"], json!({"token": "t"}));
    assert!(socket["rooms"]
        .as_array()
        .unwrap()
        .contains(&json!("room1")));
    let rooms = step("all-rooms");
    assert_eq!(json_of(&rooms[0])["type"], json!(kind::ALL_ROOMS));
    assert!(json_of(&rooms[1])["rooms"]
        .as_array()
        .unwrap()
        .contains(&json!("room1")));
    let emitter = json_of(&only("emitter-server-side-emit"));
    assert_eq!(
        emitter,
        json!({"uid": "emitter", "type": 6, "data": ["hey", 2]})
    );
}
