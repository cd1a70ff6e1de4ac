//! A.10: server-side close on polling and WebSocket.

mod common;

use std::time::Duration;

use common::*;
use engineio::{CloseReason, Config, Message, SendError};
use futures_util::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_answers_the_pending_get_with_close_packet() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut get = client.spawn_poll(&open.sid);
    assert_held(&mut get).await;
    socket.close();
    assert_eq!(join_resp("the pending GET", get).await.polling_body(), "1");
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::ForcedClose
    );
    assert!(socket.is_closed());
    assert_eq!(socket.close_reason(), Some(CloseReason::ForcedClose));
    assert_eq!(socket.send(Message::text("late")), Err(SendError::Closed));
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    client
        .send(&open.sid, b"4x")
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_without_a_pending_get_is_delivered_to_the_next_get() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    socket.send(Message::text("bye")).unwrap();
    socket.close();
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::ForcedClose
    );
    // What was queued goes out first; the close packet comes in the next response, because
    // the client handles `1` at once but packets a tick later.
    let res = client.poll(&open.sid).await;
    assert_eq!(res.records(), ["4bye"]);
    let res = client.poll(&open.sid).await;
    assert_eq!(res.records(), ["1"]);
    // After that the sid is unknown.
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    assert_eq!(server.engine.session_count(), 0);
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_session_refuses_posts_while_it_waits_for_its_get() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    socket.close();
    server.expect_close(socket.id()).await;
    client
        .send(&open.sid, b"4x")
        .await
        .assert_error(400, 1, "Session ID unknown");
    assert_eq!(client.poll(&open.sid).await.polling_body(), "1");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_packet_waits_only_for_the_grace_period() {
    let grace = Duration::from_millis(200);
    let config = Config::builder().polling_close_grace(grace).build();
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let closed_at = tokio::time::Instant::now();
    socket.close();
    server.expect_close(socket.id()).await;
    // The deadline under test: once the grace period is over the session is forgotten.
    tokio::time::sleep_until(closed_at + grace + Duration::from_millis(50)).await;
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    assert_eq!(server.engine.session_count(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_does_not_cut_the_grace_period_short() {
    let interval = Duration::from_millis(100);
    let timeout = Duration::from_millis(100);
    let config = Config::builder()
        .ping_interval(interval)
        .ping_timeout(timeout)
        .build();
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let closed_at = tokio::time::Instant::now();
    socket.close();
    server.expect_close(socket.id()).await;
    // Past the ping and pong deadlines the session would have had: the close packet is still
    // waiting for its GET (the grace period is 30 s).
    tokio::time::sleep_until(closed_at + interval + timeout + Duration::from_millis(100)).await;
    assert_eq!(client.poll(&open.sid).await.polling_body(), "1");
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_on_websocket_sends_a_close_frame() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (mut ws, open, socket) = server.open_websocket().await;
    socket.send(Message::text("bye")).unwrap();
    socket.close();
    assert_eq!(ws_text(&mut ws).await, "4bye");
    // A close frame, no `1` packet first.
    ws_expect_close(&mut ws).await;
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::ForcedClose
    );
    assert_eq!(client.ws_refused(&ws_query(&open.sid)).await, 400);
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_on_websocket_ends_the_connection_once_the_client_answers() {
    let mut server = TestServer::default_echo().await;
    let (mut ws, _open, socket) = server.open_websocket().await;
    socket.close();
    ws_expect_close(&mut ws).await;
    // The client answers the close frame (on its next read) and, like a browser, waits for the
    // server to close the connection: that comes at once, not after the server's write grace.
    let end = tokio::time::timeout(Duration::from_millis(1500), ws.next())
        .await
        .expect("the server closes the connection after the close handshake");
    assert!(end.is_none(), "expected the end of the stream, got {end:?}");
    server.expect_close(socket.id()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_on_an_upgraded_session_sends_a_close_frame() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut ws = probe(&client, &open.sid).await;
    ws_send(&mut ws, "5").await;
    server.expect_upgrade(socket.id()).await;
    socket.close();
    ws_expect_close(&mut ws).await;
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::ForcedClose
    );
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_during_a_probe_ends_polling_and_the_probe() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut ws = probe(&client, &open.sid).await;
    socket.close();
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::ForcedClose
    );
    // The client's `5` comes too late: the probe is closed, no upgrade.
    ws_send(&mut ws, "5").await;
    ws_expect_close(&mut ws).await;
    assert_eq!(client.poll(&open.sid).await.polling_body(), "1");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_is_reported_once() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    socket.close();
    socket.close();
    client.send(&open.sid, b"1").await;
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::ForcedClose
    );
    assert_eq!(client.poll(&open.sid).await.polling_body(), "1");
    server.assert_no_event();
    server.stop().await;
}
