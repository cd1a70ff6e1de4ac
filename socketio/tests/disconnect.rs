//! B.8 / B.10: namespace disconnects in both directions, disconnect-and-close, and the reason
//! the server's handlers see for every cause.

mod common;

use std::time::Duration;

use common::*;
use socketio::{Config, DisconnectReason, SocketIo};

type Left = (String, DisconnectReason);

/// `/` and `/admin`; each socket records `(namespace, reason)` when it leaves, and handles
/// `kick` (namespace disconnect), `kick-all` (disconnect and close) and `drop-engine` (closes the
/// Engine.IO connection directly).
fn server(config: Config) -> (SocketIo, Rec<Left>) {
    let io = SocketIo::new(config);
    let (tx, rec) = recorder();
    for nsp in ["/", "/admin"] {
        let tx = tx.clone();
        io.of(nsp).on_connection(move |s| {
            let tx = tx.clone();
            async move {
                s.on("kick", |s, _e| async move { s.disconnect() });
                s.on("kick-all", |s, _e| async move { s.disconnect_and_close() });
                s.on("drop-engine", |s, _e| async move { s.engine().close() });
                s.on_disconnect(move |s, reason| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send((s.ns().name().to_owned(), reason));
                    }
                });
            }
        });
    }
    (io, rec)
}

fn left(nsp: &str, reason: DisconnectReason) -> Left {
    (nsp.to_owned(), reason)
}

#[tokio::test]
async fn client_namespace_disconnect_gets_no_reply_and_pings_go_on() {
    let (io, mut gone) =
        server(config_with_ping(Duration::from_millis(50), Duration::from_millis(1500)).build());
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send("41").await;
    assert_eq!(
        gone.next().await,
        left("/", DisconnectReason::ClientNamespaceDisconnect)
    );
    // No reply: the next frame is the barrier's, and the connection is open.
    ws.barrier().await;
    assert!(io.of("/").sockets().is_empty());
    // With no namespace left, the heartbeat goes on: a ping comes, we answer it.
    assert_eq!(ws.recv_raw().await, Frame::Text("2".into()));
    ws.send("3").await;
    // ... and the client may connect again, getting a new socket id.
    ws.join("/").await;
    gone.assert_empty();
    server.stop().await;
}

#[tokio::test]
async fn client_disconnect_of_one_namespace_keeps_the_others() {
    let (io, mut gone) = server(config().build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.join("/admin").await;
    ws.send("41/admin,").await;
    assert_eq!(
        gone.next().await,
        left("/admin", DisconnectReason::ClientNamespaceDisconnect)
    );
    ws.barrier().await;
    // `/` still works, `/admin` can be joined again (without trailing comma this time).
    ws.send(r#"42["kick"]"#).await;
    ws.expect("41").await;
    assert_eq!(
        gone.next().await,
        left("/", DisconnectReason::ServerNamespaceDisconnect)
    );
    ws.join("/admin").await;
    ws.send("41/admin").await;
    assert_eq!(
        gone.next().await,
        left("/admin", DisconnectReason::ClientNamespaceDisconnect)
    );
    ws.barrier().await;
    server.stop().await;
}

#[tokio::test]
async fn server_namespace_disconnect_sends_41() {
    let (io, mut gone) = server(config().build());
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.join("/admin").await;
    ws.send(r#"42/admin,["kick"]"#).await;
    ws.expect("41/admin,").await;
    assert_eq!(
        gone.next().await,
        left("/admin", DisconnectReason::ServerNamespaceDisconnect)
    );
    ws.send(r#"42["kick"]"#).await;
    ws.expect("41").await;
    assert_eq!(
        gone.next().await,
        left("/", DisconnectReason::ServerNamespaceDisconnect)
    );
    // The Engine.IO connection stays open.
    ws.barrier().await;
    ws.join("/admin").await;
    assert_eq!(io.engine().session_count(), 1);
    gone.assert_empty();
    server.stop().await;
}

#[tokio::test]
async fn disconnect_and_close_sends_41_for_every_namespace_then_closes() {
    let (io, mut gone) = server(config().build());
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.join("/admin").await;
    ws.send(r#"42["kick-all"]"#).await;
    let mut frames = ws.frames_until_closed().await;
    frames.sort_by_key(|f| format!("{f:?}"));
    assert_eq!(
        frames,
        vec![Frame::Text("41".into()), Frame::Text("41/admin,".into())]
    );
    let mut reasons = vec![gone.next().await, gone.next().await];
    reasons.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        reasons,
        vec![
            left("/", DisconnectReason::ServerNamespaceDisconnect),
            left("/admin", DisconnectReason::ServerNamespaceDisconnect),
        ]
    );
    assert_eq!(io.engine().session_count(), 0);
    server.stop().await;
}

#[tokio::test]
async fn reason_transport_close_on_websocket_close() {
    let (io, mut gone) = server(config().build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.join("/admin").await;
    ws.close().await;
    let mut reasons = vec![gone.next().await, gone.next().await];
    reasons.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        reasons,
        vec![
            left("/", DisconnectReason::TransportClose),
            left("/admin", DisconnectReason::TransportClose),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn reason_transport_close_on_dropped_tcp() {
    let (io, mut gone) = server(config().build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    drop(ws);
    assert_eq!(
        gone.next().await,
        left("/", DisconnectReason::TransportClose)
    );
    server.stop().await;
}

#[tokio::test]
async fn reason_transport_close_on_engine_close_packet() {
    let (io, mut gone) = server(config().build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send("1").await;
    assert_eq!(
        gone.next().await,
        left("/", DisconnectReason::TransportClose)
    );
    ws.expect_closed().await;

    // Same over long-polling.
    let polling = server.polling().await;
    polling.post("40").await;
    polling.get_skipping_pings().await;
    polling.post("1").await;
    assert_eq!(
        gone.next().await,
        left("/", DisconnectReason::TransportClose)
    );
    server.stop().await;
}

#[tokio::test]
async fn reason_ping_timeout() {
    let (io, mut gone) =
        server(config_with_ping(Duration::from_millis(50), Duration::from_millis(100)).build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    // Never answer the ping.
    assert_eq!(gone.next().await, left("/", DisconnectReason::PingTimeout));
    assert_eq!(ws.recv_raw().await, Frame::Text("2".into()));
    assert_eq!(ws.recv_raw().await, Frame::Closed);
    server.stop().await;
}

#[tokio::test]
async fn reason_parse_error_on_undecodable_engine_packet() {
    let (io, mut gone) = server(config().build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send("x").await;
    assert_eq!(gone.next().await, left("/", DisconnectReason::ParseError));
    ws.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn reason_parse_error_on_undecodable_socketio_packet() {
    let (io, mut gone) = server(config().build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["x""#).await;
    assert_eq!(gone.next().await, left("/", DisconnectReason::ParseError));
    ws.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn reason_transport_error() {
    let (io, mut gone) = server(config().engine_with(|e| e.max_payload(1000)).build());
    let server = TestServer::start(io).await;
    // A message over maxPayload.
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(&format!(r#"42["x","{}"]"#, "a".repeat(2000))).await;
    assert_eq!(
        gone.next().await,
        left("/", DisconnectReason::TransportError)
    );
    ws.expect_closed().await;
    // A ping from the client (wrong heartbeat direction in v4).
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send("2").await;
    assert_eq!(
        gone.next().await,
        left("/", DisconnectReason::TransportError)
    );
    ws.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn reason_forced_close() {
    let (io, mut gone) = server(config().build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["drop-engine"]"#).await;
    assert_eq!(gone.next().await, left("/", DisconnectReason::ForcedClose));
    ws.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn reason_forced_server_close() {
    let (io, mut gone) = server(config().build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42/admin,["x"]"#).await;
    assert_eq!(
        gone.next().await,
        left("/", DisconnectReason::ForcedServerClose)
    );
    ws.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn reason_server_shutting_down() {
    let (io, mut gone) = server(config().build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.join("/admin").await;
    let polling = server.polling().await;
    polling.post("40").await;
    polling.get_skipping_pings().await;
    server.stop().await;
    let mut reasons = vec![gone.next().await, gone.next().await, gone.next().await];
    reasons.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        reasons,
        vec![
            left("/", DisconnectReason::ServerShuttingDown),
            left("/", DisconnectReason::ServerShuttingDown),
            left("/admin", DisconnectReason::ServerShuttingDown),
        ]
    );
    ws.expect_closed().await;
}

#[tokio::test]
async fn disconnecting_sees_the_rooms_and_disconnect_runs_after_pending_handlers() {
    let io = SocketIo::new(config().build());
    let (tx, mut events) = recorder::<String>();
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    io.of("/").on_connection(move |s| {
        let tx = tx.clone();
        let gate = gate.clone();
        async move {
            s.join("room");
            let t = tx.clone();
            s.on_disconnecting(move |s, reason| {
                let mut rooms = s.rooms();
                rooms.retain(|r| r == "room");
                let _ = t.send(format!("disconnecting {reason} {rooms:?}"));
            });
            let t = tx.clone();
            s.on("slow", move |_s, _e| {
                let tx = t.clone();
                let gate = gate.clone();
                async move {
                    let _ = tx.send("slow started".into());
                    gate.notified().await;
                    let _ = tx.send("slow done".into());
                }
            });
            s.on_disconnect(move |s, reason| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(format!("disconnect {reason} rooms={}", s.rooms().len()));
                }
            });
        }
    });
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send(r#"42["slow"]"#).await;
    assert_eq!(events.next().await, "slow started");
    ws.send("41").await;
    // `disconnecting` runs at once, while the socket is still in its rooms.
    assert_eq!(
        events.next().await,
        r#"disconnecting client namespace disconnect ["room"]"#
    );
    // `disconnect` waits for the handler still running.
    release.notify_one();
    assert_eq!(events.next().await, "slow done");
    assert_eq!(
        events.next().await,
        "disconnect client namespace disconnect rooms=0"
    );
    assert!(io.of("/").adapter().rooms().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn disconnect_and_close_over_polling() {
    let (io, mut gone) = server(config().build());
    let server = TestServer::start(io).await;
    let polling = server.polling().await;
    polling.post("40\x1e40/admin,").await;
    let mut replies = polling.get_skipping_pings().await;
    while replies.len() < 2 {
        replies.extend(polling.get_skipping_pings().await);
    }
    polling.post(r#"42["kick-all"]"#).await;
    // The DISCONNECT packets first; the close packet in the next response, so that the client
    // handles them before the close.
    let mut packets = polling.get_skipping_pings().await;
    assert_eq!(
        polling.get_skipping_pings().await,
        vec![PollPacket::Text("1".into())]
    );
    packets.sort_by_key(|p| format!("{p:?}"));
    assert_eq!(
        packets,
        vec![
            PollPacket::Text("41".into()),
            PollPacket::Text("41/admin,".into())
        ]
    );
    let mut reasons = vec![gone.next().await, gone.next().await];
    reasons.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        reasons,
        vec![
            left("/", DisconnectReason::ServerNamespaceDisconnect),
            left("/admin", DisconnectReason::ServerNamespaceDisconnect),
        ]
    );
    server.stop().await;
}
