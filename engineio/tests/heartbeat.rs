//! A.8: the server pings one pingInterval after the handshake; a missing pong ends the session
//! at t0 + pingInterval + pingTimeout, enforced as a deadline.
//!
//! These tests use short intervals and are the only ones that let time pass on purpose: the
//! deadlines are what they assert. Times are measured around the handshake request: `sent`
//! (before it goes out) is at or before the server's t0, `received` (answer read) at or after.

mod common;

use std::time::Duration;

use common::*;
use engineio::{CloseReason, Config, TransportKind};
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT_SHORT: Duration = Duration::from_millis(200);
/// Timers may round to the millisecond; nothing may come earlier than this before its time.
const EARLY: Duration = Duration::from_millis(5);
/// Pong timeout for the keep-alive tests, longer than the interval.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_millis(1000);
/// A ping after a pong must come well before this (one interval after the pong, not at the
/// previous ping's pong deadline).
const LATE: Duration = Duration::from_millis(800);

fn config(ping_timeout: Duration) -> Config {
    Config::builder()
        .ping_interval(INTERVAL)
        .ping_timeout(ping_timeout)
        .build()
}

/// A polling handshake, timed.
async fn timed_polling(server: &mut TestServer) -> (Open, engineio::Socket, Instant, Instant) {
    let sent = Instant::now();
    let open = server.client().handshake().await;
    let received = Instant::now();
    let socket = server.expect_open().await;
    (open, socket, sent, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_ping_arrives_one_interval_after_the_handshake_on_polling() {
    let mut server = TestServer::start(config(TIMEOUT_SHORT)).await;
    let client = server.client();
    let (open, _socket, sent, _) = timed_polling(&mut server).await;
    assert_eq!(open.json["pingInterval"], 300);
    assert_eq!(open.json["pingTimeout"], 200);
    // The first GET is held until the ping: no premature `2`, nothing else first.
    let res = client.poll(&open.sid).await;
    let at = sent.elapsed();
    assert_eq!(res.polling_body(), "2");
    assert!(at >= INTERVAL - EARLY, "first ping after {at:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_ping_arrives_one_interval_after_the_handshake_on_websocket() {
    let mut server = TestServer::start(config(TIMEOUT_SHORT)).await;
    let sent = Instant::now();
    let (mut ws, _open, _socket) = server.open_websocket().await;
    assert_eq!(ws_text(&mut ws).await, "2");
    let at = sent.elapsed();
    assert!(at >= INTERVAL - EARLY, "first ping after {at:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_keep_a_polling_session_alive() {
    // A roomier pong timeout: this test is about staying alive and about ping timing, not
    // about the pong deadline.
    let timeout = KEEPALIVE_TIMEOUT;
    let mut server = TestServer::start(config(timeout)).await;
    let client = server.client();
    let (open, socket, sent, _) = timed_polling(&mut server).await;
    let mut since = sent;
    for cycle in 0..5 {
        let res = client.poll(&open.sid).await;
        assert_eq!(res.polling_body(), "2", "cycle {cycle}");
        let gap = since.elapsed();
        assert!(gap >= INTERVAL - EARLY, "cycle {cycle}: ping after {gap:?}");
        // Due one interval after the pong, not at the pong deadline of the previous ping.
        assert!(gap < LATE, "cycle {cycle}: ping after {gap:?}");
        // The next ping is due one interval after the pong.
        since = Instant::now();
        client.send(&open.sid, b"3").await.assert_ok();
    }
    // Well past t0 + interval + timeout: alive thanks to the pongs.
    assert!(sent.elapsed() > INTERVAL + timeout);
    assert!(!socket.is_closed());
    client.send(&open.sid, b"4alive").await.assert_ok();
    assert_eq!(server.expect_text(socket.id()).await, "alive");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_keep_a_websocket_session_alive() {
    let timeout = KEEPALIVE_TIMEOUT;
    let mut server = TestServer::start(config(timeout)).await;
    let sent = Instant::now();
    let (mut ws, _open, socket) = server.open_websocket().await;
    let mut since = sent;
    for cycle in 0..5 {
        assert_eq!(ws_text(&mut ws).await, "2", "cycle {cycle}");
        let gap = since.elapsed();
        assert!(gap >= INTERVAL - EARLY, "cycle {cycle}: ping after {gap:?}");
        // Due one interval after the pong, not at the pong deadline of the previous ping.
        assert!(gap < LATE, "cycle {cycle}: ping after {gap:?}");
        since = Instant::now();
        ws_send(&mut ws, "3").await;
    }
    assert!(sent.elapsed() > INTERVAL + timeout);
    assert!(!socket.is_closed());
    ws_send(&mut ws, "4alive").await;
    assert_eq!(ws_text(&mut ws).await, "4alive");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_pong_on_polling_ends_the_session_at_the_deadline() {
    let mut server = TestServer::start(config(TIMEOUT_SHORT)).await;
    let client = server.client();
    let (open, socket, _, received) = timed_polling(&mut server).await;
    assert_eq!(client.poll(&open.sid).await.polling_body(), "2");
    // No pong. At t0 + interval + timeout (received >= t0) the sid is unknown: 400, never 200.
    tokio::time::sleep_until(received + INTERVAL + TIMEOUT_SHORT).await;
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::PingTimeout
    );
    // A late pong does not revive it.
    client
        .send(&open.sid, b"3")
        .await
        .assert_error(400, 1, "Session ID unknown");
    assert_eq!(server.engine.session_count(), 0);
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_ping_still_counts_against_the_deadline() {
    let mut server = TestServer::start(config(TIMEOUT_SHORT)).await;
    let client = server.client();
    let (open, socket, _, received) = timed_polling(&mut server).await;
    // The client never polls, so never sees the ping: the deadline holds all the same.
    tokio::time::sleep_until(received + INTERVAL + TIMEOUT_SHORT).await;
    client
        .send(&open.sid, b"3")
        .await
        .assert_error(400, 1, "Session ID unknown");
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::PingTimeout
    );
    assert_eq!(client.ws_refused(&ws_query(&open.sid)).await, 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_pong_closes_without_any_request() {
    let mut server = TestServer::start(config(TIMEOUT_SHORT)).await;
    let (_open, socket, sent, _) = timed_polling(&mut server).await;
    // The timer alone closes the session.
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::PingTimeout
    );
    let at = sent.elapsed();
    assert!(
        at >= INTERVAL + TIMEOUT_SHORT - EARLY,
        "closed after {at:?}"
    );
    assert_eq!(server.engine.session_count(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_pong_on_websocket_closes_the_websocket() {
    let mut server = TestServer::start(config(TIMEOUT_SHORT)).await;
    let client = server.client();
    let sent = Instant::now();
    let (mut ws, open, socket) = server.open_websocket().await;
    assert_eq!(ws_text(&mut ws).await, "2");
    // No pong: the server closes the WebSocket once the pong deadline has passed.
    ws_expect_close(&mut ws).await;
    let at = sent.elapsed();
    assert!(
        at >= INTERVAL + TIMEOUT_SHORT - EARLY,
        "closed after {at:?}"
    );
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::PingTimeout
    );
    assert_eq!(client.ws_refused(&ws_query(&open.sid)).await, 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_pong_on_websocket_does_not_revive_the_session() {
    let mut server = TestServer::start(config(TIMEOUT_SHORT)).await;
    let sent = Instant::now();
    let (mut ws, _open, socket) = server.open_websocket().await;
    assert_eq!(ws_text(&mut ws).await, "2");
    tokio::time::sleep_until(sent + INTERVAL + TIMEOUT_SHORT).await;
    // Whether the timer or the lazy check on this read wins, the session is over.
    let _ =
        futures_util::SinkExt::send(&mut ws, tokio_tungstenite::tungstenite::Message::text("3"))
            .await;
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::PingTimeout
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_move_to_the_websocket_after_an_upgrade() {
    let mut server = TestServer::start(config(KEEPALIVE_TIMEOUT)).await;
    let client = server.client();
    let (open, socket, sent, _) = timed_polling(&mut server).await;
    let mut ws = probe(&client, &open.sid).await;
    ws_send(&mut ws, "5").await;
    server.expect_upgrade(socket.id()).await;
    assert_eq!(socket.transport(), TransportKind::Websocket);
    assert_eq!(ws_text(&mut ws).await, "2");
    assert!(sent.elapsed() >= INTERVAL - EARLY);
    let since = Instant::now();
    ws_send(&mut ws, "3").await;
    assert_eq!(ws_text(&mut ws).await, "2");
    let gap = since.elapsed();
    assert!(gap >= INTERVAL - EARLY && gap < LATE, "ping after {gap:?}");
    ws_send(&mut ws, "3").await;
    assert!(!socket.is_closed());
    server.stop().await;
}
