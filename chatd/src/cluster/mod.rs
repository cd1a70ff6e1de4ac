//! Cluster mode (`--redis`): several chatd nodes share one store and talk over Redis.
//!
//! Every node serves every room. A room's order is its store sequence: each node runs an actor
//! per active room for its local members, which delivers the room's messages in sequence order
//! whether they were committed here or published by another node, and reads any gap from the
//! store ([`crate::room`]). Presence is the union of every node's local members; names are
//! leased in Redis ([`names`]); sessions recover on any node ([`recovery`]).
//!
//! Events travel as JSON [`Envelope`]s on one pub/sub channel. Publishing never waits: a full
//! queue or a failed publish is counted, and the nodes resynchronise from the store once Redis
//! answers again.

mod dispatch;
mod event;
pub mod names;
pub mod recovery;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use event::{Envelope, Event, RoomEvent};

use crate::registry::Registry;

/// Events waiting to be published at most; more are dropped (and counted).
const PUBLISH_QUEUE: usize = 65_536;

/// Cluster settings.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// Redis URL.
    pub redis_url: String,
    /// This node's id.
    pub node: String,
    /// Prefix of every Redis key and channel.
    pub prefix: String,
    /// How often a node says it is alive.
    pub beat: Duration,
    /// A node not heard for this long is gone: its members leave.
    pub node_timeout: Duration,
}

/// Figures for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterStats {
    connected: AtomicBool,
    nodes: AtomicU64,
    published: AtomicU64,
    publish_errors: AtomicU64,
    publish_micros: AtomicU64,
    publish_batches: AtomicU64,
    reconnects: AtomicU64,
}

/// A snapshot of [`ClusterStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterFigures {
    /// Redis answers.
    pub connected: bool,
    /// Nodes alive, this one included.
    pub nodes: u64,
    /// Events published.
    pub published: u64,
    /// Events lost: failed publishes and a full queue.
    pub publish_errors: u64,
    /// Total time of publish round trips, microseconds.
    pub publish_micros: u64,
    /// Publish round trips.
    pub publish_batches: u64,
    /// Times the connection came back after an outage.
    pub reconnects: u64,
}

impl ClusterStats {
    /// The current figures.
    pub fn figures(&self) -> ClusterFigures {
        ClusterFigures {
            connected: self.connected.load(Ordering::Relaxed),
            nodes: self.nodes.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            publish_errors: self.publish_errors.load(Ordering::Relaxed),
            publish_micros: self.publish_micros.load(Ordering::Relaxed),
            publish_batches: self.publish_batches.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
        }
    }
}

/// This node's link to the others. Cheap to share.
pub struct Cluster {
    settings: ClusterSettings,
    instance: String,
    out: mpsc::Sender<Outgoing>,
    commands: ConnectionManager,
    subscriber: ConnectionManager,
    stats: Arc<ClusterStats>,
    questions: mpsc::Sender<dispatch::CountsRequest>,
    questions_rx: std::sync::Mutex<Option<mpsc::Receiver<dispatch::CountsRequest>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.settings.node)
            .finish()
    }
}

/// What the publish task takes.
enum Outgoing {
    Event(Vec<u8>),
    /// Answered once everything queued before is published (or failed).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Subscribed messages, until [`Cluster::run`] takes them.
pub struct Incoming(mpsc::UnboundedReceiver<PushInfo>);

impl Cluster {
    /// Connects to Redis and subscribes; fails only if Redis cannot be reached now (later
    /// outages are survived).
    pub async fn connect(settings: ClusterSettings) -> Result<(Arc<Cluster>, Incoming), String> {
        let err = |e: redis::RedisError| format!("redis {}: {e}", settings.redis_url);
        let info = settings
            .redis_url
            .as_str()
            .into_connection_info()
            .map_err(err)?;
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let commands = redis::Client::open(info.clone())
            .map_err(err)?
            .get_connection_manager()
            .await
            .map_err(err)?;
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let mut subscriber = redis::Client::open(info.set_redis_settings(resp3))
            .map_err(err)?
            .get_connection_manager_with_config(
                ConnectionManagerConfig::new()
                    .set_number_of_retries(3)
                    .set_push_sender(push_tx)
                    .set_automatic_resubscription(),
            )
            .await
            .map_err(err)?;
        let channel = format!("{}#events", settings.prefix);
        subscriber.subscribe(&channel).await.map_err(err)?;
        let (out, out_rx) = mpsc::channel(PUBLISH_QUEUE);
        let stats = Arc::new(ClusterStats::default());
        stats.connected.store(true, Ordering::Relaxed);
        stats.nodes.store(1, Ordering::Relaxed);
        let instance = Alphanumeric.sample_string(&mut rand::rng(), 12);
        let resync = serde_json::to_vec(&Envelope {
            node: settings.node.clone(),
            instance: instance.clone(),
            event: Event::Resync,
        })
        .unwrap_or_default();
        tokio::spawn(publish_loop(
            out_rx,
            commands.clone(),
            channel.clone(),
            stats.clone(),
            resync,
        ));
        let (questions, questions_rx) = mpsc::channel(64);
        let cluster = Arc::new(Cluster {
            instance,
            settings,
            out,
            commands,
            subscriber,
            stats,
            questions,
            questions_rx: std::sync::Mutex::new(Some(questions_rx)),
        });
        Ok((cluster, Incoming(push_rx)))
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.settings.node
    }

    /// The settings.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// A connection for commands (name leases, recovery).
    pub fn commands(&self) -> ConnectionManager {
        self.commands.clone()
    }

    /// The figures for `/metrics`.
    pub fn stats(&self) -> ClusterFigures {
        self.stats.figures()
    }

    /// Whether Redis answers; for `/healthz`.
    pub async fn health(&self) -> Result<(), String> {
        let mut conn = self.commands.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(
            Duration::from_secs(2),
            ping.query_async::<String>(&mut conn),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 2 s".into()),
        }
    }

    /// Member counts of the rooms on the other nodes (users present only there).
    pub async fn remote_member_counts(&self) -> std::collections::HashMap<String, usize> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.questions.try_send(tx).is_err() {
            return Default::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Publishes an event without waiting; a full queue loses it (counted).
    pub fn publish(&self, event: Event) {
        let envelope = Envelope {
            node: self.settings.node.clone(),
            instance: self.instance.clone(),
            event,
        };
        let Ok(payload) = serde_json::to_vec(&envelope) else {
            return;
        };
        if self.out.try_send(Outgoing::Event(payload)).is_err() {
            self.stats.publish_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Leaving the cluster (a stopping node): publishes what is queued, then tells the others,
    /// which drop this node's members and read from the store anything it committed but could
    /// not publish. Waits at most 2 s.
    pub async fn leave(&self) {
        self.publish(Event::Bye);
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.out.send(Outgoing::Flush(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
    }

    /// Publishes a room event.
    pub fn publish_room(&self, room: &str, event: RoomEvent) {
        self.publish(Event::Room {
            room: room.to_owned(),
            event,
        });
    }

    /// Starts handling what other nodes publish, the heartbeat and the reconnection watch.
    pub fn run(self: &Arc<Self>, registry: Registry, incoming: Incoming) {
        let (alive_tx, alive_rx) = mpsc::channel(8);
        let Some(questions) = self
            .questions_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        tokio::spawn(dispatch::run(
            self.clone(),
            registry,
            incoming.0,
            alive_rx,
            questions,
        ));
        tokio::spawn(keepalive(Arc::downgrade(self), alive_tx));
        self.publish(Event::Hello);
    }
}

/// How often the subscriber connection is checked.
const KEEPALIVE: Duration = Duration::from_millis(500);

/// Pings the subscriber connection (the manager reconnects only when a command fails) and
/// tells the dispatcher when Redis went away and came back.
async fn keepalive(cluster: std::sync::Weak<Cluster>, alive: mpsc::Sender<bool>) {
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut up = true;
    loop {
        tick.tick().await;
        let Some(mut sub) = cluster.upgrade().map(|c| c.subscriber.clone()) else {
            return;
        };
        let pong = tokio::time::timeout(
            KEEPALIVE * 4,
            redis::cmd("PING").query_async::<redis::Value>(&mut sub),
        )
        .await;
        let now_up = matches!(pong, Ok(Ok(_)));
        if now_up != up {
            up = now_up;
            if alive.send(up).await.is_err() {
                return;
            }
        }
    }
}

/// Publishes queued events in order, pipelining whatever piled up.
async fn publish_loop(
    mut rx: mpsc::Receiver<Outgoing>,
    mut conn: ConnectionManager,
    channel: String,
    stats: Arc<ClusterStats>,
    resync: Vec<u8>,
) {
    let mut batch = Vec::with_capacity(64);
    // Set after a failed publish: the next batch first tells the nodes to resync.
    let mut lost: Option<Vec<u8>> = None;
    while rx.recv_many(&mut batch, 64).await > 0 {
        let mut pipe = redis::pipe();
        if let Some(resync) = lost.take() {
            pipe.cmd("PUBLISH").arg(&channel).arg(resync).ignore();
        }
        let mut flushes = Vec::new();
        let mut size = 0u64;
        for item in batch.drain(..) {
            match item {
                Outgoing::Event(payload) => {
                    size += 1;
                    pipe.cmd("PUBLISH").arg(&channel).arg(payload).ignore();
                }
                Outgoing::Flush(done) => flushes.push(done),
            }
        }
        if size == 0 {
            for done in flushes {
                let _ = done.send(());
            }
            continue;
        }
        let started = Instant::now();
        let mut result = pipe.query_async::<()>(&mut conn).await;
        if let Err(e) = &result {
            if e.is_connection_dropped() || e.is_io_error() {
                result = pipe.query_async::<()>(&mut conn).await;
            }
        }
        stats
            .publish_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        stats.publish_batches.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(()) => {
                stats.published.fetch_add(size, Ordering::Relaxed);
            }
            Err(e) => {
                stats.publish_errors.fetch_add(size, Ordering::Relaxed);
                lost = Some(resync.clone());
                tracing::warn!(error = %e, lost = size, "cluster publish failed; nodes resync from the store");
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}
