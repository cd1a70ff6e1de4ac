//! `bench-ours --port 3000 [--recovery] [--redis URL]`: prints `listening on <addr>` once bound
//! (and, with `--redis`, subscribed); stops on SIGTERM/SIGINT.

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
    /// Join a cluster through this Redis server (classic adapter).
    #[arg(long, env = "REDIS_URL")]
    redis: Option<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    // listen backlog 4096 for every peer (Node and uvicorn get the same), so a connect storm
    // measures the server rather than SYN retransmits
    // subscribed before the port opens: run.sh takes an open port as ready
    let redis = match &args.redis {
        Some(url) => Some(
            socketio_redis::RedisAdapterFactory::connect(url, Default::default())
                .await
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let io = bench_ours::build_with(args.recovery, redis.clone());
    if let Some(factory) = &redis {
        factory.ready().await;
    }
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], args.port)))?;
    let listener = socket.listen(4096)?;
    println!("listening on {}", listener.local_addr()?);
    bench_ours::serve_io(listener, io, async {
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
