//! Settings from flags, `CHATD_*` environment variables and an optional TOML file.
//! Precedence: flag, then environment, then file, then the built-in default.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Who may register an account (`--registration`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone.
    Open,
    /// Whoever has an invite code made by an administrator.
    Invite,
    /// Nobody: accounts are made with `chatd user add`.
    Closed,
}

impl Registration {
    /// The name used by the flag and `GET /api/config`.
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Open => "open",
            Registration::Invite => "invite",
            Registration::Closed => "closed",
        }
    }
}

/// Where messages are kept: `sqlite`, `memory`, or a `postgres://` / `postgresql://` URL.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// SQLite in the data directory (durable).
    Sqlite,
    /// In memory (lost on exit; for tests and demos).
    Memory,
    /// A PostgreSQL database shared by several nodes: its connection URL.
    Postgres(String),
}

impl FromStr for StoreKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sqlite" => return Ok(StoreKind::Sqlite),
            "memory" => return Ok(StoreKind::Memory),
            _ => {}
        }
        let scheme = s.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some(scheme)
                if scheme.eq_ignore_ascii_case("postgres")
                    || scheme.eq_ignore_ascii_case("postgresql") =>
            {
                Ok(StoreKind::Postgres(s.to_owned()))
            }
            // Not echoed whole: a URL may hold a password.
            Some(scheme) => Err(format!(
                "unsupported store URL scheme {scheme:?}: expected sqlite, memory or a postgres:// URL"
            )),
            None => Err(format!(
                "unknown store {s:?}: expected sqlite, memory or a postgres:// URL"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for StoreKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Shown without the password, so settings can be logged.
impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreKind::Sqlite => f.write_str("sqlite"),
            StoreKind::Memory => f.write_str("memory"),
            StoreKind::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

impl fmt::Debug for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreKind::Postgres(_) => write!(f, "Postgres({self})"),
            _ => write!(f, "{self}"),
        }
    }
}

/// `url` with the password of its user info and any `password=` parameter replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    // The last `@` ends the user info, whatever its password holds.
    let mut out = match before_query.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{before_query}"),
        },
        None => format!("{scheme}://{before_query}"),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// This node's name in a cluster behind a load balancer: every Engine.IO session id it makes
/// starts with it and `-` (`a-…`), so the balancer sends a session's requests to this node.
/// 1 to 8 characters `a-z`, `0-9`; none by default (ids wholly random).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct NodeId(Option<engineio::SidPrefix>);

impl NodeId {
    /// The session id prefix, if a node id was given.
    pub fn sid_prefix(&self) -> Option<engineio::SidPrefix> {
        self.0.clone()
    }
}

impl FromStr for NodeId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        engineio::SidPrefix::new(s)
            .map(|p| NodeId(Some(p)))
            .map_err(|_| format!("node id {s:?} must be 1 to 8 characters a-z, 0-9"))
    }
}

impl TryFrom<String> for NodeId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(p) => write!(f, "{p}"),
            None => f.write_str("none"),
        }
    }
}

/// An optional listening address (`--admin-listen`): none by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct OptionalAddr(pub Option<SocketAddr>);

impl FromStr for OptionalAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map(|a| OptionalAddr(Some(a)))
            .map_err(|_| format!("{s:?} is not an address and port (127.0.0.1:9000, [::1]:9000)"))
    }
}

impl TryFrom<String> for OptionalAddr {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::fmt::Display for OptionalAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("none"),
        }
    }
}

macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $field:ident : $ty:ty = $default:expr, env = $env:literal ;)*) => {
        /// Command-line flags; each can also come from the environment or the TOML file.
        #[derive(Parser, Debug, Default)]
        #[command(name = "chatd", version, about = "A multi-room chat server on Socket.IO.")]
        pub struct Cli {
            /// A TOML file with any of the settings below (keys as the flags, without `--`).
            #[arg(long, env = "CHATD_CONFIG")]
            pub config: Option<PathBuf>,
            /// Short for `--trusted-proxies 127.0.0.0/8,::1`: a reverse proxy on this host.
            #[arg(long, env = "CHATD_TRUST_PROXY")]
            pub trust_proxy: bool,
            /// Guests: anyone may connect to `/chat` by picking a name that is neither online
            /// nor an account's (off by default: an account is needed).
            #[arg(long, env = "CHATD_GUESTS")]
            pub guests: bool,
            /// Mark the session cookie `Secure` always (by default only when a trusted proxy
            /// says the request came over https).
            #[arg(long, env = "CHATD_COOKIE_SECURE")]
            pub cookie_secure: bool,
            /// Serve the Socket.IO Admin UI at `/admin-ui/` and its namespace `/admin`, for
            /// server administrators' accounts (production mode: statistics only).
            #[arg(long, env = "CHATD_ADMIN_UI")]
            pub admin_ui: bool,
            /// The Admin UI in development mode: every socket, room and event as it happens
            /// (each event of the chat then costs a message to every open UI).
            #[arg(long, env = "CHATD_ADMIN_UI_DEVELOPMENT")]
            pub admin_ui_development: bool,
            /// The Admin UI only looks: no emit, join, leave or disconnect.
            #[arg(long, env = "CHATD_ADMIN_UI_READ_ONLY")]
            pub admin_ui_read_only: bool,
            $(
                $(#[doc = $doc])*
                #[arg(long, env = $env)]
                pub $field: Option<$ty>,
            )*
        }

        /// The TOML file: the same settings, all optional.
        #[derive(Deserialize, Debug, Default)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        pub struct FileConfig {
            trust_proxy: Option<bool>,
            guests: Option<bool>,
            cookie_secure: Option<bool>,
            admin_ui: Option<bool>,
            admin_ui_development: Option<bool>,
            admin_ui_read_only: Option<bool>,
            $( $field: Option<$ty>, )*
        }

        /// The resolved settings.
        #[derive(Clone, Debug)]
        pub struct Settings {
            /// Trust a reverse proxy on this host (loopback) for client addresses.
            pub trust_proxy: bool,
            /// Guests may pick a name on `/chat`.
            pub guests: bool,
            /// The session cookie is always `Secure`.
            pub cookie_secure: bool,
            /// Serve the Admin UI and its namespace.
            pub admin_ui: bool,
            /// The Admin UI in development mode.
            pub admin_ui_development: bool,
            /// The Admin UI without its control events.
            pub admin_ui_read_only: bool,
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Settings {
            /// Flags over file over defaults.
            pub fn merge(cli: Cli, file: FileConfig) -> Settings {
                Settings {
                    trust_proxy: cli.trust_proxy || file.trust_proxy.unwrap_or(false),
                    guests: cli.guests || file.guests.unwrap_or(false),
                    cookie_secure: cli.cookie_secure || file.cookie_secure.unwrap_or(false),
                    admin_ui: cli.admin_ui || file.admin_ui.unwrap_or(false),
                    admin_ui_development: cli.admin_ui_development
                        || file.admin_ui_development.unwrap_or(false),
                    admin_ui_read_only: cli.admin_ui_read_only
                        || file.admin_ui_read_only.unwrap_or(false),
                    $( $field: cli.$field.or(file.$field).unwrap_or_else(|| $default), )*
                }
            }

            /// Defaults only.
            pub fn defaults() -> Settings {
                Settings::merge(Cli::default(), FileConfig::default())
            }
        }
    };
}

settings! {
    /// Address to listen on.
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 3000)), env = "CHATD_LISTEN";
    /// Directory of the database.
    data_dir: PathBuf = PathBuf::from("chatd-data"), env = "CHATD_DATA_DIR";
    /// Where messages are kept: `sqlite` (in the data directory), `memory`, or a
    /// `postgres://user:password@host/db` URL (several nodes on one database).
    store: StoreKind = StoreKind::Sqlite, env = "CHATD_STORE";
    /// Origins allowed to connect besides the server's own, comma-separated (`https://a.example`).
    allowed_origins: String = String::new(), env = "CHATD_ALLOWED_ORIGINS";
    /// Largest message text in bytes.
    max_message_bytes: usize = 4096, env = "CHATD_MAX_MESSAGE_BYTES";
    /// Commands per second allowed per connection.
    message_rate: f64 = 10.0, env = "CHATD_MESSAGE_RATE";
    /// Commands allowed in a burst per connection.
    message_burst: f64 = 20.0, env = "CHATD_MESSAGE_BURST";
    /// Refused commands within `--violation-window-ms` after which a connection is disconnected.
    max_violations: u32 = 50, env = "CHATD_MAX_VIOLATIONS";
    /// Milliseconds over which refused commands are counted.
    violation_window_ms: u64 = 10_000, env = "CHATD_VIOLATION_WINDOW_MS";
    /// Rooms one connection may join.
    max_rooms_per_user: usize = 50, env = "CHATD_MAX_ROOMS_PER_USER";
    /// Connections (Engine.IO sessions, any namespace) per client address.
    max_connections_per_ip: usize = 50, env = "CHATD_MAX_CONNECTIONS_PER_IP";
    /// Reverse proxies whose X-Forwarded-For is believed, comma-separated addresses or CIDRs
    /// (`10.0.0.0/8, 192.0.2.7`); the client is the rightmost address not among them.
    trusted_proxies: String = String::new(), env = "CHATD_TRUSTED_PROXIES";
    /// Milliseconds a client has to send a request head (and a polling POST body).
    http_header_timeout_ms: u64 = 15_000, env = "CHATD_HTTP_HEADER_TIMEOUT_MS";
    /// Milliseconds an idle kept-alive HTTP connection stays open.
    http_keep_alive_timeout_ms: u64 = 15_000, env = "CHATD_HTTP_KEEP_ALIVE_TIMEOUT_MS";
    /// Connections open at once that have not sent a complete first request.
    max_unfinished_connections: usize = 1024, env = "CHATD_MAX_UNFINISHED_CONNECTIONS";
    /// Milliseconds a user stays present after the last connection dropped.
    presence_grace_ms: u64 = 5000, env = "CHATD_PRESENCE_GRACE_MS";
    /// Milliseconds after which typing expires without a refresh.
    typing_timeout_ms: u64 = 5000, env = "CHATD_TYPING_TIMEOUT_MS";
    /// Milliseconds between two relays of one user's typing in one room.
    typing_interval_ms: u64 = 1000, env = "CHATD_TYPING_INTERVAL_MS";
    /// Milliseconds after which an empty room's actor stops.
    room_idle_ms: u64 = 300_000, env = "CHATD_ROOM_IDLE_MS";
    /// Recent messages each room keeps in memory.
    history_window: usize = 200, env = "CHATD_HISTORY_WINDOW";
    /// Log format.
    log_format: LogFormat = LogFormat::Text, env = "CHATD_LOG_FORMAT";
    /// Engine.IO ping interval in milliseconds.
    ping_interval_ms: u64 = 25_000, env = "CHATD_PING_INTERVAL_MS";
    /// Engine.IO ping timeout in milliseconds.
    ping_timeout_ms: u64 = 20_000, env = "CHATD_PING_TIMEOUT_MS";
    /// Milliseconds a dropped connection can be recovered with everything it missed.
    recovery_window_ms: u64 = 120_000, env = "CHATD_RECOVERY_WINDOW_MS";
    /// Cluster mode: the Redis every node of the cluster shares (`redis://host:6379/`).
    redis: String = String::new(), env = "CHATD_REDIS";
    /// This node's id (1-8 of a-z, 0-9): unique per node, stable across restarts. It starts
    /// every session id (`a-…`), which nginx routes on. None by default (random session ids;
    /// in cluster mode a random node id).
    node_id: NodeId = NodeId::default(), env = "CHATD_NODE_ID";
    /// Prefix of the cluster's Redis keys and channels (several clusters on one Redis).
    cluster_prefix: String = "chatd".into(), env = "CHATD_CLUSTER_PREFIX";
    /// Milliseconds after which a silent node counts as gone (its users leave).
    node_timeout_ms: u64 = 5000, env = "CHATD_NODE_TIMEOUT_MS";
    /// Cluster mode: milliseconds over which a stopping node moves its clients to the others.
    drain_window_ms: u64 = 10_000, env = "CHATD_DRAIN_WINDOW_MS";
    /// Who may register an account: `open` (anyone), `invite` (with an administrator's invite
    /// code) or `closed` (only `chatd user add`).
    registration: Registration = Registration::Open, env = "CHATD_REGISTRATION";
    /// Hours a login session lasts.
    session_hours: u64 = 720, env = "CHATD_SESSION_HOURS";
    /// Login and registration attempts a minute per client address (and as many at once).
    auth_rate_per_ip: u32 = 20, env = "CHATD_AUTH_RATE_PER_IP";
    /// Login attempts a minute per account name (and as many at once).
    auth_rate_per_account: u32 = 10, env = "CHATD_AUTH_RATE_PER_ACCOUNT";
    /// A second listener for the operators (a private address): `/metrics`, `/admin/drain`
    /// and the Admin UI move there from `--listen`; `/healthz` is on both. None by default:
    /// everything on `--listen`.
    admin_listen: OptionalAddr = OptionalAddr::default(), env = "CHATD_ADMIN_LISTEN";
    /// The Admin UI's files (`ui/dist` of the npm package `@socket.io/admin-ui`); by default
    /// looked for in `node_modules` of the working directory, `web/` or `tests/` (where
    /// `scripts/setup.sh` installs it).
    admin_ui_dir: PathBuf = PathBuf::new(), env = "CHATD_ADMIN_UI_DIR";
}

impl Settings {
    /// Reads flags, environment and the TOML file named by `--config`.
    pub fn load() -> Result<Settings, String> {
        Self::from_cli(Cli::parse())
    }

    /// Resolves parsed flags, reading the file they name.
    pub fn from_cli(cli: Cli) -> Result<Settings, String> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let settings = Settings::merge(cli, file);
        if !settings.admin_ui && (settings.admin_ui_development || settings.admin_ui_read_only) {
            return Err("--admin-ui-development and --admin-ui-read-only need --admin-ui".into());
        }
        Ok(settings)
    }

    /// The extra allowed origins as a list.
    pub fn origins(&self) -> Vec<String> {
        self.allowed_origins
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The trusted proxies as networks; `--trust-proxy` adds loopback.
    pub fn trusted_proxies(&self) -> Result<Vec<engineio::IpNet>, String> {
        let mut nets = Vec::new();
        if self.trust_proxy {
            nets.extend(
                ["127.0.0.0/8", "::1/128"]
                    .iter()
                    .filter_map(|n| n.parse::<engineio::IpNet>().ok()),
            );
        }
        for item in self.trusted_proxies.split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let net = item
                .parse::<engineio::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(engineio::IpNet::from))
                .map_err(|_| format!("--trusted-proxies: {item:?} is not an address or CIDR"))?;
            nets.push(net);
        }
        Ok(nets)
    }

    /// The typing relay interval: `--typing-interval-ms`, at most half the typing timeout (a
    /// deferred start must go out before it expires).
    pub fn typing_interval(&self) -> Duration {
        Duration::from_millis(self.typing_interval_ms.min(self.typing_timeout_ms / 2))
    }

    /// The window of `--max-violations`.
    pub fn violation_window(&self) -> Duration {
        Duration::from_millis(self.violation_window_ms)
    }

    /// Presence grace period.
    pub fn presence_grace(&self) -> Duration {
        Duration::from_millis(self.presence_grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let cli = Cli::parse_from(["chatd", "--listen", "127.0.0.1:4000", "--trust-proxy"]);
        let file: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:5000\"\nmax-message-bytes = 100\nallowed-origins = \"https://a.example/, https://b.example\"",
        )
        .unwrap();
        let s = Settings::merge(cli, file);
        assert_eq!(s.listen.port(), 4000);
        assert!(s.trust_proxy);
        assert_eq!(s.max_message_bytes, 100);
        assert_eq!(s.message_rate, 10.0);
        assert_eq!(s.origins(), vec!["https://a.example", "https://b.example"]);
        assert!(toml::from_str::<FileConfig>("nope = 1").is_err());
        let nets = s.trusted_proxies().unwrap();
        assert_eq!(nets.len(), 2);
        let mut s = Settings::defaults();
        s.trusted_proxies = "10.0.0.0/8, 192.0.2.7".into();
        let nets = s.trusted_proxies().unwrap();
        assert_eq!(nets[1].to_string(), "192.0.2.7/32");
        s.trusted_proxies = "10.0.0.0/33".into();
        assert!(s.trusted_proxies().is_err());
    }

    #[test]
    fn accounts_settings() {
        let s = Settings::defaults();
        assert!(!s.guests && !s.cookie_secure);
        assert_eq!(s.registration, Registration::Open);
        let cli = Cli::parse_from(["chatd", "--guests", "--registration", "invite"]);
        let s = Settings::merge(cli, FileConfig::default());
        assert!(s.guests);
        assert_eq!(s.registration, Registration::Invite);
        let file: FileConfig =
            toml::from_str("guests = true\nregistration = \"closed\"\ncookie-secure = true")
                .unwrap();
        let s = Settings::merge(Cli::default(), file);
        assert!(s.guests && s.cookie_secure);
        assert_eq!(s.registration, Registration::Closed);
        assert!(Cli::try_parse_from(["chatd", "--registration", "maybe"]).is_err());
    }

    #[test]
    fn node_ids_are_checked_and_become_the_sid_prefix() {
        assert_eq!(Settings::defaults().node_id.sid_prefix(), None);
        let cli = Cli::parse_from(["chatd", "--node-id", "b2"]);
        let s = Settings::merge(cli, FileConfig::default());
        assert_eq!(
            s.node_id.sid_prefix().map(|p| p.to_string()),
            Some("b2".into())
        );
        let file: FileConfig = toml::from_str("node-id = \"c\"").unwrap();
        let s = Settings::merge(Cli::default(), file);
        assert_eq!(s.node_id.to_string(), "c");
        for bad in ["", "B", "a-1", "node12345"] {
            let err = Cli::try_parse_from(["chatd", "--node-id", bad]).unwrap_err();
            assert!(
                err.to_string().contains(&format!(
                    "node id {bad:?} must be 1 to 8 characters a-z, 0-9"
                )),
                "{err}"
            );
            let err = toml::from_str::<FileConfig>(&format!("node-id = {bad:?}")).unwrap_err();
            assert!(err.to_string().contains("must be 1 to 8"), "{err}");
        }
    }

    #[test]
    fn admin_settings() {
        let s = Settings::defaults();
        assert!(!s.admin_ui && !s.admin_ui_development && !s.admin_ui_read_only);
        assert_eq!(s.admin_listen, OptionalAddr(None));
        assert_eq!(s.admin_ui_dir, PathBuf::new());
        let cli = Cli::parse_from([
            "chatd",
            "--admin-ui",
            "--admin-ui-read-only",
            "--admin-listen",
            "127.0.0.1:9000",
        ]);
        let s = Settings::from_cli(cli).unwrap();
        assert!(s.admin_ui && s.admin_ui_read_only && !s.admin_ui_development);
        assert_eq!(
            s.admin_listen.0,
            Some(SocketAddr::from(([127, 0, 0, 1], 9000)))
        );
        let file: FileConfig = toml::from_str(
            "admin-ui = true\nadmin-ui-development = true\nadmin-listen = \"[::1]:9001\"\nadmin-ui-dir = \"/srv/ui\"",
        )
        .unwrap();
        let s = Settings::merge(Cli::default(), file);
        assert!(s.admin_ui && s.admin_ui_development);
        assert_eq!(s.admin_listen.to_string(), "[::1]:9001");
        assert_eq!(s.admin_ui_dir, PathBuf::from("/srv/ui"));
        for bad in ["9000", "localhost:9000", ""] {
            let err = Cli::try_parse_from(["chatd", "--admin-listen", bad]).unwrap_err();
            assert!(err.to_string().contains("not an address and port"), "{err}");
        }
        assert!(toml::from_str::<FileConfig>("admin-listen = \"nope\"").is_err());
        let cli = Cli::parse_from(["chatd", "--admin-ui-development"]);
        let err = Settings::from_cli(cli).unwrap_err();
        assert!(err.contains("need --admin-ui"), "{err}");
    }

    #[test]
    fn store_is_sqlite_memory_or_a_postgres_url() {
        assert_eq!(Settings::defaults().store, StoreKind::Sqlite);
        let cli = Cli::parse_from(["chatd", "--store", "memory"]);
        assert_eq!(cli.store, Some(StoreKind::Memory));
        let cli = Cli::parse_from(["chatd", "--store", "sqlite"]);
        assert_eq!(cli.store, Some(StoreKind::Sqlite));
        let url = "postgresql://chatd:secret@db.example:5432/chat?sslmode=disable";
        let cli = Cli::parse_from(["chatd", "--store", url]);
        assert_eq!(cli.store, Some(StoreKind::Postgres(url.into())));
        assert!(Cli::try_parse_from(["chatd", "--store", "mysql://x/y"]).is_err());
        assert!(Cli::try_parse_from(["chatd", "--store", "redis"]).is_err());
        let file: FileConfig = toml::from_str("store = \"postgres://localhost/chat\"").unwrap();
        let s = Settings::merge(Cli::parse_from(["chatd"]), file);
        assert_eq!(
            s.store,
            StoreKind::Postgres("postgres://localhost/chat".into())
        );
        let file: FileConfig = toml::from_str("store = \"memory\"").unwrap();
        assert_eq!(file.store, Some(StoreKind::Memory));
        assert!(toml::from_str::<FileConfig>("store = \"nope\"").is_err());
        // Logged settings do not show the password.
        let shown = format!("{:?}", StoreKind::Postgres(url.into()));
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(
            redact_url("postgres://u:p/w@h/db?password=x&application_name=a"),
            "postgres://u:***@h/db?password=***&application_name=a"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
