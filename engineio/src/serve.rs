//! A ready-made accept loop: HTTP/1.1 with upgrades, peer addresses, graceful shutdown.

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

use crate::server::EngineIo;
use crate::shared::TaskCount;
use crate::socket::Handler;

/// How long shutdown waits for open HTTP connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `engine` at its path and `fallback` for every other request, until `shutdown`
/// resolves. Then it closes every session with `server shutting down` (WebSockets get a close
/// frame), keeps serving until every polling client has fetched its close packet
/// ([`Config::shutdown_delivery`](crate::Config::shutdown_delivery) at most, two seconds by
/// default; new handshakes are refused), stops accepting, and waits for open connections to
/// finish, at most ten seconds.
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
        let _ = stream.set_nodelay(true);
        let service = hyper::service::service_fn({
            let svc = engine.service(fallback.clone()).with_peer(peer);
            move |req| svc.call(req)
        });
        let mut stop = stop_rx.clone();
        let guard = connections.enter();
        tokio::spawn(async move {
            let _guard = guard;
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
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
            }
        });
    }
    drop(listener);
    engine.shutdown().await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, connections.wait_idle()).await;
    Ok(())
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
