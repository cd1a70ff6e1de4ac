//! Soak: many Socket.IO clients connect, join a room, talk and leave over polling, WebSocket
//! and upgrade; afterwards no socket, room or session is left, in the maps or in memory.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use socketio::SocketIo;

/// Waits until `done()` holds, looking again every 5 ms.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    within(what, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

const ROUNDS: usize = 100;

/// Per-socket extensions alive.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// A per-socket extension, counted in [`LIVE`].
struct Live;

impl Live {
    fn new() -> Live {
        LIVE.fetch_add(1, Ordering::SeqCst);
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_rooms_and_sessions_return_to_zero() {
    let io = SocketIo::new(config().build());
    io.of("/").on_connection(|socket| async move {
        socket.extensions().insert(Live::new());
        socket.join("lobby");
        // A handler holding a clone of its own socket, as applications write them.
        let me = socket.clone();
        socket.on("echo", move |_socket, event| {
            let me = me.clone();
            async move {
                let _ = me.to("lobby").emit("echo", event.args.clone());
                if let Some(ack) = event.ack {
                    ack.send(event.args);
                }
            }
        });
    });
    let server = TestServer::start(io.clone()).await;
    for _ in 0..ROUNDS {
        let mut ws = server.ws().await;
        ws.join("/").await;
        ws.send(r#"421["echo","hi"]"#).await;
        let mut acked = false;
        while !acked {
            acked = ws.text().await.starts_with("431");
        }
        ws.close().await;

        let polling = server.polling().await;
        polling.post("40").await;
        let reply = polling.get_skipping_pings().await;
        assert!(!reply.is_empty());
        polling.post(r#"42["echo","p"]"#).await;
        polling.post("1").await;
    }
    eventually("every socket to leave the namespace", || {
        io.of("/").sockets().is_empty()
    })
    .await;
    eventually("every room to be gone", || {
        io.of("/").adapter().rooms().is_empty()
    })
    .await;
    eventually("every session to leave the registry", || {
        io.engine().session_count() == 0
    })
    .await;
    eventually("every session to be freed", || {
        io.engine().sessions_in_memory() == 0
    })
    .await;
    eventually("every socket's extensions to be dropped", || {
        LIVE.load(Ordering::SeqCst) == 0
    })
    .await;
    server.stop().await;
}
