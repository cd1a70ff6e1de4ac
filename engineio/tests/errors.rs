//! A.3: the HTTP error table, each case with exact status, content type and body, and the
//! order of the checks.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::*;
use engineio::Config;

const UNKNOWN_TRANSPORT: (u16, u8, &str) = (400, 0, "Transport unknown");
const UNKNOWN_SID: (u16, u8, &str) = (400, 1, "Session ID unknown");
const BAD_HANDSHAKE_METHOD: (u16, u8, &str) = (400, 2, "Bad handshake method");
const BAD_REQUEST: (u16, u8, &str) = (400, 3, "Bad request");
const UNSUPPORTED_PROTOCOL: (u16, u8, &str) = (400, 5, "Unsupported protocol version");

fn check(res: &Resp, (status, code, message): (u16, u8, &str)) {
    res.assert_error(status, code, message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_0_transport_unknown() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    for query in [
        "EIO=4",
        "EIO=4&transport=abc",
        "EIO=4&transport=",
        "EIO=4&transport=Polling",
        // Transport is checked before the protocol version: 0, not 5.
        "transport=abc",
        "EIO=3&transport=abc",
        "",
    ] {
        let res = client.get(query).await;
        check(&res, UNKNOWN_TRANSPORT);
        // Also with a method other than GET and with a sid.
        let res = client.post(query, b"4x").await;
        check(&res, UNKNOWN_TRANSPORT);
    }
    let res = client
        .get("EIO=4&transport=abc&sid=AAAAAAAAAAAAAAAAAAAA")
        .await;
    check(&res, UNKNOWN_TRANSPORT);
    server.assert_no_event();
    assert_eq!(server.engine.session_count(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_1_unknown_sid() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    for sid in [
        "AAAAAAAAAAAAAAAAAAAA",
        "nope",
        "",
        "a+b/c",
        "AAAAAAAAAAAAAAAAAAAAA",
    ] {
        check(&client.poll(sid).await, UNKNOWN_SID);
        check(&client.send(sid, b"4x").await, UNKNOWN_SID);
    }
    // A sid that belongs to a session that was open, then closed.
    let (open, socket) = server.open_polling().await;
    client.send(&open.sid, b"1").await.assert_ok();
    assert_eq!(
        server.expect_close(socket.id()).await,
        engineio::CloseReason::TransportClose
    );
    check(&client.poll(&open.sid).await, UNKNOWN_SID);
    check(&client.send(&open.sid, b"4x").await, UNKNOWN_SID);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_2_bad_handshake_method() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let res = client
            .request(
                method,
                &client.target("EIO=4&transport=polling"),
                &[],
                b"4x",
            )
            .await;
        check(&res, BAD_HANDSHAKE_METHOD);
    }
    // Checked before the protocol version.
    let res = client.post("transport=polling", b"").await;
    check(&res, BAD_HANDSHAKE_METHOD);
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_3_websocket_transport_without_upgrade() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    check(&client.get("EIO=4&transport=websocket").await, BAD_REQUEST);
    // Checked before the protocol version.
    check(&client.get("transport=websocket").await, BAD_REQUEST);
    // With the sid of a polling session: a WebSocket request without Upgrade headers.
    let (open, socket) = server.open_polling().await;
    check(&client.get(&ws_query(&open.sid)).await, BAD_REQUEST);
    // The polling session is unaffected.
    socket.send(engineio::Message::text("still")).unwrap();
    assert_eq!(client.poll(&open.sid).await.polling_body(), "4still");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_3_polling_on_a_websocket_session() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (mut ws, open, socket) = server.open_websocket().await;
    check(&client.poll(&open.sid).await, BAD_REQUEST);
    check(&client.send(&open.sid, b"4x").await, BAD_REQUEST);
    // The WebSocket session goes on.
    assert!(!socket.is_closed());
    ws_send(&mut ws, "4alive").await;
    assert_eq!(server.expect_text(socket.id()).await, "alive");
    assert_eq!(ws_text(&mut ws).await, "4alive");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_3_polling_after_upgrade() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut ws = probe(&client, &open.sid).await;
    ws_send(&mut ws, "5").await;
    server.expect_upgrade(socket.id()).await;
    check(&client.poll(&open.sid).await, BAD_REQUEST);
    check(&client.send(&open.sid, b"4x").await, BAD_REQUEST);
    assert!(!socket.is_closed());
    server.stop().await;
}

/// What the allow-request hook saw.
#[derive(Debug, Clone)]
struct Seen {
    header: Option<String>,
    query: Option<String>,
    path: String,
    peer: Option<SocketAddr>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_4_allow_request_refuses() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let config = Config::builder()
        .allow_request({
            let seen = seen.clone();
            move |parts, peer| {
                let header = parts
                    .headers
                    .get("x-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                seen.lock().unwrap().push(Seen {
                    header: header.clone(),
                    query: parts.uri.query().map(str::to_owned),
                    path: parts.uri.path().to_owned(),
                    peer,
                });
                match header.as_deref() {
                    Some("good") => Ok(()),
                    Some("empty") => Err(String::new()),
                    _ => Err("go away".to_owned()),
                }
            }
        })
        .build();
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let target = client.target("EIO=4&transport=polling&user=bob");

    let res = client.request("GET", &target, &[], b"").await;
    res.assert_error(403, 4, "go away");
    let res = client
        .request("GET", &target, &[("X-Token", "empty")], b"")
        .await;
    res.assert_error(403, 4, "Forbidden");
    server.assert_no_event();

    let res = client
        .request("GET", &target, &[("X-Token", "good")], b"")
        .await;
    parse_open(&res.polling_body());
    server.expect_open().await;

    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        let last = &seen[2];
        assert_eq!(last.header.as_deref(), Some("good"));
        assert_eq!(
            last.query.as_deref(),
            Some("EIO=4&transport=polling&user=bob")
        );
        assert_eq!(last.path, "/engine.io/");
        let peer = last.peer.expect("peer address");
        assert_eq!(peer.ip(), client.addr.ip());
        assert_ne!(peer.port(), client.addr.port());
    }

    // The hook runs before the protocol-version check: a refused request with EIO=3 gets 4.
    let res = client
        .request("GET", &client.target("EIO=3&transport=polling"), &[], b"")
        .await;
    res.assert_error(403, 4, "go away");

    // A refused WebSocket handshake gets 403 and no session.
    assert_eq!(client.ws_refused("EIO=4&transport=websocket").await, 403);
    server.assert_no_event();
    assert_eq!(server.engine.session_count(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_request_is_not_consulted_for_established_sessions() {
    let calls = Arc::new(Mutex::new(0usize));
    let config = Config::builder()
        .allow_request({
            let calls = calls.clone();
            move |_, _| {
                let mut n = calls.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    Ok(())
                } else {
                    Err("only once".into())
                }
            }
        })
        .build();
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    client.send(&open.sid, b"4a").await.assert_ok();
    assert_eq!(server.expect_text(socket.id()).await, "a");
    assert_eq!(client.poll(&open.sid).await.polling_body(), "4a");
    let mut ws = probe(&client, &open.sid).await;
    ws_send(&mut ws, "5").await;
    server.expect_upgrade(socket.id()).await;
    assert_eq!(*calls.lock().unwrap(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_5_unsupported_protocol_version() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    for query in [
        "transport=polling",
        "EIO=3&transport=polling",
        "EIO=abc&transport=polling",
        "EIO=&transport=polling",
        "EIO=5&transport=polling",
        "EIO=04&transport=polling",
    ] {
        check(&client.get(query).await, UNSUPPORTED_PROTOCOL);
    }
    server.assert_no_event();
    assert_eq!(server.engine.session_count(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_requests_failing_verification_get_400_and_no_session() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    for query in [
        // Unknown sid.
        "EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAA",
        "EIO=4&transport=websocket&sid=bad",
        // Bad protocol version.
        "EIO=3&transport=websocket",
        "transport=websocket",
        // Unknown transport.
        "EIO=4&transport=abc",
    ] {
        assert_eq!(client.ws_refused(query).await, 400, "{query}");
    }
    server.assert_no_event();
    assert_eq!(server.engine.session_count(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_websocket_upgrade_answers_raw_json_400_and_closes_the_connection() {
    let server = TestServer::default_echo().await;
    let client = server.client();
    let bytes = request_bytes(
        "GET",
        &client.target("EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAA"),
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        b"",
    );
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, &bytes)
        .await
        .unwrap();
    let res = within("the refusal", read_response(&mut stream))
        .await
        .unwrap();
    check(&res, UNKNOWN_SID);
    // The server does not keep the connection: it reads EOF.
    let mut rest = Vec::new();
    let n = within(
        "the connection to close",
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest),
    )
    .await
    .unwrap_or(0);
    assert_eq!(n, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_with_illegal_characters_is_refused() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    // DEL is not a legal header-value byte. hyper's parser refuses such a request before it
    // reaches the Engine.IO server, so the answer is hyper's bare 400, not the JSON code 3.
    for origin in [&b"http://a\x7fb.test"[..], &b"http://a\x01b.test"[..]] {
        let mut bytes = format!(
            "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: ",
            client.target("EIO=4&transport=polling")
        )
        .into_bytes();
        bytes.extend_from_slice(origin);
        bytes.extend_from_slice(b"\r\n\r\n");
        let res = within("the refusal", raw_request(server.addr, bytes))
            .await
            .unwrap();
        assert_eq!(res.status, 400, "{res:?}");
        assert_eq!(res.header("connection"), Some("close"), "{res:?}");
        assert!(res.body.is_empty(), "{res:?}");
    }
    server.assert_no_event();
    assert_eq!(server.engine.session_count(), 0);
    // A legal but unusual origin (obs-text) goes through.
    let bytes = format!(
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://\u{e9}.test\r\n\r\n",
        client.target("EIO=4&transport=polling")
    )
    .into_bytes();
    let res = within("the handshake", raw_request(server.addr, bytes))
        .await
        .unwrap();
    parse_open(&res.polling_body());
    server.expect_open().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_order_transport_then_sid_then_method() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    // sid given: sid existence is checked, not the handshake method or EIO.
    let res = client
        .request(
            "PUT",
            &client.target("transport=polling&sid=AAAAAAAAAAAAAAAAAAAA"),
            &[],
            b"",
        )
        .await;
    check(&res, UNKNOWN_SID);
    // A known sid with an unsupported method.
    let (open, _socket) = server.open_polling().await;
    let res = client
        .request("PUT", &client.target(&poll_query(&open.sid)), &[], b"4x")
        .await;
    check(&res, BAD_REQUEST);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_key_that_is_not_16_bytes_in_base64_is_refused() {
    let server = TestServer::default_echo().await;
    let client = server.client();
    for key in [
        "!!!",
        "",
        "dGhlIHNhbXBsZSBub25jZQ",
        "dGhlIHNhbXBsZSBub25jZSE=",
        "dGhlIHNhbXBsZSBub25jZQ==x",
    ] {
        let bytes = request_bytes(
            "GET",
            &client.target("EIO=4&transport=websocket"),
            &[
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", key),
            ],
            b"",
        );
        let res = raw_request(server.addr, bytes).await.expect("answer");
        check(&res, BAD_REQUEST);
    }
    server.stop().await;
}
