//! The Streams adapter against a real redis-server that each test starts on a free port
//! (`REDIS_SERVER_BIN`, else `/usr/bin/redis-server`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use socketio::recovery::{SavedSession, SessionStore};
use socketio::{Args, Config, Recovery, Sid, SocketIo};
use socketio_redis::streams::{RedisStreamsConfig, RedisStreamsFactory};
use tokio::sync::mpsc;

mod common;

use common::RedisServer;

fn config() -> RedisStreamsConfig {
    RedisStreamsConfig {
        requests_timeout: Duration::from_millis(1000),
        ..Default::default()
    }
}

/// A node with recovery on whose server-side listener reports what it gets.
async fn node(url: &str) -> (SocketIo, RedisStreamsFactory, mpsc::UnboundedReceiver<Args>) {
    let factory = RedisStreamsFactory::connect(url, config())
        .await
        .expect("connect");
    let io = SocketIo::builder(Config::builder().recovery(Recovery::default()).build())
        .adapter(factory.clone())
        .recovery_store(factory.session_store())
        .build();
    let (tx, rx) = mpsc::unbounded_channel();
    io.of("/").on_server_side_emit(move |args: Args| {
        let _ = tx.send(args.clone());
        async move { Some(Args::from(json!("pong"))) }
    });
    factory.ready().await;
    (io, factory, rx)
}

async fn xadd(url: &str, fields: &[(&str, &str)]) -> String {
    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let mut cmd = redis::cmd("XADD");
    cmd.arg("socket.io").arg("*");
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    cmd.query_async::<String>(&mut conn).await.expect("xadd")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_redis_restart() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    let (a, _fa, _) = node(&redis.url).await;
    let (_b, _fb, mut b_got) = node(&redis.url).await;
    assert_eq!(a.of("/").adapter().server_count().await, 2);
    let answers = a
        .of("/")
        .server_side_emit("ping", json!(1))
        .await
        .expect("answered");
    assert_eq!(answers, vec![Args::from(json!("pong"))]);
    assert!(b_got.recv().await.is_some());

    redis.kill();
    // The outage itself (past the connection managers' quick retries), not a synchronisation.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let back = RedisServer::start_on(port).expect("redis-server back on its port");

    // Nothing tells when both nodes are subscribed again: ask until they are counted.
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.of("/").adapter().server_count().await != 2 {
        assert!(Instant::now() < deadline, "not resubscribed after 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answers = a
        .of("/")
        .server_side_emit("ping", json!(2))
        .await
        .expect("answered");
    assert_eq!(answers, vec![Args::from(json!("pong"))]);
    assert!(b_got.recv().await.is_some());

    // The stream readers read again: an entry (a pre-0.3 style server-side emit) reaches B.
    xadd(
        &back.url,
        &[
            ("uid", "0000000000000000"),
            ("nsp", "/"),
            ("type", "9"),
            ("data", r#"{"packet":["ping","via-stream"]}"#),
        ],
    )
    .await;
    let got = tokio::time::timeout(Duration::from_secs(20), b_got.recv())
        .await
        .expect("stream read again")
        .expect("listener");
    assert_eq!(got.json(1), Some(&json!("via-stream")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_never_blocks_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let factory = RedisStreamsFactory::connect(
        &redis.url,
        RedisStreamsConfig {
            publish_queue: 16,
            ..config()
        },
    )
    .await
    .expect("connect");
    let io = SocketIo::builder(Config::default())
        .adapter(factory.clone())
        .build();
    factory.ready().await;
    redis.kill();
    let started = Instant::now();
    for i in 0..10_000 {
        io.of("/").emit("ev", json!(i)).expect("emit");
        io.of("/").sockets_join("room");
    }
    // Queued or dropped, never waited for (generous bound for a loaded machine).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_taken_once_and_need_a_stored_offset() {
    let redis = RedisServer::start();
    let (_io, factory, _) = node(&redis.url).await;
    let store: Arc<dyn SessionStore> = factory.session_store();
    let offset = xadd(
        &redis.url,
        &[
            ("uid", "0000000000000000"),
            ("nsp", "/"),
            ("type", "3"),
            (
                "data",
                r#"{"packet":{"type":2,"data":["before"]},"opts":{"rooms":[],"except":[]}}"#,
            ),
        ],
    )
    .await;
    let sid = Sid::random();
    let session = SavedSession {
        sid,
        pid: Sid::random(),
        nsp: "/".into(),
        rooms: vec![sid.to_string(), "a".into()],
        data: json!({"user": 1}),
        disconnected_at: std::time::SystemTime::now(),
    };
    store.save_session(session.clone());
    let bcast = |data: &'static str| {
        [
            ("uid", "0000000000000000"),
            ("nsp", "/"),
            ("type", "3"),
            ("data", data),
        ]
    };
    let to_a = xadd(
        &redis.url,
        &bcast(r#"{"packet":{"type":2,"data":["to-a"]},"opts":{"rooms":["a"],"except":[]}}"#),
    )
    .await;
    xadd(
        &redis.url,
        &bcast(r#"{"packet":{"type":2,"data":["to-b"]},"opts":{"rooms":["b"],"except":[]}}"#),
    )
    .await;
    xadd(
        &redis.url,
        &bcast(r#"{"packet":{"type":2,"data":["not-a"]},"opts":{"rooms":[],"except":["a"]}}"#),
    )
    .await;
    xadd(
        &redis.url,
        &[("uid", "x"), ("nsp", "/"), ("type", "3"), ("data", "{bad")],
    )
    .await;
    xadd(
        &redis.url,
        &[
            ("uid", "x"),
            ("nsp", "/other"),
            ("type", "3"),
            (
                "data",
                r#"{"packet":{"type":2,"data":["other"]},"opts":{"rooms":[],"except":[]}}"#,
            ),
        ],
    )
    .await;

    // The session is written through the adapter's queue: wait until it is there.
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = redis::Client::open(redis.url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let key = format!("sio:session:{}", session.pid);
    while !redis::cmd("EXISTS")
        .arg(&key)
        .query_async::<bool>(&mut conn)
        .await
        .expect("exists")
    {
        assert!(Instant::now() < deadline, "session not saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Unknown or malformed offsets fail and leave the session.
    for bad in ["1-0", "nope", "$"] {
        assert!(store
            .restore_session(session.pid, bad.into(), "/")
            .await
            .is_none());
    }
    let (restored, missed) = store
        .restore_session(session.pid, offset.clone(), "/")
        .await
        .expect("restored");
    assert_eq!(restored.sid, sid);
    assert_eq!(restored.rooms, session.rooms);
    assert_eq!(restored.data, session.data);
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert_eq!(missed[0].offset, to_a);
    assert_eq!(missed[0].data, json!(["to-a", to_a]));
    // Taken once.
    assert!(store
        .restore_session(session.pid, offset, "/")
        .await
        .is_none());
}
