//! B.7: events in both directions, JSON fidelity, handler order.

mod common;

use common::*;
use serde_json::{json, Value};
use socketio::{EmitError, SocketIo};

/// `/` and `/admin` with an `echo` handler that sends `echo` back with the same arguments, and a
/// recorder of every event the handlers see.
fn echo_server() -> (SocketIo, Rec<(String, String, Value)>) {
    let io = SocketIo::new(config().build());
    let (tx, rec) = recorder();
    for nsp in ["/", "/admin"] {
        let tx = tx.clone();
        io.of(nsp).on_connection(move |s| {
            let tx = tx.clone();
            async move {
                s.on_any(move |s, name, args| {
                    let values: Vec<Value> = (0..args.len())
                        .map(|i| args.json(i).cloned().unwrap_or(Value::Null))
                        .collect();
                    let _ = tx.send((
                        s.ns().name().to_owned(),
                        name.to_owned(),
                        Value::Array(values),
                    ));
                });
                s.on("echo", |s, e| async move {
                    let _ = s.emit("echo", e.args);
                });
            }
        });
    }
    (io, rec)
}

#[tokio::test]
async fn client_event_reaches_the_handler() {
    let (io, mut seen) = echo_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.join("/admin").await;
    ws.send(r#"42["x",1,"a",{"b":[true,null]}]"#).await;
    assert_eq!(
        seen.next().await,
        ("/".into(), "x".into(), json!([1, "a", {"b": [true, null]}]))
    );
    ws.send(r#"42/admin,["y"]"#).await;
    assert_eq!(seen.next().await, ("/admin".into(), "y".into(), json!([])));
    server.stop().await;
}

#[tokio::test]
async fn numeric_event_name_is_accepted() {
    let (io, mut seen) = echo_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send("42[1,2]").await;
    assert_eq!(seen.next().await, ("/".into(), "1".into(), json!([2])));
    ws.barrier().await;
    server.stop().await;
}

#[tokio::test]
async fn json_round_trips_byte_exactly() {
    let (io, _seen) = echo_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.join("/admin").await;
    let payloads = [
        // Key order kept, not sorted.
        r#"{"z":1,"a":2,"m":{"y":[],"b":{}}}"#,
        // Non-ASCII as UTF-8, `/` unescaped, escapes JSON requires kept.
        r#""héllo wörld 日本語 🎉 a/b <tag> \"q\" \\ \n\t""#,
        // Numbers unchanged: integers stay integers.
        r#"[1,-5,0,1.5,-0.25,100,123456789012,18446744073709551615,-9007199254740991]"#,
        r#"[true,false,null,"",[],{}]"#,
        r#"{"nested":[{"deep":[[[{"k":"v"}]]]}],"url":"http://x/y?z=1&w=2"}"#,
    ];
    for p in payloads {
        ws.send(&format!(r#"42["echo",{p}]"#)).await;
        ws.expect(&format!(r#"42["echo",{p}]"#)).await;
        ws.send(&format!(r#"42/admin,["echo",{p},{p}]"#)).await;
        ws.expect(&format!(r#"42/admin,["echo",{p},{p}]"#)).await;
    }
    // Escaped unicode arrives decoded and goes out as UTF-8, like JSON.stringify(JSON.parse(…)).
    ws.send(r#"42["echo","\u00e9\u002f"]"#).await;
    ws.expect(r#"42["echo","é/"]"#).await;
    // A string cut inside an emoji is valid JSON (`JSON.stringify("😀".slice(0, 1))`): it must
    // not close the connection. Rust strings cannot hold the lone surrogate: U+FFFD instead.
    ws.send(r#"42["echo","a\ud83d","\ud83d\ude00"]"#).await;
    ws.expect("42[\"echo\",\"a\u{FFFD}\",\"\u{1F600}\"]").await;
    server.stop().await;
}

#[tokio::test]
async fn random_doubles_come_back_unchanged() {
    let (io, _seen) = echo_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    // Random bit patterns (xorshift, fixed seed): every exponent range, subnormals included.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut numbers = Vec::new();
    while numbers.len() < 2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let x = f64::from_bits(state);
        if x.is_finite() {
            numbers.push(serde_json::to_string(&x).expect("finite"));
        }
    }
    numbers.push("1.5e-300".into());
    for chunk in numbers.chunks(200) {
        let list = chunk.join(",");
        ws.send(&format!(r#"42["echo",[{list}]]"#)).await;
        ws.expect(&format!(r#"42["echo",[{list}]]"#)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn server_emit_wire_format() {
    let io = SocketIo::new(config().build());
    io.of("/").on_connection(|s| async move {
        s.on("go", |s, _e| async move {
            let _ = s.emit("none", ());
            let _ = s.emit("one", "world");
            let _ = s.emit("two", (json!({"b": 1, "a": [1.5, "é/"]}), json!(null)));
            let refused = matches!(s.emit("disconnect", ()), Err(EmitError::ReservedEvent(_)))
                && matches!(
                    s.emit("connect_error", ()),
                    Err(EmitError::ReservedEvent(_))
                );
            let _ = s.emit("last", json!(refused));
        });
    });
    io.of("/admin").on_connection(|s| async move {
        let _ = s.emit("hi", json!(1));
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["go"]"#).await;
    ws.expect(r#"42["none"]"#).await;
    ws.expect(r#"42["one","world"]"#).await;
    ws.expect(r#"42["two",{"b":1,"a":[1.5,"é/"]},null]"#).await;
    ws.expect(r#"42["last",true]"#).await;
    ws.join("/admin").await;
    ws.expect(r#"42/admin,["hi",1]"#).await;
    server.stop().await;
}

#[tokio::test]
async fn handlers_of_a_socket_run_in_arrival_order() {
    let io = SocketIo::new(config().build());
    let (tx, mut order) = recorder::<String>();
    io.of("/").on_connection(move |s| {
        let tx = tx.clone();
        async move {
            let t = tx.clone();
            s.on("slow", move |_s, e| {
                let tx = t.clone();
                async move {
                    let n: u64 = e.args.get(0).unwrap();
                    for _ in 0..n {
                        tokio::task::yield_now().await;
                    }
                    let _ = tx.send(format!("slow {n}"));
                }
            });
            s.on("fast", move |_s, e| {
                let tx = tx.clone();
                async move {
                    let n: u64 = e.args.get(0).unwrap();
                    let _ = tx.send(format!("fast {n}"));
                }
            });
        }
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["slow",20]"#).await;
    ws.send(r#"42["fast",1]"#).await;
    ws.send(r#"42["slow",5]"#).await;
    ws.send(r#"42["fast",2]"#).await;
    for expected in ["slow 20", "fast 1", "slow 5", "fast 2"] {
        assert_eq!(order.next().await, expected);
    }
    server.stop().await;
}

#[tokio::test]
async fn events_without_handler_are_ignored() {
    let (io, mut seen) = echo_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["nobody-listens",{"a":1}]"#).await;
    assert_eq!(seen.next().await.1, "nobody-listens");
    ws.barrier().await;
    server.stop().await;
}

#[tokio::test]
async fn event_middleware_can_refuse() {
    let io = SocketIo::new(config().build());
    let (tx, mut handled) = recorder::<String>();
    io.of("/").on_connection(move |s| {
        let tx = tx.clone();
        async move {
            s.use_event(|_s, e| {
                if e.name == "forbidden" {
                    Err("not allowed".into())
                } else {
                    Ok(())
                }
            });
            for name in ["forbidden", "allowed"] {
                let tx = tx.clone();
                s.on(name, move |_s, e| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(e.name);
                    }
                });
            }
        }
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"427["forbidden"]"#).await;
    ws.expect(r#"437[{"error":"not allowed"}]"#).await;
    ws.send(r#"42["allowed"]"#).await;
    assert_eq!(handled.next().await, "allowed");
    handled.assert_empty();
    server.stop().await;
}

#[tokio::test]
async fn events_wait_for_an_async_connection_handler() {
    let io = SocketIo::new(config().build());
    let (tx, mut seen) = recorder::<String>();
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    io.of("/").on_connection(move |s| {
        let tx = tx.clone();
        let gate = gate.clone();
        async move {
            let _ = tx.send("handler waiting".into());
            gate.notified().await;
            // Registered only now, yet it sees the event sent while the handler waited.
            s.on("early", move |_s, e| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(format!("early {}", e.args.json(0).unwrap()));
                }
            });
        }
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["early",1]"#).await;
    ws.barrier().await;
    assert_eq!(seen.next().await, "handler waiting");
    seen.assert_empty();
    release.notify_one();
    assert_eq!(seen.next().await, "early 1");
    server.stop().await;
}

#[tokio::test]
async fn concurrent_handlers_do_not_hold_up_later_events() {
    let io = SocketIo::new(config().build());
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    io.of("/").on_connection(move |s| {
        let gate = gate.clone();
        async move {
            s.on_concurrent("slow", move |_s, e| {
                let gate = gate.clone();
                async move {
                    gate.notified().await;
                    if let Some(ack) = e.ack {
                        ack.send("slow");
                    }
                }
            });
            s.on("fast", |_s, e| async move {
                if let Some(ack) = e.ack {
                    ack.send("fast");
                }
            });
        }
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"421["slow"]"#).await;
    ws.send(r#"422["fast"]"#).await;
    // The sequential handler answers while the concurrent one still waits.
    ws.expect(r#"432["fast"]"#).await;
    release.notify_one();
    ws.expect(r#"431["slow"]"#).await;
    server.stop().await;
}

#[tokio::test]
async fn server_side_emit_reaches_the_listener_through_the_adapter_seam() {
    use socketio::adapter::{Adapter, LocalNamespace, MemoryAdapter};
    let seen: std::sync::Arc<std::sync::Mutex<Vec<LocalNamespace>>> = Default::default();
    let keep = seen.clone();
    let io = SocketIo::builder(config().build())
        .adapter(move |ns: LocalNamespace| {
            keep.lock().unwrap().push(ns.clone());
            std::sync::Arc::new(MemoryAdapter::new(ns)) as std::sync::Arc<dyn Adapter>
        })
        .build();
    io.of("/")
        .on_server_side_emit(|args: socketio::Args| async move {
            let name: String = args.get(0).ok()?;
            Some(socketio::Args::from(format!("{name} handled")))
        });
    // A single node has no peers: nothing to collect.
    assert_eq!(
        io.of("/").server_side_emit("ping", ()).await,
        Ok(Vec::new())
    );
    // What a cluster adapter does when another node emits.
    let root = seen
        .lock()
        .unwrap()
        .iter()
        .find(|ns| ns.name() == "/")
        .cloned()
        .unwrap();
    let answer = root.server_side_event(socketio::Args::from("ping")).await;
    assert_eq!(answer, Some(socketio::Args::from("ping handled")));
}
