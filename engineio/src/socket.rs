//! The application's side of a session: the [`Handler`] callbacks and the [`Socket`] handle.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{Protocol, TransportKind};
use crate::headers::Headers;
use crate::packet::{Frame, Message};
use crate::reason::CloseReason;
use crate::session::Session;
use crate::sid::Sid;

/// Receives the events of every session (one client's Engine.IO connection).
///
/// Callbacks run on the session's own IO path (the WebSocket task, or the polling request
/// being served), in order, one at a time per session. They must not block; spawn a task
/// for slow work. The application's state for a session lives in [`Handler::Conn`], created by
/// `on_open`.
///
/// `on_close` runs exactly once per session, possibly from within `on_message` when the
/// handler itself closes the socket.
///
/// ```
/// use engineio::{CloseReason, Handler, Message, Socket};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     type Conn = Socket;
///     fn on_open(&self, socket: Socket) -> Socket {
///         socket
///     }
///     fn on_message(&self, socket: &Socket, message: Message) {
///         let _ = socket.send(message);
///     }
///     fn on_close(&self, _socket: &Socket, _reason: CloseReason) {}
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// The application's state for one session, dropped after `on_close`.
    type Conn: Send + Sync + 'static;

    /// A client completed the handshake.
    fn on_open(&self, socket: Socket) -> Self::Conn;

    /// A message arrived.
    fn on_message(&self, conn: &Self::Conn, message: Message);

    /// The session ended.
    fn on_close(&self, conn: &Self::Conn, reason: CloseReason);

    /// The session moved from polling to WebSocket.
    fn on_upgrade(&self, conn: &Self::Conn) {
        let _ = conn;
    }
}

/// Why a message was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The session is closed.
    #[error("connection closed")]
    Closed,
    /// The outgoing queue is full (slow consumer).
    #[error("outgoing queue full")]
    Full,
    /// A volatile message was dropped because the transport could not take it at once.
    #[error("volatile message dropped")]
    Dropped,
}

/// What the client sent with its handshake request.
#[derive(Clone, Debug)]
pub struct Handshake {
    /// The address of the TCP peer (a reverse proxy, when there is one).
    pub peer_addr: Option<SocketAddr>,
    /// The client's address: the peer, or behind trusted proxies the address they forwarded
    /// (see [`client_ip`](crate::client_ip)).
    pub client_ip: Option<IpAddr>,
    /// Request headers, kept compactly (see [`Headers`]).
    pub headers: Headers,
    /// The raw query string.
    pub query: String,
    /// When the handshake happened.
    pub issued: SystemTime,
    /// Whether the request came over TLS (as far as this server can tell).
    pub secure: bool,
}

impl Handshake {
    /// The first value of a query parameter, percent-decoded.
    ///
    /// ```
    /// # use engineio::Handshake;
    /// let h = Handshake {
    ///     peer_addr: None,
    ///     client_ip: None,
    ///     headers: Default::default(),
    ///     query: "EIO=4&transport=polling&name=a%20b".into(),
    ///     issued: std::time::SystemTime::now(),
    ///     secure: false,
    /// };
    /// assert_eq!(h.query_param("name").as_deref(), Some("a b"));
    /// assert_eq!(h.query_param("nope"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        crate::query::param(&self.query, name).map(|v| v.into_owned())
    }

    /// Every query parameter, percent-decoded, in order.
    ///
    /// ```
    /// # use engineio::Handshake;
    /// # let h = Handshake { peer_addr: None, client_ip: None, headers: Default::default(),
    /// #     query: "EIO=4&room=a%2Fb".into(), issued: std::time::SystemTime::now(), secure: false };
    /// let pairs: Vec<(String, String)> = h.query_pairs().collect();
    /// assert_eq!(pairs[1], ("room".to_string(), "a/b".to_string()));
    /// ```
    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        crate::query_pairs(&self.query)
    }
}

/// A handle to one session. Cheap to clone; all clones refer to the same session.
#[derive(Clone)]
pub struct Socket(pub(crate) Arc<Session>);

impl Socket {
    /// Whether both handles refer to the same session.
    pub fn same_connection(&self, other: &Socket) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The session id.
    pub fn id(&self) -> Sid {
        self.0.sid
    }

    /// Queues a message. Never waits: a full queue is handled by the slow-consumer policy.
    pub fn send(&self, message: Message) -> Result<(), SendError> {
        self.0.send([Frame::from(message)], false)
    }

    /// Queues several messages as one unit: they go out together, in order, with nothing from
    /// other senders in between (a Socket.IO packet and its binary attachments).
    pub fn send_all(&self, messages: &[Message]) -> Result<(), SendError> {
        self.0
            .send(messages.iter().cloned().map(Frame::from), false)
    }

    /// Queues a message only if it can be written at once; otherwise drops it.
    pub fn send_volatile(&self, message: Message) -> Result<(), SendError> {
        self.0.send([Frame::from(message)], true)
    }

    /// Like [`Socket::send_all`], for volatile messages.
    pub fn send_all_volatile(&self, messages: &[Message]) -> Result<(), SendError> {
        self.0.send(messages.iter().cloned().map(Frame::from), true)
    }

    /// Resolves once `bytes` more can be queued without going over the queue limit
    /// ([`Config::max_buffered_bytes`](crate::Config)), as the client reads what is queued;
    /// fails once the session is closed. Senders of long streams (history, catch-up) await
    /// it between pages, so a client that reads slowly slows them down instead of being
    /// disconnected as a slow consumer.
    ///
    /// ```no_run
    /// # async fn run(socket: engineio::Socket, pages: Vec<engineio::Message>) {
    /// for page in pages {
    ///     if socket.writable(page.len()).await.is_err() {
    ///         return; // closed
    ///     }
    ///     let _ = socket.send(page);
    /// }
    /// # }
    /// ```
    pub async fn writable(&self, bytes: usize) -> Result<(), SendError> {
        self.0.reserve(bytes).await
    }

    /// Closes the session (reason [`CloseReason::ForcedClose`]) after sending what is queued.
    pub fn close(&self) {
        self.0.close(CloseReason::ForcedClose);
    }

    /// Whether the session is closed.
    pub fn is_closed(&self) -> bool {
        self.0.close_reason().is_some()
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.0.close_reason()
    }

    /// The transport in use now.
    pub fn transport(&self) -> TransportKind {
        self.0.transport()
    }

    /// The Engine.IO protocol revision of this session: [`Protocol::V3`] only for old
    /// clients accepted with [`Config::allow_eio3`](crate::Config::allow_eio3).
    pub fn protocol(&self) -> Protocol {
        self.0.protocol
    }

    /// The handshake request's data.
    pub fn handshake(&self) -> &Handshake {
        &self.0.handshake
    }

    /// The address of the TCP peer (a reverse proxy, when there is one).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.0.handshake.peer_addr
    }

    /// The client's address, behind trusted proxies too (see [`Handshake::client_ip`]).
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.0.handshake.client_ip
    }
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.0.sid)
            .field("transport", &self.transport())
            .finish()
    }
}

impl PartialEq for Socket {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Socket {}

/// The type-erased link from a session to its handler and the application's state for it.
pub(crate) trait Hooks: Send + Sync {
    fn message(&self, message: Message);
    fn closed(&self, reason: CloseReason);
    fn upgraded(&self);
}

pub(crate) struct Bound<H: Handler> {
    pub(crate) handler: Arc<H>,
    pub(crate) conn: H::Conn,
}

impl<H: Handler> Hooks for Bound<H> {
    fn message(&self, message: Message) {
        self.handler.on_message(&self.conn, message);
    }
    fn closed(&self, reason: CloseReason) {
        self.handler.on_close(&self.conn, reason);
    }
    fn upgraded(&self) {
        self.handler.on_upgrade(&self.conn);
    }
}
