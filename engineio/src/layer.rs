//! The tower integration (feature `tower`): [`EngineLayer`] puts an [`EngineIo`] in front of any
//! tower service, such as an axum `Router`, which then gets every request outside the
//! Engine.IO path.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Body;

use crate::engine::{EngineIo, EngineService, PeerAddr};
use crate::socket::Handler;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A tower [`Layer`](tower_layer::Layer) that serves an [`EngineIo`] at its path and hands every
/// other request to the service it wraps. Made by [`EngineIo::layer`].
///
/// In an axum application, add it with `Router::layer` after the routes; the application then
/// runs on `axum::serve` as usual, Engine.IO included:
///
/// - WebSocket upgrades work through it (hyper's upgrade handle travels in the request
///   extensions, which axum keeps);
/// - the client's address is taken from axum's `ConnectInfo<SocketAddr>` when the app is
///   served with `into_make_service_with_connect_info::<SocketAddr>()` and the `axum` feature
///   is on, or from a [`PeerAddr`] that an earlier layer put in the request extensions;
/// - on shutdown, await [`EngineIo::graceful_shutdown`] in the future given to axum's
///   `with_graceful_shutdown`, so that sessions are closed and their clients told before axum
///   stops serving.
///
/// The HTTP timeouts of [`Config`](crate::Config) (`http_header_timeout`,
/// `http_keep_alive_timeout`, `max_unfinished_connections`) belong to [`serve`](crate::serve)'s
/// accept loop and do not apply here: the HTTP server in charge sets its own.
///
/// Over HTTP/2 (hyper-util's auto connection builder, which `axum::serve` uses), long-polling
/// works; WebSocket does not, since Engine.IO upgrades with HTTP/1.1's `Upgrade`: a request for
/// the WebSocket transport over HTTP/2, extended CONNECT (RFC 8441) included, gets Engine.IO's
/// 400 error, as from Node's server. The stock client then stays on long-polling.
pub struct EngineLayer<H: Handler> {
    engine: EngineIo<H>,
}

impl<H: Handler> Clone for EngineLayer<H> {
    fn clone(&self) -> Self {
        EngineLayer {
            engine: self.engine.clone(),
        }
    }
}

impl<H: Handler> std::fmt::Debug for EngineLayer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineLayer")
            .field("engine", &self.engine)
            .finish()
    }
}

impl<H: Handler> EngineIo<H> {
    /// A tower layer: this server at its path, the wrapped service for every other request.
    ///
    /// ```
    /// # use engineio::{CloseReason, Config, EngineIo, Handler, Message, Socket};
    /// # struct Echo;
    /// # impl Handler for Echo {
    /// #     type Conn = Socket;
    /// #     fn on_open(&self, s: Socket) -> Socket { s }
    /// #     fn on_message(&self, s: &Socket, m: Message) { let _ = s.send(m); }
    /// #     fn on_close(&self, _: &Socket, _: CloseReason) {}
    /// # }
    /// let engine = EngineIo::new(Config::default(), Echo);
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/hello", axum::routing::get(|| async { "hello" }))
    ///     .layer(engine.layer());
    /// ```
    pub fn layer(&self) -> EngineLayer<H> {
        EngineLayer {
            engine: self.clone(),
        }
    }
}

impl<H: Handler, S> tower_layer::Layer<S> for EngineLayer<H> {
    type Service = EngineService<H, S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.engine.service(inner)
    }
}

/// Puts the client's address in the request extensions: the one this service was given, else
/// axum's `ConnectInfo` unless an earlier layer already put one there.
fn record_peer<B>(req: &mut Request<B>, peer: Option<std::net::SocketAddr>) {
    let peer = peer.or_else(|| connect_info(req));
    if let Some(peer) = peer {
        req.extensions_mut().insert(PeerAddr(peer));
    }
}

#[cfg(feature = "axum")]
fn connect_info<B>(req: &Request<B>) -> Option<std::net::SocketAddr> {
    use axum::extract::ConnectInfo;
    if req.extensions().get::<PeerAddr>().is_some() {
        return None;
    }
    req.extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0)
}

#[cfg(not(feature = "axum"))]
fn connect_info<B>(_req: &Request<B>) -> Option<std::net::SocketAddr> {
    None
}

impl<H, S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for EngineService<H, S>
where
    H: Handler,
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Either<Full<Bytes>, ResBody>>;
    type Error = S::Error;
    type Future = EngineResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // Readiness is the wrapped service's: Engine.IO requests never wait for a slot.
        self.fallback.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        if self.engine.is_engine_path(req.uri().path()) {
            record_peer(&mut req, self.peer);
            let engine = self.engine.clone();
            EngineResponseFuture::engine(Box::pin(async move { engine.handle(req).await }))
        } else {
            EngineResponseFuture::inner(self.fallback.call(req))
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`EngineService`] as a tower service: Engine.IO's answer, or the
    /// wrapped service's.
    pub struct EngineResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Engine { answer: BoxFuture<Response<Full<Bytes>>> },
        Ready { answer: Option<Response<Full<Bytes>>> },
        Inner { #[pin] future: F },
    }
}

impl<F> EngineResponseFuture<F> {
    fn engine(answer: BoxFuture<Response<Full<Bytes>>>) -> Self {
        EngineResponseFuture {
            kind: Kind::Engine { answer },
        }
    }

    fn inner(future: F) -> Self {
        EngineResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    /// A future that resolves at once to `answer`: for a layer above the engine (Socket.IO's
    /// client files) that answers some requests itself.
    pub fn ready(answer: Response<Full<Bytes>>) -> Self {
        EngineResponseFuture {
            kind: Kind::Ready {
                answer: Some(answer),
            },
        }
    }
}

impl<F> std::fmt::Debug for EngineResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for EngineResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Either<Full<Bytes>, B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Engine { answer } => answer
                .as_mut()
                .poll(cx)
                .map(|res| Ok(res.map(Either::Left))),
            KindProj::Ready { answer } => match answer.take() {
                Some(res) => Poll::Ready(Ok(res.map(Either::Left))),
                None => Poll::Pending,
            },
            KindProj::Inner { future } => {
                future.poll(cx).map(|r| r.map(|res| res.map(Either::Right)))
            }
        }
    }
}
