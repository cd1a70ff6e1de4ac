//! The server side of the official Socket.IO Admin UI (`@socket.io/admin-ui` 0.5): what Node's
//! `instrument(io, opts)` does, with [`SocketIo::instrument`].
//!
//! The UI (hosted at <https://admin.socket.io>, or served from the package's `ui/dist`)
//! connects to the admin namespace (`/admin`) with the stock client and gets:
//!
//! - `session` (basic authentication only): a session id, with which it reconnects without
//!   the password;
//! - `config`: the features it may use: `EMIT`, `JOIN`, `LEAVE`, `DISCONNECT`, `MJOIN`,
//!   `MLEAVE`, `MDISCONNECT` unless read-only, then `AGGREGATED_EVENTS`, and `ALL_EVENTS` in
//!   development mode;
//! - `server_stats` every 2 seconds from every node: server id, hostname, pid, uptime,
//!   Engine.IO clients (all, and those on polling), sockets per namespace, and the events
//!   since the last one (`rawConnection`, `rawDisconnection` by reason, `packetsIn`/`Out`,
//!   `bytesIn`/`Out`);
//! - in development mode: `all_sockets` (on every node, through `fetch_sockets`), then
//!   `socket_connected`, `socket_updated`, `socket_disconnected`, `room_joined`, `room_left`,
//!   `event_received` and `event_sent` as they happen.
//!
//! It sends `emit`, `join`, `leave` and `_disconnect`, which act on a namespace's sockets,
//! optionally those in one room, through its adapter: cluster-wide with `socketio-redis`.
//!
//! Off unless the application calls [`SocketIo::instrument`]: until then nothing is counted
//! and no hook is installed. On, packets and bytes are counted with atomics per message
//! (no lock); the development-mode events cost an admin broadcast each.
//!
//! # Cross-origin
//!
//! The hosted UI is another origin and polls with credentials (`withCredentials: true`): the
//! Engine.IO options need CORS for its origin with credentials, which [`hosted_ui_cors`]
//! gives. A self-hosted UI on the server's own origin needs nothing. WebSocket-only UIs
//! (the "WebSocket only" box) need no CORS either.
//!
//! ```no_run
//! use socketio::admin::{hosted_ui_cors, AdminAuth, AdminOptions};
//! use socketio::{Config, SocketIo};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = Config::builder()
//!         .engine_with(|e| e.cors(hosted_ui_cors()))
//!         .build();
//!     let io = SocketIo::new(config);
//!     // "changeit", hashed with bcrypt (`htpasswd -bnBC 10 "" changeit`, or bcryptjs).
//!     let auth = AdminAuth::basic(
//!         "admin",
//!         "$2b$10$heqvAkYMez.Va6Et2uXInOnkCT6/uQj1brkrbyG3LpopDklcq7ZOS",
//!     );
//!     io.instrument(AdminOptions::new(auth))?;
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     socketio::serve(listener, io, engineio::not_found(), engineio::shutdown_signal()).await?;
//!     Ok(())
//! }
//! ```

mod auth;
mod control;
mod events;
mod options;
mod serialize;
mod stats;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use serde_json::{json, Value};

pub use options::{AdminAuth, AdminCheck, AdminError, AdminOptions, Mode};

use crate::server::ServerInner;
use crate::{Namespace, Socket, SocketIo};
use auth::{Credentials, NewSession};

/// The origin of the hosted UI.
pub const HOSTED_UI_ORIGIN: &str = "https://admin.socket.io";

/// CORS for the hosted UI: its origin, with credentials (the UI polls with
/// `withCredentials: true`, so `*` would not do).
///
/// ```
/// let cors = socketio::admin::hosted_ui_cors();
/// assert!(cors.credentials);
/// assert_eq!(
///     cors.origin,
///     engineio::AllowOrigin::List(vec!["https://admin.socket.io".into()])
/// );
/// ```
pub fn hosted_ui_cors() -> engineio::Cors {
    engineio::Cors {
        origin: engineio::AllowOrigin::List(vec![HOSTED_UI_ORIGIN.to_owned()]),
        credentials: true,
        max_age: None,
    }
}

/// The features the UI may use: Node's `supportedFeatures`.
fn features(read_only: bool, mode: Mode) -> Vec<&'static str> {
    let mut out = if read_only {
        Vec::new()
    } else {
        vec![
            "EMIT",
            "JOIN",
            "LEAVE",
            "DISCONNECT",
            "MJOIN",
            "MLEAVE",
            "MDISCONNECT",
        ]
    };
    out.push("AGGREGATED_EVENTS");
    if mode == Mode::Development {
        out.push("ALL_EVENTS");
    }
    out
}

/// Every socket of every namespace, on every node; a namespace whose cluster request fails
/// is reported with this node's sockets only.
async fn all_sockets(server: Weak<ServerInner>) -> Vec<Value> {
    let Some(server) = server.upgrade() else {
        return Vec::new();
    };
    let lists = server.all_namespaces().into_iter().map(|ns| {
        let ns = Namespace(ns);
        async move {
            let infos = match ns.fetch_sockets().await {
                Ok(infos) => infos,
                Err(err) => {
                    tracing::debug!(nsp = %ns.name(), %err, "all_sockets: this node's sockets only");
                    ns.local().fetch_sockets().await.unwrap_or_default()
                }
            };
            infos
                .iter()
                .map(|info| serialize::serialize(info, ns.name()))
                .collect::<Vec<_>>()
        }
    });
    futures_util::future::join_all(lists)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The admin namespace's connection handler: what Node's `instrument` sends a new admin
/// socket, and the control events it listens to.
fn on_admin_connection(socket: &Socket, server: &Weak<ServerInner>, read_only: bool, mode: Mode) {
    if let Some(session) = socket.extensions().get::<NewSession>() {
        let _ = socket.emit("session", session.0.clone());
    }
    if !read_only {
        control::register(socket, server.clone());
    }
    let _ = socket.emit(
        "config",
        json!({"supportedFeatures": features(read_only, mode)}),
    );
    if mode == Mode::Development {
        // In a task of its own: a cluster request must not hold up the control events.
        let (socket, server) = (socket.clone(), server.clone());
        tokio::spawn(async move {
            let sockets = all_sockets(server).await;
            let _ = socket.emit("all_sockets", Value::Array(sockets));
        });
    }
}

impl SocketIo {
    /// Serves the official Socket.IO Admin UI on a namespace of this server, as Node's
    /// `instrument(io, opts)`: see [`crate::admin`]. Call it once, from within a tokio
    /// runtime, before clients connect (sockets connected before are counted in the
    /// statistics but their traffic and events are not). The statistics task keeps a handle
    /// on the server and runs as long as the runtime, as Node's unreferenced interval does.
    ///
    /// `event_sent` reports what [`Socket::on_any_outgoing`] sees: events emitted to one
    /// socket, not broadcasts (Node reports those too).
    ///
    /// ```
    /// use socketio::admin::{AdminAuth, AdminError, AdminOptions, Mode};
    /// use socketio::{Config, SocketIo};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let io = SocketIo::new(Config::default());
    /// io.instrument(AdminOptions::new(AdminAuth::Disabled).mode(Mode::Production))
    ///     .expect("first call");
    /// assert_eq!(
    ///     io.instrument(AdminOptions::new(AdminAuth::Disabled)),
    ///     Err(AdminError::AlreadyInstrumented)
    /// );
    /// let bad = SocketIo::new(Config::default());
    /// assert_eq!(
    ///     bad.instrument(AdminOptions::new(AdminAuth::basic("admin", "changeit"))),
    ///     Err(AdminError::InvalidPasswordHash)
    /// );
    /// # }
    /// ```
    pub fn instrument(&self, options: AdminOptions) -> Result<(), AdminError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AdminError::NoRuntime)?;
        let mut custom = None;
        let credentials = match &options.auth {
            AdminAuth::Disabled => {
                tracing::warn!(
                    "admin UI without authentication: anyone who reaches the server may use it"
                );
                None
            }
            AdminAuth::Basic {
                username,
                password_hash,
            } => Some(Arc::new(Credentials::new(
                username.clone(),
                password_hash.clone(),
            )?)),
            AdminAuth::Custom(check) => {
                custom = Some(check.clone());
                None
            }
        };
        if self.inner.instrumented.swap(true, Ordering::AcqRel) {
            return Err(AdminError::AlreadyInstrumented);
        }
        let ns = self.of(&options.namespace);
        // Telemetry is not kept for replay.
        ns.recovery(false);
        if let Some(check) = custom {
            ns.middleware(move |socket| check(socket));
        }
        if let Some(credentials) = credentials {
            ns.middleware(move |socket| {
                let credentials = credentials.clone();
                async move {
                    if let Some(session) = credentials.authenticate(socket.auth()).await? {
                        socket.extensions().insert(session);
                    }
                    Ok(())
                }
            });
        }
        let server = Arc::downgrade(&self.inner);
        let (read_only, mode) = (options.read_only, options.mode);
        ns.on_connection(move |socket| {
            on_admin_connection(&socket, &server, read_only, mode);
            std::future::ready(())
        });
        let meter = self.engine.meter();
        if mode == Mode::Development {
            let _ = self
                .inner
                .observer
                .set(Arc::new(events::DevEvents::new(&ns)));
        }
        let hostname = options::hostname();
        let identity = stats::Identity {
            server_id: options
                .server_id
                .clone()
                .unwrap_or_else(|| options::default_server_id(&hostname)),
            hostname,
            pid: std::process::id(),
            started: Instant::now(),
        };
        tracing::info!(nsp = %options.namespace, server_id = %identity.server_id, ?mode, read_only, "admin UI on");
        runtime.spawn(stats::run(self.clone(), ns, meter, identity));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_as_node_lists_them() {
        assert_eq!(
            features(false, Mode::Development),
            [
                "EMIT",
                "JOIN",
                "LEAVE",
                "DISCONNECT",
                "MJOIN",
                "MLEAVE",
                "MDISCONNECT",
                "AGGREGATED_EVENTS",
                "ALL_EVENTS"
            ]
        );
        assert_eq!(
            features(true, Mode::Development),
            ["AGGREGATED_EVENTS", "ALL_EVENTS"]
        );
        assert_eq!(features(true, Mode::Production), ["AGGREGATED_EVENTS"]);
    }
}
