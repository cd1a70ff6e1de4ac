//! The benchmark peer on our `socketio` crate, with the logic every peer in `bench/peers/` has:
//! on connection join room `all`; `echo` → `echo` with the same arguments; `trigger {k, b}` →
//! broadcast K messages `tick {ts, i, b}` to room `all` (`ts`: milliseconds since the epoch, with
//! a fraction). A library so that `bench/loadgen`'s smoke test can run it in-process. With a
//! Redis adapter the node is one of a cluster (the `cluster` scenario).
//!
//! `GET /bench/stats` answers what the server holds (open sessions, sessions still in memory,
//! sockets and rooms of `/`), so that `loadgen cycles` can wait until nothing is left before it
//! reads the RSS.

use std::convert::Infallible;
use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use socketio::{Config, Recovery, SocketIo};

/// Milliseconds since the Unix epoch, with a fraction.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// The server, with connection state recovery when `recovery` is set.
pub fn build(recovery: bool) -> SocketIo {
    build_with(recovery, None)
}

/// The server, on `redis`'s adapter when given.
pub fn build_with(recovery: bool, redis: Option<socketio_redis::RedisAdapterFactory>) -> SocketIo {
    let mut config = Config::builder().serve_client(false);
    if recovery {
        config = config.recovery(Recovery::default());
    }
    let io = match redis {
        Some(factory) => SocketIo::builder(config.build()).adapter(factory).build(),
        None => SocketIo::new(config.build()),
    };
    io.of("/").on_connection(|socket| async move {
        socket.join("all");
        socket.on("echo", |socket, event| async move {
            let _ = socket.emit("echo", event.args);
        });
        socket.on("trigger", |socket, event| async move {
            let arg = event.args.json(0).cloned().unwrap_or(Value::Null);
            let k = arg.get("k").and_then(Value::as_u64).unwrap_or(1);
            let b = arg.get("b").cloned().unwrap_or(Value::Null);
            let all = socket.ns().to("all");
            for i in 0..k {
                let _ = all.emit("tick", json!({"ts": now_ms(), "i": i, "b": b}));
            }
        });
    });
    io
}

/// What `io` holds now: `{sessions, sessions_in_memory, sockets, rooms}` (namespace `/`).
pub fn stats(io: &SocketIo) -> Value {
    let root = io.of("/");
    json!({
        "sessions": io.engine().session_count(),
        "sessions_in_memory": io.engine().sessions_in_memory(),
        "sockets": root.sockets().len(),
        "rooms": root.adapter().rooms().len(),
    })
}

/// The fallback service: `GET /bench/stats` is [`stats`], anything else 404.
#[derive(Clone, Debug)]
pub struct StatsService(pub SocketIo);

impl hyper::service::Service<Request<Incoming>> for StatsService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let res = if req.method() == hyper::Method::GET && req.uri().path() == "/bench/stats" {
            let mut res = Response::new(Full::new(Bytes::from(stats(&self.0).to_string())));
            res.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            res
        } else {
            let mut res = Response::new(Full::new(Bytes::from_static(b"Not Found")));
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        };
        std::future::ready(Ok(res))
    }
}

/// Serves the bench server on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    recovery: bool,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_io(listener, build(recovery), shutdown).await
}

/// Serves `io` on `listener` until `shutdown` resolves.
pub async fn serve_io(
    listener: tokio::net::TcpListener,
    io: SocketIo,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    socketio::serve(listener, io.clone(), StatsService(io), shutdown).await
}
