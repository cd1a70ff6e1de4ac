//! Part C: Engine.IO v3 sessions (old clients), behind `Config::allow_eio3` (off by default).
//!
//! The heartbeat tests let time pass on purpose (short intervals): the deadlines are what they
//! assert. Everything else waits on responses and handler events.

mod common;

use std::time::Duration;

use common::*;
use engineio::{CloseReason, Config, Message, Protocol, TransportKind};
use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT_SHORT: Duration = Duration::from_millis(200);
const EARLY: Duration = Duration::from_millis(5);

fn v3_config() -> Config {
    Config::builder().allow_eio3(true).build()
}

fn v3_poll(sid: &str) -> String {
    format!("EIO=3&transport=polling&sid={sid}")
}

/// Strips the v3 framing of a payload holding exactly one packet.
fn single(body: &str) -> String {
    let (len, packet) = body.split_once(':').expect("framed payload");
    assert_eq!(
        len.parse::<usize>().expect("length"),
        packet.encode_utf16().count(),
        "{body:?}"
    );
    packet.to_owned()
}

/// A v3 polling handshake (optionally `b64=1`): the open packet, and the server-side socket.
async fn handshake(server: &mut TestServer, b64: bool) -> (Open, engineio::Socket) {
    let query = if b64 {
        "EIO=3&transport=polling&b64=1"
    } else {
        "EIO=3&transport=polling"
    };
    let res = server.client().get(query).await;
    let body = res.polling_body();
    let open = parse_open(&single(&body));
    let socket = server.expect_open().await;
    assert_eq!(socket.protocol(), Protocol::V3);
    (open, socket)
}

#[tokio::test]
async fn v3_is_refused_by_default_exactly_as_before() {
    let server = TestServer::default_echo().await;
    let client = server.client();
    for query in [
        "EIO=3&transport=polling",
        "EIO=3&transport=polling&b64=1",
        "EIO=2&transport=polling",
        "transport=polling",
    ] {
        client
            .get(query)
            .await
            .assert_error(400, 5, "Unsupported protocol version");
    }
    assert_eq!(client.ws_refused("EIO=3&transport=websocket").await, 400);
    assert_eq!(server.engine.session_count(), 0);
    server.stop().await;
}

#[tokio::test]
async fn with_the_flag_only_eio_3_and_4_are_accepted() {
    let mut server = TestServer::start(v3_config()).await;
    let client = server.client();
    for query in [
        "EIO=2&transport=polling",
        "transport=polling",
        "EIO=x&transport=polling",
    ] {
        client
            .get(query)
            .await
            .assert_error(400, 5, "Unsupported protocol version");
    }
    // v4 clients are unaffected.
    let open = client.handshake().await;
    let socket = server.expect_open().await;
    assert_eq!(socket.protocol(), Protocol::V4);
    assert_eq!(socket.id().as_str(), open.sid);
    server.stop().await;
}

#[tokio::test]
async fn polling_handshake_is_framed_and_text_payloads_are_length_prefixed() {
    let mut server = TestServer::start(v3_config()).await;
    let client = server.client();
    let res = client.get("EIO=3&transport=polling").await;
    let body = res.polling_body();
    let open = parse_open(&single(&body));
    assert_eq!(open.json["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(open.json["pingInterval"], 25000);
    let socket = server.expect_open().await;
    assert_eq!(socket.protocol(), Protocol::V3);
    assert_eq!(socket.transport(), TransportKind::Polling);
    let sid = open.sid.clone();
    // Two messages, one with characters outside the BMP (two UTF-16 units each).
    client
        .post(&v3_poll(&sid), "6:4hello4:4é🎉".as_bytes())
        .await
        .assert_ok();
    assert_eq!(server.expect_text(socket.id()).await, "hello");
    assert_eq!(server.expect_text(socket.id()).await, "é🎉");
    let res = client.get(&v3_poll(&sid)).await;
    assert_eq!(res.polling_body(), "6:4hello4:4é🎉");
    // Bad framing closes the session.
    client.post(&v3_poll(&sid), b"9:4hi").await;
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::ParseError
    );
    server.stop().await;
}

#[tokio::test]
async fn client_ping_is_answered_with_pong_on_polling_and_websocket() {
    let mut server = TestServer::start(v3_config()).await;
    let client = server.client();
    let (open, _socket) = handshake(&mut server, false).await;
    client.post(&v3_poll(&open.sid), b"1:2").await.assert_ok();
    assert_eq!(client.get(&v3_poll(&open.sid)).await.polling_body(), "1:3");

    let mut ws = client
        .ws("EIO=3&transport=websocket")
        .await
        .expect("WebSocket");
    let open = parse_open(&ws_text(&mut ws).await);
    assert_eq!(open.json["upgrades"], serde_json::json!([]));
    let socket = server.expect_open().await;
    assert_eq!(socket.protocol(), Protocol::V3);
    ws_send(&mut ws, "2").await;
    assert_eq!(ws_text(&mut ws).await, "3");
    ws_send(&mut ws, "4text").await;
    assert_eq!(server.expect_text(socket.id()).await, "text");
    assert_eq!(ws_text(&mut ws).await, "4text");
    server.stop().await;
}

#[tokio::test]
async fn websocket_binary_frames_carry_the_type_byte() {
    let mut server = TestServer::start(v3_config()).await;
    let mut ws = server
        .client()
        .ws("EIO=3&transport=websocket")
        .await
        .expect("WebSocket");
    parse_open(&ws_text(&mut ws).await);
    let socket = server.expect_open().await;
    within("send", ws.send(WsMessage::binary(vec![4u8, 1, 2, 3])))
        .await
        .expect("send");
    assert_eq!(
        server.expect_message(socket.id()).await,
        Message::binary(vec![1u8, 2, 3])
    );
    assert_eq!(ws_binary(&mut ws).await, vec![4u8, 1, 2, 3]);
    // A binary frame with another type byte is a parse error.
    within("send", ws.send(WsMessage::binary(vec![9u8, 1])))
        .await
        .expect("send");
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::ParseError
    );
    server.stop().await;
}

#[tokio::test]
async fn polling_binary_as_base64_when_the_handshake_asked_for_b64() {
    let mut server = TestServer::start(v3_config()).await;
    let client = server.client();
    let (open, socket) = handshake(&mut server, true).await;
    client
        .post(&v3_poll(&open.sid), b"10:b4AQIDBA==6:4hello")
        .await
        .assert_ok();
    assert_eq!(
        server.expect_message(socket.id()).await,
        Message::binary(vec![1u8, 2, 3, 4])
    );
    assert_eq!(server.expect_text(socket.id()).await, "hello");
    // Later requests do not repeat `b64`: the handshake's choice holds.
    let res = client.get(&v3_poll(&open.sid)).await;
    assert_eq!(res.polling_body(), "10:b4AQIDBA==6:4hello");
    server.stop().await;
}

#[tokio::test]
async fn polling_binary_as_xhr2_payloads_both_ways() {
    let mut server = TestServer::start(v3_config()).await;
    let client = server.client();
    let (open, socket) = handshake(&mut server, false).await;
    let mut body = vec![1u8, 5, 0xFF, 4, 1, 2, 3, 4, 0, 6, 0xFF];
    body.extend_from_slice(b"4hello");
    client
        .request(
            "POST",
            &client.target(&v3_poll(&open.sid)),
            &[("Content-Type", "application/octet-stream")],
            &body,
        )
        .await
        .assert_ok();
    assert_eq!(
        server.expect_message(socket.id()).await,
        Message::binary(vec![1u8, 2, 3, 4])
    );
    assert_eq!(server.expect_text(socket.id()).await, "hello");
    let res = client.get(&v3_poll(&open.sid)).await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type"),
        Some("application/octet-stream"),
        "{res:?}"
    );
    assert_eq!(res.body, body);
    // Text only: the text framing again.
    client.post(&v3_poll(&open.sid), b"3:4ok").await.assert_ok();
    assert_eq!(server.expect_text(socket.id()).await, "ok");
    assert_eq!(
        client.get(&v3_poll(&open.sid)).await.polling_body(),
        "3:4ok"
    );
    server.stop().await;
}

#[tokio::test]
async fn upgrade_with_probe() {
    let mut server = TestServer::start(v3_config()).await;
    let client = server.client();
    let (open, socket) = handshake(&mut server, true).await;
    let sid = socket.id();
    let pending = client.spawn_poll(&open.sid);
    let mut ws = client
        .ws(&format!("EIO=3&transport=websocket&sid={}", open.sid))
        .await
        .expect("probe WebSocket");
    ws_send(&mut ws, "2probe").await;
    assert_eq!(ws_text(&mut ws).await, "3probe");
    // The pending GET is released with a framed noop.
    let released = join_resp("the pending GET", pending).await;
    assert_eq!(released.polling_body(), "1:6");
    ws_send(&mut ws, "5").await;
    server.expect_upgrade(sid).await;
    assert_eq!(socket.transport(), TransportKind::Websocket);
    ws_send(&mut ws, "4after").await;
    assert_eq!(server.expect_text(sid).await, "after");
    assert_eq!(ws_text(&mut ws).await, "4after");
    within("send", ws.send(WsMessage::binary(vec![4u8, 7])))
        .await
        .expect("send");
    assert_eq!(server.expect_message(sid).await, Message::binary(vec![7u8]));
    assert_eq!(ws_binary(&mut ws).await, vec![4u8, 7]);
    ws_send(&mut ws, "2").await;
    assert_eq!(ws_text(&mut ws).await, "3");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_ping_times_out_at_interval_plus_timeout_and_the_server_never_pings() {
    let config = Config::builder()
        .allow_eio3(true)
        .ping_interval(INTERVAL)
        .ping_timeout(TIMEOUT_SHORT)
        .build();
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let sent = Instant::now();
    let (open, socket) = handshake(&mut server, false).await;
    // Held until the session dies: no `2` from the server, only the close packet.
    let res = client.get(&v3_poll(&open.sid)).await;
    let at = sent.elapsed();
    assert_eq!(res.polling_body(), "1:1");
    assert!(
        at >= INTERVAL + TIMEOUT_SHORT - EARLY,
        "closed after {at:?}"
    );
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::PingTimeout
    );
    client
        .get(&v3_poll(&open.sid))
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pings_keep_the_session_alive() {
    let config = Config::builder()
        .allow_eio3(true)
        .ping_interval(INTERVAL)
        .ping_timeout(TIMEOUT_SHORT)
        .build();
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let t0 = Instant::now();
    let (open, socket) = handshake(&mut server, false).await;
    let mut last_ping = t0;
    // Ping every interval, well past the first deadline (t0 + 500 ms).
    for round in 1..=3u32 {
        tokio::time::sleep_until(t0 + INTERVAL * round).await;
        last_ping = Instant::now();
        client.post(&v3_poll(&open.sid), b"1:2").await.assert_ok();
        assert_eq!(client.get(&v3_poll(&open.sid)).await.polling_body(), "1:3");
    }
    assert!(!socket.is_closed());
    // Then silence: gone no earlier than the last ping + interval + timeout.
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::PingTimeout
    );
    let at = last_ping.elapsed();
    assert!(
        at >= INTERVAL + TIMEOUT_SHORT - EARLY,
        "closed {at:?} after the last ping"
    );
    server.stop().await;
}
