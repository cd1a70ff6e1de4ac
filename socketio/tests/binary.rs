//! B.7: binary events both ways, placeholders at any depth, no interleaving.

mod common;

use bytes::Bytes;
use common::*;
use serde_json::json;
use socketio::{Data, SocketIo};

/// Echoes `echo` with the same arguments (binary kept) and records the first argument of `bin`.
fn binary_server() -> (SocketIo, Rec<Data>) {
    let io = SocketIo::new(config().build());
    let (tx, rec) = recorder();
    for nsp in ["/", "/admin"] {
        let tx = tx.clone();
        io.of(nsp).on_connection(move |s| {
            let tx = tx.clone();
            async move {
                s.on("echo", |s, e| async move {
                    let _ = s.emit("echo", e.args);
                });
                s.on("bin", move |_s, e| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(e.args.data(0).cloned().unwrap_or(Data::Json(json!(null))));
                    }
                });
            }
        });
    }
    (io, rec)
}

#[tokio::test]
async fn client_binary_event_reaches_the_handler() {
    let (io, mut seen) = binary_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"451-["bin",{"_placeholder":true,"num":0}]"#)
        .await;
    ws.send_binary(&[1, 2, 3]).await;
    assert_eq!(
        seen.next().await,
        Data::Binary(Bytes::from_static(&[1, 2, 3]))
    );
    // Empty buffers are buffers too.
    ws.send(r#"451-["bin",{"_placeholder":true,"num":0}]"#)
        .await;
    ws.send_binary(&[]).await;
    assert_eq!(seen.next().await, Data::Binary(Bytes::new()));
    server.stop().await;
}

#[tokio::test]
async fn placeholders_at_any_depth_are_renumbered_depth_first() {
    let (io, mut seen) = binary_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.join("/admin").await;
    // num 1 is visited first (inside "a"), num 0 second (in "c").
    ws.send(
        r#"452-["bin",{"a":[1,{"b":{"_placeholder":true,"num":1}}],"c":{"_placeholder":true,"num":0}}]"#,
    )
    .await;
    ws.send_binary(b"zero").await;
    ws.send_binary(b"one").await;
    let got = seen.next().await;
    let expected = Data::Object(vec![
        (
            "a".into(),
            Data::Array(vec![
                Data::Json(json!(1)),
                Data::Object(vec![("b".into(), Data::Binary(Bytes::from_static(b"one")))]),
            ]),
        ),
        ("c".into(), Data::Binary(Bytes::from_static(b"zero"))),
    ]);
    assert_eq!(got.normalized(), expected.normalized());

    // Sent back, placeholders are numbered in visiting order, keys `_placeholder` then `num`.
    ws.send(
        r#"452-/admin,["echo",{"a":[1,{"b":{"_placeholder":true,"num":1}}],"c":{"_placeholder":true,"num":0}},"tail"]"#,
    )
    .await;
    ws.send_binary(b"zero").await;
    ws.send_binary(b"one").await;
    ws.expect(
        r#"452-/admin,["echo",{"a":[1,{"b":{"_placeholder":true,"num":0}}],"c":{"_placeholder":true,"num":1}},"tail"]"#,
    )
    .await;
    assert_eq!(ws.binary().await, b"one");
    assert_eq!(ws.binary().await, b"zero");
    server.stop().await;
}

#[tokio::test]
async fn server_binary_emit_wire_format() {
    let io = SocketIo::new(config().build());
    io.of("/").on_connection(|s| async move {
        let _ = s.emit(
            "file",
            (
                json!("name"),
                Bytes::from_static(&[0, 255]),
                json!({"k": 1}),
            ),
        );
        let nested = Data::Array(vec![
            Data::Object(vec![
                ("x".into(), Data::Binary(Bytes::from_static(b"a"))),
                ("y".into(), Data::Json(json!([1, 2]))),
            ]),
            Data::Binary(Bytes::from_static(b"b")),
        ]);
        let _ = s.emit("nested", nested);
    });
    io.of("/admin").on_connection(|s| async move {
        let _ = s.emit("file", Bytes::from_static(b"xyz"));
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.expect(r#"451-["file","name",{"_placeholder":true,"num":0},{"k":1}]"#)
        .await;
    assert_eq!(ws.binary().await, vec![0, 255]);
    ws.expect(
        r#"452-["nested",[{"x":{"_placeholder":true,"num":0},"y":[1,2]},{"_placeholder":true,"num":1}]]"#,
    )
    .await;
    assert_eq!(ws.binary().await, b"a");
    assert_eq!(ws.binary().await, b"b");
    ws.join("/admin").await;
    ws.expect(r#"451-/admin,["file",{"_placeholder":true,"num":0}]"#)
        .await;
    assert_eq!(ws.binary().await, b"xyz");
    server.stop().await;
}

#[tokio::test]
async fn ten_attachments_are_accepted() {
    let (io, mut seen) = binary_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    let placeholders: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"_placeholder":true,"num":{i}}}"#))
        .collect();
    ws.send(&format!(r#"4510-["bin",[{}]]"#, placeholders.join(",")))
        .await;
    for i in 0..10u8 {
        ws.send_binary(&[i]).await;
    }
    let Data::Array(items) = seen.next().await else {
        panic!("expected an array")
    };
    let bufs: Vec<Data> = (0..10u8)
        .map(|i| Data::Binary(Bytes::from(vec![i])))
        .collect();
    assert_eq!(items, bufs);
    server.stop().await;
}

/// Header and attachments of a binary packet are never separated by another packet, even when
/// other tasks broadcast text events at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn binary_sequences_are_never_interleaved() {
    const BINARY: usize = 100;
    const TEXT: usize = 300;
    let io = SocketIo::new(config().build());
    io.of("/").on_connection(|s| async move {
        s.on("start", |s, _e| async move {
            let binary = {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..BINARY {
                        let _ = s.emit(
                            "bin",
                            (
                                json!(i),
                                Bytes::from(vec![1u8; 64]),
                                Bytes::from(vec![2u8; 64]),
                                Bytes::from(vec![3u8; 64]),
                            ),
                        );
                        if i % 10 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            };
            let io_ns = s.ns();
            let text = tokio::spawn(async move {
                for i in 0..TEXT {
                    let _ = io_ns.emit("text", json!(i));
                    if i % 10 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            });
            let _ = binary.await;
            let _ = text.await;
            let _ = s.emit("done", ());
        });
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["start"]"#).await;
    let (mut binaries, mut texts) = (0, 0);
    loop {
        let frame = ws.text().await;
        if frame == r#"42["done"]"# {
            break;
        }
        if let Some(rest) = frame.strip_prefix("453-") {
            assert!(
                rest.starts_with(&format!(r#"["bin",{binaries},"#)),
                "{frame}"
            );
            for expected in 1u8..=3 {
                // Exactly the three attachments follow, nothing else in between.
                assert_eq!(ws.recv().await, Frame::Binary(vec![expected; 64]));
            }
            binaries += 1;
        } else {
            assert_eq!(frame, format!(r#"42["text",{texts}]"#));
            texts += 1;
        }
    }
    assert_eq!((binaries, texts), (BINARY, TEXT));
    server.stop().await;
}

#[tokio::test]
async fn binary_over_polling() {
    let (io, mut seen) = binary_server();
    let server = TestServer::start(io).await;
    let polling = server.polling().await;
    polling.post("40").await;
    let reply = polling.get_skipping_pings().await;
    assert!(
        matches!(&reply[..], [PollPacket::Text(t)] if t.starts_with("40{")),
        "{reply:?}"
    );
    // Client → server: header and `b<base64>` attachment in one payload.
    polling
        .post("451-[\"bin\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID")
        .await;
    assert_eq!(
        seen.next().await,
        Data::Binary(Bytes::from_static(&[1, 2, 3]))
    );
    // Server → client: the echo comes back with its attachment as `b…`.
    polling
        .post("451-[\"echo\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID")
        .await;
    let packets = polling.get_skipping_pings().await;
    assert_eq!(
        packets,
        vec![
            PollPacket::Text(r#"451-["echo",{"_placeholder":true,"num":0}]"#.into()),
            PollPacket::Binary(vec![1, 2, 3]),
        ]
    );
    server.stop().await;
}
