//! The Rust `Emitter` publishes, on the wire, the bytes `@socket.io/redis-emitter` 5.1.0
//! published for the same calls (`tests/fixtures/node.json`, steps `emitter-*`), and reaches
//! the sockets of one of our nodes.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::RedisServer;
use futures_util::StreamExt;
use serde_json::{json, Value};
use socketio::{Config, SocketIo};
use socketio_redis::{Emitter, EmitterError, RedisAdapterConfig, RedisAdapterFactory};

fn fixture(step: &str) -> (String, Vec<u8>) {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/node.json")).expect("fixture is JSON");
    let found: Vec<&Value> = fixture["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["step"] == step)
        .collect();
    assert_eq!(found.len(), 1, "{step}");
    let hex = found[0]["hex"].as_str().expect("hex");
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect();
    (
        found[0]["channel"].as_str().expect("channel").to_owned(),
        bytes,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_what_the_node_emitter_publishes() {
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url.as_str()).expect("client");
    let mut watcher = client.get_async_pubsub().await.expect("pubsub");
    watcher.psubscribe("*").await.expect("psubscribe");
    let mut messages = watcher.on_message();
    let emitter = Emitter::connect(&redis.url).await.expect("connect");

    let nine = Bytes::from_static(&[9]);
    emitter
        .to("room1")
        .emit("from-emitter", (json!(1), nine))
        .await
        .unwrap();
    emitter
        .of("chat")
        .except("x")
        .volatile()
        .emit("e", ())
        .await
        .unwrap();
    emitter.to("room1").sockets_join("room9").await.unwrap();
    emitter.sockets_leave(vec!["room9"]).await.unwrap();
    emitter.to("none").disconnect_sockets(true).await.unwrap();
    emitter.server_side_emit("hey", json!(2)).await.unwrap();
    emitter
        .emit("plain", (json!({"a": 1}), json!([2, "x"]), json!(1.5)))
        .await
        .unwrap();
    emitter
        .to(vec!["r1", "r2"])
        .to("r3")
        .compress(false)
        .emit("c", ())
        .await
        .unwrap();
    emitter
        .of("/chat")
        .to(vec!["a", "b"])
        .except("c")
        .sockets_join(vec!["d", "e"])
        .await
        .unwrap();
    emitter.disconnect_sockets(false).await.unwrap();

    for step in [
        "emitter-emit",
        "emitter-emit-nsp-except",
        "emitter-sockets-join",
        "emitter-sockets-leave",
        "emitter-disconnect",
        "emitter-server-side-emit",
        "emitter-emit-all",
        "emitter-emit-rooms-compress",
        "emitter-sockets-join-except",
        "emitter-disconnect-false",
    ] {
        let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("in time")
            .expect("message");
        let (channel, bytes) = fixture(step);
        assert_eq!(msg.get_channel_name(), channel, "{step}");
        assert_eq!(msg.get_payload_bytes(), bytes, "{step}");
    }

    // As the Node emitter, reserved names are refused.
    assert!(matches!(
        emitter.emit("disconnect", ()).await,
        Err(EmitterError::ReservedEvent(_))
    ));
    assert_eq!(emitter.of("x").namespace(), "/x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaches_the_sockets_of_our_node() {
    let redis = RedisServer::start();
    let factory = RedisAdapterFactory::connect(&redis.url, RedisAdapterConfig::default())
        .await
        .expect("connect");
    let io = SocketIo::builder(Config::default())
        .adapter(factory.clone())
        .build();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    io.of("/").on_server_side_emit(move |args: socketio::Args| {
        let _ = tx.send(args);
        async { None }
    });
    factory.ready().await;
    let emitter = Emitter::connect(&redis.url).await.expect("connect");
    emitter
        .server_side_emit("hello", ("a", json!(1)))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("in time")
        .expect("args");
    assert_eq!(got.json(0), Some(&json!("hello")));
    assert_eq!(got.json(1), Some(&json!("a")));
    assert_eq!(got.json(2), Some(&json!(1)));
    // The emitter is not counted as a server.
    assert_eq!(io.of("/").adapter().server_count().await, 1);
}
