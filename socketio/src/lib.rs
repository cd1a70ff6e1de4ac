//! A Socket.IO v5 server on the [`engineio`] crate, wire-compatible with the stock JavaScript
//! client (socket.io-client 3.x and 4.x) and with what Node's socket.io 4.8 does on the wire.
//!
//! Old clients (socket.io-client 1.x/2.x: Socket.IO v4 over Engine.IO v3) are served too when
//! [`engineio::Config::allow_eio3`] is on (off by default), as with Node's `allowEIO3`: they are
//! connected to `/` at once, send their auth as a query string in the namespace, get
//! CONNECT_ERROR as a string, and know their socket by [`Socket::client_id`].
//!
//! - [`SocketIo`] is the server: namespaces ([`SocketIo::of`], [`SocketIo::dynamic`]),
//!   broadcasts, and a hyper service ([`SocketIo::service`]), a ready accept loop ([`serve`]),
//!   or a tower layer for axum (`SocketIo::layer`, feature `tower` or `axum`).
//! - [`Namespace`]: connect middlewares, the connection handler, broadcasts to its sockets.
//! - [`Socket`]: one client in one namespace: event handlers, emits, acknowledgements both ways,
//!   rooms, disconnect.
//! - [`adapter::Adapter`]: rooms and broadcasts behind a trait, so a cluster adapter can replace
//!   the in-memory one; [`recovery::SessionStore`]: connection state recovery storage.
//! - [`packet`]: the sans-IO codec.
//! - Typed handlers ([`Socket::on_typed`], [`Namespace::on_connection_typed`]): arguments
//!   taken by [`extract`]ors (serde data, binary, the ack, [`Builder::state`], per-socket
//!   [`Extensions`]), beside the untyped `on`/`on_connection`, which take the raw [`Event`].
//!
//! Handlers of one socket run one at a time, in the order the events arrived. A handler whose
//! future completes without waiting runs inline on the connection's IO path; one that waits
//! moves to a task, and the socket's later events queue behind it.
//!
//! ```no_run
//! use socketio::{Config, SocketIo};
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let io = SocketIo::new(Config::default());
//!     io.of("/").on_connection(|socket| async move {
//!         socket.on("message", |socket, event| async move {
//!             let _ = socket.emit("message-back", event.args);
//!         });
//!     });
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     let ctrl_c = async { let _ = tokio::signal::ctrl_c().await; };
//!     socketio::serve(listener, io, engineio::not_found(), ctrl_c).await
//! }
//! ```
//!
//! # With axum
//!
//! With the feature `axum` (`socketio = { version = "0.1", features = ["axum"] }`),
//! `SocketIo::layer` mounts Socket.IO in an axum 0.8 `Router` beside its routes, and
//! `axum::serve` serves both on one listener. Axum handlers reach the clients through a clone of
//! the [`SocketIo`] (here as router state). On shutdown, [`SocketIo::shutdown`] tells the clients
//! while axum still serves them; axum stops once it returns.
//!
//! ```no_run
//! use std::net::SocketAddr;
//!
//! use axum::{extract::State, routing::post, Router};
//! use socketio::{Config, SocketIo};
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let io = SocketIo::new(Config::default());
//!     io.of("/").on_connection(|socket| async move {
//!         socket.on("message", |socket, event| async move {
//!             let _ = socket.emit("message-back", event.args);
//!         });
//!     });
//!     let app = Router::new()
//!         .route("/notify", post(|State(io): State<SocketIo>, text: String| async move {
//!             let _ = io.emit("notice", text);
//!         }))
//!         .with_state(io.clone())
//!         .layer(io.layer());
//!
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     let shutdown = async move {
//!         engineio::shutdown_signal().await;
//!         io.shutdown().await;
//!     };
//!     // With ConnectInfo, sockets know their client's address.
//!     axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
//!         .with_graceful_shutdown(shutdown)
//!         .await
//! }
//! ```
//!
//! The feature `tower` alone gives the layer without axum, for other tower stacks.
//! `examples/axum-chat.rs` is a fuller chat (rooms, acks, state shared with JSON routes).

#![warn(missing_docs)]

mod ack;
pub mod adapter;
pub mod admin;
mod args;
mod broadcast;
mod client;
mod client_files;
mod config;
mod extensions;
pub mod extract;
pub mod handler;
#[cfg(feature = "tower")]
mod layer;
mod legacy;
mod namespace;
mod observer;
pub mod packet;
mod reason;
pub mod recovery;
mod server;
mod socket;
mod time;

pub use ack::{Ack, AckError};
pub use adapter::Room;
pub use args::{ArgError, Args};
pub use broadcast::BroadcastOperator;
pub use client_files::CLIENT_FILES;
pub use config::{Config, ConfigBuilder, Recovery};
pub use engineio::Sid;
pub use extensions::Extensions;
#[cfg(feature = "tower")]
pub use layer::SocketIoLayer;
pub use namespace::{ConnectError, Namespace};
pub use packet::{Data, DecodeError, Decoder, Packet, PacketType};
pub use reason::DisconnectReason;
pub use server::{serve, Builder, SocketIo, SocketIoService};
pub use socket::{EmitError, Event, Socket};

/// Anything that names one or more rooms: `"a"`, `String`, `["a", "b"]`, `vec![…]`, a socket id.
pub trait IntoRooms {
    /// The room names.
    fn into_rooms(self) -> Vec<Room>;
}

impl IntoRooms for &str {
    fn into_rooms(self) -> Vec<Room> {
        vec![self.to_owned()]
    }
}

impl IntoRooms for String {
    fn into_rooms(self) -> Vec<Room> {
        vec![self]
    }
}

impl IntoRooms for &String {
    fn into_rooms(self) -> Vec<Room> {
        vec![self.clone()]
    }
}

impl IntoRooms for Sid {
    fn into_rooms(self) -> Vec<Room> {
        vec![self.to_string()]
    }
}

impl IntoRooms for Vec<Room> {
    fn into_rooms(self) -> Vec<Room> {
        self
    }
}

impl IntoRooms for Vec<&str> {
    fn into_rooms(self) -> Vec<Room> {
        self.into_iter().map(str::to_owned).collect()
    }
}

impl<const N: usize> IntoRooms for [&str; N] {
    fn into_rooms(self) -> Vec<Room> {
        self.into_iter().map(str::to_owned).collect()
    }
}

impl IntoRooms for &[&str] {
    fn into_rooms(self) -> Vec<Room> {
        self.iter().map(|s| (*s).to_owned()).collect()
    }
}

/// The examples of README.md, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
