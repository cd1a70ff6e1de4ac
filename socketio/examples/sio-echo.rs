//! Socket.IO echo server.
//!
//! Namespaces `/` and `/custom`. On connection each emits `auth` with the handshake's auth
//! object (`{}` when none). On `/`, `message` is answered with `message-back` carrying the same
//! arguments (binary kept), and `message-with-ack` is acknowledged with the same arguments.
//!
//! `cargo run -p socketio --example sio-echo -- --port 3000`; once bound it prints
//! `listening on http://127.0.0.1:<port>/socket.io/` (`--port 0` picks a free port).

use std::time::Duration;

use clap::Parser;
use socketio::{Config, Recovery, Socket, SocketIo};

#[derive(Parser)]
#[command(about = "Socket.IO v5 echo server")]
struct Args {
    /// Port to listen on, 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Ping interval in milliseconds.
    #[arg(long, default_value_t = 25_000)]
    ping_interval: u64,
    /// Ping timeout in milliseconds.
    #[arg(long, default_value_t = 20_000)]
    ping_timeout: u64,
    /// Time allowed to join a namespace, in milliseconds.
    #[arg(long, default_value_t = 45_000)]
    connect_timeout: u64,
    /// Largest accepted message in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    max_payload: u64,
    /// Turn connection state recovery on.
    #[arg(long)]
    recovery: bool,
}

async fn greet(socket: Socket) {
    let _ = socket.emit("auth", socket.auth().clone());
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = Config::builder()
        .engine_with(|e| {
            e.ping_interval(Duration::from_millis(args.ping_interval))
                .ping_timeout(Duration::from_millis(args.ping_timeout))
                .max_payload(args.max_payload)
        })
        .connect_timeout(Duration::from_millis(args.connect_timeout));
    if args.recovery {
        config = config.recovery(Recovery::default());
    }
    let io = SocketIo::new(config.build());

    io.of("/").on_connection(|socket| async move {
        greet(socket.clone()).await;
        socket.on("message", |socket, event| async move {
            let _ = socket.emit("message-back", event.args);
        });
        socket.on("message-with-ack", |_socket, event| async move {
            if let Some(ack) = event.ack {
                ack.send(event.args);
            }
        });
    });
    io.of("/custom").on_connection(greet);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{}/socket.io/", listener.local_addr()?);
    socketio::serve(
        listener,
        io,
        engineio::not_found(),
        engineio::shutdown_signal(),
    )
    .await
}
