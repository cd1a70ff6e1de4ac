//! A.1 / A.2: endpoint, query parameters and the open packet on both transports.

mod common;

use common::*;
use engineio::{Config, SidPrefix, TransportKind};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_handshake_sends_the_open_packet() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let res = client.get("EIO=4&transport=polling").await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=UTF-8")
    );
    let body = res.text();
    let open = parse_open(&body);
    assert_eq!(open.json["upgrades"], json!(["websocket"]));
    assert_eq!(open.json["pingInterval"], json!(25000));
    assert_eq!(open.json["pingTimeout"], json!(20000));
    assert_eq!(open.json["maxPayload"], json!(1_000_000));
    // Key order as the reference sends it.
    assert_eq!(
        body,
        format!(
            r#"0{{"sid":"{}","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#,
            open.sid
        )
    );
    // The open packet is the whole body: nothing else is pushed at open time.
    assert!(!body.contains('\x1e'));
    let socket = server.expect_open().await;
    assert_eq!(socket.id().as_str(), open.sid);
    assert_eq!(socket.transport(), TransportKind::Polling);
    assert_eq!(socket.peer_addr().map(|a| a.ip()), Some(client.addr.ip()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_values_follow_the_configuration() {
    let config = Config::builder()
        .path("/custom")
        .ping_interval(std::time::Duration::from_millis(1234))
        .ping_timeout(std::time::Duration::from_millis(567))
        .max_payload(4321)
        .build();
    let mut server = TestServer::start(config).await;
    assert_eq!(server.path, "/custom/");
    let (open, _) = server.open_polling().await;
    assert_eq!(open.json["pingInterval"], json!(1234));
    assert_eq!(open.json["pingTimeout"], json!(567));
    assert_eq!(open.json["maxPayload"], json!(4321));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sids_are_distinct() {
    let mut server = TestServer::default_echo().await;
    let a = server.open_polling().await.0;
    let b = server.open_polling().await.0;
    assert_ne!(a.sid, b.sid);
    assert_eq!(server.engine.session_count(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sids_carry_the_configured_prefix_on_both_transports() {
    let prefix: SidPrefix = "node7".parse().expect("valid prefix");
    let config = Config::builder().sid_prefix(Some(prefix.clone())).build();
    let mut server = TestServer::start(config).await;
    let (polling, _) = server.open_polling().await;
    let (mut ws, direct, _) = server.open_websocket().await;
    for open in [&polling, &direct] {
        assert_eq!(open.sid.len(), 20, "{}", open.sid);
        assert!(open.sid.starts_with("node7-"), "{}", open.sid);
        assert!(prefix.owns(&open.sid()));
    }
    assert_ne!(polling.sid, direct.sid);
    // The prefixed ids are ordinary ids: the session answers on them.
    let client = server.client();
    client.send(&polling.sid, b"4hello").await.assert_ok();
    assert_eq!(server.expect_text(polling.sid()).await, "hello");
    ws_send(&mut ws, "4hi").await;
    assert_eq!(server.expect_text(direct.sid()).await, "hi");
    server.stop().await;
}

#[test]
fn bad_sid_prefixes_are_refused_with_a_reason() {
    for bad in ["", "Node", "a-b", "toolong12"] {
        let err = bad.parse::<SidPrefix>().expect_err(bad);
        assert_eq!(
            err.to_string(),
            format!("session id prefix {bad:?} is not 1 to 8 characters a-z, 0-9")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_with_and_without_trailing_slash() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    for target in [
        "/engine.io/?EIO=4&transport=polling",
        "/engine.io?EIO=4&transport=polling",
    ] {
        let res = client.request("GET", target, &[], b"").await;
        let open = parse_open(&res.polling_body());
        let socket = server.expect_open().await;
        assert_eq!(socket.id().as_str(), open.sid, "{target}");
        // The session answers on the other form of the path too.
        socket.send(engineio::Message::text("x")).unwrap();
        let other = if target.starts_with("/engine.io/") {
            "/engine.io"
        } else {
            "/engine.io/"
        };
        let res = client
            .request(
                "GET",
                &format!("{other}?{}", poll_query(&open.sid)),
                &[],
                b"",
            )
            .await;
        assert_eq!(res.polling_body(), "4x");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_fall_through_to_the_fallback() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    for target in [
        "/",
        "/socket.io/?EIO=4&transport=polling",
        "/engine.io/x?EIO=4&transport=polling",
        "/engine.iox?EIO=4&transport=polling",
        "/favicon.ico",
    ] {
        let res = client.request("GET", target, &[], b"").await;
        assert_eq!(res.status, 404, "{target}");
        assert_eq!(res.text(), "Not Found", "{target}");
    }
    server.assert_no_event();
    assert_eq!(server.engine.session_count(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_buster_and_unknown_parameters_are_ignored() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let res = client
        .get("t=N8hyd6w&EIO=4&foo=bar&transport=polling&b64=1")
        .await;
    let open = parse_open(&res.polling_body());
    server.expect_open().await;
    let res = client
        .post(&format!("{}&t=abc&x", poll_query(&open.sid)), b"4hi")
        .await;
    res.assert_ok();
    let res = client
        .get(&format!("t=zzz&{}", poll_query(&open.sid)))
        .await;
    assert_eq!(res.polling_body(), "4hi");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_handshake_sends_the_open_packet_as_first_text_frame() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let mut ws = client
        .ws("EIO=4&transport=websocket")
        .await
        .expect("WebSocket handshake");
    let first = ws_next(&mut ws).await;
    let text = match first {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => t.as_str().to_owned(),
        other => panic!("expected the open packet as a text frame, got {other:?}"),
    };
    let open = parse_open(&text);
    assert_eq!(open.json["upgrades"], json!([]));
    assert_eq!(
        text,
        format!(
            r#"0{{"sid":"{}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#,
            open.sid
        )
    );
    let socket = server.expect_open().await;
    assert_eq!(socket.id().as_str(), open.sid);
    assert_eq!(socket.transport(), TransportKind::Websocket);
    // Nothing else follows the open packet: the next frame is the echo of what we send.
    ws_send(&mut ws, "4first").await;
    assert_eq!(ws_text(&mut ws).await, "4first");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_handshake_on_path_without_slash() {
    let mut server = TestServer::default_echo().await;
    let url = format!("ws://{}/engine.io?EIO=4&transport=websocket", server.addr);
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut ws, _) = within(
        "WebSocket handshake",
        tokio_tungstenite::client_async(url.as_str(), stream),
    )
    .await
    .expect("WebSocket handshake");
    let open = parse_open(&ws_text(&mut ws).await);
    assert_eq!(server.expect_open().await.id().as_str(), open.sid);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_exposes_request_data_to_the_handler() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let res = client
        .request(
            "GET",
            &client.target("EIO=4&transport=polling&name=a%20b"),
            &[("X-Test", "yes")],
            b"",
        )
        .await;
    parse_open(&res.polling_body());
    let socket = server.expect_open().await;
    let hs = socket.handshake();
    assert_eq!(hs.query_param("name").as_deref(), Some("a b"));
    assert_eq!(hs.query_param("transport").as_deref(), Some("polling"));
    assert_eq!(hs.headers.get_str("x-test"), Some("yes"));
    assert!(hs.peer_addr.is_some());
    assert!(!hs.secure);
    server.stop().await;
}
