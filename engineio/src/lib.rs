//! An Engine.IO v4 server, written from scratch on hyper 1.x and tokio-tungstenite.
//!
//! Engine.IO is the transport under Socket.IO: a session that starts on HTTP long-polling or
//! WebSocket, upgrades from polling to WebSocket, and is kept alive by server pings. This crate
//! speaks the protocol of `engine.io-client` 6.x (Socket.IO client 3.x and 4.x) and, when
//! [`Config::allow_eio3`] is on, Engine.IO v3 for old clients (Socket.IO client 1.x and 2.x).
//!
//! - [`EngineIo`] is the server; mount it in any hyper program with [`EngineIo::service`] or
//!   [`EngineIo::handle`], run it with [`serve`], or put it in an axum router with
//!   `EngineIo::layer` (feature `tower` or `axum`, below).
//! - A [`Handler`] receives each session's events; [`Socket`] is the handle to send, close
//!   and inspect a session.
//! - The codec ([`packet`], [`payload`]) and the session state machine are sans-IO.
//!
//! One word for one thing: a *session* is one client's Engine.IO connection, named by its
//! [`Sid`], carried by one transport at a time (long-polling requests, then perhaps one
//! WebSocket). [`Socket`] is the application's handle to a session and [`Handler::Conn`] the
//! application's own state for it.
//!
//! Inside, each session is one IO-free state machine that takes inputs with a timestamp and
//! returns effects (a packet from the client on either transport, a polling request, the
//! timer, the upgrade probe, a close), driven by thin polling and WebSocket layers that only
//! move bytes, as quinn-proto is driven by quinn.
//!
//! Each WebSocket connection is driven by one task that reads, writes and closes; every frame
//! queued since its last write goes out with one flush. Heartbeats of all sessions run on one
//! shared timer task. The outgoing queue of each connection is bounded
//! ([`Config::max_buffered_bytes`]) and a slow consumer is handled by
//! [`Config::slow_consumer`].
//!
//! ```no_run
//! use engineio::{CloseReason, Config, EngineIo, Handler, Message, Socket};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type Conn = Socket;
//!     fn on_open(&self, socket: Socket) -> Socket {
//!         socket
//!     }
//!     fn on_message(&self, socket: &Socket, message: Message) {
//!         let _ = socket.send(message);
//!     }
//!     fn on_close(&self, socket: &Socket, reason: CloseReason) {
//!         println!("{} closed: {reason}", socket.id());
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let engine = EngineIo::new(Config::default(), Echo);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     let ctrl_c = async { let _ = tokio::signal::ctrl_c().await; };
//!     engineio::serve(listener, engine, engineio::not_found(), ctrl_c).await
//! }
//! ```
//!
//! # With axum
//!
//! With the feature `axum`, `EngineIo::layer` mounts the server in an axum 0.8 `Router` beside
//! its routes, on `axum::serve`'s listener. [`EngineIo::graceful_shutdown`], awaited in the
//! future given to `with_graceful_shutdown`, tells every client before axum stops.
//!
//! ```no_run
//! # use engineio::{CloseReason, Config, EngineIo, Handler, Message, Socket};
//! # struct Echo;
//! # impl Handler for Echo {
//! #     type Conn = Socket;
//! #     fn on_open(&self, s: Socket) -> Socket { s }
//! #     fn on_message(&self, s: &Socket, m: Message) { let _ = s.send(m); }
//! #     fn on_close(&self, _: &Socket, _: CloseReason) {}
//! # }
//! # async fn run() -> std::io::Result<()> {
//! let engine = EngineIo::new(Config::default(), Echo);
//! let app = axum::Router::new()
//!     .route("/health", axum::routing::get(|| async { "ok" }))
//!     .layer(engine.layer());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! let shutdown = async move {
//!     engineio::shutdown_signal().await;
//!     engine.graceful_shutdown().await;
//! };
//! let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
//! axum::serve(listener, app).with_graceful_shutdown(shutdown).await
//! # }
//! ```

#![warn(missing_docs)]

mod accept;
mod client_addr;
mod config;
mod engine;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod headers;
#[cfg(feature = "tower")]
mod layer;
mod machine;
mod meter;
pub mod packet;
pub mod payload;
mod polling;
mod query;
mod reason;
mod response;
mod session;
mod shared;
mod sid;
mod socket;
mod timer;
mod v3;
mod websocket;
mod wire;
mod ws_frame;

pub use accept::{serve, shutdown_signal};
pub use client_addr::client_ip;
pub use config::{
    AllowOrigin, Config, ConfigBuilder, Cookie, Cors, Protocol, SlowConsumerPolicy, TransportKind,
};
pub use engine::{not_found, EngineIo, EngineService, NotFound, PeerAddr};
pub use error::HttpError;
pub use headers::Headers;
pub use ipnet::IpNet;
#[cfg(feature = "tower")]
pub use layer::{EngineLayer, EngineResponseFuture};
pub use meter::{Meter, MeterReading};
pub use packet::{DecodeError, Message, Packet, Text};
pub use reason::CloseReason;
pub use sid::{InvalidSidPrefix, Sid, SidPrefix};

/// Every `name=value` pair of a raw query string, percent-decoded (`+` as space), in order.
///
/// ```
/// let pairs: Vec<_> = engineio::query_pairs("a=1&b=x%20y+z&c").collect();
/// assert_eq!(pairs[1], ("b".to_string(), "x y z".to_string()));
/// assert_eq!(pairs[2], ("c".to_string(), String::new()));
/// ```
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query::pairs(query).map(|(k, v)| (k.into_owned(), v.into_owned()))
}
pub use socket::{Handler, Handshake, SendError, Socket};

/// The examples of README.md, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
