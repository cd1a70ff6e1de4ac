//! Socket.IO server options.

use std::path::PathBuf;
use std::time::Duration;

use crate::packet::DEFAULT_MAX_ATTACHMENTS;

/// Connection state recovery options (off unless set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// How long a disconnected session and the packets it missed are kept.
    pub max_disconnection_duration: Duration,
    /// Whether a recovered socket skips the namespace middlewares.
    pub skip_middlewares: bool,
    /// Most bytes of missed packets replayed to a recovering client. A session that missed
    /// more is not recovered (the client gets a new session, `recovered` false) and the
    /// application catches it up, in pages, itself: the replay goes out in one piece, before
    /// the CONNECT reply, and must fit the connection's outgoing queue.
    pub max_replay_bytes: usize,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            max_disconnection_duration: Duration::from_millis(120_000),
            skip_middlewares: true,
            max_replay_bytes: 1 << 20,
        }
    }
}

/// Socket.IO options; the Engine.IO options under them are in [`Config::engine`].
///
/// ```
/// use std::time::Duration;
/// let config = socketio::Config::builder()
///     .connect_timeout(Duration::from_secs(45))
///     .recovery(socketio::Recovery::default())
///     .build();
/// assert_eq!(config.engine.path, "/socket.io/");
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Engine.IO options; the path defaults to `/socket.io/`.
    pub engine: engineio::Config,
    /// Time allowed to join a first namespace.
    pub connect_timeout: Duration,
    /// Most binary attachments accepted in one packet.
    pub max_attachments: usize,
    /// Timeout of [`Socket::emit_with_ack`](crate::Socket::emit_with_ack) unless one is given.
    pub ack_timeout: Duration,
    /// Connection state recovery; `None` turns it off.
    pub recovery: Option<Recovery>,
    /// Serve the stock JavaScript client under the Socket.IO path.
    pub serve_client: bool,
    /// Where the `socket.io-client` package's `dist` folder is; searched for when `None`.
    pub client_dir: Option<PathBuf>,
    /// Remove a child of a dynamic namespace once its last socket has left (Node's
    /// `cleanupEmptyChildNamespaces`), so that names used once do not stay in memory. Off by
    /// default, as in Node.
    pub cleanup_empty_child_namespaces: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            engine: engineio::Config::builder().path("/socket.io/").build(),
            connect_timeout: Duration::from_millis(45_000),
            max_attachments: DEFAULT_MAX_ATTACHMENTS,
            ack_timeout: Duration::from_secs(60),
            recovery: None,
            serve_client: true,
            client_dir: None,
            cleanup_empty_child_namespaces: false,
        }
    }
}

impl Config {
    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder(Config::default())
    }
}

/// Builds a [`Config`].
#[derive(Clone, Debug)]
pub struct ConfigBuilder(Config);

impl ConfigBuilder {
    /// Engine.IO options (keep the path `/socket.io/` for stock clients).
    pub fn engine(mut self, engine: engineio::Config) -> Self {
        self.0.engine = engine;
        self
    }
    /// Changes the Engine.IO options in place.
    pub fn engine_with(
        mut self,
        f: impl FnOnce(engineio::ConfigBuilder) -> engineio::ConfigBuilder,
    ) -> Self {
        let current = engineio::ConfigBuilder::from(self.0.engine.clone());
        self.0.engine = f(current).build();
        self
    }
    /// Time allowed to join a first namespace.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.0.connect_timeout = d;
        self
    }
    /// Most binary attachments accepted in one packet.
    pub fn max_attachments(mut self, n: usize) -> Self {
        self.0.max_attachments = n;
        self
    }
    /// Default timeout of acknowledgements the server waits for.
    pub fn ack_timeout(mut self, d: Duration) -> Self {
        self.0.ack_timeout = d;
        self
    }
    /// Turns connection state recovery on.
    pub fn recovery(mut self, recovery: Recovery) -> Self {
        self.0.recovery = Some(recovery);
        self
    }
    /// Whether to serve the stock JavaScript client.
    pub fn serve_client(mut self, on: bool) -> Self {
        self.0.serve_client = on;
        self
    }
    /// Folder holding `socket.io.min.js` and the other client files.
    pub fn client_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.0.client_dir = Some(dir.into());
        self
    }
    /// Remove empty children of dynamic namespaces.
    pub fn cleanup_empty_child_namespaces(mut self, on: bool) -> Self {
        self.0.cleanup_empty_child_namespaces = on;
        self
    }

    /// The finished configuration.
    pub fn build(self) -> Config {
        self.0
    }
}
