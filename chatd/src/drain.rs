//! Draining a cluster node for a rolling restart: no new connections, then every client moved
//! to the other nodes over a window, each told first so that it reconnects at once and
//! recovers its session there.

use std::collections::HashMap;
use std::time::Duration;

use engineio::Sid;
use serde_json::json;
use tokio::time::Instant;

use crate::app::App;

/// The event a chat client gets just before its connection is closed for a drain.
pub const MOVING: &str = "moving";

/// How long after the window the node still waits for closing connections to finish.
const LINGER: Duration = Duration::from_secs(2);
/// How long after that other nodes still expect sessions this one saved late.
const DRAIN_NOTICE: Duration = Duration::from_secs(5);

/// Closes every connection of the node, spread evenly over `window`: a chat connection is
/// told [`MOVING`] first. The connections close as a transport closes (a recoverable reason,
/// the session saved for any node), so the stock client reconnects by itself. Resolves once
/// none is left, or `window` plus a short linger has passed.
pub async fn drain(app: &App, window: Duration) {
    let engine = app.io.engine();
    engine.drain();
    if let Some(recovery) = &app.cluster_recovery {
        recovery
            .announce_drain(window + LINGER + DRAIN_NOTICE)
            .await;
    }
    let sockets = engine.sockets();
    let mut chat = ChatSockets::of(app);
    tracing::info!(
        connections = sockets.len(),
        ?window,
        "draining: moving every client to the other nodes"
    );
    let start = Instant::now();
    let n = sockets.len().max(1) as u32;
    // A connection not (yet) in `/chat`, say one still connecting, goes last: by then it may be.
    let mut later = Vec::new();
    for (i, socket) in sockets.iter().enumerate() {
        tokio::time::sleep_until(start + window * i as u32 / n).await;
        match chat.get(app, socket.id()) {
            Some(s) => {
                tell_moving(&s);
                socket.close();
            }
            None => later.push(socket),
        }
    }
    tokio::time::sleep_until(start + window).await;
    chat.refresh(app);
    for socket in later {
        if let Some(s) = chat.get(app, socket.id()) {
            tell_moving(&s);
        }
        socket.close();
    }
    let _ = tokio::time::timeout_at(start + window + LINGER, engine.drained()).await;
    tracing::info!(left = engine.sockets().len(), "drained");
}

/// Tells a chat client it is being moved, without a recovery offset: a broadcast still on its
/// way to this socket must not fall behind the client's recovery position.
fn tell_moving(socket: &socketio::Socket) {
    let _ = socket.emit_unrecorded(MOVING, json!({"reason": "node draining: reconnect now"}));
}

/// The `/chat` sockets by connection, read again when one is missing and the copy is older
/// than [`REFRESH`] (connections keep arriving through the window: recovered sessions whose
/// engine connection was there before their namespace connection).
struct ChatSockets {
    by_connection: HashMap<Sid, socketio::Socket>,
    at: Instant,
}

/// How old the copy of the `/chat` sockets may be before a miss reads them again.
const REFRESH: Duration = Duration::from_millis(100);

impl ChatSockets {
    fn of(app: &App) -> Self {
        let by_connection = app
            .io
            .of("/chat")
            .sockets()
            .into_iter()
            .map(|s| (s.engine().id(), s))
            .collect();
        ChatSockets {
            by_connection,
            at: Instant::now(),
        }
    }

    fn refresh(&mut self, app: &App) {
        *self = Self::of(app);
    }

    fn get(&mut self, app: &App, connection: Sid) -> Option<socketio::Socket> {
        if !self.by_connection.contains_key(&connection) && self.at.elapsed() >= REFRESH {
            self.refresh(app);
        }
        self.by_connection.get(&connection).cloned()
    }
}
