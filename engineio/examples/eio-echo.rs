//! Engine.IO echo server: text comes back as text, binary as binary. The text message `close`
//! makes the server close that session instead.
//!
//! `cargo run -p engineio --example eio-echo -- --port 3000`; once bound it prints
//! `listening on http://127.0.0.1:<port><path>` (with `--port 0` the port is chosen freely).

use std::time::Duration;

use clap::Parser;
use engineio::{CloseReason, Config, EngineIo, Handler, Message, Socket};

#[derive(Parser)]
#[command(about = "Engine.IO v4 echo server")]
struct Args {
    /// Port to listen on, 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Engine.IO path.
    #[arg(long, default_value = "/engine.io/")]
    path: String,
    /// Ping interval in milliseconds.
    #[arg(long, default_value_t = 25_000)]
    ping_interval: u64,
    /// Ping timeout in milliseconds.
    #[arg(long, default_value_t = 20_000)]
    ping_timeout: u64,
    /// Largest accepted message in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    max_payload: u64,
}

struct Echo;

impl Handler for Echo {
    type Conn = Socket;

    fn on_open(&self, socket: Socket) -> Socket {
        socket
    }

    fn on_message(&self, socket: &Socket, message: Message) {
        match &message {
            Message::Text(t) if t.as_str() == "close" => socket.close(),
            _ => {
                let _ = socket.send(message);
            }
        }
    }

    fn on_close(&self, socket: &Socket, reason: CloseReason) {
        tracing::debug!(sid = %socket.id(), %reason, "closed");
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config::builder()
        .path(args.path)
        .ping_interval(Duration::from_millis(args.ping_interval))
        .ping_timeout(Duration::from_millis(args.ping_timeout))
        .max_payload(args.max_payload)
        .build();
    let path = config.path.clone();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{}{}", listener.local_addr()?, path);
    let engine = EngineIo::new(config, Echo);
    engineio::serve(
        listener,
        engine,
        engineio::not_found(),
        engineio::shutdown_signal(),
    )
    .await
}
