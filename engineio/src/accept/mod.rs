//! [`serve`]: a ready-made accept loop (HTTP/1.1 with upgrades, peer addresses, request-head
//! and keep-alive timeouts, graceful shutdown) around [`EngineIo`]. The engine itself does not
//! need it: any hyper or axum server can mount [`EngineIo`].

mod clock;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::engine::EngineIo;
use crate::shared::{TaskCount, TaskGuard};
use crate::socket::Handler;
use clock::{Expiry, HttpClock, Watched};

/// How long shutdown waits for open HTTP connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `engine` at its path and `fallback` for every other request, until `shutdown`
/// resolves. Then it closes every session with `server shutting down` (WebSockets get a close
/// frame), keeps serving until every polling client has fetched its close packet
/// ([`Config::shutdown_delivery`](crate::Config::shutdown_delivery) at most, two seconds by
/// default; new handshakes are refused), stops accepting, and waits for open connections to
/// finish, at most ten seconds.
///
/// Each connection gets [`Config::http_header_timeout`](crate::Config) to send a request head
/// and is closed after [`Config::http_keep_alive_timeout`](crate::Config) without a request;
/// at most [`Config::max_unfinished_connections`](crate::Config) may wait for their first
/// request at once.
///
/// ```no_run
/// # use engineio::{CloseReason, Config, EngineIo, Handler, Message, Socket};
/// # struct Echo;
/// # impl Handler for Echo {
/// #     type Conn = Socket;
/// #     fn on_open(&self, s: Socket) -> Socket { s }
/// #     fn on_message(&self, s: &Socket, m: Message) { let _ = s.send(m); }
/// #     fn on_close(&self, _: &Socket, _: CloseReason) {}
/// # }
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let engine = EngineIo::new(Config::default(), Echo);
/// let ctrl_c = async { let _ = tokio::signal::ctrl_c().await; };
/// engineio::serve(listener, engine, engineio::not_found(), ctrl_c).await
/// # }
/// ```
pub async fn serve<H, F, B>(
    listener: TcpListener,
    engine: EngineIo<H>,
    fallback: F,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    H: Handler,
    F: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    F::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let connections: Arc<TaskCount> = Arc::default();
    let unfinished: Arc<TaskCount> = Arc::default();
    tokio::pin!(shutdown);
    let delivery_deadline = tokio::time::sleep(Duration::MAX);
    tokio::pin!(delivery_deadline);
    let mut stopping = false;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown, if !stopping => {
                // Sessions close now; requests are still served (handshakes refused) until
                // every polling client has fetched its close packet, or briefly at most.
                stopping = true;
                engine.begin_shutdown();
                let delivery = engine.config().shutdown_delivery;
                delivery_deadline.as_mut().reset(tokio::time::Instant::now() + delivery);
                continue;
            }
            () = engine.drained(), if stopping => break,
            () = &mut delivery_deadline, if stopping => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(ok) => ok,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let config = engine.config();
        if unfinished.count() >= config.max_unfinished_connections {
            tracing::debug!(%peer, "too many connections without a request: closing");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let clock = HttpClock::new(tokio::time::Instant::now());
        let first_request = FirstRequest(std::sync::Mutex::new(Some(unfinished.enter())));
        let service = hyper::service::service_fn({
            let svc = engine.service(fallback.clone()).with_peer(peer);
            let clock = clock.clone();
            move |req| {
                first_request.arrived();
                clock.begin();
                let answer = svc.call(req);
                let clock = clock.clone();
                async move {
                    let res = answer.await;
                    clock.end(tokio::time::Instant::now());
                    res
                }
            }
        });
        let (head, idle) = (config.http_header_timeout, config.http_keep_alive_timeout);
        let mut stop = stop_rx.clone();
        let guard = connections.enter();
        tokio::spawn(async move {
            let _guard = guard;
            let io = TokioIo::new(Watched::new(stream, clock.clone()));
            let conn = http1::Builder::new()
                .serve_connection(io, service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(err) = res {
                        tracing::debug!(%err, "HTTP connection ended with an error");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
                expiry = expired(&clock, head, idle) => {
                    tracing::debug!(%peer, ?expiry, "HTTP connection timed out");
                    if expiry == Expiry::Idle {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            }
        });
    }
    drop(listener);
    engine.shutdown().await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, connections.wait_idle()).await;
    Ok(())
}

/// Counts a connection as unfinished until its first request arrives (or it ends).
struct FirstRequest(std::sync::Mutex<Option<TaskGuard>>);

impl FirstRequest {
    fn arrived(&self) {
        if let Ok(mut slot) = self.0.lock() {
            slot.take();
        }
    }
}

/// Resolves when the connection is due to close: a request head too slow, or idle too long.
async fn expired(clock: &HttpClock, head: Duration, idle: Duration) -> Expiry {
    loop {
        match clock.deadline(head, idle) {
            Some((at, why)) if at <= tokio::time::Instant::now() => return why,
            Some((at, _)) => tokio::time::sleep_until(at).await,
            // A request is being served: look again later.
            None => tokio::time::sleep(head).await,
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C on other systems): the usual `shutdown` future for
/// [`serve`].
///
/// ```no_run
/// # async fn run(listener: tokio::net::TcpListener, engine: engineio::EngineIo<impl engineio::Handler>) -> std::io::Result<()> {
/// engineio::serve(listener, engine, engineio::not_found(), engineio::shutdown_signal()).await
/// # }
/// ```
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            // No signal handling here: run until killed.
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
