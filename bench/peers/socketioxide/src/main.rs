//! socketioxide peer: on connection join room `all`; `echo` → `echo` with the same data;
//! `trigger {k, b}` → broadcast K messages `tick {ts, i, b}` to room `all`.
//! `PORT` (default 0) on 127.0.0.1; prints `listening on <addr>` once bound.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use socketioxide::extract::{Data, SocketRef};
use socketioxide::SocketIo;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (svc, io) = SocketIo::builder()
        // the default (128 packets per connection) would drop bursts: every server gets room
        .max_buffer_size(100_000)
        .ping_interval(Duration::from_secs(25))
        .ping_timeout(Duration::from_secs(20))
        .build_svc();
    io.ns("/", async |s: SocketRef| {
        s.join("all");
        s.on("echo", async |s: SocketRef, Data::<Value>(data)| {
            let _ = s.emit("echo", &data);
        });
        s.on("trigger", async |s: SocketRef, Data::<Value>(data)| {
            let k = data.get("k").and_then(Value::as_u64).unwrap_or(1);
            let b = data.get("b").cloned().unwrap_or(Value::Null);
            for i in 0..k {
                let msg = json!({"ts": now_ms(), "i": i, "b": b});
                let _ = s.within("all").emit("tick", &msg).await;
            }
        });
    });
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // listen backlog 4096 for every peer (Node and uvicorn get the same), so a connect storm
    // measures the server rather than SYN retransmits
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    let listener = socket.listen(4096)?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                // EMFILE and friends: back off instead of spinning
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let svc = svc.clone();
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}
