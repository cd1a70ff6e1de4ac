//! Server options on the wire: CORS, the sticky cookie, transports, upgrades, HTTP compression,
//! the outgoing queue limit (slow consumers) and volatile messages.

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;
use engineio::{
    AllowOrigin, CloseReason, Config, Cookie, Cors, Message, SendError, SlowConsumerPolicy,
    TransportKind,
};
use serde_json::json;

const ALLOWED: &str = "http://allowed.test";

fn cors_config(origin: AllowOrigin, credentials: bool) -> Config {
    Config::builder()
        .cors(Cors {
            origin,
            credentials,
            max_age: Some(Duration::from_secs(600)),
        })
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allowed_origin_gets_headers_on_every_answer() {
    let config = cors_config(AllowOrigin::List(vec![ALLOWED.into()]), true);
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let origin = [("Origin", ALLOWED)];

    let res = client
        .request(
            "GET",
            &client.target("EIO=4&transport=polling"),
            &origin,
            b"",
        )
        .await;
    let open = parse_open(&res.polling_body());
    let socket = server.expect_open().await;
    assert_eq!(res.header("access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(res.header("access-control-allow-credentials"), Some("true"));
    assert!(res.header_all("vary").iter().any(|v| v.contains("Origin")));

    let target = client.target(&poll_query(&open.sid));
    let res = client.request("POST", &target, &origin, b"4x").await;
    res.assert_ok();
    assert_eq!(res.header("access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(res.header("access-control-allow-credentials"), Some("true"));
    server.expect_message(socket.id()).await;

    let res = client.request("GET", &target, &origin, b"").await;
    assert_eq!(res.polling_body(), "4x");
    assert_eq!(res.header("access-control-allow-origin"), Some(ALLOWED));

    // Error answers carry them too, so the browser can read the error.
    let res = client
        .request("GET", &client.target("EIO=4&transport=abc"), &origin, b"")
        .await;
    res.assert_error(400, 0, "Transport unknown");
    assert_eq!(res.header("access-control-allow-origin"), Some(ALLOWED));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight() {
    let config = cors_config(AllowOrigin::List(vec![ALLOWED.into()]), true);
    let server = TestServer::start(config).await;
    let client = server.client();
    let res = client
        .request(
            "OPTIONS",
            &client.target("EIO=4&transport=polling"),
            &[
                ("Origin", ALLOWED),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type,x-custom"),
            ],
            b"",
        )
        .await;
    assert_eq!(res.status, 204, "{res:?}");
    assert!(res.body.is_empty());
    assert_eq!(res.header("access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(res.header("access-control-allow-credentials"), Some("true"));
    let methods = res
        .header("access-control-allow-methods")
        .expect("allow-methods")
        .to_ascii_uppercase();
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );
    let headers = res
        .header("access-control-allow-headers")
        .expect("allow-headers")
        .to_ascii_lowercase();
    assert!(
        headers.contains("content-type") && headers.contains("x-custom"),
        "{headers}"
    );
    assert_eq!(res.header("access-control-max-age"), Some("600"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_disallowed_origin_gets_no_headers() {
    let config = cors_config(AllowOrigin::List(vec![ALLOWED.into()]), true);
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let origin = [("Origin", "http://evil.test")];
    let res = client
        .request(
            "GET",
            &client.target("EIO=4&transport=polling"),
            &origin,
            b"",
        )
        .await;
    parse_open(&res.polling_body());
    server.expect_open().await;
    for name in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
    ] {
        assert_eq!(res.header(name), None, "{name}");
    }
    let res = client
        .request(
            "OPTIONS",
            &client.target("EIO=4&transport=polling"),
            &[
                ("Origin", "http://evil.test"),
                ("Access-Control-Request-Method", "POST"),
            ],
            b"",
        )
        .await;
    for name in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-methods",
    ] {
        assert_eq!(res.header(name), None, "{name}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_any_origin() {
    let server = TestServer::start(cors_config(AllowOrigin::Any, false)).await;
    let client = server.client();
    let res = client
        .request(
            "GET",
            &client.target("EIO=4&transport=polling"),
            &[("Origin", "http://anything.test")],
            b"",
        )
        .await;
    parse_open(&res.polling_body());
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert_eq!(res.header("access-control-allow-credentials"), None);
    server.stop().await;

    // With credentials the origin is echoed: `*` is not allowed with credentials.
    let server = TestServer::start(cors_config(AllowOrigin::Any, true)).await;
    let client = server.client();
    let res = client
        .request(
            "GET",
            &client.target("EIO=4&transport=polling"),
            &[("Origin", "http://anything.test")],
            b"",
        )
        .await;
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("http://anything.test")
    );
    assert_eq!(res.header("access-control-allow-credentials"), Some("true"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cors_by_default() {
    let server = TestServer::default_echo().await;
    let client = server.client();
    let res = client
        .request(
            "GET",
            &client.target("EIO=4&transport=polling"),
            &[("Origin", ALLOWED)],
            b"",
        )
        .await;
    parse_open(&res.polling_body());
    assert_eq!(res.header("access-control-allow-origin"), None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_on_the_handshake() {
    let config = Config::builder().cookie(Cookie::default()).build();
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let res = client.get("EIO=4&transport=polling").await;
    let open = parse_open(&res.polling_body());
    server.expect_open().await;
    assert_eq!(
        res.header_all("set-cookie"),
        [format!("io={}; Path=/; HttpOnly; SameSite=Lax", open.sid)]
    );
    // Only the handshake sets it.
    let res = client.send(&open.sid, b"4x").await;
    assert_eq!(res.header("set-cookie"), None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_cookie_and_no_cookie_by_default() {
    let config = Config::builder()
        .cookie(Cookie {
            name: "lb".into(),
            path: "/app".into(),
            http_only: false,
            same_site: String::new(),
        })
        .build();
    let server = TestServer::start(config).await;
    let res = server.client().get("EIO=4&transport=polling").await;
    let open = parse_open(&res.polling_body());
    assert_eq!(
        res.header("set-cookie").map(str::to_owned),
        Some(format!("lb={}; Path=/app", open.sid))
    );
    server.stop().await;

    let server = TestServer::default_echo().await;
    let res = server.client().get("EIO=4&transport=polling").await;
    assert_eq!(res.header("set-cookie"), None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_only_transports_refuse_polling_with_code_0() {
    let config = Config::builder()
        .transports([TransportKind::Websocket])
        .build();
    let mut server = TestServer::start(config).await;
    let client = server.client();
    client
        .get("EIO=4&transport=polling")
        .await
        .assert_error(400, 0, "Transport unknown");
    server.assert_no_event();
    let (mut ws, open, _socket) = server.open_websocket().await;
    assert_eq!(open.json["upgrades"], json!([]));
    // The session cannot be reached over polling either.
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 0, "Transport unknown");
    ws_send(&mut ws, "4x").await;
    assert_eq!(ws_text(&mut ws).await, "4x");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_only_transports_offer_no_upgrade() {
    let config = Config::builder()
        .transports([TransportKind::Polling])
        .build();
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let (open, _socket) = server.open_polling().await;
    assert_eq!(open.json["upgrades"], json!([]));
    assert_eq!(client.ws_refused("EIO=4&transport=websocket").await, 400);
    assert_eq!(client.ws_refused(&ws_query(&open.sid)).await, 400);
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_upgrades_false_advertises_no_upgrade() {
    let config = Config::builder().allow_upgrades(false).build();
    let mut server = TestServer::start(config).await;
    let (open, _socket) = server.open_polling().await;
    assert_eq!(open.json["upgrades"], json!([]));
    // Direct WebSocket sessions still work.
    let (_ws, open, _socket) = server.open_websocket().await;
    assert_eq!(open.json["upgrades"], json!([]));
    server.stop().await;
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .read_to_end(&mut out)
        .expect("deflate (zlib)");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_polling_answers_are_compressed() {
    let mut server = TestServer::start_with(Config::default(), false).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let big = "abcdefghij".repeat(300);
    let target = client.target(&poll_query(&open.sid));

    for (encoding, decode) in [
        ("gzip", gunzip as fn(&[u8]) -> Vec<u8>),
        ("deflate", inflate),
    ] {
        socket.send(Message::text(big.as_str())).unwrap();
        socket.send(Message::binary(vec![7u8; 10])).unwrap();
        let res = client
            .request(
                "GET",
                &target,
                &[("Accept-Encoding", &format!("{encoding}, br"))],
                b"",
            )
            .await;
        assert_eq!(res.status, 200);
        assert_eq!(res.header("content-encoding"), Some(encoding));
        assert_eq!(
            res.header("content-type"),
            Some("text/plain; charset=UTF-8")
        );
        assert!(res.body.len() < big.len() / 4, "not compressed");
        let plain = String::from_utf8(decode(&res.body)).unwrap();
        assert_eq!(plain, format!("4{big}\x1ebBwcHBwcHBwcHBw=="));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_or_unaccepted_answers_are_not_compressed() {
    let mut server = TestServer::start_with(Config::default(), false).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let target = client.target(&poll_query(&open.sid));
    let big = "x".repeat(5000);
    let cases: [(&str, &[(&str, &str)]); 4] = [
        ("small", &[("Accept-Encoding", "gzip, deflate")]),
        (big.as_str(), &[]),
        (big.as_str(), &[("Accept-Encoding", "br, identity")]),
        (big.as_str(), &[("Accept-Encoding", "gzip;q=0")]),
    ];
    for (text, headers) in cases {
        socket.send(Message::text(text)).unwrap();
        let res = client.request("GET", &target, headers, b"").await;
        assert_eq!(res.header("content-encoding"), None, "{headers:?}");
        assert_eq!(res.polling_body(), format!("4{text}"));
    }
    server.stop().await;

    // Compression off.
    let config = Config::builder().http_compression_threshold(None).build();
    let mut server = TestServer::start_with(config, false).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    socket.send(Message::text(big.as_str())).unwrap();
    let res = client
        .request(
            "GET",
            &client.target(&poll_query(&open.sid)),
            &[("Accept-Encoding", "gzip")],
            b"",
        )
        .await;
    assert_eq!(res.header("content-encoding"), None);
    assert_eq!(res.polling_body(), format!("4{big}"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_disconnected_by_default() {
    let config = Config::builder().max_buffered_bytes(100).build();
    let mut server = TestServer::start_with(config, false).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let msg = Message::text("0123456789012345678");
    // The client never GETs: the queue fills up.
    let mut sent = 0;
    let err = loop {
        match socket.send(msg.clone()) {
            Ok(()) => sent += 1,
            Err(err) => break err,
        }
        assert!(sent < 100, "the queue never filled");
    };
    assert!(sent >= 1);
    assert_eq!(err, SendError::Full);
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportError
    );
    assert_eq!(socket.send(msg), Err(SendError::Closed));
    assert_eq!(server.engine.slow_consumers_dropped(), 1);
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_drop_message_policy() {
    let config = Config::builder()
        .max_buffered_bytes(100)
        .slow_consumer(SlowConsumerPolicy::DropMessage)
        .build();
    let mut server = TestServer::start_with(config, false).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut sent = Vec::new();
    for i in 0..10 {
        match socket.send(Message::text(format!("message-{i:02}"))) {
            Ok(()) => sent.push(format!("4message-{i:02}")),
            Err(err) => assert_eq!(err, SendError::Full),
        }
    }
    assert!(!sent.is_empty() && sent.len() < 10, "{sent:?}");
    assert!(!socket.is_closed());
    assert_eq!(server.engine.slow_consumers_dropped(), 0);
    // What fitted is delivered; the rest was dropped.
    assert_eq!(client.poll(&open.sid).await.records(), sent);
    // Drained: sending works again.
    socket.send(Message::text("again")).unwrap();
    assert_eq!(client.poll(&open.sid).await.polling_body(), "4again");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volatile_messages_need_a_writable_transport() {
    let mut server = TestServer::start_with(Config::default(), false).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    // No GET pending: dropped.
    assert_eq!(
        socket.send_volatile(Message::text("lost")),
        Err(SendError::Dropped)
    );
    // A GET pending: delivered.
    let mut get = client.spawn_poll(&open.sid);
    assert_held(&mut get).await;
    socket.send_volatile(Message::text("kept")).unwrap();
    assert_eq!(join_resp("the GET", get).await.polling_body(), "4kept");
    // On WebSocket: delivered.
    let (mut ws, _open, ws_socket) = server.open_websocket().await;
    ws_socket.send_volatile(Message::text("v")).unwrap();
    assert_eq!(ws_text(&mut ws).await, "4v");
    server.stop().await;
}
