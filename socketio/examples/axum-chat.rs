//! A chat on axum: Socket.IO (rooms, acks) and JSON routes on one listener, sharing state.
//!
//! Socket.IO, namespace `/`:
//!
//! | event | does |
//! | --- | --- |
//! | `join`, room (ack) | joins the room; acks `{"room", "members"}` |
//! | `chat`, `{"room", "text"}` (ack) | sends `chat` `{"room", "from", "text", "n"}` to the room's other members; acks `{"n"}`, the message's number |
//!
//! HTTP, beside it:
//!
//! - `GET /api/stats` → `{"online": sockets connected, "messages": chat messages so far}`;
//! - `POST /api/announce` with `{"room", "text"}` → emits `announcement` `{"text"}` to the room
//!   from HTTP; answers `{"sent": true}`.
//!
//! Every other path is axum's 404. Ctrl-C (or SIGTERM) closes the Socket.IO clients, then axum
//! stops.
//!
//! `cargo run -p socketio --example axum-chat -- --port 3000`; once bound it
//! prints `listening on http://127.0.0.1:<port>/socket.io/` (`--port 0` picks a free port).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use serde::Deserialize;
use serde_json::{json, Value};
use socketio::{Config, Socket, SocketIo};

#[derive(Parser)]
#[command(about = "A Socket.IO chat on axum")]
struct Args {
    /// Port to listen on, 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    port: u16,
}

/// What the Socket.IO handlers and the HTTP routes share.
#[derive(Clone)]
struct AppState {
    io: SocketIo,
    messages: Arc<AtomicU64>,
}

#[derive(Deserialize)]
struct ChatMessage {
    room: String,
    text: String,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let io = SocketIo::new(Config::default());
    let state = AppState {
        io: io.clone(),
        messages: Arc::default(),
    };
    io.of("/").on_connection({
        let state = state.clone();
        move |socket| {
            let state = state.clone();
            async move { on_connection(socket, state) }
        }
    });

    let app = Router::new()
        .route("/api/stats", get(stats))
        .route("/api/announce", post(announce))
        .with_state(state)
        .layer(io.layer());

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!(
        "listening on http://{}{}",
        listener.local_addr()?,
        io.config().engine.path
    );
    let shutdown = {
        let io = io.clone();
        async move {
            engineio::shutdown_signal().await;
            // Clients are told while axum still serves them; then axum stops.
            io.shutdown().await;
        }
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

fn on_connection(socket: Socket, state: AppState) {
    socket.on("join", |socket, event| async move {
        let Ok(room) = event.args.get::<String>(0) else {
            if let Some(ack) = event.ack {
                ack.send(json!({ "error": "join takes a room name" }));
            }
            return;
        };
        socket.join(room.as_str());
        // The namespace's view: a socket's own `within` would leave the socket out.
        let members = socket
            .ns()
            .within(room.as_str())
            .fetch_sockets()
            .await
            .map_or(0, |sockets| sockets.len());
        if let Some(ack) = event.ack {
            ack.send(json!({ "room": room, "members": members }));
        }
    });
    socket.on("chat", move |socket, event| {
        let state = state.clone();
        async move {
            let Ok(msg) = event.args.get::<ChatMessage>(0) else {
                if let Some(ack) = event.ack {
                    ack.send(json!({ "error": "chat takes {room, text}" }));
                }
                return;
            };
            let n = state.messages.fetch_add(1, Ordering::Relaxed) + 1;
            let _ = socket.to(msg.room.as_str()).emit(
                "chat",
                json!({ "room": msg.room, "from": socket.id().to_string(), "text": msg.text, "n": n }),
            );
            if let Some(ack) = event.ack {
                ack.send(json!({ "n": n }));
            }
        }
    });
}

async fn stats(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "online": state.io.of("/").sockets().len(),
        "messages": state.messages.load(Ordering::Relaxed),
    }))
}

async fn announce(State(state): State<AppState>, Json(msg): Json<ChatMessage>) -> Json<Value> {
    let sent = state
        .io
        .to(msg.room.as_str())
        .emit("announcement", json!({ "text": msg.text }))
        .is_ok();
    Json(json!({ "sent": sent }))
}
