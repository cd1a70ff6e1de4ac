//! The application-facing [`EngineIo`]: request routing, the error table, handshakes, the
//! hyper `Service` ([`EngineService`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response};
use http_body_util::{Either, Full};
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use tokio::time::Instant;

use crate::config::{Config, Protocol, TransportKind};
use crate::error::HttpError;
use crate::headers::Headers;
use crate::packet::open_packet;
use crate::query;
use crate::response;
use crate::session::Session;
use crate::shared::{IpSlot, Shared};
use crate::sid::Sid;
use crate::socket::{Bound, Handler, Handshake, Socket};
use crate::{polling, websocket};

/// The client's address, put in request extensions by whoever accepted the connection.
///
/// [`serve`](crate::serve) and [`EngineService`] add it; an application that embeds
/// [`EngineIo::handle`] in its own server inserts it itself to get peer addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// An Engine.IO server. Clone it freely: clones share all sessions.
///
/// ```no_run
/// use engineio::{CloseReason, Config, EngineIo, Handler, Message, Socket};
///
/// struct Echo;
/// impl Handler for Echo {
///     type Conn = Socket;
///     fn on_open(&self, socket: Socket) -> Socket { socket }
///     fn on_message(&self, socket: &Socket, msg: Message) { let _ = socket.send(msg); }
///     fn on_close(&self, _: &Socket, _: CloseReason) {}
/// }
///
/// # async fn run() -> std::io::Result<()> {
/// let engine = EngineIo::new(Config::default(), Echo);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// engineio::serve(listener, engine.clone(), engineio::not_found(), std::future::pending()).await
/// # }
/// ```
pub struct EngineIo<H: Handler> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) handler: Arc<H>,
}

impl<H: Handler> Clone for EngineIo<H> {
    fn clone(&self) -> Self {
        EngineIo {
            shared: self.shared.clone(),
            handler: self.handler.clone(),
        }
    }
}

impl<H: Handler> std::fmt::Debug for EngineIo<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineIo")
            .field("path", &self.shared.config.path)
            .field("sessions", &self.shared.sessions.len())
            .finish()
    }
}

impl<H: Handler> EngineIo<H> {
    /// A server with these options and this handler.
    pub fn new(config: Config, handler: H) -> Self {
        Self::with_handler(config, Arc::new(handler))
    }

    /// Like [`EngineIo::new`], with a handler the application keeps a reference to.
    pub fn with_handler(config: Config, handler: Arc<H>) -> Self {
        EngineIo {
            shared: Shared::new(config),
            handler,
        }
    }

    /// The options in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The handler.
    pub fn handler(&self) -> &Arc<H> {
        &self.handler
    }

    /// Whether a request path belongs to this server (with or without the trailing slash).
    pub fn is_engine_path(&self, path: &str) -> bool {
        let own = self.shared.config.path.as_str();
        path == own || path == own.trim_end_matches('/')
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.shared.sessions.len()
    }

    /// Sessions still in memory, open or closed. Once every connection has ended this returns
    /// to zero: a session that stays counted is held by something (a leak).
    pub fn sessions_in_memory(&self) -> usize {
        self.shared.live_sessions.load(Ordering::Relaxed)
    }

    /// Turns traffic counting on (once; later calls return the same [`Meter`]): sessions
    /// opened from now on are counted. Off until called, and then nothing is counted or
    /// checked per message.
    ///
    /// ```
    /// # use engineio::{CloseReason, Config, EngineIo, Handler, Message, Socket};
    /// # struct Quiet;
    /// # impl Handler for Quiet {
    /// #     type Conn = ();
    /// #     fn on_open(&self, _: Socket) {}
    /// #     fn on_message(&self, _: &(), _: Message) {}
    /// #     fn on_close(&self, _: &(), _: CloseReason) {}
    /// # }
    /// let engine = EngineIo::new(Config::default(), Quiet);
    /// let meter = engine.meter();
    /// assert!(std::sync::Arc::ptr_eq(&meter, &engine.meter()));
    /// ```
    pub fn meter(&self) -> Arc<crate::Meter> {
        self.shared.meter.get_or_init(Arc::default).clone()
    }

    /// Handshakes refused so far by [`Config::max_sessions_per_ip`].
    pub fn sessions_refused_per_ip(&self) -> u64 {
        self.shared.refused_per_ip.load(Ordering::Relaxed)
    }

    /// Connections closed so far because their outgoing queue was full
    /// ([`SlowConsumerPolicy::Disconnect`](crate::SlowConsumerPolicy)).
    pub fn slow_consumers_dropped(&self) -> u64 {
        self.shared
            .slow_consumers
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// An open session by id.
    pub fn socket(&self, sid: &Sid) -> Option<Socket> {
        self.shared
            .sessions
            .get(sid)
            .filter(|s| s.close_reason().is_none())
            .map(Socket)
    }

    /// Every open session.
    pub fn sockets(&self) -> Vec<Socket> {
        self.shared
            .sessions
            .all()
            .into_iter()
            .filter(|s| s.close_reason().is_none())
            .map(Socket)
            .collect()
    }

    /// Takes no new sessions from now on: handshakes get 503 `Server draining` (a proxy such as
    /// nginx then tries another server), while open sessions go on until the application
    /// closes them ([`Socket::close`] lets a client reconnect elsewhere and recover).
    pub fn drain(&self) {
        self.shared.draining.store(true, Ordering::Release);
    }

    /// Whether [`EngineIo::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Acquire)
    }

    /// Refuses new handshakes and closes every session with `server shutting down`, then waits
    /// until every WebSocket connection has finished its close. Polling clients fetch their
    /// close packet afterwards, if the HTTP server still serves them; see
    /// [`EngineIo::graceful_shutdown`] to wait for that too.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        self.shared.ws_tasks.wait_idle().await;
    }

    /// Shuts down for an HTTP server other than [`serve`](crate::serve) (axum's
    /// `with_graceful_shutdown`, a hyper accept loop of one's own): refuses new handshakes,
    /// closes every session with `server shutting down`, and resolves once the clients have
    /// been told: each WebSocket got its close frame, and each polling client fetched its close
    /// packet or [`Config::shutdown_delivery`] went by.
    ///
    /// The HTTP server must go on serving until this resolves, since polling clients fetch
    /// their close packet with a request; stop it afterwards. With axum, await this inside the
    /// future given to `with_graceful_shutdown`. Long-polling requests still open when the HTTP
    /// server stops are answered at once (their session is closed), so they do not hold up
    /// the server's own graceful shutdown.
    pub async fn graceful_shutdown(&self) {
        self.begin_shutdown();
        let delivery = self.shared.config.shutdown_delivery;
        let _ = tokio::time::timeout(delivery, self.drained()).await;
        self.shared.ws_tasks.wait_idle().await;
    }

    /// Refuses new handshakes and closes every session with `server shutting down`, without
    /// waiting. Polling clients still fetch their close packet while the server keeps serving.
    pub fn begin_shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::Release);
        for session in self.shared.sessions.all() {
            session.close(crate::CloseReason::ServerShuttingDown);
        }
    }

    /// Resolves once every session is gone: WebSockets closed, and polling clients have
    /// fetched their close packet (or its grace period ended).
    pub async fn drained(&self) {
        self.shared.sessions.wait_empty().await;
    }

    /// A hyper service: this server at its path, `fallback` for every other request.
    pub fn service<F>(&self, fallback: F) -> EngineService<H, F> {
        EngineService {
            engine: self.clone(),
            fallback,
            peer: None,
        }
    }

    /// Serves one Engine.IO request. Requests outside [`EngineIo::is_engine_path`] are the
    /// caller's to route; given one anyway, this answers as for a bad request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let mut res = self.route(&parts, body).await;
        response::cors(&self.shared.config, &parts, res.headers_mut());
        res
    }

    async fn route<B>(&self, parts: &Parts, body: B) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let config = &self.shared.config;
        let raw_query = parts.uri.query().unwrap_or("");
        if parts.method == Method::OPTIONS && config.cors.is_some() {
            return response::preflight(config, parts);
        }
        let transport = query::param(raw_query, "transport")
            .as_deref()
            .and_then(TransportKind::parse)
            .filter(|t| config.allows(*t));
        let Some(transport) = transport else {
            return HttpError::UnknownTransport.into_response();
        };
        if !origin_is_valid(parts) {
            return HttpError::BadRequest.into_response();
        }
        let upgrade = transport == TransportKind::Websocket && websocket::is_upgrade(parts);
        if let Some(sid) = query::param(raw_query, "sid") {
            let session = Sid::parse(&sid).and_then(|sid| self.shared.sessions.get(&sid));
            let Some(session) = session else {
                return websocket::refuse_if(upgrade, HttpError::UnknownSid);
            };
            return match (transport, upgrade) {
                (TransportKind::Websocket, true) => websocket::upgrade(self, session, parts),
                (TransportKind::Websocket, false) => HttpError::BadRequest.into_response(),
                (TransportKind::Polling, _) if parts.method == Method::GET => {
                    polling::get(self, session, parts).await
                }
                (TransportKind::Polling, _) if parts.method == Method::POST => {
                    polling::post(self, session, parts, body).await
                }
                (TransportKind::Polling, _) => HttpError::BadRequest.into_response(),
            };
        }
        if parts.method != Method::GET {
            return HttpError::BadHandshakeMethod.into_response();
        }
        if transport == TransportKind::Websocket && !upgrade {
            return HttpError::BadRequest.into_response();
        }
        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0);
        if let Some(allow) = &config.allow_request {
            if let Err(message) = allow(parts, peer) {
                return websocket::refuse_if(upgrade, HttpError::Forbidden(message));
            }
        }
        let protocol = match query::param(raw_query, "EIO").as_deref() {
            Some("4") => Protocol::V4,
            Some("3") if config.allow_eio3 => Protocol::V3,
            _ => return websocket::refuse_if(upgrade, HttpError::UnsupportedProtocolVersion),
        };
        if self.shared.shutting_down.load(Ordering::Acquire) {
            return websocket::refuse_if(
                upgrade,
                HttpError::Forbidden("Server shutting down".into()),
            );
        }
        if self.shared.draining.load(Ordering::Acquire) {
            return websocket::refuse_if(upgrade, HttpError::Unavailable("Server draining".into()));
        }
        let client_ip = crate::client_ip(
            peer.map(|p| p.ip()),
            parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .map(|v| v.as_bytes()),
            &config.trusted_proxies,
        );
        let ip_slot = match (config.max_sessions_per_ip, client_ip) {
            (Some(max), Some(ip)) => match self.shared.per_ip.acquire(ip, max) {
                Some(slot) => Some(slot),
                None => {
                    tracing::info!(%ip, "too many sessions from one address");
                    self.shared.refused_per_ip.fetch_add(1, Ordering::Relaxed);
                    return websocket::refuse_if(
                        upgrade,
                        HttpError::Forbidden("Too many connections from this address".into()),
                    );
                }
            },
            _ => None,
        };
        let handshake = Handshake {
            peer_addr: peer,
            client_ip,
            headers: Headers::from(&parts.headers),
            query: raw_query.to_owned(),
            issued: SystemTime::now(),
            secure: parts.uri.scheme_str() == Some("https"),
        };
        match transport {
            TransportKind::Websocket => {
                websocket::handshake(self, parts, handshake, protocol, ip_slot)
            }
            TransportKind::Polling => self.polling_handshake(handshake, protocol, ip_slot),
        }
    }

    fn polling_handshake(
        &self,
        handshake: Handshake,
        protocol: Protocol,
        ip_slot: Option<IpSlot>,
    ) -> Response<Full<Bytes>> {
        let session = self.open(
            self.shared.config.new_sid(),
            handshake,
            TransportKind::Polling,
            protocol,
            ip_slot,
        );
        let open = self.open_packet(&session, true);
        let body = crate::wire::encode_open(protocol, open);
        let mut res = response::text(body);
        response::cookie(&self.shared.config, session.sid.as_str(), res.headers_mut());
        res
    }

    pub(crate) fn open_packet(&self, session: &Session, polling: bool) -> Bytes {
        let c = &self.shared.config;
        let packet = open_packet(
            session.sid.as_str(),
            polling && c.offers_upgrade(),
            c.ping_interval.as_millis() as u64,
            c.ping_timeout.as_millis() as u64,
            c.max_payload,
        );
        Bytes::from(packet)
    }

    /// Creates a session, starts its heartbeat and hands it to the handler.
    pub(crate) fn open(
        &self,
        sid: Sid,
        handshake: Handshake,
        transport: TransportKind,
        protocol: Protocol,
        ip_slot: Option<IpSlot>,
    ) -> Arc<Session> {
        let now = Instant::now();
        let session = Session::new(
            &self.shared,
            sid,
            handshake,
            transport,
            protocol,
            ip_slot,
            now,
        );
        self.shared.sessions.insert(session.clone());
        session.start_timer();
        tracing::debug!(
            sid = %session.sid,
            transport = transport.as_str(),
            protocol = protocol.number(),
            "session opened"
        );
        let conn = self.handler.on_open(Socket(session.clone()));
        session.bind(Arc::new(Bound {
            handler: self.handler.clone(),
            conn,
        }));
        session
    }
}

/// `Origin` must hold only visible ASCII, tab, space or obs-text.
pub(crate) fn origin_is_valid(parts: &Parts) -> bool {
    parts
        .headers
        .get_all(header::ORIGIN)
        .iter()
        .all(|v: &HeaderValue| {
            v.as_bytes()
                .iter()
                .all(|b| *b == b'\t' || (0x20..=0x7e).contains(b) || *b >= 0x80)
        })
}

/// A hyper service: an [`EngineIo`] at its path, and a fallback service for the rest.
///
/// Responses have the body type `Either<Full<Bytes>, B>` where `B` is the fallback's. With the
/// `tower` feature it is a tower `Service` too, around any tower service (see `EngineLayer`).
pub struct EngineService<H: Handler, F> {
    pub(crate) engine: EngineIo<H>,
    pub(crate) fallback: F,
    pub(crate) peer: Option<SocketAddr>,
}

impl<H: Handler, F: Clone> Clone for EngineService<H, F> {
    fn clone(&self) -> Self {
        EngineService {
            engine: self.engine.clone(),
            fallback: self.fallback.clone(),
            peer: self.peer,
        }
    }
}

impl<H: Handler, F> EngineService<H, F> {
    /// The same service, recording `peer` as the client address of its requests.
    pub fn with_peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<H, F, B> Service<Request<Incoming>> for EngineService<H, F>
where
    H: Handler,
    F: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
    F::Future: Send + 'static,
{
    type Response = Response<Either<Full<Bytes>, B>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(PeerAddr(peer));
        }
        if self.engine.is_engine_path(req.uri().path()) {
            let engine = self.engine.clone();
            Box::pin(async move { Ok(engine.handle(req).await.map(Either::Left)) })
        } else {
            let fut = self.fallback.call(req);
            Box::pin(async move { fut.await.map(|res| res.map(Either::Right)) })
        }
    }
}

/// A fallback service that answers 404 to everything.
pub fn not_found() -> NotFound {
    NotFound
}

/// See [`not_found`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NotFound;

impl Service<Request<Incoming>> for NotFound {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn call(&self, _req: Request<Incoming>) -> Self::Future {
        let mut res = Response::new(Full::new(Bytes::from_static(b"Not Found")));
        *res.status_mut() = http::StatusCode::NOT_FOUND;
        std::future::ready(Ok(res))
    }
}
