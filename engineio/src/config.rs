//! Server options.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;

use crate::sid::{Sid, SidPrefix};

/// A transport a client can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    Websocket,
}

impl TransportKind {
    /// The name used in the `transport` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Polling => "polling",
            TransportKind::Websocket => "websocket",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "polling" => Some(TransportKind::Polling),
            "websocket" => Some(TransportKind::Websocket),
            _ => None,
        }
    }
}

/// The Engine.IO protocol revision a session speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// Engine.IO v3 (`EIO=3`, socket.io-client 1.x/2.x); only with [`Config::allow_eio3`].
    V3,
    /// Engine.IO v4 (`EIO=4`, socket.io-client 3.x/4.x).
    V4,
}

impl Protocol {
    /// The revision number, as in the `EIO` query parameter.
    pub fn number(self) -> u8 {
        match self {
            Protocol::V3 => 3,
            Protocol::V4 => 4,
        }
    }
}

/// What happens when a connection's outgoing queue is full because the client reads too slowly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SlowConsumerPolicy {
    /// Close the connection with [`CloseReason::TransportError`](crate::CloseReason). The client
    /// reconnects; with Socket.IO connection state recovery it gets the missed messages back.
    #[default]
    Disconnect,
    /// Drop the message that did not fit; [`Socket::send`](crate::Socket::send) returns
    /// [`SendError::Full`](crate::SendError).
    DropMessage,
}

/// Which origins get CORS headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowOrigin {
    /// Any origin: `*`, or the request's origin echoed when credentials are allowed.
    Any,
    /// Exactly these origins (`https://chat.example.com`).
    List(Vec<String>),
}

/// Cross-origin resource sharing for the polling transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    /// The origins allowed.
    pub origin: AllowOrigin,
    /// Send `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
    /// `Access-Control-Max-Age` for preflight answers.
    pub max_age: Option<Duration>,
}

/// The sticky-session cookie set on the handshake, for load balancers that route on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cookie {
    /// Cookie name (`io` by default).
    pub name: String,
    /// `Path` attribute (`/` by default).
    pub path: String,
    /// `HttpOnly` attribute.
    pub http_only: bool,
    /// `SameSite` attribute (`Lax` by default).
    pub same_site: String,
}

impl Default for Cookie {
    fn default() -> Self {
        Cookie {
            name: "io".into(),
            path: "/".into(),
            http_only: true,
            same_site: "Lax".into(),
        }
    }
}

/// Decides whether a handshake may proceed: `Err(message)` refuses it with 403 (code 4).
pub type AllowRequest =
    Arc<dyn Fn(&Parts, Option<SocketAddr>) -> Result<(), String> + Send + Sync + 'static>;

/// Engine.IO server options. Defaults match the reference server.
///
/// ```
/// use std::time::Duration;
/// let config = engineio::Config::builder()
///     .path("/engine.io/")
///     .ping_interval(Duration::from_secs(25))
///     .ping_timeout(Duration::from_secs(20))
///     .max_payload(1_000_000)
///     .build();
/// assert_eq!(config.max_payload, 1_000_000);
/// ```
#[derive(Clone)]
pub struct Config {
    /// The path served, with a trailing slash (`/engine.io/`); the form without it is accepted too.
    pub path: String,
    /// Time between pings.
    pub ping_interval: Duration,
    /// Time allowed for the pong.
    pub ping_timeout: Duration,
    /// Largest accepted POST body or WebSocket message, in bytes; advertised as `maxPayload`.
    pub max_payload: u64,
    /// Time allowed for a WebSocket upgrade to complete.
    pub upgrade_timeout: Duration,
    /// Transports accepted.
    pub transports: Vec<TransportKind>,
    /// Whether polling sessions may upgrade to WebSocket.
    pub allow_upgrades: bool,
    /// CORS headers for cross-origin polling; `None` sends none.
    pub cors: Option<Cors>,
    /// Sticky-session cookie; `None` sets none.
    pub cookie: Option<Cookie>,
    /// Handshake admission hook.
    pub allow_request: Option<AllowRequest>,
    /// Compress polling responses at least this large when the client accepts gzip or deflate.
    pub http_compression_threshold: Option<usize>,
    /// Bytes a connection may have queued for sending before the slow-consumer policy applies.
    pub max_buffered_bytes: usize,
    /// What happens to a slow consumer.
    pub slow_consumer: SlowConsumerPolicy,
    /// How long a server-closed polling session waits for a GET to deliver the close packet.
    pub polling_close_grace: Duration,
    /// How long [`crate::serve`] keeps serving after shutdown began, so that polling clients
    /// fetch their last packets and close packet; it ends earlier once all have. A client
    /// between two polls comes back when its event loop gets to it: on a loaded machine that
    /// can take seconds.
    pub shutdown_delivery: Duration,
    /// Read buffer of each WebSocket connection, in bytes: small keeps idle connections cheap.
    pub ws_read_buffer: usize,
    /// Accept Engine.IO v3 clients (`EIO=3`: socket.io-client 1.x/2.x), like Node's
    /// `allowEIO3`. Off by default: such handshakes get 400 code 5.
    pub allow_eio3: bool,
    /// Time a client has to send a complete request head once the connection waits for one,
    /// and a polling POST its body: slower clients are disconnected, so they cannot hold
    /// connections open by trickling bytes (used by [`serve`](crate::serve)).
    pub http_header_timeout: Duration,
    /// How long a kept-alive HTTP connection may sit idle between requests before it is
    /// closed (used by [`serve`](crate::serve)).
    pub http_keep_alive_timeout: Duration,
    /// Most connections that may be open at once without having sent a complete first
    /// request; more are closed as they arrive (used by [`serve`](crate::serve)).
    pub max_unfinished_connections: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed; empty (the default) believes none.
    /// See [`client_ip`](crate::client_ip) for how the client's address is found.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Most sessions open at once from one client address; more handshakes get 403. `None`
    /// (the default) sets no limit.
    pub max_sessions_per_ip: Option<usize>,
    /// The prefix of every new session id (`a` gives `a-…`), so that a load balancer in front
    /// of several servers can send a session's requests to the server that owns it; `None`
    /// (the default) makes ids wholly random.
    pub sid_prefix: Option<SidPrefix>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: "/engine.io/".into(),
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            upgrade_timeout: Duration::from_millis(10_000),
            transports: vec![TransportKind::Polling, TransportKind::Websocket],
            allow_upgrades: true,
            cors: None,
            cookie: None,
            allow_request: None,
            http_compression_threshold: Some(1024),
            max_buffered_bytes: 4 << 20,
            slow_consumer: SlowConsumerPolicy::Disconnect,
            polling_close_grace: Duration::from_secs(30),
            shutdown_delivery: Duration::from_secs(2),
            ws_read_buffer: 1024,
            allow_eio3: false,
            http_header_timeout: Duration::from_secs(15),
            http_keep_alive_timeout: Duration::from_secs(15),
            max_unfinished_connections: 1024,
            trusted_proxies: Vec::new(),
            max_sessions_per_ip: None,
            sid_prefix: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("max_payload", &self.max_payload)
            .field("upgrade_timeout", &self.upgrade_timeout)
            .field("transports", &self.transports)
            .field("allow_upgrades", &self.allow_upgrades)
            .field("cors", &self.cors)
            .field("cookie", &self.cookie)
            .field("allow_request", &self.allow_request.is_some())
            .field(
                "http_compression_threshold",
                &self.http_compression_threshold,
            )
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("slow_consumer", &self.slow_consumer)
            .field("shutdown_delivery", &self.shutdown_delivery)
            .field("allow_eio3", &self.allow_eio3)
            .field("http_header_timeout", &self.http_header_timeout)
            .field("http_keep_alive_timeout", &self.http_keep_alive_timeout)
            .field(
                "max_unfinished_connections",
                &self.max_unfinished_connections,
            )
            .field("trusted_proxies", &self.trusted_proxies)
            .field("max_sessions_per_ip", &self.max_sessions_per_ip)
            .field("sid_prefix", &self.sid_prefix)
            .finish()
    }
}

impl Config {
    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder(Config::default())
    }

    pub(crate) fn allows(&self, t: TransportKind) -> bool {
        self.transports.contains(&t)
    }

    /// A fresh id for a new session, with the configured prefix.
    pub(crate) fn new_sid(&self) -> Sid {
        match &self.sid_prefix {
            Some(prefix) => Sid::random_with_prefix(prefix),
            None => Sid::random(),
        }
    }

    /// Whether a polling handshake advertises the WebSocket upgrade.
    pub(crate) fn offers_upgrade(&self) -> bool {
        self.allow_upgrades && self.allows(TransportKind::Websocket)
    }
}

/// Builds a [`Config`].
#[derive(Clone, Debug)]
pub struct ConfigBuilder(Config);

impl ConfigBuilder {
    /// Path to serve; a trailing slash is added when missing.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if !path.ends_with('/') {
            path.push('/');
        }
        self.0.path = path;
        self
    }
    /// Time between pings.
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.0.ping_interval = d;
        self
    }
    /// Time allowed for a pong.
    pub fn ping_timeout(mut self, d: Duration) -> Self {
        self.0.ping_timeout = d;
        self
    }
    /// Largest accepted message or POST body.
    pub fn max_payload(mut self, bytes: u64) -> Self {
        self.0.max_payload = bytes;
        self
    }
    /// Time allowed for an upgrade.
    pub fn upgrade_timeout(mut self, d: Duration) -> Self {
        self.0.upgrade_timeout = d;
        self
    }
    /// Transports accepted.
    pub fn transports(mut self, t: impl IntoIterator<Item = TransportKind>) -> Self {
        self.0.transports = t.into_iter().collect();
        self
    }
    /// Whether polling sessions may upgrade.
    pub fn allow_upgrades(mut self, allow: bool) -> Self {
        self.0.allow_upgrades = allow;
        self
    }
    /// CORS for cross-origin polling.
    pub fn cors(mut self, cors: Cors) -> Self {
        self.0.cors = Some(cors);
        self
    }
    /// Sticky-session cookie.
    pub fn cookie(mut self, cookie: Cookie) -> Self {
        self.0.cookie = Some(cookie);
        self
    }
    /// Handshake admission hook: `Err(message)` refuses with 403.
    pub fn allow_request(
        mut self,
        f: impl Fn(&Parts, Option<SocketAddr>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.0.allow_request = Some(Arc::new(f));
        self
    }
    /// Compression threshold for polling responses; `None` turns compression off.
    pub fn http_compression_threshold(mut self, bytes: Option<usize>) -> Self {
        self.0.http_compression_threshold = bytes;
        self
    }
    /// Outgoing queue limit per connection.
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.0.max_buffered_bytes = bytes;
        self
    }
    /// Slow-consumer policy.
    pub fn slow_consumer(mut self, policy: SlowConsumerPolicy) -> Self {
        self.0.slow_consumer = policy;
        self
    }
    /// Grace period for delivering a server close to a polling client.
    pub fn polling_close_grace(mut self, d: Duration) -> Self {
        self.0.polling_close_grace = d;
        self
    }
    /// How long `serve` waits for polling clients to fetch their close at shutdown (2 s).
    pub fn shutdown_delivery(mut self, d: Duration) -> Self {
        self.0.shutdown_delivery = d;
        self
    }
    /// Accept Engine.IO v3 clients (`EIO=3`), off by default. Their sessions use the v3 wire
    /// format (length-prefixed polling payloads, XHR2 or `b64` binary, a type byte on
    /// WebSocket binary frames) and the v3 heartbeat: the client pings, the server answers.
    pub fn allow_eio3(mut self, allow: bool) -> Self {
        self.0.allow_eio3 = allow;
        self
    }

    /// Time allowed for a request head (and a polling POST body).
    pub fn http_header_timeout(mut self, d: Duration) -> Self {
        self.0.http_header_timeout = d;
        self
    }

    /// Idle time after which a kept-alive HTTP connection is closed.
    pub fn http_keep_alive_timeout(mut self, d: Duration) -> Self {
        self.0.http_keep_alive_timeout = d;
        self
    }

    /// Most connections open at once that have not sent a complete first request.
    pub fn max_unfinished_connections(mut self, n: usize) -> Self {
        self.0.max_unfinished_connections = n;
        self
    }

    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(mut self, nets: impl IntoIterator<Item = ipnet::IpNet>) -> Self {
        self.0.trusted_proxies = nets.into_iter().collect();
        self
    }

    /// Most sessions open at once from one client address.
    pub fn max_sessions_per_ip(mut self, max: Option<usize>) -> Self {
        self.0.max_sessions_per_ip = max;
        self
    }

    /// Prefix of new session ids (see [`Config::sid_prefix`]); `None` for random ids.
    pub fn sid_prefix(mut self, prefix: Option<SidPrefix>) -> Self {
        self.0.sid_prefix = prefix;
        self
    }

    /// The finished configuration.
    pub fn build(self) -> Config {
        self.0
    }
}

impl From<Config> for ConfigBuilder {
    /// A builder that starts from an existing configuration.
    fn from(config: Config) -> Self {
        ConfigBuilder(config)
    }
}
