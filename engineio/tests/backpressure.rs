//! Paced sending: a server streaming far more than the queue limit, waiting for room with
//! `Socket::writable`, delivers everything, in order, to a client that reads slowly, over
//! WebSocket and polling, without closing it as a slow consumer.

mod common;

use common::*;
use engineio::{CloseReason, Config, EngineIo, Handler, Message, Socket};
use tokio::net::TcpListener;

const PAGES: usize = 200;
const PAGE: usize = 16 << 10;

/// On `4go`, streams PAGES pages of PAGE bytes, each tagged with its number.
struct Streamer;

impl Handler for Streamer {
    type Conn = Socket;
    fn on_open(&self, socket: Socket) -> Socket {
        socket
    }
    fn on_message(&self, socket: &Socket, _message: Message) {
        let socket = socket.clone();
        tokio::spawn(async move {
            for i in 0..PAGES {
                let page = format!("{i:06}{}", "x".repeat(PAGE - 6));
                if socket.writable(page.len()).await.is_err() {
                    return;
                }
                if socket.send(Message::text(page)).is_err() {
                    return;
                }
            }
        });
    }
    fn on_close(&self, _socket: &Socket, _reason: CloseReason) {}
}

async fn start() -> (
    std::net::SocketAddr,
    EngineIo<Streamer>,
    tokio::sync::oneshot::Sender<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = Config::builder().max_buffered_bytes(64 << 10).build();
    let engine = EngineIo::new(config, Streamer);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(engineio::serve(
        listener,
        engine.clone(),
        engineio::not_found(),
        async {
            let _ = stopped.await;
        },
    ));
    (addr, engine, stop)
}

fn check_page(i: usize, text: &str) {
    assert_eq!(text.len(), PAGE + 1, "page {i}");
    assert_eq!(&text[1..7], format!("{i:06}"), "page {i} out of order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_stream_reaches_a_websocket_client_whole() {
    let (addr, engine, stop) = start().await;
    let client = Client {
        addr,
        path: "/engine.io/".into(),
    };
    let mut ws = client.ws("EIO=4&transport=websocket").await.expect("ws");
    assert!(ws_text(&mut ws).await.starts_with('0'));
    ws_send(&mut ws, "4go").await;
    for i in 0..PAGES {
        check_page(i, &ws_text(&mut ws).await);
    }
    assert_eq!(engine.slow_consumers_dropped(), 0);
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_stream_reaches_a_polling_client_whole() {
    let (addr, engine, stop) = start().await;
    let client = Client {
        addr,
        path: "/engine.io/".into(),
    };
    let open = client.handshake().await;
    client.send(&open.sid, b"4go").await.assert_ok();
    let mut next = 0;
    while next < PAGES {
        let body = client.poll(&open.sid).await.polling_body();
        for packet in body.split('\u{1e}') {
            check_page(next, packet);
            next += 1;
        }
    }
    assert_eq!(engine.slow_consumers_dropped(), 0);
    let _ = stop.send(());
}
