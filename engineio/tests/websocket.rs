//! A.6 / A.9 / A.10: the WebSocket transport for sessions that start on WebSocket.

mod common;

use common::*;
use engineio::{CloseReason, Config, Message};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_echo() {
    let mut server = TestServer::default_echo().await;
    let (mut ws, _open, socket) = server.open_websocket().await;
    for text in ["4hello", "4", "4h\u{e9}llo \u{1f389}", "4a\x1eb"] {
        ws_send(&mut ws, text).await;
        assert_eq!(server.expect_text(socket.id()).await, &text[1..]);
        assert_eq!(ws_text(&mut ws).await, text);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_packet_per_frame() {
    let mut server = TestServer::start_with(Config::default(), false).await;
    let (mut ws, _open, socket) = server.open_websocket().await;
    socket.send(Message::text("a")).unwrap();
    socket.send(Message::binary(vec![9u8, 8])).unwrap();
    socket.send(Message::text("b")).unwrap();
    socket
        .send_all(&[Message::text("c"), Message::binary(vec![7u8])])
        .unwrap();
    assert_eq!(ws_text(&mut ws).await, "4a");
    assert_eq!(ws_binary(&mut ws).await, [9, 8]);
    assert_eq!(ws_text(&mut ws).await, "4b");
    assert_eq!(ws_text(&mut ws).await, "4c");
    assert_eq!(ws_binary(&mut ws).await, [7]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_of_every_length_interleave_cleanly_with_pongs() {
    let mut server = TestServer::start_with(Config::default(), false).await;
    let (mut ws, _open, socket) = server.open_websocket().await;
    // Lengths around the 7-bit, 16-bit and 64-bit header forms and the server's copy limit.
    let sizes = [0usize, 125, 126, 16_383, 16_384, 65_535, 65_536, 200_000];
    within("ping", ws.send(WsMessage::Ping(b"p1".to_vec().into())))
        .await
        .unwrap();
    let mut expected = Vec::new();
    for &n in &sizes {
        socket.send(Message::text("x".repeat(n))).unwrap();
        socket.send(Message::binary(vec![7u8; n])).unwrap();
        expected.push(WsMessage::text(format!("4{}", "x".repeat(n))));
        expected.push(WsMessage::binary(vec![7u8; n]));
    }
    within("ping", ws.send(WsMessage::Ping(b"p2".to_vec().into())))
        .await
        .unwrap();
    socket.send(Message::text("end")).unwrap();
    expected.push(WsMessage::text("4end"));
    let (mut data, mut pongs) = (Vec::new(), Vec::new());
    while data.len() < expected.len() || pongs.len() < 2 {
        match within("a frame", ws.next()).await {
            Some(Ok(WsMessage::Pong(p))) => pongs.push(p.to_vec()),
            Some(Ok(WsMessage::Ping(_))) => {}
            Some(Ok(m)) => data.push(m),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pongs, [b"p1".to_vec(), b"p2".to_vec()]);
    assert!(data == expected, "frames differ");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_is_raw_both_ways() {
    let mut server = TestServer::default_echo().await;
    let (mut ws, _open, socket) = server.open_websocket().await;
    for data in [vec![1u8, 2, 3, 4], vec![], vec![0x34, 0x62]] {
        within("send", ws.send(WsMessage::binary(data.clone())))
            .await
            .unwrap();
        assert_eq!(
            server.expect_message(socket.id()).await,
            Message::binary(data.clone())
        );
        // No type byte, no base64.
        assert_eq!(ws_binary(&mut ws).await, data);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_max_payload_closes_with_1009() {
    let config = Config::builder().max_payload(100).build();
    let mut server = TestServer::start(config).await;
    let (mut ws, open, socket) = server.open_websocket().await;
    assert_eq!(open.json["maxPayload"], 100);
    // At the limit: fine.
    let ok = format!("4{}", "a".repeat(99));
    ws_send(&mut ws, &ok).await;
    assert_eq!(ws_text(&mut ws).await, ok);
    server.expect_message(socket.id()).await;
    // Over the limit.
    ws_send(&mut ws, &format!("4{}", "a".repeat(150))).await;
    let frame = ws_expect_close(&mut ws)
        .await
        .expect("a close frame with a code");
    assert_eq!(frame.code, CloseCode::Size);
    assert_eq!(u16::from(frame.code), 1009);
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportError
    );
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_over_max_payload_still_gets_its_1009() {
    // The server stops reading at the frame header while megabytes are still on their way: it
    // must not reset the connection (which would discard its close frame at the client).
    let config = Config::builder().max_payload(1000).build();
    let mut server = TestServer::start(config).await;
    let (ws, _open, socket) = server.open_websocket().await;
    let (mut tx, mut rx) = ws.split();
    let big = format!("4{}", "a".repeat(4 << 20));
    let sending = tokio::spawn(async move {
        let sent = tx.send(WsMessage::text(big)).await;
        (sent, tx)
    });
    let frame = within("the close frame", async {
        loop {
            match rx.next().await {
                Some(Ok(WsMessage::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1009);
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportError
    );
    // The rest of the message was read and discarded, not refused with a reset.
    let (sent, tx) = within("the send to end", sending).await.expect("task");
    assert!(sent.is_ok(), "the server reset the connection: {sent:?}");
    drop((tx, rx));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_over_max_payload_closes_with_1009() {
    let config = Config::builder().max_payload(100).build();
    let mut server = TestServer::start(config).await;
    let (mut ws, _open, socket) = server.open_websocket().await;
    within("send", ws.send(WsMessage::binary(vec![0u8; 101])))
        .await
        .unwrap();
    let frame = ws_expect_close(&mut ws)
        .await
        .expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1009);
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportError
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_text_frame_closes_with_parse_error() {
    let mut server = TestServer::default_echo().await;
    for bad in ["abc", "", "7"] {
        let (mut ws, _open, socket) = server.open_websocket().await;
        ws_send(&mut ws, bad).await;
        ws_expect_close(&mut ws).await;
        assert_eq!(
            server.expect_close(socket.id()).await,
            CloseReason::ParseError,
            "{bad:?}"
        );
    }
    server.assert_no_event();
    assert_eq!(server.engine.session_count(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ping_closes_with_transport_error() {
    let mut server = TestServer::default_echo().await;
    for ping in ["2", "2probe"] {
        let (mut ws, _open, socket) = server.open_websocket().await;
        ws_send(&mut ws, ping).await;
        ws_expect_close(&mut ws).await;
        assert_eq!(
            server.expect_close(socket.id()).await,
            CloseReason::TransportError,
            "{ping:?}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_noop_and_pong_are_ignored() {
    let mut server = TestServer::default_echo().await;
    let (mut ws, _open, socket) = server.open_websocket().await;
    for ignored in ["5", "6", "3", "0"] {
        ws_send(&mut ws, ignored).await;
    }
    ws_send(&mut ws, "4still here").await;
    assert_eq!(server.expect_text(socket.id()).await, "still here");
    assert_eq!(ws_text(&mut ws).await, "4still here");
    assert!(!socket.is_closed());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_packet_closes_the_session() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (mut ws, open, socket) = server.open_websocket().await;
    ws_send(&mut ws, "1").await;
    ws_expect_close(&mut ws).await;
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportClose
    );
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    assert_eq!(client.ws_refused(&ws_query(&open.sid)).await, 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_frame_closes_the_session() {
    let mut server = TestServer::default_echo().await;
    let (mut ws, _open, socket) = server.open_websocket().await;
    within("close", ws.close(None)).await.unwrap();
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportClose
    );
    assert_eq!(server.engine.session_count(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_tcp_connection_closes_the_session() {
    let mut server = TestServer::default_echo().await;
    let (ws, _open, socket) = server.open_websocket().await;
    drop(ws);
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportClose
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_websocket_for_a_websocket_session_is_accepted_then_closed() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (mut ws, open, socket) = server.open_websocket().await;
    let mut second = client
        .ws(&ws_query(&open.sid))
        .await
        .expect("101 for the second WebSocket");
    ws_expect_close(&mut second).await;
    // The first one is unaffected.
    ws_send(&mut ws, "4still").await;
    assert_eq!(ws_text(&mut ws).await, "4still");
    assert_eq!(server.expect_text(socket.id()).await, "still");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_only_server() {
    let config = Config::builder()
        .transports([engineio::TransportKind::Websocket])
        .build();
    let mut server = TestServer::start(config).await;
    let (mut ws, open, _socket) = server.open_websocket().await;
    assert_eq!(open.json["upgrades"], serde_json::json!([]));
    ws_send(&mut ws, "4x").await;
    assert_eq!(ws_text(&mut ws).await, "4x");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_stops_reading_is_dropped_after_ping_timeout() {
    let config = Config::builder()
        .ping_interval(std::time::Duration::from_millis(300))
        .ping_timeout(std::time::Duration::from_millis(200))
        .max_buffered_bytes(64 << 10)
        .slow_consumer(engineio::SlowConsumerPolicy::DropMessage)
        .build();
    let mut server = TestServer::start_with(config, false).await;
    let (mut ws, _open, socket) = server.open_websocket().await;
    // The client reads nothing from here on: the server fills the socket buffers until the
    // writer blocks. The ping can no longer get through, so the session ends by ping timeout.
    let chunk = Message::binary(vec![0u8; 64 << 10]);
    let mut accepted = 0usize;
    within("the session to close", async {
        loop {
            match socket.send(chunk.clone()) {
                Ok(()) => accepted += 1,
                Err(engineio::SendError::Full) => {}
                Err(engineio::SendError::Closed) => break,
                Err(other) => panic!("{other:?}"),
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(accepted > 1);
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::PingTimeout
    );
    // The blocked connection does not keep the server from shutting down.
    server.stop().await;
    // The server dropped the connection: reading ends (in an error or EOF) after the data.
    within("the connection to end", async {
        while let Some(Ok(_)) = futures_util::StreamExt::next(&mut ws).await {}
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_per_message_deflate_and_open_packet_right_after_101() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let bytes = request_bytes(
        "GET",
        &client.target("EIO=4&transport=websocket"),
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            (
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            ),
        ],
        b"",
    );
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, &bytes)
        .await
        .unwrap();
    let res = within("the 101", read_upgrade_head(&mut stream))
        .await
        .unwrap();
    assert_eq!(res.status, 101, "{res:?}");
    assert_eq!(
        res.header("sec-websocket-accept"),
        // RFC 6455, section 1.3.
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    // perMessageDeflate is off: the extension is not accepted.
    assert_eq!(res.header("sec-websocket-extensions"), None);
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        stream,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let open = parse_open(&ws_text(&mut ws).await);
    assert_eq!(server.expect_open().await.id().as_str(), open.sid);
    server.stop().await;
}
