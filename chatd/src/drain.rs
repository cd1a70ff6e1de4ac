//! Draining a cluster node for a rolling restart: no new connections, then every client moved
//! to the other nodes over a window, each told first so that it reconnects at once and
//! recovers its session there.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::app::App;

/// The event a chat client gets just before its connection is closed for a drain.
pub const MOVING: &str = "moving";

/// How long after the window the node still waits for closing connections to finish.
const LINGER: Duration = Duration::from_secs(2);

/// Closes every connection of the node, spread evenly over `window`: a chat connection is
/// told [`MOVING`] first. The connections close as a transport closes (a recoverable reason,
/// the session saved for any node), so the stock client reconnects by itself. Resolves once
/// none is left, or `window` plus a short linger has passed.
pub async fn drain(app: &App, window: Duration) {
    let engine = app.io.engine();
    engine.drain();
    let sockets = engine.sockets();
    let chat: HashMap<_, _> = app
        .io
        .of("/chat")
        .sockets()
        .into_iter()
        .map(|s| (s.engine().id(), s))
        .collect();
    tracing::info!(
        connections = sockets.len(),
        ?window,
        "draining: moving every client to the other nodes"
    );
    let start = Instant::now();
    let n = sockets.len().max(1) as u32;
    for (i, socket) in sockets.iter().enumerate() {
        tokio::time::sleep_until(start + window * i as u32 / n).await;
        if let Some(s) = chat.get(&socket.id()) {
            let _ = s.emit(MOVING, json!({"reason": "node draining: reconnect now"}));
        }
        socket.close();
    }
    let _ = tokio::time::timeout_at(start + window + LINGER, engine.drained()).await;
    tracing::info!(left = engine.sockets().len(), "drained");
}
