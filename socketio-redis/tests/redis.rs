//! The adapter against a real redis-server that each test starts on a free port
//! (`REDIS_SERVER_BIN`, else `/usr/bin/redis-server`; `scripts/setup.sh --tests` installs it).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use socketio::adapter::BroadcastOptions;
use socketio::{Config, Data, Packet, SocketIo};
use socketio_redis::proto::{self, Channels};
use socketio_redis::{RedisAdapterConfig, RedisAdapterFactory};

mod common;

use common::RedisServer;

fn config(timeout_ms: u64, queue: usize) -> RedisAdapterConfig {
    RedisAdapterConfig {
        requests_timeout: Duration::from_millis(timeout_ms),
        publish_queue: queue,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_broadcasts_in_the_node_format() {
    let redis = RedisServer::start();
    let factory = RedisAdapterFactory::connect(&redis.url, config(2000, 64))
        .await
        .expect("connect");
    let io = SocketIo::builder(Config::default())
        .adapter(factory.clone())
        .build();
    factory.ready().await;
    assert_eq!(io.of("/").adapter().server_count().await, 1);

    let client = redis::Client::open(redis.url.as_str()).expect("client");
    let mut watcher = client.get_async_pubsub().await.expect("pubsub");
    watcher
        .psubscribe("socket.io#/#*")
        .await
        .expect("psubscribe");
    let mut messages = watcher.on_message();

    io.of("/")
        .to("room1")
        .emit(
            "ev",
            (json!({"a": 1}), bytes::Bytes::from_static(b"\x01\x02")),
        )
        .expect("emit");
    io.of("/").local().emit("local-only", ()).expect("emit");
    io.of("/").emit("all", ()).expect("emit");

    let first = messages.next().await.expect("message");
    assert_eq!(first.get_channel_name(), "socket.io#/#room1#");
    let b = proto::decode_broadcast(first.get_payload_bytes()).expect("decodes");
    assert_eq!(b.uid.len(), 6);
    assert_eq!(
        b.data,
        Data::Array(vec![
            Data::from("ev"),
            Data::Json(json!({"a": 1})),
            Data::Binary(bytes::Bytes::from_static(b"\x01\x02")),
        ])
    );
    // The local broadcast was not published: the next message is the namespace-wide one.
    let second = messages.next().await.expect("message");
    assert_eq!(second.get_channel_name(), "socket.io#/#");
    let all = Packet::event("/", json!(["all"]), None);
    assert_eq!(
        second.get_payload_bytes(),
        proto::encode_broadcast(&b.uid, &all, &BroadcastOptions::default()).unwrap()
    );
    let channels = Channels::new("socket.io", "/", &b.uid);
    assert_eq!(channels.broadcast, "socket.io#/#");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_never_blocks_nor_hangs() {
    let mut redis = RedisServer::start();
    let factory = RedisAdapterFactory::connect(&redis.url, config(300, 4))
        .await
        .expect("connect");
    let io = SocketIo::builder(Config::default())
        .adapter(factory.clone())
        .build();
    factory.ready().await;
    redis.kill();

    // Far more than the queue holds: emits return at once, the excess is dropped.
    let start = Instant::now();
    for i in 0..10_000 {
        io.of("/").emit("ev", json!(i)).expect("emit");
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    let ns = io.of("/");
    let bounded = Duration::from_secs(5);
    let fetched = tokio::time::timeout(bounded, ns.fetch_sockets())
        .await
        .expect("fetch_sockets ends");
    assert!(fetched.is_err(), "{fetched:?}");
    let answers = tokio::time::timeout(bounded, ns.server_side_emit("ping", ()))
        .await
        .expect("server_side_emit ends");
    assert!(answers.is_err(), "{answers:?}");
    let rooms = tokio::time::timeout(bounded, ns.adapter().all_rooms())
        .await
        .expect("all_rooms ends");
    assert!(rooms.is_err(), "{rooms:?}");
    let count = tokio::time::timeout(bounded, ns.adapter().server_count())
        .await
        .expect("server_count ends");
    assert_eq!(count, 1);
    let acks = tokio::time::timeout(
        bounded,
        ns.timeout(Duration::from_millis(200))
            .emit_with_ack("q", ()),
    )
    .await
    .expect("emit_with_ack ends")
    .expect("emitted");
    assert!(acks.responses.is_empty());
}

/// Another node's requests, preceded by garbage on every channel: the garbage is ignored and each
/// request gets the reply a Node requester expects, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_requests_and_ignores_garbage() {
    let redis = RedisServer::start();
    let factory = RedisAdapterFactory::connect(&redis.url, config(2000, 64))
        .await
        .expect("connect");
    let io = SocketIo::builder(Config::default())
        .adapter(factory.clone())
        .build();
    io.of("/")
        .on_server_side_emit(|args: socketio::Args| async move {
            let n: i64 = args.get(1).unwrap_or(0);
            Some(socketio::Args::from(json!({"double": n * 2})))
        });
    factory.ready().await;

    let client = redis::Client::open(redis.url.as_str()).expect("client");
    let mut watcher = client.get_async_pubsub().await.expect("pubsub");
    watcher
        .subscribe("socket.io-response#/#")
        .await
        .expect("subscribe");
    let mut replies = watcher.on_message();
    let publisher = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let publish = |channel: &'static str, payload: Vec<u8>| {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(payload);
        let mut conn = publisher.clone();
        async move {
            cmd.query_async::<i64>(&mut conn).await.expect("publish");
        }
    };
    let garbage: Vec<Vec<u8>> = vec![
        b"{not json".to_vec(),
        vec![0xc1],
        vec![0x93, 0x01],
        br#"{"type":"x"}"#.to_vec(),
        br#"{"type":5,"requestId":"g1","opts":{"rooms":"nope"}}"#.to_vec(),
        br#"{"type":6,"requestId":"g2","data":"nope"}"#.to_vec(),
        br#"{"type":7,"requestId":"g3","packet":{"type":0}}"#.to_vec(),
        br#"{"type":99}"#.to_vec(),
        Vec::new(),
    ];
    for g in &garbage {
        for channel in [
            "socket.io#/#",
            "socket.io-request#/#",
            "socket.io-response#/#",
        ] {
            publish(channel, g.clone()).await;
        }
    }
    publish(
        "socket.io-request#/#",
        br#"{"uid":"other1","requestId":"r1","type":1}"#.to_vec(),
    )
    .await;
    publish(
        "socket.io-request#/#",
        br#"{"uid":"other1","requestId":"r2","type":5,"opts":{"rooms":[],"except":[]}}"#.to_vec(),
    )
    .await;
    publish(
        "socket.io-request#/#",
        br#"{"uid":"other1","requestId":"r3","type":6,"data":["ping",21]}"#.to_vec(),
    )
    .await;
    let broadcast_request = proto::encode_broadcast_request(
        "other1",
        "r4",
        &Packet::event("/", json!(["q"]), None),
        &BroadcastOptions::default(),
    )
    .expect("encodes");
    publish("socket.io-request#/#", broadcast_request).await;

    // By request id: the server-side answer is published from a task of its own.
    let mut got = std::collections::BTreeMap::new();
    while got.len() < 4 {
        let msg = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .expect("a reply in time")
            .expect("message");
        let payload = msg.get_payload_bytes();
        // Our garbage comes back too; only the replies are JSON with a known requestId.
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
            continue;
        };
        if let Some(id @ ("r1" | "r2" | "r3" | "r4")) = v["requestId"].as_str() {
            got.insert(id.to_owned(), v);
        }
    }
    assert_eq!(got["r1"], json!({"requestId": "r1", "rooms": []}));
    assert_eq!(got["r2"], json!({"requestId": "r2", "sockets": []}));
    assert_eq!(
        got["r3"],
        json!({"type": 6, "requestId": "r3", "data": {"double": 42}})
    );
    assert_eq!(
        got["r4"],
        json!({"type": 8, "requestId": "r4", "clientCount": 0})
    );
}

/// Redis goes away for longer than the connection manager's own reconnection attempts, then
/// comes back on the same port: the node subscribes again and answers requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribes_after_an_outage() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    let factory = RedisAdapterFactory::connect(&redis.url, config(1000, 64))
        .await
        .expect("connect");
    let _io = SocketIo::builder(Config::default())
        .adapter(factory.clone())
        .build();
    factory.ready().await;
    redis.kill();
    // The outage itself (past the subscriber's 3 quick retries), not a synchronisation.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _back = RedisServer::start_on(port).expect("redis-server back on its port");

    // Nothing tells us when the subscriber is back: ask until it is counted again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !subscribed(port).await {
        assert!(Instant::now() < deadline, "not resubscribed after 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
    let mut watcher = client.get_async_pubsub().await.expect("pubsub");
    watcher
        .subscribe("socket.io-response#/#")
        .await
        .expect("subscribe");
    let mut replies = watcher.on_message();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    redis::cmd("PUBLISH")
        .arg("socket.io-request#/#")
        .arg(r#"{"uid":"other1","requestId":"back1","type":1}"#)
        .query_async::<i64>(&mut conn)
        .await
        .expect("publish");
    let reply = tokio::time::timeout(Duration::from_secs(10), replies.next())
        .await
        .expect("a reply in time")
        .expect("message");
    let reply: serde_json::Value = serde_json::from_slice(reply.get_payload_bytes()).expect("json");
    assert_eq!(reply, json!({"requestId": "back1", "rooms": []}));
}

/// Whether something is subscribed to the request channel of `/`.
async fn subscribed(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return false;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    let reply: redis::RedisResult<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("socket.io-request#/#")
        .query_async(&mut conn)
        .await;
    matches!(reply, Ok((_, 1)))
}
