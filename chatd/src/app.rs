//! Wiring: the store, the actors, Socket.IO with its namespaces, HTTP (and the admin listener),
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use engineio::TransportKind;
use socketio::{Config, Recovery, SocketIo};
use tokio::net::TcpListener;

use crate::accounts::Accounts;
use crate::admin_ui::AdminUi;
use crate::cluster::names::Names;
use crate::cluster::recovery::ClusterRecovery;
use crate::cluster::{Cluster, ClusterSettings};
use crate::config::{Settings, StoreKind};
use crate::deliver::{SocketFanout, LOBBY};
use crate::demo::DemoState;
use crate::http::Site;
use crate::identity::Identities;
use crate::metrics::{Gauges, Metrics};
use crate::origin::{self, Origin};
use crate::registry::Registry;
use crate::room::RoomSettings;
use crate::store::{
    now_ms, AccountStore, DurableRecovery, MemberStore, MemoryStore, PostgresStore, RoomInfo,
    RoomKind, SqliteStore, Store,
};
use crate::{chat, demo};
use socketio::recovery::SessionStore;

/// How long a stopping chatd keeps serving polling clients their last packets (the `shutdown`
/// notice): those between two polls come back late on a loaded machine.
const SHUTDOWN_DELIVERY: Duration = Duration::from_secs(10);

/// Everything the handlers share. Mutable state lives in the actors behind these handles.
pub struct App {
    /// Settings.
    pub settings: Settings,
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Room actors.
    pub registry: Registry,
    /// Online names.
    pub identities: Identities,
    /// Accounts and their sessions.
    pub accounts: Accounts,
    /// Room members, roles and privacy.
    pub members: Arc<dyn MemberStore>,
    /// Proxies whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<engineio::IpNet>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The classic demo's participant count.
    pub demo: DemoState,
    /// The Socket.IO server.
    pub io: SocketIo,
    /// The other nodes, in cluster mode.
    pub cluster: Option<Arc<Cluster>>,
    /// Connection state recovery across the cluster, in cluster mode.
    pub cluster_recovery: Option<Arc<ClusterRecovery>>,
    /// Set by the admin drain command: stop as on SIGTERM.
    pub drain_requested: tokio::sync::Notify,
    /// The Admin UI's files, with `--admin-ui`.
    pub admin_ui: Option<AdminUi>,
}

/// How long a name lease lasts without renewal (renewed every third of it).
const NAME_LEASE: Duration = Duration::from_secs(3);

/// Connects to the cluster when `--redis` is given.
async fn join_cluster(
    settings: &Settings,
) -> Result<Option<(Arc<Cluster>, crate::cluster::Incoming)>, String> {
    if settings.redis.is_empty() {
        return Ok(None);
    }
    // --node-id was checked when the settings were read.
    let node = if let Some(id) = settings.node_id.sid_prefix() {
        id.to_string()
    } else {
        let id: String = (0..6)
            .map(|_| {
                let n = rand::random_range(0..36u8);
                char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
            })
            .collect();
        tracing::warn!(node = %id, "no --node-id: using a random one (nginx cannot route polling clients by node)");
        id
    };
    let (cluster, incoming) = Cluster::connect(ClusterSettings {
        redis_url: settings.redis.clone(),
        node,
        prefix: settings.cluster_prefix.clone(),
        beat: Duration::from_millis((settings.node_timeout_ms / 5).max(100)),
        node_timeout: Duration::from_millis(settings.node_timeout_ms),
    })
    .await?;
    Ok(Some((cluster, incoming)))
}

/// Where messages and connection-recovery state are kept.
pub struct Stores {
    /// Rooms and messages.
    pub messages: Arc<dyn Store>,
    /// Accounts (the same database).
    pub accounts: Arc<dyn AccountStore>,
    /// Room members and privacy (the same database).
    pub members: Arc<dyn MemberStore>,
    /// Socket.IO connection state recovery; `None` keeps it in memory.
    pub recovery: Option<Arc<dyn SessionStore>>,
}

/// Opens the stores the settings ask for: with SQLite, recovery state is durable too, so
/// clients recover their session even across a restart. With PostgreSQL it stays in memory.
pub async fn open_store(settings: &Settings) -> Result<Stores, String> {
    match &settings.store {
        StoreKind::Postgres(url) => {
            let store = PostgresStore::open(url)
                .await
                .map_err(|e| format!("cannot open the PostgreSQL store {}: {e}", settings.store))?;
            let store = Arc::new(store);
            Ok(Stores {
                messages: store.clone(),
                accounts: store.clone(),
                members: store,
                recovery: None,
            })
        }
        StoreKind::Memory => {
            let store = Arc::new(MemoryStore::new());
            Ok(Stores {
                messages: store.clone(),
                accounts: store.clone(),
                members: store,
                recovery: None,
            })
        }
        StoreKind::Sqlite => {
            std::fs::create_dir_all(&settings.data_dir)
                .map_err(|e| format!("cannot create {}: {e}", settings.data_dir.display()))?;
            let path = settings.data_dir.join("chat.db");
            let sqlite = SqliteStore::open(&path)
                .map(Arc::new)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let window = Duration::from_millis(settings.recovery_window_ms);
            let recovery = DurableRecovery::open(sqlite.clone(), window).await;
            Ok(Stores {
                messages: sqlite.clone(),
                accounts: sqlite.clone(),
                members: sqlite,
                recovery: Some(Arc::new(recovery)),
            })
        }
    }
}

impl App {
    /// Builds the application on a store: actors, Socket.IO and its handlers.
    pub async fn build(settings: Settings, stores: Stores) -> Result<Arc<App>, String> {
        let allowed = settings
            .origins()
            .iter()
            .map(|o| Origin::parse(o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--allowed-origins: {e}"))?;
        let store = stores.messages;
        let cluster = join_cluster(&settings).await?;
        store
            .create_room(RoomInfo {
                name: LOBBY.into(),
                topic: "Everyone".into(),
                kind: RoomKind::Room,
                created_at: now_ms(),
            })
            .await
            .map_err(|e| format!("cannot create the lobby: {e}"))?;
        let admin_ui = if settings.admin_ui {
            Some(AdminUi::load(&settings.admin_ui_dir)?)
        } else {
            None
        };
        let trusted = settings.trusted_proxies()?;
        let proxies = trusted.clone();
        let trusted_proxies = trusted.clone();
        let accounts = Accounts::new(stores.accounts, &settings);
        let members = stores.members;
        let config = Config::builder()
            .engine_with(|e| {
                e.ping_interval(Duration::from_millis(settings.ping_interval_ms))
                    .ping_timeout(Duration::from_millis(settings.ping_timeout_ms))
                    .trusted_proxies(trusted)
                    .max_sessions_per_ip(Some(settings.max_connections_per_ip))
                    .sid_prefix(settings.node_id.sid_prefix())
                    .http_header_timeout(Duration::from_millis(settings.http_header_timeout_ms))
                    .http_keep_alive_timeout(Duration::from_millis(
                        settings.http_keep_alive_timeout_ms,
                    ))
                    .max_unfinished_connections(settings.max_unfinished_connections)
                    // Every polling client gets its shutdown notice, a busy one too.
                    .shutdown_delivery(SHUTDOWN_DELIVERY)
                    .allow_request(move |parts, peer| {
                        if crate::admin::forged_mark(parts) {
                            return Err(format!("{} is set by chatd only", crate::admin::MARK));
                        }
                        // Through a proxy chatd trusts, its X-Forwarded-Proto counts.
                        let via_trusted_proxy =
                            peer.is_some_and(|p| proxies.iter().any(|net| net.contains(&p.ip())));
                        if origin::allowed(parts, &allowed, via_trusted_proxy) {
                            Ok(())
                        } else {
                            Err("origin not allowed".into())
                        }
                    })
            })
            .recovery(Recovery {
                max_disconnection_duration: Duration::from_millis(settings.recovery_window_ms),
                ..Recovery::default()
            })
            .build();
        let mut io = SocketIo::builder(config);
        let mut cluster_recovery = None;
        if let Some((cluster, _)) = &cluster {
            let recovery = ClusterRecovery::open(
                cluster.commands(),
                &settings.cluster_prefix,
                cluster.node(),
                cluster.instance(),
                Duration::from_millis(settings.recovery_window_ms),
            );
            cluster_recovery = Some(recovery.clone());
            io = io.recovery_store(recovery);
        } else if let Some(recovery) = stores.recovery {
            io = io.recovery_store(recovery);
        }
        let io = io.build();
        let metrics = Arc::new(Metrics::default());
        let fanout = Arc::new(SocketFanout {
            chat: io.of("/chat"),
            demo: io.of("/"),
            metrics: metrics.clone(),
        });
        let room_settings = RoomSettings {
            window: settings.history_window.max(1),
            presence_grace: settings.presence_grace(),
            typing_timeout: Duration::from_millis(settings.typing_timeout_ms),
            typing_throttle: Duration::from_millis(settings.typing_timeout_ms / 2),
            typing_interval: settings.typing_interval(),
            idle_timeout: Duration::from_millis(settings.room_idle_ms),
            ..RoomSettings::default()
        };
        let registry = Registry::start(
            store.clone(),
            fanout,
            metrics.clone(),
            room_settings,
            cluster.as_ref().map(|(c, _)| c.clone()),
        );
        let identities = match &cluster {
            Some((c, _)) => Identities::start_cluster(
                settings.presence_grace(),
                Arc::new(Names::new(
                    c.commands(),
                    &settings.cluster_prefix,
                    c.node(),
                    NAME_LEASE,
                )),
            ),
            None => Identities::start(settings.presence_grace()),
        };
        let (cluster, incoming) = match cluster {
            Some((c, i)) => (Some(c), Some(i)),
            None => (None, None),
        };
        let app = Arc::new(App {
            settings,
            store,
            registry,
            identities,
            accounts,
            members,
            trusted_proxies,
            metrics,
            demo: DemoState::default(),
            io: io.clone(),
            cluster: cluster.clone(),
            cluster_recovery,
            drain_requested: tokio::sync::Notify::new(),
            admin_ui,
        });
        if let (Some(cluster), Some(incoming)) = (cluster, incoming) {
            cluster.run(app.registry.clone(), incoming);
        }
        chat::install(app.clone(), &io.of("/chat"));
        demo::install(app.clone(), &io.of("/"));
        crate::admin::install(&app)?;
        Ok(app)
    }

    /// `/healthz`: each dependency (the store; Redis in cluster mode), and whether all are up.
    /// The reasons go to the log, not to whoever asks.
    pub async fn health(&self) -> (bool, serde_json::Value) {
        let store = match self.store.health().await {
            Ok(()) => "ok",
            Err(error) => {
                tracing::warn!(%error, "health check: the store is unavailable");
                "unavailable"
            }
        };
        let mut body = serde_json::json!({"store": store});
        let mut healthy = store == "ok";
        if let Some(cluster) = &self.cluster {
            let redis = match cluster.health().await {
                Ok(()) => "ok",
                Err(error) => {
                    tracing::warn!(%error, "health check: redis is unavailable");
                    "unavailable"
                }
            };
            healthy &= redis == "ok";
            body["redis"] = redis.into();
            body["node"] = cluster.node().into();
            body["nodes"] = cluster.stats().nodes.into();
        }
        body["status"] = if healthy { "ok" } else { "unavailable" }.into();
        if self.io.engine().is_draining() {
            // nginx (or any balancer) sends new clients elsewhere.
            body["status"] = "draining".into();
            healthy = false;
        }
        (healthy, body)
    }

    /// The `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        let mut gauges = Gauges {
            rooms: self.registry.running().await.map_or(0, |r| r.len()),
            slow_consumers: self.io.engine().slow_consumers_dropped(),
            refused_handshakes: self.io.engine().sessions_refused_per_ip(),
            cluster: self.cluster.as_ref().map(|c| c.stats()),
            ..Default::default()
        };
        for socket in self.io.engine().sockets() {
            match socket.transport() {
                TransportKind::Polling => gauges.polling += 1,
                TransportKind::Websocket => gauges.websocket += 1,
            }
        }
        self.metrics.render(&gauges)
    }

    /// Serves until `shutdown` resolves; then tells every client, and flushes the store.
    /// `admin` is the `--admin-listen` listener, served until the public one stops.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let site = Site { app: self.clone() };
        let (stop_admin, admin_stopped) = tokio::sync::watch::channel(false);
        let admin = admin.map(|listener| {
            tokio::spawn(crate::admin_listener::serve(
                listener,
                self.io.clone(),
                site.clone(),
                admin_stopped,
            ))
        });
        let chat = self.io.of("/chat");
        let me = self.clone();
        let shutdown = async move {
            tokio::select! {
                () = shutdown => {}
                () = me.drain_requested.notified() => {}
            }
            // A cluster node hands its clients to the others first; a single node cannot.
            if me.cluster.is_some() {
                crate::drain::drain(&me, Duration::from_millis(me.settings.drain_window_ms)).await;
            }
            // Queued before the close, so clients can tell a restart from a network failure.
            let _ = chat.emit(
                "shutdown",
                serde_json::json!({"reason": "server shutting down"}),
            );
        };
        let served = socketio::serve(listener, self.io.clone(), site, shutdown).await;
        // Metrics and health stay up through the drain and the shutdown notices.
        let _ = stop_admin.send(true);
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        self.store.close().await;
        // What this node sent its clients, for those recovering on another node.
        if let Some(recovery) = &self.cluster_recovery {
            recovery.flush().await;
        }
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
        served
    }
}
