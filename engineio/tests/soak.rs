//! Soak: many sessions open and close over polling, WebSocket and upgrade; afterwards nothing
//! of them stays in memory (the handler's per-connection state holds a `Socket`, as real
//! handlers do, so a session that kept it would never be freed).

mod common;

use std::time::Duration;

use common::*;
use engineio::{CloseReason, Config, EngineIo, Handler, Message, Socket};
use futures_util::SinkExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Echoes; its per-connection state is the socket itself.
struct Echo;

impl Handler for Echo {
    type Conn = Socket;
    fn on_open(&self, socket: Socket) -> Socket {
        socket
    }
    fn on_message(&self, socket: &Socket, message: Message) {
        let _ = socket.send(message);
    }
    fn on_close(&self, _socket: &Socket, _reason: CloseReason) {}
}

/// Waits until `done()` holds, checking after every scheduler turn and at least every 5 ms.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    within(what, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

const ROUNDS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_freed_after_polling_websocket_and_upgrade_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let engine = EngineIo::new(Config::default(), Echo);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(engineio::serve(
        listener,
        engine.clone(),
        engineio::not_found(),
        async {
            let _ = stopped.await;
        },
    ));
    let client = Client {
        addr,
        path: "/engine.io/".into(),
    };
    let big = "x".repeat(8 << 10);
    for _ in 0..ROUNDS {
        // Polling, closed by the client.
        let open = client.handshake().await;
        client.send(&open.sid, b"4hello").await.assert_ok();
        assert_eq!(client.poll(&open.sid).await.polling_body(), "4hello");
        client.send(&open.sid, b"1").await.assert_ok();

        // WebSocket, with large request headers.
        let url = format!("ws://{addr}/engine.io/?EIO=4&transport=websocket");
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                url.as_str(),
            )
            .expect("request");
        request
            .headers_mut()
            .insert("x-padding", big.parse().expect("header"));
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut ws, _) = within("ws", tokio_tungstenite::client_async(request, stream))
            .await
            .expect("ws");
        assert!(ws_text(&mut ws).await.starts_with('0'));
        ws_send(&mut ws, "4hi").await;
        assert_eq!(ws_text(&mut ws).await, "4hi");
        let _ = ws.close(None).await;

        // Polling upgraded to WebSocket, closed by the client.
        let open = client.handshake().await;
        let mut ws = probe(&client, &open.sid).await;
        ws_send(&mut ws, "5").await;
        ws_send(&mut ws, "4up").await;
        assert_eq!(ws_text(&mut ws).await, "4up");
        let _ = ws.send(WsMessage::text("1")).await;
        let _ = ws.close(None).await;
    }
    eventually("every session to leave the registry", || {
        engine.session_count() == 0
    })
    .await;
    eventually("every session to be freed", || {
        engine.sessions_in_memory() == 0
    })
    .await;
    let _ = stop.send(());
    let _ = server.await;
}
