//! Bare Engine.IO mounted in an axum router with `EngineIo::layer`, at a path of its own, served
//! by `axum::serve` on one listener with the router's routes.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::*;
use engineio::{CloseReason, Config, EngineIo, Handler, Message, Socket};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Echoes every message; records closes.
struct Echo {
    closed: mpsc::UnboundedSender<CloseReason>,
}

impl Handler for Echo {
    type Conn = Socket;

    fn on_open(&self, socket: Socket) -> Socket {
        socket
    }

    fn on_message(&self, socket: &Socket, message: Message) {
        let _ = socket.send(message);
    }

    fn on_close(&self, _socket: &Socket, reason: CloseReason) {
        let _ = self.closed.send(reason);
    }
}

struct AxumServer {
    addr: SocketAddr,
    engine: EngineIo<Echo>,
    closed: mpsc::UnboundedReceiver<CloseReason>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl AxumServer {
    /// `GET /hello` and Engine.IO at `/engine.io/`, with `ConnectInfo<SocketAddr>`; the
    /// shutdown future awaits `EngineIo::graceful_shutdown`.
    async fn start() -> AxumServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, closed) = mpsc::unbounded_channel();
        let config = Config::builder()
            .path("/engine.io/")
            .shutdown_delivery(Duration::from_millis(200))
            .build();
        let engine = EngineIo::new(config, Echo { closed: tx });
        let app = Router::new()
            .route("/hello", get(|| async { "hello" }))
            .layer(engine.layer())
            .into_make_service_with_connect_info::<SocketAddr>();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = {
            let engine = engine.clone();
            async move {
                let _ = stopped.await;
                engine.graceful_shutdown().await;
            }
        };
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        });
        AxumServer {
            addr,
            engine,
            closed,
            stop: Some(stop),
            task,
        }
    }

    fn client(&self) -> Client {
        Client {
            addr: self.addr,
            path: "/engine.io/".into(),
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        within("axum::serve to return", &mut self.task)
            .await
            .expect("serve task panicked")
            .expect("axum::serve returned an error");
    }
}

#[tokio::test]
async fn engineio_beside_routes_over_every_transport() {
    let server = AxumServer::start().await;
    let client = server.client();

    let res = client.request("GET", "/hello", &[], b"").await;
    assert_eq!((res.status, res.text().as_str()), (200, "hello"));
    // The default path is not ours here: the router answers.
    let res = client
        .request("GET", "/socket.io/?EIO=4&transport=polling", &[], b"")
        .await;
    assert_eq!(res.status, 404);

    // Long-polling, with the client's address from axum's ConnectInfo.
    let open = client.handshake().await;
    client.send(&open.sid, b"4polled").await.assert_ok();
    assert_eq!(client.poll(&open.sid).await.records(), ["4polled"]);
    let socket = server.engine.socket(&open.sid()).expect("the session");
    let peer = socket.peer_addr().expect("the peer address");
    assert!(peer.ip().is_loopback(), "{peer}");

    // Upgraded to WebSocket.
    let mut ws = probe(&client, &open.sid).await;
    ws_send(&mut ws, "5").await;
    ws_send(&mut ws, "4upgraded").await;
    assert_eq!(ws_text(&mut ws).await, "4upgraded");

    // WebSocket from the start.
    let mut direct = client
        .ws("EIO=4&transport=websocket")
        .await
        .expect("WebSocket");
    let open = parse_open(&ws_text(&mut direct).await);
    ws_send(&mut direct, "4direct").await;
    assert_eq!(ws_text(&mut direct).await, "4direct");
    assert!(server.engine.socket(&open.sid()).is_some());

    drop((ws, direct));
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_tells_every_client_then_axum_serve_returns() {
    let mut server = AxumServer::start().await;
    let client = server.client();
    let polling = client.handshake().await;
    let mut get = client.spawn_poll(&polling.sid);
    assert_held(&mut get).await;
    let mut ws = client
        .ws("EIO=4&transport=websocket")
        .await
        .expect("WebSocket");
    ws_text(&mut ws).await;

    if let Some(stop) = server.stop.take() {
        let _ = stop.send(());
    }
    assert_eq!(join_resp("the held GET", get).await.polling_body(), "1");
    ws_expect_close(&mut ws).await;
    drop(ws);
    for _ in 0..2 {
        let reason = within("a close", server.closed.recv()).await;
        assert_eq!(reason, Some(CloseReason::ServerShuttingDown));
    }
    within("axum::serve to return", &mut server.task)
        .await
        .expect("serve task panicked")
        .expect("axum::serve returned an error");
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err());
    assert_eq!(server.engine.sessions_in_memory(), 0);
}
