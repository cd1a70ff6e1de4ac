//! The Socket.IO Admin UI's namespace (`/admin`) on chatd's server (`--admin-ui`), for the
//! server administrators' accounts.
//!
//! The UI logs in with a username and password: they are checked as `POST /api/login` checks
//! them (Argon2id, the same per-address and per-account rate limits), and only an
//! administrator's account is let in. No session is made: the UI sends the password again
//! when it reconnects, and asks for it after a page reload. Production mode by default
//! (statistics only); `--admin-ui-development` adds every socket, room and event.
//!
//! With `--admin-listen`, the namespace is served only to connections made on that listener:
//! the listener marks their requests ([`AdminListener`], and the [`MARK`] header the
//! handshake keeps), and a handshake on the public listener that carries the header is
//! refused ([`forged_mark`]).

use std::sync::Arc;

use serde_json::Value;
use socketio::admin::{AdminAuth, AdminOptions, Mode};
use socketio::{ConnectError, Socket};

use crate::app::App;
use crate::protocol::Code;

/// The header the admin listener adds to every request it receives.
pub const MARK: &str = "x-chatd-admin-listener";

/// A request extension: the request came in on the admin listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminListener;

/// The UI's message for a connection without a username and password (its first attempt,
/// with no session id).
const SIGN_IN: &str = "sign in with a chatd administrator account";

/// Whether a request carries [`MARK`] without having come through the admin listener.
pub fn forged_mark(parts: &hyper::http::request::Parts) -> bool {
    parts.headers.contains_key(MARK) && parts.extensions.get::<AdminListener>().is_none()
}

/// Turns the admin namespace on when `--admin-ui` says so.
pub fn install(app: &Arc<App>) -> Result<(), String> {
    let settings = &app.settings;
    if !settings.admin_ui {
        return Ok(());
    }
    let mode = if settings.admin_ui_development {
        Mode::Development
    } else {
        Mode::Production
    };
    let checker = app.clone();
    let auth = AdminAuth::custom(move |socket| {
        let app = checker.clone();
        async move { check(&app, &socket).await }
    });
    let mut options = AdminOptions::new(auth)
        .mode(mode)
        .read_only(settings.admin_ui_read_only);
    if let Some(node) = settings.node_id.sid_prefix() {
        // The UI's list of servers then names the nodes as nginx does.
        options = options.server_id(node.to_string());
    }
    app.io
        .instrument(options)
        .map_err(|e| format!("--admin-ui: {e}"))
}

/// Lets an administrator in.
async fn check(app: &App, socket: &Socket) -> Result<(), ConnectError> {
    if app.settings.admin_listen.0.is_some() && socket.handshake().headers.get(MARK).is_none() {
        // What a namespace that does not exist answers: the public listener does not show it.
        return Err(ConnectError::new("Invalid namespace"));
    }
    let auth = socket.auth();
    let (Some(name), Some(password)) = (
        auth.get("username").and_then(Value::as_str),
        auth.get("password").and_then(Value::as_str),
    ) else {
        return Err(ConnectError::new(SIGN_IN));
    };
    let ip = socket.handshake().client_ip;
    match app.accounts.check_login(ip, name, password).await {
        Ok(account) if account.admin => {
            tracing::info!(user = %account.name, ?ip, "admin UI: signed in");
            Ok(())
        }
        Ok(account) => {
            tracing::warn!(user = %account.name, ?ip, "admin UI: not an administrator");
            Err(ConnectError::new("not an administrator"))
        }
        // The UI asks for the password again on exactly this message.
        Err((e, _)) if e.code == Code::InvalidCredentials => {
            Err(ConnectError::new("invalid credentials"))
        }
        Err((e, _)) => Err(ConnectError::new(e.message)),
    }
}
