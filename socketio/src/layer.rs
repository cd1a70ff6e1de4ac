//! The tower integration (feature `tower`): [`SocketIoLayer`] puts Socket.IO in front of any
//! tower service, such as an axum `Router`.

use std::task::{Context, Poll};

use bytes::Bytes;
use engineio::EngineResponseFuture;
use http_body_util::{Either, Full};
use hyper::body::Body;
use hyper::{Request, Response};

use crate::server::{SocketIo, SocketIoService};

/// A tower [`Layer`](tower_layer::Layer) that serves Socket.IO (and the client files) under its
/// path and hands every other request to the service it wraps. Made by [`SocketIo::layer`].
///
/// In an axum application, add it with `Router::layer` after the routes and fallback, and serve
/// the router with `axum::serve` as usual:
///
/// - WebSocket upgrades work through it (hyper's upgrade handle travels in the request
///   extensions, which axum keeps);
/// - [`Socket::handshake`](crate::Socket::handshake) has the client's address when the router is served
///   with `into_make_service_with_connect_info::<SocketAddr>()` (feature `axum`), or when an
///   earlier layer put an [`engineio::PeerAddr`] in the request extensions;
/// - on shutdown, await [`SocketIo::shutdown`] in the future given to axum's
///   `with_graceful_shutdown`, so that clients are told before axum stops serving;
/// - state: the [`SocketIo`] is a cheap clone, so axum handlers can hold it (as router state
///   or in their own state) to emit and broadcast, and Socket.IO handlers capture whatever
///   state they share with the routes.
///
/// The HTTP timeouts of [`engineio::Config`] (`http_header_timeout`, `http_keep_alive_timeout`,
/// `max_unfinished_connections`) belong to [`serve`](crate::serve)'s accept loop and do not apply
/// here.
///
/// HTTP/2: the routes behind the layer serve HTTP/2 clients as usual (`axum::serve` speaks both
/// versions). Socket.IO's long-polling works over HTTP/2 too; its WebSocket transport needs
/// HTTP/1.1 (`Upgrade`), and a request for it over HTTP/2 (extended CONNECT included) gets
/// Engine.IO's 400 error, as from Node's server, so the client stays on long-polling.
#[derive(Clone, Debug)]
pub struct SocketIoLayer {
    io: SocketIo,
}

impl SocketIo {
    /// A tower layer: Socket.IO and the client files at their paths, the wrapped service for
    /// every other request.
    ///
    /// ```
    /// use socketio::{Config, SocketIo};
    ///
    /// let io = SocketIo::new(Config::default());
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/hello", axum::routing::get(|| async { "hello" }))
    ///     .layer(io.layer());
    /// ```
    pub fn layer(&self) -> SocketIoLayer {
        SocketIoLayer { io: self.clone() }
    }
}

impl<S> tower_layer::Layer<S> for SocketIoLayer {
    type Service = SocketIoService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.io.service(inner)
    }
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for SocketIoService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Either<Full<Bytes>, ResBody>>;
    type Error = S::Error;
    type Future = EngineResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        tower_service::Service::poll_ready(&mut self.engine, cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if let Some(res) = self.client_files.serve(&req) {
            return EngineResponseFuture::ready(res);
        }
        tower_service::Service::call(&mut self.engine, req)
    }
}
