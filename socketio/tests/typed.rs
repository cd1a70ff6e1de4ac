//! Typed handlers over real sockets: each extractor, extraction failures (the ack answered
//! with `{"error":…}`, the handler not called, CONNECT_ERROR for a connection), synchronous
//! and asynchronous handlers, application state and per-socket extensions.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use serde::Deserialize;
use serde_json::{json, Value};
use socketio::extract::{AckSender, Bin, Data, Extension, ExtractError, State};
use socketio::{Args, Socket, SocketIo};
use tokio::sync::{mpsc, Notify};

#[derive(Debug, Deserialize)]
struct Msg {
    text: String,
}

#[derive(Debug, Deserialize)]
struct Auth {
    name: String,
}

/// Set by a middleware on `/`.
#[derive(Debug)]
struct User(String);

/// Never set.
struct Absent;

/// Registered on the server.
#[derive(Default)]
struct Counter(AtomicU64);

/// Never registered.
struct Unregistered;

/// Sends on its channel when dropped.
struct DropSignal(mpsc::UnboundedSender<String>, String);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(self.1.clone());
    }
}

/// What typed handlers saw.
type Seen = mpsc::UnboundedSender<(String, Value)>;

fn see(tx: &Seen, what: &str, value: Value) {
    let _ = tx.send((what.to_owned(), value));
}

/// `/` with a middleware that sets [`User`] and a [`DropSignal`], and a typed handler per
/// extractor; every handler records what it got, so a test can tell it was (not) called.
fn typed_server(drops: mpsc::UnboundedSender<String>) -> (SocketIo, Rec<(String, Value)>) {
    let io = SocketIo::builder(config().build())
        .state(Counter::default())
        .build();
    let (tx, rec) = recorder();
    io.of("/").middleware(move |socket: Socket| {
        let drops = drops.clone();
        async move {
            socket.extensions().insert(User("ann".into()));
            socket
                .extensions()
                .insert(DropSignal(drops, socket.id().to_string()));
            Ok(())
        }
    });
    io.of("/").on_connection_typed(move |socket: Socket| {
        let tx = tx.clone();
        register(&socket, tx);
    });
    (io, rec)
}

fn register(socket: &Socket, tx: Seen) {
    let t = tx.clone();
    socket.on_typed("msg", move |Data(msg): Data<Msg>, ack: AckSender| {
        see(&t, "msg", json!(msg.text));
        ack.send(json!(msg.text.len()));
    });
    let t = tx.clone();
    socket.on_typed("maybe", move |Data(v): Data<Option<String>>| {
        see(&t, "maybe", json!(v));
    });
    let t = tx.clone();
    socket.on_typed(
        "try",
        move |data: Result<Data<Msg>, ExtractError>, ack: AckSender| {
            let got = data.map(|Data(m)| m.text).map_err(|e| e.to_string());
            see(&t, "try", json!(format!("{got:?}")));
            ack.send(());
        },
    );
    let t = tx.clone();
    socket.on_typed(
        "file",
        move |Data(meta): Data<Value>, Bin(file): Bin<Bytes>, ack: AckSender| {
            see(&t, "file", meta.clone());
            ack.send(json!({"meta": meta, "len": file.len()}));
        },
    );
    let t = tx.clone();
    socket.on_typed("pair", move |Bin(pair): Bin<[Bytes; 2]>| {
        see(&t, "pair", json!([pair[0].len(), pair[1].len()]));
    });
    let t = tx.clone();
    socket.on_typed("files", move |Bin(files): Bin, args: Args| {
        let lens: Vec<usize> = files.iter().map(Bytes::len).collect();
        see(&t, "files", json!({"lens": lens, "args": args.len()}));
    });
    let t = tx.clone();
    socket.on_typed("noack", move |ack: AckSender| {
        see(&t, "noack", json!(ack.requested()));
        ack.send("ignored");
    });
    let t = tx.clone();
    socket.on_typed(
        "count",
        move |State(counter): State<Counter>, ack: AckSender| {
            let n = counter.0.fetch_add(1, Ordering::SeqCst) + 1;
            see(&t, "count", json!(n));
            ack.send(json!(n));
        },
    );
    let t = tx.clone();
    socket.on_typed("nostate", move |_: State<Unregistered>| {
        see(&t, "nostate", Value::Null);
    });
    let t = tx.clone();
    socket.on_typed(
        "whoami",
        move |socket: Socket,
              Extension(user): Extension<User>,
              absent: Option<Extension<Absent>>| {
            see(&t, "whoami", json!([user.0, absent.is_some()]));
            let _ = socket.emit("you", user.0.as_str());
        },
    );
    let t = tx.clone();
    socket.on_typed("noext", move |_: Extension<Absent>| {
        see(&t, "noext", Value::Null);
    });
}

fn ack_error(frame: &str, id: u64) -> String {
    let json = json_after(frame, &format!("43{id}"));
    json[0]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error object in {frame:?}"))
        .to_owned()
}

#[tokio::test]
async fn data_is_deserialised_and_the_ack_answered() {
    let (drops, _) = mpsc::unbounded_channel();
    let (io, mut seen) = typed_server(drops);
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"421["msg",{"text":"hello"}]"#).await;
    ws.expect("431[5]").await;
    assert_eq!(seen.next().await, ("msg".into(), json!("hello")));
    server.stop().await;
}

#[tokio::test]
async fn a_bad_payload_with_an_ack_is_answered_with_an_error_and_not_handled() {
    let (drops, _) = mpsc::unbounded_channel();
    let (io, mut seen) = typed_server(drops);
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"427["msg",{"text":5}]"#).await;
    let frame = ws.text().await;
    assert_eq!(
        ack_error(&frame, 7),
        "invalid payload: invalid type: integer `5`, expected a string"
    );
    ws.send(r#"428["msg","not an object"]"#).await;
    let error = ack_error(&ws.text().await, 8);
    assert!(error.starts_with("invalid payload: "), "{error}");
    ws.barrier().await;
    seen.assert_empty();
    // Still connected and handled.
    ws.send(r#"429["msg",{"text":"ok"}]"#).await;
    ws.expect("439[2]").await;
    assert_eq!(seen.next().await, ("msg".into(), json!("ok")));
    server.stop().await;
}

#[tokio::test]
async fn a_bad_payload_without_an_ack_is_dropped_silently() {
    let (drops, _) = mpsc::unbounded_channel();
    let (io, mut seen) = typed_server(drops);
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["msg",{"text":[]}]"#).await;
    ws.send(r#"42["msg"]"#).await;
    ws.barrier().await;
    seen.assert_empty();
    ws.send(r#"42["msg",{"text":"x"}]"#).await;
    assert_eq!(seen.next().await, ("msg".into(), json!("x")));
    server.stop().await;
}

#[tokio::test]
async fn a_missing_argument_is_an_error_unless_optional() {
    let (drops, _) = mpsc::unbounded_channel();
    let (io, mut seen) = typed_server(drops);
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"421["msg"]"#).await;
    assert_eq!(
        ack_error(&ws.text().await, 1),
        "invalid payload: missing argument"
    );
    ws.send(r#"42["maybe"]"#).await;
    assert_eq!(seen.next().await, ("maybe".into(), Value::Null));
    ws.send(r#"42["maybe","x"]"#).await;
    assert_eq!(seen.next().await, ("maybe".into(), json!("x")));
    ws.send(r#"42["maybe",1]"#).await;
    ws.barrier().await;
    seen.assert_empty();
    server.stop().await;
}

#[tokio::test]
async fn a_result_extractor_hands_the_failure_to_the_handler() {
    let (drops, _) = mpsc::unbounded_channel();
    let (io, mut seen) = typed_server(drops);
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"421["try",{"text":"a"}]"#).await;
    ws.expect("431[]").await;
    assert_eq!(seen.next().await, ("try".into(), json!(r#"Ok("a")"#)));
    ws.send(r#"422["try",{}]"#).await;
    // The handler answers, not the library.
    ws.expect("432[]").await;
    assert_eq!(
        seen.next().await,
        (
            "try".into(),
            json!(r#"Err("invalid payload: missing field `text`")"#)
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn binary_attachments_are_extracted_and_counted() {
    let (drops, _) = mpsc::unbounded_channel();
    let (io, mut seen) = typed_server(drops);
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    // Data sees the placeholder; Bin the bytes.
    ws.send(r#"451-1["file",{"name":"a.bin","body":{"_placeholder":true,"num":0}}]"#)
        .await;
    ws.send_binary(&[1, 2, 3]).await;
    let placeholder = json!({"name": "a.bin", "body": {"_placeholder": true, "num": 0}});
    assert_eq!(seen.next().await, ("file".into(), placeholder.clone()));
    assert_eq!(
        json_after(&ws.text().await, "431"),
        json!([{"meta": placeholder, "len": 3}])
    );
    // Every attachment of every argument, depth first.
    ws.send(r#"453-["files",{"_placeholder":true,"num":0},[{"_placeholder":true,"num":1}],{"x":{"_placeholder":true,"num":2}}]"#)
        .await;
    ws.send_binary(&[1]).await;
    ws.send_binary(&[1, 2]).await;
    ws.send_binary(&[]).await;
    assert_eq!(
        seen.next().await,
        ("files".into(), json!({"lens": [1, 2, 0], "args": 3}))
    );
    ws.send(r#"42["files"]"#).await;
    assert_eq!(
        seen.next().await,
        ("files".into(), json!({"lens": [], "args": 0}))
    );
    ws.send(r#"452-["pair",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        .await;
    ws.send_binary(&[1]).await;
    ws.send_binary(&[1, 2]).await;
    assert_eq!(seen.next().await, ("pair".into(), json!([1, 2])));
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_number_of_attachments_is_refused() {
    let (drops, _) = mpsc::unbounded_channel();
    let (io, mut seen) = typed_server(drops);
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"421["file",{"name":"none"}]"#).await;
    assert_eq!(
        ack_error(&ws.text().await, 1),
        "invalid payload: expected 1 binary attachment, got 0"
    );
    ws.send(r#"452-2["file",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        .await;
    ws.send_binary(&[1]).await;
    ws.send_binary(&[2]).await;
    assert_eq!(
        ack_error(&ws.text().await, 2),
        "invalid payload: expected 1 binary attachment, got 2"
    );
    ws.send(r#"451-["pair",{"_placeholder":true,"num":0}]"#)
        .await;
    ws.send_binary(&[1]).await;
    ws.barrier().await;
    seen.assert_empty();
    server.stop().await;
}

#[tokio::test]
async fn an_ack_sender_without_an_ack_sends_nothing() {
    let (drops, _) = mpsc::unbounded_channel();
    let (io, mut seen) = typed_server(drops);
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["noack"]"#).await;
    assert_eq!(seen.next().await, ("noack".into(), json!(false)));
    ws.barrier().await;
    ws.send(r#"424["noack"]"#).await;
    assert_eq!(seen.next().await, ("noack".into(), json!(true)));
    ws.expect(r#"434["ignored"]"#).await;
    server.stop().await;
}

#[tokio::test]
async fn state_is_shared_by_every_socket() {
    let (drops, _) = mpsc::unbounded_channel();
    let (io, mut seen) = typed_server(drops);
    let server = TestServer::start(io).await;
    let mut a = server.ws().await;
    a.join("/").await;
    let mut b = server.ws().await;
    b.join("/").await;
    a.send(r#"421["count"]"#).await;
    a.expect("431[1]").await;
    b.send(r#"421["count"]"#).await;
    b.expect("431[2]").await;
    assert_eq!(seen.next().await, ("count".into(), json!(1)));
    assert_eq!(seen.next().await, ("count".into(), json!(2)));
    // A state nobody registered: the server's fault, and the client is not told which.
    a.send(r#"422["nostate"]"#).await;
    assert_eq!(ack_error(&a.text().await, 2), "internal error");
    a.barrier().await;
    seen.assert_empty();
    server.stop().await;
}

#[tokio::test]
async fn extensions_set_by_a_middleware_reach_the_handlers() {
    let (drops, _) = mpsc::unbounded_channel();
    let (io, mut seen) = typed_server(drops);
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["whoami"]"#).await;
    assert_eq!(seen.next().await, ("whoami".into(), json!(["ann", false])));
    ws.expect(r#"42["you","ann"]"#).await;
    ws.send(r#"423["noext"]"#).await;
    assert_eq!(ack_error(&ws.text().await, 3), "internal error");
    ws.barrier().await;
    seen.assert_empty();
    server.stop().await;
}

#[tokio::test]
async fn extensions_are_dropped_when_the_socket_leaves() {
    let (drops, mut dropped) = recorder();
    let (io, _seen) = typed_server(drops);
    // The application keeps every socket: the extensions go all the same.
    let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = kept.clone();
    io.of("/").middleware(move |socket: Socket| {
        keep.lock().unwrap().push(socket);
        async { Ok(()) }
    });
    let server = TestServer::start(io.clone()).await;

    // Leaving the namespace.
    let mut ws = server.ws().await;
    let sid = ws.join("/").await;
    ws.barrier().await;
    dropped.assert_empty();
    ws.send("41").await;
    assert_eq!(dropped.next().await, sid);

    // The connection closing.
    let mut ws = server.ws().await;
    let sid = ws.join("/").await;
    ws.close().await;
    assert_eq!(dropped.next().await, sid);

    // The server disconnecting it.
    let mut ws = server.ws().await;
    let sid = ws.join("/").await;
    let socket = io.of("/").sockets().pop().expect("a socket");
    socket.disconnect();
    ws.expect("41").await;
    assert_eq!(dropped.next().await, sid);
    assert!(socket.extensions().is_empty());

    assert_eq!(kept.lock().unwrap().len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn disconnect_handlers_still_see_the_extensions() {
    let io = SocketIo::new(config().build());
    let (tx, mut seen) = recorder();
    io.of("/").on_connection_typed(move |socket: Socket| {
        socket.extensions().insert(User("bob".into()));
        let tx = tx.clone();
        socket.on_disconnect(move |socket, _reason| {
            let tx = tx.clone();
            async move {
                tokio::task::yield_now().await;
                let user = socket.extensions().get::<User>().map(|u| u.0.clone());
                let _ = tx.send(user);
            }
        });
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send("41").await;
    assert_eq!(seen.next().await, Some("bob".to_owned()));
    server.stop().await;
}

#[tokio::test]
async fn async_handlers_keep_the_order_of_events() {
    let io = SocketIo::new(config().build());
    let (tx, mut seen) = recorder();
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    io.of("/").on_connection_typed(move |socket: Socket| {
        let (tx, gate) = (tx.clone(), gate.clone());
        socket.on_typed("slow", move |ack: AckSender| {
            let (tx, gate) = (tx.clone(), gate.clone());
            async move {
                let _ = tx.send("slow started");
                gate.notified().await;
                ack.send("slow");
            }
        });
        socket.on_typed("fast", |ack: AckSender| ack.send("fast"));
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    // A synchronous handler answers at once.
    ws.send(r#"420["fast"]"#).await;
    ws.expect(r#"430["fast"]"#).await;
    ws.send(r#"421["slow"]"#).await;
    assert_eq!(seen.next().await, "slow started");
    ws.send(r#"422["fast"]"#).await;
    // Nothing yet: `fast` waits behind `slow`.
    ws.barrier().await;
    release.notify_one();
    ws.expect(r#"431["slow"]"#).await;
    ws.expect(r#"432["fast"]"#).await;
    server.stop().await;
}

#[tokio::test]
async fn a_typed_connection_handler_takes_the_auth_state_and_extensions() {
    let io = SocketIo::builder(config().build())
        .state(Counter::default())
        .build();
    let (tx, mut seen) = recorder();
    let nsp = io.of("/typed");
    nsp.middleware(|socket: Socket| async move {
        socket.extensions().insert(User("from middleware".into()));
        Ok(())
    });
    nsp.on_connection_typed(
        move |socket: Socket,
              Data(auth): Data<Auth>,
              State(counter): State<Counter>,
              Extension(user): Extension<User>| {
            let tx = tx.clone();
            async move {
                let n = counter.0.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = tx.send((auth.name.clone(), user.0.clone(), n));
                // Registered before the first event is handled, though this one waits.
                tokio::task::yield_now().await;
                socket.on_typed("hi", |socket: Socket, Data(to): Data<String>| {
                    let _ = socket.emit("hi", format!("hi {to}"));
                });
                let _ = socket.emit("welcome", auth.name);
            }
        },
    );
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.connect_with("/typed", Some(r#"{"name":"ann"}"#)).await;
    ws.send(r#"42/typed,["hi","bob"]"#).await;
    ws.expect(r#"42/typed,["welcome","ann"]"#).await;
    ws.expect(r#"42/typed,["hi","hi bob"]"#).await;
    assert_eq!(
        seen.next().await,
        ("ann".to_owned(), "from middleware".to_owned(), 1)
    );
    server.stop().await;
}

#[tokio::test]
async fn auth_that_does_not_deserialise_is_refused_with_connect_error() {
    let io = SocketIo::new(config().build());
    let (tx, mut seen) = recorder();
    let nsp = io.of("/typed");
    nsp.on_connection_typed(move |Data(auth): Data<Auth>| {
        let _ = tx.send(auth.name);
    });
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    ws.send(r#"40/typed,{"name":5}"#).await;
    ws.expect(
        r#"44/typed,{"message":"invalid payload: invalid type: integer `5`, expected a string"}"#,
    )
    .await;
    // No auth at all is `{}`.
    ws.send("40/typed,").await;
    ws.expect(r#"44/typed,{"message":"invalid payload: missing field `name`"}"#)
        .await;
    ws.barrier().await;
    seen.assert_empty();
    assert!(nsp.sockets().is_empty());
    // The connection stays usable.
    ws.connect_with("/typed", Some(r#"{"name":"ok"}"#)).await;
    assert_eq!(seen.next().await, "ok");
    server.stop().await;
}

#[tokio::test]
async fn a_missing_extension_at_connect_is_an_internal_error() {
    let io = SocketIo::new(config().build());
    let (tx, mut seen) = recorder::<()>();
    io.of("/").on_connection_typed(move |_: Extension<Absent>| {
        let _ = tx.send(());
    });
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    ws.send("40").await;
    ws.expect(r#"44{"message":"internal error"}"#).await;
    ws.barrier().await;
    seen.assert_empty();
    server.stop().await;
}

#[tokio::test]
async fn untyped_handlers_are_unchanged_beside_typed_ones() {
    let io = SocketIo::new(config().build());
    io.of("/").on_connection(|socket| async move {
        socket.on("raw", |socket, event| async move {
            let _ = socket.emit("raw", event.args);
        });
        socket.on_typed("typed", |socket: Socket, Data(n): Data<u32>| {
            let _ = socket.emit("typed", json!(n + 1));
        });
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["raw",1,"a"]"#).await;
    ws.expect(r#"42["raw",1,"a"]"#).await;
    ws.send(r#"42["typed",1]"#).await;
    ws.expect(r#"42["typed",2]"#).await;
    server.stop().await;
}

#[tokio::test]
async fn a_recovered_socket_has_its_data_but_not_its_extensions() {
    let io = SocketIo::new(config().recovery(socketio::Recovery::default()).build());
    let (drops, mut dropped) = recorder();
    io.of("/").middleware(move |socket: Socket| {
        let drops = drops.clone();
        async move {
            socket.set_data(json!({"name": "ann"}));
            socket.extensions().insert(User("ann".into()));
            socket
                .extensions()
                .insert(DropSignal(drops, socket.id().to_string()));
            Ok(())
        }
    });
    let (tx, mut seen) = recorder();
    // Recovery skips the middlewares: `Option`, or every recovered client would be refused.
    io.of("/")
        .on_connection_typed(move |socket: Socket, user: Option<Extension<User>>| {
            let user = user.map(|Extension(u)| u.0.clone());
            let _ = tx.send((socket.recovered(), user, socket.data()));
        });
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    let reply = ws.connect_with("/", None).await;
    let (sid, pid) = (
        reply["sid"].as_str().unwrap(),
        reply["pid"].as_str().unwrap(),
    );
    assert_eq!(
        seen.next().await,
        (false, Some("ann".to_owned()), json!({"name": "ann"}))
    );
    io.emit("e", ()).unwrap();
    let frame = ws.text().await;
    let offset = json_after(&frame, "42")[1].as_str().unwrap().to_owned();
    // The transport drops: the session is saved, the extensions go.
    drop(ws);
    assert_eq!(dropped.next().await, sid);

    let mut ws = server.ws().await;
    let auth = json!({"pid": pid, "offset": offset}).to_string();
    let reply = ws.connect_with("/", Some(&auth)).await;
    assert_eq!(reply["sid"], json!(sid));
    assert_eq!(seen.next().await, (true, None, json!({"name": "ann"})));
    server.stop().await;
}
