//! B.7: acknowledgements in both directions.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use serde_json::json;
use socketio::{AckError, Args, Socket, SocketIo};

/// `ack` is acknowledged with its arguments; `ack-binary` with a buffer; `no-ack` drops it.
fn ack_server() -> SocketIo {
    let io = SocketIo::new(config().build());
    for nsp in ["/", "/admin"] {
        io.of(nsp).on_connection(|s| async move {
            s.on("ack", |_s, e| async move {
                if let Some(ack) = e.ack {
                    ack.send(e.args);
                }
            });
            s.on("ack-binary", |_s, e| async move {
                if let Some(ack) = e.ack {
                    ack.send((json!("bin"), Bytes::from_static(&[1, 2, 3])));
                }
            });
            s.on("no-ack", |_s, _e| async move {});
        });
    }
    io
}

#[tokio::test]
async fn client_event_with_ack_id_is_acknowledged() {
    let server = TestServer::start(ack_server()).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.join("/admin").await;
    ws.send(r#"4212["ack","bar",{"k":[1]}]"#).await;
    ws.expect(r#"4312["bar",{"k":[1]}]"#).await;
    ws.send(r#"42/admin,13["ack","bar"]"#).await;
    ws.expect(r#"43/admin,13["bar"]"#).await;
    // Empty acknowledgement.
    ws.send(r#"420["ack"]"#).await;
    ws.expect("430[]").await;
    // Ack ids are the client's, used as given (no uniqueness required).
    ws.send(r#"4218446744073709551615["ack",1]"#).await;
    ws.expect("4318446744073709551615[1]").await;
    server.stop().await;
}

#[tokio::test]
async fn ack_is_sent_once_and_only_when_asked() {
    let io = SocketIo::new(config().build());
    io.of("/").on_connection(|s| async move {
        s.on("twice", |_s, e| async move {
            // `Ack::send` consumes the ack, so at most one answer exists.
            if let Some(ack) = e.ack {
                ack.send("once");
            }
        });
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"425["twice"]"#).await;
    ws.expect(r#"435["once"]"#).await;
    ws.barrier().await;
    // An event without ack id gets no acknowledgement.
    ws.send(r#"42["twice"]"#).await;
    ws.barrier().await;
    server.stop().await;
}

#[tokio::test]
async fn dropped_ack_sends_nothing() {
    let server = TestServer::start(ack_server()).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"423["no-ack"]"#).await;
    ws.barrier().await;
    server.stop().await;
}

#[tokio::test]
async fn binary_ack_is_type_6_with_its_attachment() {
    let server = TestServer::start(ack_server()).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.join("/admin").await;
    ws.send(r#"4215["ack-binary"]"#).await;
    ws.expect(r#"461-15["bin",{"_placeholder":true,"num":0}]"#)
        .await;
    assert_eq!(ws.binary().await, vec![1, 2, 3]);
    ws.send(r#"42/admin,16["ack-binary"]"#).await;
    ws.expect(r#"461-/admin,16["bin",{"_placeholder":true,"num":0}]"#)
        .await;
    assert_eq!(ws.binary().await, vec![1, 2, 3]);
    // A client binary event acknowledged with its own buffer.
    ws.send(r#"451-7["ack",{"_placeholder":true,"num":0}]"#)
        .await;
    ws.send_binary(&[9, 8]).await;
    ws.expect(r#"461-7[{"_placeholder":true,"num":0}]"#).await;
    assert_eq!(ws.binary().await, vec![9, 8]);
    server.stop().await;
}

type AckResult = (String, Result<Args, AckError>);

/// A server whose `/` and `/admin` sockets, on `ask <event> <timeout ms>`, emit `<event>` with an
/// ack and record the outcome.
fn asking_server() -> (SocketIo, Rec<AckResult>) {
    let io = SocketIo::new(config().ack_timeout(Duration::from_secs(30)).build());
    let (tx, rec) = recorder::<AckResult>();
    for nsp in ["/", "/admin"] {
        let tx = tx.clone();
        io.of(nsp).on_connection(move |s| {
            let tx = tx.clone();
            async move {
                s.on("ask", move |s: Socket, e| {
                    let tx = tx.clone();
                    async move {
                        let event: String = e.args.get(0).unwrap();
                        let ms: u64 = e.args.get(1).unwrap();
                        // Wait in a task: the socket keeps handling events meanwhile.
                        tokio::spawn(async move {
                            let res = s
                                .emit_with_ack_timeout(&event, "q", Duration::from_millis(ms))
                                .await;
                            let _ = tx.send((event, res));
                        });
                    }
                });
            }
        });
    }
    (io, rec)
}

#[tokio::test]
async fn server_emit_with_ack_resolved_by_the_client() {
    let (io, mut results) = asking_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.join("/admin").await;

    ws.send(r#"42["ask","a",30000]"#).await;
    ws.expect(r#"420["a","q"]"#).await;
    ws.send(r#"42["ask","b",30000]"#).await;
    // Ids are unique among the socket's pending acks.
    ws.expect(r#"421["b","q"]"#).await;
    // Answer out of order: each resolves its own emit.
    ws.send(r#"431["for b",{"x":1}]"#).await;
    let (event, res) = results.next().await;
    assert_eq!(event, "b");
    let args = res.unwrap();
    assert_eq!(args.get::<String>(0).unwrap(), "for b");
    assert_eq!(args.json(1), Some(&json!({"x": 1})));
    ws.send(r#"430["for a"]"#).await;
    let (event, res) = results.next().await;
    assert_eq!(event, "a");
    assert_eq!(res.unwrap().get::<String>(0).unwrap(), "for a");
    // A second answer for the same id is ignored.
    ws.send(r#"430["again"]"#).await;
    ws.barrier().await;
    results.assert_empty();

    // The per-namespace counter of /admin starts at 0 too.
    ws.send(r#"42/admin,["ask","c",30000]"#).await;
    ws.expect(r#"42/admin,0["c","q"]"#).await;
    // An ack for the right id on the wrong namespace does not resolve it.
    ws.send(r#"430["wrong nsp"]"#).await;
    ws.barrier().await;
    results.assert_empty();
    ws.send(r#"43/admin,0["right"]"#).await;
    let (event, res) = results.next().await;
    assert_eq!(event, "c");
    assert_eq!(res.unwrap().get::<String>(0).unwrap(), "right");
    server.stop().await;
}

#[tokio::test]
async fn server_emit_with_ack_accepts_a_binary_ack() {
    let (io, mut results) = asking_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["ask","file",30000]"#).await;
    ws.expect(r#"420["file","q"]"#).await;
    ws.send(r#"461-0[{"name":"f","data":{"_placeholder":true,"num":0}}]"#)
        .await;
    ws.send_binary(&[0xde, 0xad]).await;
    let (_, res) = results.next().await;
    let args = res.unwrap();
    match args.data(0).unwrap() {
        socketio::Data::Object(entries) => {
            assert_eq!(entries[0].0, "name");
            assert_eq!(entries[1].0, "data");
            assert_eq!(
                entries[1].1,
                socketio::Data::Binary(Bytes::from_static(&[0xde, 0xad]))
            );
        }
        other => panic!("{other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn server_emit_with_ack_times_out() {
    let (io, mut results) = asking_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["ask","late",50]"#).await;
    ws.expect(r#"420["late","q"]"#).await;
    let (_, res) = results.next().await;
    assert_eq!(res.unwrap_err(), AckError::Timeout);
    // The answer after the timeout is ignored; the connection stays fine.
    ws.send(r#"430["too late"]"#).await;
    ws.barrier().await;
    results.assert_empty();
    server.stop().await;
}

#[tokio::test]
async fn pending_acks_fail_on_disconnect() {
    let (io, mut results) = asking_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.join("/admin").await;
    ws.send(r#"42["ask","a",30000]"#).await;
    ws.expect(r#"420["a","q"]"#).await;
    ws.send(r#"42/admin,["ask","b",30000]"#).await;
    ws.expect(r#"42/admin,0["b","q"]"#).await;
    // Leaving one namespace fails its pending acks only.
    ws.send("41/admin,").await;
    let (event, res) = results.next().await;
    assert_eq!(
        (event.as_str(), res.unwrap_err()),
        ("b", AckError::Disconnected)
    );
    ws.barrier().await;
    results.assert_empty();
    // Closing the transport fails the rest.
    ws.close().await;
    let (event, res) = results.next().await;
    assert_eq!(
        (event.as_str(), res.unwrap_err()),
        ("a", AckError::Disconnected)
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_ack_ids_are_ignored() {
    let server = TestServer::start(ack_server()).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send("43999[1]").await;
    ws.send(r#"461-998[{"_placeholder":true,"num":0}]"#).await;
    ws.send_binary(&[1]).await;
    ws.barrier().await;
    // The socket still works.
    ws.send(r#"421["ack",2]"#).await;
    ws.expect("431[2]").await;
    server.stop().await;
}

#[tokio::test]
async fn emit_with_ack_on_a_disconnected_socket_is_not_sent() {
    let io = SocketIo::new(config().build());
    let (tx, mut results) = recorder::<Result<Args, AckError>>();
    io.of("/").on_connection(move |s| {
        let tx = tx.clone();
        async move {
            s.on_disconnect(move |s, _reason| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(s.emit_with_ack("after", ()).await);
                }
            });
        }
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send("41").await;
    assert_eq!(results.next().await.unwrap_err(), AckError::NotSent);
    ws.barrier().await;
    server.stop().await;
}

#[tokio::test]
async fn a_dropped_emit_with_ack_forgets_its_ack_id() {
    let io = SocketIo::new(config().build());
    let (tx, mut pending) = recorder::<usize>();
    io.of("/").on_connection(move |s| {
        let tx = tx.clone();
        async move {
            s.on("ask", move |s, _e| {
                let tx = tx.clone();
                async move {
                    // Given up after 20 ms by dropping the future; the ack timeout is a minute.
                    let ask = s.emit_with_ack_timeout("q", (), Duration::from_secs(60));
                    let _ = tokio::time::timeout(Duration::from_millis(20), ask).await;
                    let _ = tx.send(s.pending_acks());
                }
            });
        }
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["ask"]"#).await;
    ws.expect(r#"420["q"]"#).await;
    assert_eq!(pending.next().await, 0);
    server.stop().await;
}
