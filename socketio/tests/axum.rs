//! Socket.IO mounted in an axum router with `SocketIo::layer`, served by `axum::serve` on one
//! listener: routes and Socket.IO side by side, polling, upgrade and WebSocket through the
//! layer, HTTP/2, the client's address, graceful shutdown, state shared with the routes.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use socketio::{DisconnectReason, Sid, SocketIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// `router` with `io` layered on it, served by `axum::serve` (with `ConnectInfo<SocketAddr>`
/// when `connect_info`) until [`AxumServer::stop`]; its shutdown future awaits
/// `SocketIo::shutdown`, as the documentation says to.
struct AxumServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl AxumServer {
    async fn start(io: &SocketIo, router: Router, connect_info: bool) -> AxumServer {
        init_tracing();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = {
            let io = io.clone();
            async move {
                let _ = stopped.await;
                io.shutdown().await;
            }
        };
        let app = router.layer(io.layer());
        let task = if connect_info {
            let make = app.into_make_service_with_connect_info::<SocketAddr>();
            tokio::spawn(async move {
                axum::serve(listener, make)
                    .with_graceful_shutdown(shutdown)
                    .await
            })
        } else {
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            })
        };
        AxumServer {
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn trigger_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Triggers the shutdown and waits for `axum::serve` to return.
    async fn stop(mut self) {
        self.trigger_shutdown();
        within("axum::serve to return", &mut self.task)
            .await
            .expect("serve task panicked")
            .expect("axum::serve returned an error");
    }
}

/// A router with one ordinary route, `GET /hello`.
fn hello_router() -> Router {
    Router::new().route("/hello", get(|| async { "hello" }))
}

/// A server whose `/` answers `ping` with `pong` (same arguments) and acks `echo`. Polling
/// clients that the tests leave behind hold the shutdown for `shutdown_delivery`: kept short.
fn echo_io() -> SocketIo {
    let io = SocketIo::new(
        config()
            .engine_with(|e| e.shutdown_delivery(Duration::from_millis(200)))
            .build(),
    );
    io.of("/").on_connection(|socket| async move {
        socket.on("ping", |socket, event| async move {
            let _ = socket.emit("pong", event.args);
        });
        socket.on("echo", |_socket, event| async move {
            if let Some(ack) = event.ack {
                ack.send(event.args);
            }
        });
    });
    io
}

#[tokio::test]
async fn routes_and_socketio_share_one_listener() {
    let io = echo_io();
    let server = AxumServer::start(&io, hello_router(), true).await;

    let res = http(server.addr, "GET", "/hello", &[], b"").await;
    assert_eq!((res.status, res.text().as_str()), (200, "hello"));
    // Paths of neither go to the router's own fallback.
    assert_eq!(
        http(server.addr, "GET", "/nowhere", &[], b"").await.status,
        404
    );
    // The client files are Socket.IO's too (installed or not, the answer is ours, not axum's
    // empty 404).
    let res = http(server.addr, "GET", "/socket.io/socket.io.js", &[], b"").await;
    assert!(
        res.status == 200 || res.text() == "client file not installed",
        "{res:?}"
    );

    // A WebSocket session straight away.
    let mut ws = Ws::connect(server.addr).await;
    ws.join("/").await;
    ws.send(r#"42["ping",1,"a"]"#).await;
    ws.expect(r#"42["pong",1,"a"]"#).await;
    ws.send(r#"421["echo",{"k":true}]"#).await;
    ws.expect(r#"431[{"k":true}]"#).await;

    // A long-polling session, beside it.
    let polling = Polling::open(server.addr).await;
    polling.post("40").await;
    let connected = polling.get().await;
    assert!(
        matches!(connected.as_slice(), [PollPacket::Text(t)] if t.starts_with("40{")),
        "{connected:?}"
    );
    polling.post(r#"42["ping","p"]"#).await;
    assert_eq!(
        polling.get_skipping_pings().await,
        [PollPacket::Text(r#"42["pong","p"]"#.into())]
    );

    ws.close().await;
    server.stop().await;
}

#[tokio::test]
async fn polling_upgrades_to_websocket_through_the_layer() {
    let io = echo_io();
    let server = AxumServer::start(&io, hello_router(), true).await;
    let polling = Polling::open(server.addr).await;
    polling.post("40").await;
    polling.get().await;

    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket&sid={}",
        server.addr, polling.sid
    );
    let (mut ws, _) = within(
        "the upgrade's WebSocket handshake",
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("WebSocket handshake through the layer");
    ws.send(WsMessage::text("2probe"))
        .await
        .expect("send probe");
    let reply = within("the probe's answer", ws.next()).await;
    assert!(
        matches!(&reply, Some(Ok(WsMessage::Text(t))) if t.as_str() == "3probe"),
        "{reply:?}"
    );
    ws.send(WsMessage::text("5")).await.expect("send upgrade");
    // The session now runs on the WebSocket.
    ws.send(WsMessage::text(r#"42["ping","ws"]"#))
        .await
        .expect("send event");
    loop {
        match within("the pong over the WebSocket", ws.next()).await {
            Some(Ok(WsMessage::Text(t))) if t.as_str() == "2" => {
                ws.send(WsMessage::text("3")).await.expect("send pong");
            }
            Some(Ok(WsMessage::Text(t))) => {
                assert_eq!(t.as_str(), r#"42["pong","ws"]"#);
                break;
            }
            other => panic!("expected the pong, got {other:?}"),
        }
    }
    let socket = io.of("/").sockets().pop().expect("the socket");
    assert_eq!(socket.transport(), engineio::TransportKind::Websocket);
    let _ = ws.close(None).await;
    drop(ws);
    server.stop().await;
}

/// Opens a polling session on a connection of our own; returns its sid and the connection's
/// local address (the server's view of the client).
async fn handshake_from(addr: SocketAddr) -> (Sid, SocketAddr) {
    within("a polling handshake", async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let local = stream.local_addr().expect("local addr");
        let req = format!(
            "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.expect("read");
        let sid = raw
            .split("\"sid\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(Sid::parse)
            .unwrap_or_else(|| panic!("no sid in {raw:?}"));
        (sid, local)
    })
    .await
}

#[tokio::test]
async fn the_client_address_comes_from_connect_info() {
    let io = echo_io();
    let server = AxumServer::start(&io, hello_router(), true).await;
    let (sid, local) = handshake_from(server.addr).await;
    let engine = io.engine().socket(&sid).expect("the session");
    assert_eq!(engine.peer_addr(), Some(local));
    assert_eq!(engine.handshake().client_ip, Some(local.ip()));
    server.stop().await;

    // Served without `ConnectInfo`, the address is unknown rather than wrong.
    let io = echo_io();
    let server = AxumServer::start(&io, hello_router(), false).await;
    let (sid, _) = handshake_from(server.addr).await;
    let engine = io.engine().socket(&sid).expect("the session");
    assert_eq!(engine.peer_addr(), None);
    server.stop().await;
}

type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// An HTTP/2 connection with prior knowledge (h2c), as a load balancer or gRPC-style client
/// opens one.
async fn h2_connect(addr: SocketAddr) -> H2 {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    send
}

/// One request on an HTTP/2 connection: status, version and body.
async fn h2_request(h2: &mut H2, req: Request<Full<Bytes>>) -> (StatusCode, Version, String) {
    within("an HTTP/2 response", async {
        h2.ready().await.expect("connection ready");
        let res = h2.send_request(req).await.expect("HTTP/2 response");
        let (status, version) = (res.status(), res.version());
        let body = res.into_body().collect().await.expect("body").to_bytes();
        (status, version, String::from_utf8_lossy(&body).into_owned())
    })
    .await
}

fn h2_get(addr: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .body(Full::default())
        .expect("request")
}

#[tokio::test]
async fn http2_serves_the_routes_and_polling_and_refuses_websocket() {
    let io = echo_io();
    let server = AxumServer::start(&io, hello_router(), true).await;
    let mut h2 = h2_connect(server.addr).await;

    // An ordinary route.
    let (status, version, body) = h2_request(&mut h2, h2_get(server.addr, "/hello")).await;
    assert_eq!(
        (status, version, body.as_str()),
        (StatusCode::OK, Version::HTTP_2, "hello")
    );

    // Long-polling works over HTTP/2: handshake, CONNECT, an event and its answer.
    let (status, _, open) = h2_request(
        &mut h2,
        h2_get(server.addr, "/socket.io/?EIO=4&transport=polling"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{open}");
    let open = json_after(&open, "0");
    let sid = open["sid"].as_str().expect("sid");
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let post = |body: &'static str| {
        Request::post(format!("http://{}{path}", server.addr))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("request")
    };
    let (status, _, ok) = h2_request(&mut h2, post("40")).await;
    assert_eq!((status, ok.as_str()), (StatusCode::OK, "ok"));
    let (_, _, connected) = h2_request(&mut h2, h2_get(server.addr, &path)).await;
    assert!(connected.starts_with("40{"), "{connected}");
    h2_request(&mut h2, post(r#"42["ping","h2"]"#)).await;
    let (_, _, pong) = h2_request(&mut h2, h2_get(server.addr, &path)).await;
    assert_eq!(pong, r#"42["pong","h2"]"#);

    // The WebSocket transport needs HTTP/1.1's Upgrade: a GET for it over HTTP/2 …
    let (status, _, body) = h2_request(
        &mut h2,
        h2_get(server.addr, "/socket.io/?EIO=4&transport=websocket"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json_after(&body, ""),
        json!({"code": 3, "message": "Bad request"})
    );
    // … and an extended CONNECT (RFC 8441, which axum::serve offers) are refused.
    let connect = Request::builder()
        .method(Method::CONNECT)
        .uri(format!(
            "http://{}/socket.io/?EIO=4&transport=websocket",
            server.addr
        ))
        .header("sec-websocket-version", "13")
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .body(Full::default())
        .expect("request");
    let (status, _, body) = h2_request(&mut h2, connect).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json_after(&body, ""),
        json!({"code": 2, "message": "Bad handshake method"})
    );

    // HTTP/1.1 clients on the same listener are unaffected.
    let mut ws = Ws::connect(server.addr).await;
    ws.join("/").await;
    ws.close().await;
    drop(h2);
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_socketio_clients_and_axum_serve_returns() {
    let io = SocketIo::new(config().build());
    let (tx, mut gone) = recorder::<DisconnectReason>();
    io.of("/").on_connection(move |socket| {
        let tx = tx.clone();
        async move {
            socket.on_disconnect(move |_socket, reason| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(reason);
                }
            });
        }
    });
    let mut server = AxumServer::start(&io, hello_router(), true).await;

    let mut ws = Ws::connect(server.addr).await;
    ws.join("/").await;
    let polling = Polling::open(server.addr).await;
    polling.post("40").await;
    polling.get().await;
    // A long-poll, held by the server when the shutdown starts.
    let mut pending = tokio::spawn({
        let addr = server.addr;
        let sid = polling.sid.clone();
        async move {
            let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
            http(addr, "GET", &path, &[], b"").await
        }
    });
    if let Ok(done) = tokio::time::timeout(Duration::from_millis(200), &mut pending).await {
        panic!("the long-poll was answered before the shutdown: {done:?}");
    }
    // A kept-alive HTTP/2 connection to the routes, which axum closes gracefully.
    let mut h2 = h2_connect(server.addr).await;
    h2_request(&mut h2, h2_get(server.addr, "/hello")).await;

    server.trigger_shutdown();
    // The WebSocket client gets its close; the long-poll returns the close packet.
    assert!(ws.frames_until_closed().await.is_empty());
    // As the stock client does once the close handshake is over.
    drop(ws);
    let res = within("the long-poll", pending)
        .await
        .expect("long-poll task");
    assert_eq!((res.status, res.text().as_str()), (200, "1"));
    let mut reasons = vec![gone.next().await, gone.next().await];
    reasons.dedup();
    assert_eq!(reasons, [DisconnectReason::ServerShuttingDown]);

    within("axum::serve to return", &mut server.task)
        .await
        .expect("serve task panicked")
        .expect("axum::serve returned an error");
    assert!(TcpStream::connect(server.addr).await.is_err());
    assert_eq!(io.engine().sessions_in_memory(), 0);
    drop(h2);
}

/// What the routes and the Socket.IO handlers share.
#[derive(Clone)]
struct AppState {
    io: SocketIo,
    clicks: Arc<AtomicU64>,
}

#[tokio::test]
async fn state_is_shared_between_routes_and_socketio_handlers() {
    let io = SocketIo::new(config().build());
    let state = AppState {
        io: io.clone(),
        clicks: Arc::default(),
    };
    io.of("/").on_connection({
        let state = state.clone();
        move |socket| {
            let state = state.clone();
            async move {
                socket.join("lobby");
                socket.on("click", move |_socket, event| {
                    let clicks = state.clicks.fetch_add(1, Ordering::Relaxed) + 1;
                    async move {
                        if let Some(ack) = event.ack {
                            ack.send(json!(clicks));
                        }
                    }
                });
            }
        }
    });
    let router = Router::new()
        .route(
            "/clicks",
            get(|State(state): State<AppState>| async move {
                state.clicks.load(Ordering::Relaxed).to_string()
            }),
        )
        .route(
            "/announce",
            post(|State(state): State<AppState>, body: String| async move {
                let sent = state.io.to("lobby").emit("announcement", body).is_ok();
                sent.to_string()
            }),
        )
        .with_state(state.clone());
    let server = AxumServer::start(&io, router, true).await;

    let mut ws = Ws::connect(server.addr).await;
    ws.join("/").await;
    ws.send(r#"420["click"]"#).await;
    ws.expect("430[1]").await;
    ws.send(r#"421["click"]"#).await;
    ws.expect("431[2]").await;
    // The route reads what the Socket.IO handler counted …
    let res = http(server.addr, "GET", "/clicks", &[], b"").await;
    assert_eq!((res.status, res.text().as_str()), (200, "2"));
    // … and emits to Socket.IO clients through the shared server.
    let res = http(server.addr, "POST", "/announce", &[], b"hi all").await;
    assert_eq!((res.status, res.text().as_str()), (200, "true"));
    ws.expect(r#"42["announcement","hi all"]"#).await;

    ws.close().await;
    server.stop().await;
}
