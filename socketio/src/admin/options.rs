//! What [`SocketIo::instrument`](crate::SocketIo::instrument) is told: the options of Node's
//! `instrument(io, opts)`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{ConnectError, Socket};

/// The application's own check of an admin connection: see [`AdminAuth::custom`].
pub type AdminCheck = Arc<
    dyn Fn(Socket) -> Pin<Box<dyn Future<Output = Result<(), ConnectError>> + Send>> + Send + Sync,
>;

/// Who may open the admin namespace.
#[derive(Clone)]
pub enum AdminAuth {
    /// Anyone who can reach the server (Node's `auth: false`): only behind a private network.
    Disabled,
    /// A username and the bcrypt hash of the password (Node's `{type: "basic"}`): the UI
    /// sends `{username, password}`, then reconnects with the session id it was given.
    Basic {
        /// The username, compared exactly.
        username: String,
        /// A bcrypt hash (`$2a$`, `$2b$` or `$2y$`), as `bcryptjs` or `htpasswd -bnBC 10` make.
        password_hash: String,
    },
    /// The application checks each connection itself (accounts of its own): see
    /// [`AdminAuth::custom`].
    Custom(AdminCheck),
}

impl AdminAuth {
    /// Basic authentication with a username and the bcrypt hash of the password.
    ///
    /// ```
    /// use socketio::admin::AdminAuth;
    /// // The hash of "changeit", as in Node's documentation.
    /// let auth = AdminAuth::basic(
    ///     "admin",
    ///     "$2b$10$heqvAkYMez.Va6Et2uXInOnkCT6/uQj1brkrbyG3LpopDklcq7ZOS",
    /// );
    /// assert!(matches!(auth, AdminAuth::Basic { .. }));
    /// ```
    pub fn basic(username: impl Into<String>, password_hash: impl Into<String>) -> Self {
        AdminAuth::Basic {
            username: username.into(),
            password_hash: password_hash.into(),
        }
    }

    /// The application checks every connection to the admin namespace itself, for accounts
    /// of its own: `check` gets the socket before it is connected (the UI's `auth` object,
    /// `{username, password}` from its login form, is [`Socket::auth`]; the client's address
    /// is in [`Socket::handshake`]) and lets it in with `Ok`, or refuses it with the error the
    /// UI shows (`invalid credentials` makes it ask for the password again). No session id
    /// is handed out: the UI reconnects with the password it was given, and asks for it again
    /// after a page reload.
    ///
    /// ```
    /// use socketio::admin::AdminAuth;
    /// use socketio::ConnectError;
    ///
    /// let auth = AdminAuth::custom(|socket| async move {
    ///     let auth = socket.auth();
    ///     match (auth["username"].as_str(), auth["password"].as_str()) {
    ///         (Some("ops"), Some("a long password")) => Ok(()),
    ///         _ => Err(ConnectError::new("invalid credentials")),
    ///     }
    /// });
    /// assert!(matches!(auth, AdminAuth::Custom(_)));
    /// ```
    pub fn custom<F, Fut>(check: F) -> Self
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        AdminAuth::Custom(Arc::new(move |socket| Box::pin(check(socket))))
    }
}

/// Custom checks are equal when they are the same closure.
impl PartialEq for AdminAuth {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (AdminAuth::Disabled, AdminAuth::Disabled) => true,
            (
                AdminAuth::Basic {
                    username: a,
                    password_hash: x,
                },
                AdminAuth::Basic {
                    username: b,
                    password_hash: y,
                },
            ) => a == b && x == y,
            (AdminAuth::Custom(a), AdminAuth::Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for AdminAuth {}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminAuth::Disabled => f.write_str("Disabled"),
            // The hash stays out of logs.
            AdminAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            AdminAuth::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// How much the UI is told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Every socket, room and event as it happens (`all_sockets`, `socket_connected`,
    /// `event_received`, …), besides the statistics: each event of the application costs an
    /// admin broadcast. Node's default when `NODE_ENV` is not set.
    #[default]
    Development,
    /// Only the statistics every 2 seconds (`server_stats`).
    Production,
}

/// Options of the admin namespace.
///
/// ```
/// use socketio::admin::{AdminAuth, AdminOptions, Mode};
///
/// let options = AdminOptions::new(AdminAuth::Disabled)
///     .namespace("/ops")
///     .mode(Mode::Production)
///     .read_only(true)
///     .server_id("eu-1");
/// assert_eq!(options.namespace, "/ops");
/// assert_eq!(AdminOptions::new(AdminAuth::Disabled).namespace, "/admin");
/// ```
#[derive(Clone, Debug)]
pub struct AdminOptions {
    /// The admin namespace (`/admin`).
    pub namespace: String,
    /// Who may connect; no default, as in Node, where `auth` must be given.
    pub auth: AdminAuth,
    /// Development (the default) or production.
    pub mode: Mode,
    /// Refuse the control events (`emit`, `join`, `leave`, `_disconnect`): the UI only looks.
    pub read_only: bool,
    /// This server's name in the UI's list of servers; `hostname#pid` when `None`, which
    /// tells apart several servers on one host.
    pub server_id: Option<String>,
}

impl AdminOptions {
    /// Options with this authentication and every other default.
    pub fn new(auth: AdminAuth) -> Self {
        AdminOptions {
            namespace: String::from("/admin"),
            auth,
            mode: Mode::default(),
            read_only: false,
            server_id: None,
        }
    }

    /// The admin namespace (a leading `/` is added when missing).
    pub fn namespace(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.namespace = if name.starts_with('/') {
            name
        } else {
            format!("/{name}")
        };
        self
    }

    /// Development or production.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Refuse the control events.
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    /// This server's name in the UI.
    pub fn server_id(mut self, id: impl Into<String>) -> Self {
        self.server_id = Some(id.into());
        self
    }
}

/// Why the admin namespace could not be set up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The password hash of [`AdminAuth::Basic`] is not a bcrypt hash.
    #[error("the password must be a valid bcrypt hash")]
    InvalidPasswordHash,
    /// `instrument` was already called on this server.
    #[error("the admin UI is already set up on this server")]
    AlreadyInstrumented,
    /// `instrument` needs a tokio runtime, for the statistics it sends every 2 seconds.
    #[error("no tokio runtime: call instrument from within one")]
    NoRuntime,
}

/// The machine's name: the kernel's, else `$HOSTNAME`, else `localhost`.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| String::from("localhost"))
}

/// The server id Node gives a cluster worker: `hostname#pid`.
pub(crate) fn default_server_id(hostname: &str) -> String {
    format!("{hostname}#{}", std::process::id())
}
