//! Graceful shutdown through `serve`'s shutdown future.

mod common;

use std::collections::HashMap;

use common::*;
use engineio::{CloseReason, Config, Message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_session_and_serve_returns() {
    let mut server = TestServer::start_with(Config::default(), false).await;
    let client = server.client();

    // A polling session with a GET pending.
    let (polling, polling_socket) = server.open_polling().await;
    let mut get = client.spawn_poll(&polling.sid);
    assert_held(&mut get).await;
    // A polling session with no GET pending.
    let (idle, idle_socket) = server.open_polling().await;
    // A WebSocket session, with a message still queued.
    let (mut ws, _open, ws_socket) = server.open_websocket().await;
    // An upgraded session.
    let (upgraded, upgraded_socket) = server.open_polling().await;
    let mut upgraded_ws = probe(&client, &upgraded.sid).await;
    ws_send(&mut upgraded_ws, "5").await;
    server.expect_upgrade(upgraded_socket.id()).await;

    ws_socket.send(Message::text("bye")).unwrap();
    server.trigger_shutdown();

    assert_eq!(join_resp("the pending GET", get).await.polling_body(), "1");
    // The idle client comes back (late, as a busy client would) and still fetches its close.
    assert_eq!(client.poll(&idle.sid).await.polling_body(), "1");
    assert_eq!(ws_text(&mut ws).await, "4bye");
    ws_expect_close(&mut ws).await;
    ws_expect_close(&mut upgraded_ws).await;

    let mut reasons = HashMap::new();
    for _ in 0..4 {
        match server.next_event().await {
            Event::Close(sid, reason) => {
                reasons.insert(sid, reason);
            }
            other => panic!("expected a close, got {other:?}"),
        }
    }
    for socket in [&polling_socket, &idle_socket, &ws_socket, &upgraded_socket] {
        assert_eq!(
            reasons.get(&socket.id()),
            Some(&CloseReason::ServerShuttingDown),
            "{socket:?}"
        );
        assert_eq!(socket.close_reason(), Some(CloseReason::ServerShuttingDown));
    }
    assert_eq!(
        CloseReason::ServerShuttingDown.as_str(),
        "server shutting down"
    );

    server.join().await;
    assert!(server.engine.sockets().is_empty());
    // The listener is gone.
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err());
    server.assert_no_event();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_no_sessions_returns_at_once() {
    let mut server = TestServer::default_echo().await;
    server.trigger_shutdown();
    server.join().await;
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_shutdown_refuses_new_handshakes() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    // Shutting the engine down without stopping `serve`: sessions close, handshakes are
    // refused, the listener still answers.
    within("engine shutdown", server.engine.shutdown()).await;
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::ServerShuttingDown
    );
    assert_eq!(client.poll(&open.sid).await.polling_body(), "1");
    let res = client.get("EIO=4&transport=polling").await;
    assert_eq!(res.status, 403, "{res:?}");
    assert_eq!(res.header("content-type"), Some("application/json"));
    let res = client.ws_refused("EIO=4&transport=websocket").await;
    assert_eq!(res, 403);
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_client_between_requests_still_fetches_its_close_packet() {
    let mut server = TestServer::start_with(Config::default(), false).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    socket.send(Message::text("last")).unwrap();
    // No GET pending when the server starts shutting down.
    server.trigger_shutdown();
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::ServerShuttingDown
    );
    // The server keeps serving its requests: the queued message, then the close packet.
    assert_eq!(client.poll(&open.sid).await.records(), ["4last"]);
    assert_eq!(client.poll(&open.sid).await.records(), ["1"]);
    server.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_engine_refuses_new_sessions_with_503_and_keeps_the_open_ones() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let (mut ws, _open, ws_socket) = server.open_websocket().await;
    assert!(!server.engine.is_draining());
    server.engine.drain();
    assert!(server.engine.is_draining());
    // New handshakes: 503, which a proxy such as nginx takes as "try another server".
    let res = client.get("EIO=4&transport=polling").await;
    assert_eq!(res.status, 503, "{res:?}");
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.text(), r#"{"message":"Server draining"}"#);
    assert_eq!(client.ws_refused("EIO=4&transport=websocket").await, 503);
    // Open sessions still work both ways.
    assert_eq!(client.send(&open.sid, b"4hello").await.status, 200);
    assert_eq!(
        server.expect_message(socket.id()).await,
        Message::text("hello")
    );
    ws_send(&mut ws, "4echo").await;
    assert_eq!(
        server.expect_message(ws_socket.id()).await,
        Message::text("echo")
    );
    assert_eq!(ws_text(&mut ws).await, "4echo");
    // Closing one lets its client reconnect elsewhere: a forced close, not a shutdown.
    socket.close();
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::ForcedClose
    );
    server.stop().await;
}
