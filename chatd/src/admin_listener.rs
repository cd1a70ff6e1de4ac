//! The operators' listener (`--admin-listen`): `/metrics`, `/healthz`, `/admin/drain`, the
//! Admin UI and its namespace, on an address of their own (a private one) instead of the
//! public listener.
//!
//! It serves the same Socket.IO server and site as the public listener, with every request
//! marked as its own ([`AdminListener`] in the extensions and the [`MARK`] header, which the
//! admin namespace checks and the public listener refuses). A plain HTTP/1.1 accept loop with
//! upgrades: few clients, so a bound on connections and a request-head timeout are enough.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use socketio::SocketIo;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::admin::{AdminListener, MARK};
use crate::http::Site;

/// Connections open at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 256;
/// Time to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long open connections may finish their requests once chatd stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Serves `io` and `site` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    io: SocketIo,
    site: Site,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit,
            () = stopped(&mut stop) => break,
        };
        let Ok(permit) = permit else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%err, "admin listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let svc = io.service(site.clone()).with_peer(peer);
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(AdminListener);
            req.headers_mut()
                .insert(MARK, HeaderValue::from_static("1"));
            let answer = svc.call(req);
            async move { Ok::<_, Infallible>(answer.await.unwrap_or_else(|never| match never {})) }
        });
        let mut stop = stop.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(err) = res {
                        tracing::debug!(%err, %peer, "admin listener: connection ended with an error");
                    }
                }
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        // Finished connections are reaped as they go.
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}
