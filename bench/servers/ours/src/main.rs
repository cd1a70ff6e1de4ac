//! `bench-ours --port 3000 [--recovery]`: prints `listening on <addr>` once bound; stops on
//! SIGTERM/SIGINT.

use clap::Parser;

#[derive(Parser)]
#[command(about = "Benchmark peer on the socketio crate")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0, env = "PORT")]
    port: u16,
    /// Connection state recovery on.
    #[arg(long, env = "RECOVERY")]
    recovery: bool,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    // listen backlog 4096 for every peer (Node and uvicorn get the same), so a connect storm
    // measures the server rather than SYN retransmits
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], args.port)))?;
    let listener = socket.listen(4096)?;
    println!("listening on {}", listener.local_addr()?);
    bench_ours::serve(listener, args.recovery, async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => std::future::pending().await,
        }
    })
    .await
}
