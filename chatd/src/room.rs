//! The room actor: one task per room owning its members, recent messages and typing state.
//!
//! Commands arrive over an mpsc channel through a [`RoomHandle`]; replies go back on oneshot
//! channels. Appends are handed to the store without waiting; the store answers into the same
//! mailbox, in commit order, and only then is the message broadcast and acknowledged.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use engineio::Sid;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::cluster::{Cluster, RoomEvent};
use crate::limits::TypingGate;
use crate::metrics::Metrics;
use crate::paging::{self, PAGE, PAGE_BYTES};
use crate::protocol::{ChatError, Code};
use crate::store::{
    now_ms, Appended, NewMessage, RoomInfo, RoomKind, Store, StoreError, StoredMessage,
};

/// Where a room's events go: the chat namespace, and for `lobby` the demo namespace too.
pub trait Fanout: Send + Sync + 'static {
    /// Puts a socket in the room's delivery group.
    fn join_socket(&self, room: &RoomInfo, socket: Sid, group: Group);
    /// Takes a socket out of the room's delivery group.
    fn leave_socket(&self, room: &RoomInfo, socket: Sid, group: Group);
    /// Sends earlier messages to one socket, in order (catch-up).
    fn catch_up(&self, room: &RoomInfo, socket: Sid, group: Group, messages: &[StoredMessage]);
    /// Like [`Fanout::catch_up`], at the pace the socket reads (a long catch-up must not fill
    /// its queue); resolves to false once the socket is gone.
    fn paced_catch_up(
        &self,
        room: &RoomInfo,
        socket: Sid,
        group: Group,
        messages: Vec<StoredMessage>,
    ) -> Pin<Box<dyn Future<Output = bool> + Send>> {
        self.catch_up(room, socket, group, &messages);
        Box::pin(std::future::ready(true))
    }
    /// Whether a socket is still connected.
    fn is_connected(&self, socket: Sid, group: Group) -> bool {
        let _ = (socket, group);
        true
    }
    /// A new message, to everyone in the room but the sending socket.
    fn message(&self, room: &RoomInfo, message: &StoredMessage, except: Option<Sid>);
    /// A user came online in the room, or left it.
    fn presence(&self, room: &RoomInfo, user: &str, online: bool);
    /// A user started or stopped typing.
    fn typing(&self, room: &RoomInfo, user: &str, typing: bool, except: Option<Sid>);
    /// The topic changed.
    fn topic(&self, room: &RoomInfo, by: &str);
    /// A user moved their read marker on another node: their connections here learn it.
    fn read(&self, _room: &RoomInfo, _user: &str, _seq: u64) {}
    /// Whether a connection here would receive the room's messages (for a direct conversation:
    /// a connection of either user).
    fn has_recipients(&self, room: &RoomInfo) -> bool {
        let _ = room;
        false
    }
}

/// Which protocol a joined socket speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// The chat protocol (`/chat`): members with presence.
    Chat,
    /// The tutorial chat on `/`: no presence; catch-up is sent as events, in order, before
    /// live messages.
    Tutorial,
}

/// Timing and size settings of room actors.
#[derive(Clone, Debug)]
pub struct RoomSettings {
    /// Recent messages kept in memory.
    pub window: usize,
    /// How long a user whose last connection dropped still counts as present.
    pub presence_grace: Duration,
    /// Typing expires after this long without a refresh.
    pub typing_timeout: Duration,
    /// Typing is re-announced at most this often while refreshed.
    pub typing_throttle: Duration,
    /// At most one typing relay per user in this interval (see [`TypingGate`]).
    pub typing_interval: Duration,
    /// A room with no members stops after this long.
    pub idle_timeout: Duration,
    /// Appends of the room waiting for their commit at most; more are answered `overloaded`.
    pub max_pending_writes: usize,
}

impl Default for RoomSettings {
    fn default() -> Self {
        RoomSettings {
            window: 200,
            presence_grace: Duration::from_secs(5),
            typing_timeout: Duration::from_secs(5),
            typing_throttle: Duration::from_secs(2),
            typing_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(300),
            max_pending_writes: 1024,
        }
    }
}

/// How many of the latest messages a join without `since` returns (docs/protocol.md).
pub const JOIN_LATEST: u64 = 50;

/// Messages read from the store per page of a tutorial catch-up.
const CATCH_UP_PAGE: usize = 500;

/// How long a room waits for a missing message (published by another node, or committed by
/// an earlier instance of the room) before reading it from the store.
const GAP_WAIT: Duration = Duration::from_millis(50);

/// Messages read from the store per gap or resync read.
const FILL_PAGE: usize = 500;

/// How long a room started in a cluster waits for the other nodes to say who is there before
/// it answers joins (so the first member list is the cluster's, not only this node's).
const SETTLE: Duration = Duration::from_millis(300);

/// What the cluster tells a room.
#[derive(Debug)]
pub enum Remote {
    /// An event published by another node.
    Event {
        /// The node.
        node: String,
        /// What happened.
        event: RoomEvent,
    },
    /// A node is gone: its members leave.
    NodeGone(String),
    /// Publish this node's members of the room again.
    PublishState,
    /// Events may have been lost: read the store and ask who is there.
    Resync,
}

/// What a joining socket receives.
#[derive(Clone, Debug, PartialEq)]
pub struct Joined {
    /// The room.
    pub info: RoomInfo,
    /// Users present, sorted.
    pub members: Vec<String>,
    /// The messages after `since` when given (the first page: see [`crate::paging`]), else
    /// the latest [`JOIN_LATEST`] (as many as fit a page); oldest first. Whatever the
    /// in-memory window does not hold is read from the store.
    pub messages: Vec<StoredMessage>,
    /// Oldest sequence number in `messages`, for paging back with `history`.
    pub cursor: Option<u64>,
    /// With `since`: more messages follow the last one (`history` with `after`).
    pub more: bool,
    /// Last sequence number of the room.
    pub last_seq: u64,
}

/// Reply of a join: the socket is in the room either way; an error means the messages older
/// than the window could not be read from the store.
pub type JoinReply = Result<Joined, ChatError>;

/// A room as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The room.
    pub info: RoomInfo,
    /// Users present.
    pub members: usize,
    /// Last sequence number.
    pub last_seq: u64,
}

/// Reply of a post.
pub type Posted = Result<Appended, ChatError>;

enum Command {
    Join {
        user: String,
        socket: Sid,
        since: Option<u64>,
        reply: oneshot::Sender<JoinReply>,
    },
    Leave {
        user: String,
        socket: Sid,
        reply: oneshot::Sender<bool>,
    },
    SocketGone {
        socket: Sid,
    },
    Attach {
        socket: Sid,
        since: u64,
        reply: oneshot::Sender<()>,
    },
    /// A recovered chat connection back in the room: every message after `since`, then live.
    Rejoin {
        user: String,
        socket: Sid,
        since: u64,
        reply: oneshot::Sender<()>,
    },
    /// A page of a catch-up was sent, up to `upto`.
    CaughtUp {
        socket: Sid,
        upto: u64,
        progressed: bool,
        group: Group,
        reply: oneshot::Sender<()>,
    },
    Post {
        user: String,
        client_id: String,
        text: String,
        from: Option<Sid>,
        reply: oneshot::Sender<Posted>,
    },
    Stored {
        result: Result<Appended, StoreError>,
        from: Option<Sid>,
        reply: oneshot::Sender<Posted>,
        started: Instant,
    },
    Typing {
        user: String,
        socket: Sid,
        typing: bool,
    },
    SetTopic {
        topic: String,
        by: String,
        reply: oneshot::Sender<Result<(), ChatError>>,
    },
    TopicStored {
        result: Result<(), StoreError>,
        topic: String,
        by: String,
        reply: oneshot::Sender<Result<(), ChatError>>,
    },
    Summary {
        reply: oneshot::Sender<Summary>,
    },
    Members {
        reply: oneshot::Sender<Vec<String>>,
    },
    Remote(Remote),
    /// A gap or resync read is back.
    Filled {
        result: Result<Vec<StoredMessage>, StoreError>,
    },
}

/// The room stopped (idle) or never answered: ask the registry again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("room stopped")]
pub struct RoomGone;

/// A handle to a room actor. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RoomHandle {
    tx: mpsc::Sender<Command>,
    name: Arc<str>,
    pub(crate) instance: u64,
}

impl RoomHandle {
    /// The room name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, RoomGone> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| RoomGone)?;
        rx.await.map_err(|_| RoomGone)
    }

    /// Adds a socket of `user` to the room: presence, delivery, and the messages `room:join`
    /// returns (every one after `since`, else the latest [`JOIN_LATEST`]).
    pub async fn join(
        &self,
        user: &str,
        socket: Sid,
        since: Option<u64>,
    ) -> Result<JoinReply, RoomGone> {
        let user = user.to_owned();
        self.ask(|reply| Command::Join {
            user,
            socket,
            since,
            reply,
        })
        .await
    }

    /// Removes a socket from the room; false if it was not in it.
    pub async fn leave(&self, user: &str, socket: Sid) -> Result<bool, RoomGone> {
        let user = user.to_owned();
        self.ask(|reply| Command::Leave {
            user,
            socket,
            reply,
        })
        .await
    }

    /// A socket disconnected: its user stays present for the grace period.
    pub async fn socket_gone(&self, socket: Sid) -> Result<(), RoomGone> {
        self.tx
            .send(Command::SocketGone { socket })
            .await
            .map_err(|_| RoomGone)
    }

    /// Attaches a tutorial-chat socket: every message after `since` is sent to it as events, in
    /// order, then live messages follow. Resolves once the catch-up is queued.
    pub async fn attach(&self, socket: Sid, since: u64) -> Result<(), RoomGone> {
        self.ask(|reply| Command::Attach {
            socket,
            since,
            reply,
        })
        .await
    }

    /// Puts a recovered chat connection back in the room: membership as with
    /// [`RoomHandle::join`], and every message after `since` sent to it in order before the
    /// live ones. Resolves once the catch-up is queued.
    pub async fn rejoin(&self, user: &str, socket: Sid, since: u64) -> Result<(), RoomGone> {
        let user = user.to_owned();
        self.ask(|reply| Command::Rejoin {
            user,
            socket,
            since,
            reply,
        })
        .await
    }

    /// Stores and broadcasts a message; resolves once it is durable.
    pub async fn post(
        &self,
        user: &str,
        client_id: String,
        text: String,
        from: Option<Sid>,
    ) -> Result<Posted, RoomGone> {
        let user = user.to_owned();
        self.ask(|reply| Command::Post {
            user,
            client_id,
            text,
            from,
            reply,
        })
        .await
    }

    /// Typing started or stopped.
    pub async fn typing(&self, user: &str, socket: Sid, typing: bool) -> Result<(), RoomGone> {
        let user = user.to_owned();
        self.tx
            .send(Command::Typing {
                user,
                socket,
                typing,
            })
            .await
            .map_err(|_| RoomGone)
    }

    /// Changes the topic.
    pub async fn set_topic(
        &self,
        topic: String,
        by: &str,
    ) -> Result<Result<(), ChatError>, RoomGone> {
        let by = by.to_owned();
        self.ask(|reply| Command::SetTopic { topic, by, reply })
            .await
    }

    /// Name, topic, member count.
    pub async fn summary(&self) -> Result<Summary, RoomGone> {
        self.ask(|reply| Command::Summary { reply }).await
    }

    /// Users present, sorted.
    pub async fn members(&self) -> Result<Vec<String>, RoomGone> {
        self.ask(|reply| Command::Members { reply }).await
    }

    /// Hands the room something from the cluster without waiting. When its mailbox is full
    /// the event is dropped and the room resyncs once there is room again.
    pub fn remote(&self, remote: Remote) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(Command::Remote(remote)) {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(Command::Remote(Remote::Resync)).await;
            });
        }
    }
}

struct Member {
    name: String,
    sockets: HashSet<Sid>,
    /// Set while the user has no socket left: announced as gone at this instant.
    leave_at: Option<Instant>,
}

/// A user's typing in the room; kept after a stop until its gate is idle, so that a storm of
/// toggles is relayed at most once per interval.
struct Typist {
    name: String,
    /// The connection that changed it last: it gets no relay of its own change.
    socket: Option<Sid>,
    /// When typing the user did not refresh ends.
    expires: Instant,
    gate: TypingGate,
}

/// A user present through other nodes.
struct RemoteMember {
    name: String,
    nodes: HashSet<String>,
}

struct Room {
    info: RoomInfo,
    settings: RoomSettings,
    store: Arc<dyn Store>,
    fanout: Arc<dyn Fanout>,
    metrics: Arc<Metrics>,
    members: HashMap<String, Member>,
    socket_user: HashMap<Sid, String>,
    attached: HashSet<Sid>,
    typing: HashMap<String, Typist>,
    recent: VecDeque<StoredMessage>,
    /// The last message delivered here; every one up to it was, in order.
    last_seq: u64,
    /// Messages that came before their predecessor, by sequence number.
    early: BTreeMap<u64, (StoredMessage, Option<Sid>)>,
    /// Acks of messages committed here but not delivered yet (an earlier one is missing): a
    /// sender that saw the ack of `n` has been sent every message before `n`.
    acks: BTreeMap<u64, Vec<(oneshot::Sender<Posted>, Appended)>>,
    /// When to read a gap from the store.
    gap_at: Option<Instant>,
    /// A gap or resync read is running.
    filling: bool,
    /// Members present on other nodes, by lowercased name.
    remote: HashMap<String, RemoteMember>,
    /// Members of nodes that are gone (stopped, or silent): they leave after the grace period
    /// unless they show up again, on another node or the same one restarted. When, node, name.
    departures: Vec<(Instant, String, String)>,
    /// Just started in a cluster: joins wait until every other node told its members, or
    /// until this instant.
    settle_at: Option<Instant>,
    /// Nodes that have not told their members yet, while settling.
    awaiting: usize,
    /// Joins that came while settling.
    deferred: Vec<Command>,
    /// Recovered connections that got messages this node has not delivered yet: each goes
    /// live once the room reaches its sequence number.
    live_at: Vec<(Sid, u64)>,
    cluster: Option<Arc<Cluster>>,
    idle_since: Option<Instant>,
    /// Appends waiting for their commit, answered into the mailbox in submission (= commit)
    /// order by one task, so messages are broadcast and kept in `recent` in `seq` order.
    commits: mpsc::Sender<Pending>,
    me: mpsc::WeakSender<Command>,
}

/// An append handed to the store, with what its `Stored` answer needs.
struct Pending {
    append: crate::store::BoxFuture<Result<Appended, StoreError>>,
    from: Option<Sid>,
    reply: oneshot::Sender<Posted>,
    started: Instant,
}

/// Forwards the outcome of each append to the room, one after the other.
async fn forward_commits(mut pending: mpsc::Receiver<Pending>, me: mpsc::WeakSender<Command>) {
    while let Some(p) = pending.recv().await {
        let result = p.append.await;
        let Some(me) = me.upgrade() else { return };
        let _ = me
            .send(Command::Stored {
                result,
                from: p.from,
                reply: p.reply,
                started: p.started,
            })
            .await;
    }
}

/// What every room actor is given.
#[derive(Clone)]
pub struct RoomDeps {
    /// Timing and sizes.
    pub settings: RoomSettings,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Delivery.
    pub fanout: Arc<dyn Fanout>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The other nodes, in cluster mode.
    pub cluster: Option<Arc<Cluster>>,
}

/// Starts a room actor; `stopped` is called when it stops by itself.
pub(crate) fn spawn(
    info: RoomInfo,
    recent: Vec<StoredMessage>,
    last_seq: u64,
    deps: RoomDeps,
    instance: u64,
    stopped: impl FnOnce() + Send + 'static,
) -> RoomHandle {
    let (tx, rx) = mpsc::channel(1024);
    let (commits, pending) = mpsc::channel(deps.settings.max_pending_writes.max(1));
    tokio::spawn(forward_commits(pending, tx.downgrade()));
    let name: Arc<str> = Arc::from(info.name.as_str());
    let room = Room {
        info,
        store: deps.store,
        fanout: deps.fanout,
        metrics: deps.metrics,
        members: HashMap::new(),
        socket_user: HashMap::new(),
        attached: HashSet::new(),
        typing: HashMap::new(),
        recent: recent.into_iter().collect(),
        last_seq,
        early: BTreeMap::new(),
        acks: BTreeMap::new(),
        gap_at: None,
        filling: false,
        remote: HashMap::new(),
        departures: Vec::new(),
        settle_at: None,
        awaiting: 0,
        deferred: Vec::new(),
        live_at: Vec::new(),
        cluster: deps.cluster,
        idle_since: Some(Instant::now()),
        settings: deps.settings,
        commits,
        me: tx.downgrade(),
    };
    let mut room = room;
    if room.info.kind == RoomKind::Room {
        if let Some(cluster) = &room.cluster {
            cluster.publish_room(&room.info.name, RoomEvent::Who);
            let others = cluster.stats().nodes.saturating_sub(1) as usize;
            if others > 0 {
                room.awaiting = others;
                room.settle_at = Some(Instant::now() + SETTLE);
            }
        }
    }
    tokio::spawn(async move {
        // Reported on every exit, a panic included, so the registry starts the room afresh.
        let _stopped = OnStop(Some(stopped));
        room.run(rx).await;
    });
    RoomHandle { tx, name, instance }
}

/// Runs its function when dropped.
struct OnStop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnStop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl Room {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        loop {
            let deadline = self.next_deadline();
            let command = tokio::select! {
                command = rx.recv() => command,
                () = sleep_until(deadline) => {
                    if self.on_timer(Instant::now()) {
                        tracing::debug!(room = %self.info.name, "idle room stopped");
                        return;
                    }
                    continue;
                }
            };
            let Some(command) = command else { return };
            self.handle(command);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let leaves = self.members.values().filter_map(|m| m.leave_at);
        let interval = self.settings.typing_interval;
        let typing = self.typing.values().filter_map(|t| {
            let expires = t.gate.wanted().then_some(t.expires);
            [expires, t.gate.due(interval), t.gate.idle_at(interval)]
                .into_iter()
                .flatten()
                .min()
        });
        let idle = self.idle_since.map(|t| t + self.settings.idle_timeout);
        let departures = self.departures.iter().map(|(at, _, _)| *at);
        leaves
            .chain(typing)
            .chain(idle)
            .chain(self.gap_at)
            .chain(self.settle_at)
            .chain(departures)
            .min()
    }

    /// Expires presence and typing; true when the room should stop.
    fn on_timer(&mut self, now: Instant) -> bool {
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.leave_at.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if let Some(member) = self.members.remove(&key) {
                self.local_member_gone(&key, &member.name);
            }
        }
        if self.gap_at.is_some_and(|t| t <= now) {
            self.gap_at = None;
            self.fill();
        }
        if self.settle_at.is_some_and(|t| t <= now) {
            self.settled();
        }
        if self.departures.iter().any(|(at, _, _)| *at <= now) {
            let (due, later) = std::mem::take(&mut self.departures)
                .into_iter()
                .partition(|(at, _, _)| *at <= now);
            self.departures = later;
            let due: Vec<(Instant, String, String)> = due;
            for (_, node, name) in due {
                self.remote_presence(&node, &name, false);
            }
        }
        let interval = self.settings.typing_interval;
        let mut relays = Vec::new();
        for t in self.typing.values_mut() {
            let relay = if t.gate.wanted() && t.expires <= now {
                t.socket = None;
                t.gate.set(false, now, interval)
            } else {
                t.gate.poll(now, interval)
            };
            if let Some(typing) = relay {
                relays.push((t.name.clone(), typing, t.socket));
            }
        }
        for (name, typing, socket) in relays {
            self.relay_typing(&name, typing, socket);
        }
        self.typing.retain(|_, t| !t.gate.idle(now, interval));
        self.update_idle(now);
        self.idle_since
            .is_some_and(|t| now >= t + self.settings.idle_timeout)
    }

    fn update_idle(&mut self, now: Instant) {
        if self.members.is_empty() && self.attached.is_empty() {
            self.idle_since.get_or_insert(now);
        } else {
            self.idle_since = None;
        }
    }

    fn handle(&mut self, command: Command) {
        let now = Instant::now();
        if self.settle_at.is_some() && matches!(command, Command::Join { .. }) {
            self.deferred.push(command);
            return;
        }
        match command {
            Command::Join {
                user,
                socket,
                since,
                reply,
            } => self.join(user, socket, since, now, reply),
            Command::Leave {
                user,
                socket,
                reply,
            } => {
                let _ = reply.send(self.leave(&user, socket, None));
            }
            Command::SocketGone { socket } => {
                self.live_at.retain(|(s, _)| *s != socket);
                if self.attached.remove(&socket) {
                    self.fanout
                        .leave_socket(&self.info, socket, Group::Tutorial);
                }
                if let Some(key) = self.socket_user.get(&socket).cloned() {
                    self.leave(&key, socket, Some(now + self.settings.presence_grace));
                }
            }
            Command::Attach {
                socket,
                since,
                reply,
            } => self.attach(socket, since, Group::Tutorial, reply),
            Command::Rejoin {
                user,
                socket,
                since,
                reply,
            } => {
                self.add_member(&user, socket, now);
                self.attach(socket, since, Group::Chat, reply);
            }
            Command::CaughtUp {
                socket,
                upto,
                progressed,
                group,
                reply,
            } => self.caught_up(socket, upto, progressed, group, reply),
            Command::Post {
                user,
                client_id,
                text,
                from,
                reply,
            } => self.post(user, client_id, text, from, reply),
            Command::Stored {
                result,
                from,
                reply,
                started,
            } => self.stored(result, from, reply, started),
            Command::Typing {
                user,
                socket,
                typing,
            } => self.typing(user, socket, typing, now),
            Command::SetTopic { topic, by, reply } => {
                let store = self.store.clone();
                let me = self.me.clone();
                let name = self.info.name.clone();
                tokio::spawn(async move {
                    let result = store.set_topic(&name, &topic).await;
                    if let Some(me) = me.upgrade() {
                        let _ = me
                            .send(Command::TopicStored {
                                result,
                                topic,
                                by,
                                reply,
                            })
                            .await;
                    }
                });
            }
            Command::TopicStored {
                result,
                topic,
                by,
                reply,
            } => {
                let result = match result {
                    Ok(()) => {
                        self.publish(RoomEvent::Topic {
                            topic: topic.clone(),
                            by: by.clone(),
                        });
                        self.info.topic = topic;
                        self.fanout.topic(&self.info, &by);
                        Ok(())
                    }
                    Err(e) => Err(store_error(e)),
                };
                let _ = reply.send(result);
            }
            Command::Summary { reply } => {
                let _ = reply.send(Summary {
                    info: self.info.clone(),
                    members: self.member_count(),
                    last_seq: self.last_seq,
                });
            }
            Command::Members { reply } => {
                let _ = reply.send(self.member_names());
            }
            Command::Remote(remote) => self.on_remote(remote, now),
            Command::Filled { result } => self.filled(result, now),
        }
        self.update_idle(now);
    }

    /// Users present here or on another node, sorted.
    fn member_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.members.values().map(|m| m.name.clone()).collect();
        names.extend(
            self.remote
                .iter()
                .filter(|(k, _)| !self.members.contains_key(*k))
                .map(|(_, m)| m.name.clone()),
        );
        names.sort_by_key(|n| n.to_lowercase());
        names
    }

    fn member_count(&self) -> usize {
        self.members.len()
            + self
                .remote
                .keys()
                .filter(|k| !self.members.contains_key(*k))
                .count()
    }

    fn publish(&self, event: RoomEvent) {
        if let Some(cluster) = &self.cluster {
            cluster.publish_room(&self.info.name, event);
        }
    }

    /// A typing change of a user here: to the local connections and the other nodes.
    fn relay_typing(&self, name: &str, typing: bool, except: Option<Sid>) {
        self.fanout.typing(&self.info, name, typing, except);
        self.publish(RoomEvent::Typing {
            user: name.to_owned(),
            typing,
        });
    }

    /// The last local connection of a user is gone (grace over, or left): the other nodes
    /// learn it; the user leaves unless present through another node.
    fn local_member_gone(&mut self, key: &str, name: &str) {
        self.publish(RoomEvent::Presence {
            user: name.to_owned(),
            online: false,
        });
        if self.remote.contains_key(key) {
            return;
        }
        if let Some(t) = self.typing.remove(key) {
            if t.gate.shown() {
                self.relay_typing(&t.name, false, None);
            }
        }
        self.fanout.presence(&self.info, name, false);
    }

    fn on_remote(&mut self, remote: Remote, now: Instant) {
        match remote {
            Remote::Event { node, event } => match event {
                RoomEvent::Message { message, .. } => self.sequence(message, None, now),
                RoomEvent::Presence { user, online } => {
                    self.remote_presence(&node, &user, online);
                }
                RoomEvent::Typing { user, typing } => {
                    self.fanout.typing(&self.info, &user, typing, None);
                }
                RoomEvent::Topic { topic, by } => {
                    self.info.topic = topic;
                    self.fanout.topic(&self.info, &by);
                }
                RoomEvent::Read { user, seq } => self.fanout.read(&self.info, &user, seq),
                RoomEvent::Who => self.publish_state(),
                RoomEvent::Members { users } => {
                    self.remote_members(&node, &users);
                    if self.settle_at.is_some() {
                        self.awaiting = self.awaiting.saturating_sub(1);
                        if self.awaiting == 0 {
                            self.settled();
                        }
                    }
                }
            },
            Remote::NodeGone(node) => {
                // Its users are moving to other nodes: they leave only if not back in time.
                let at = now + self.settings.presence_grace;
                let names: Vec<String> = self
                    .remote
                    .values()
                    .filter(|m| m.nodes.contains(&node))
                    .map(|m| m.name.clone())
                    .collect();
                for name in names {
                    self.departures.push((at, node.clone(), name));
                }
                // It may have committed messages it never published.
                self.fill();
            }
            Remote::PublishState => self.publish_state(),
            Remote::Resync => {
                self.fill();
                if self.info.kind == RoomKind::Room {
                    self.publish(RoomEvent::Who);
                }
            }
        }
    }

    /// Tells the other nodes every user present here.
    fn publish_state(&self) {
        let mut users: Vec<String> = self.members.values().map(|m| m.name.clone()).collect();
        users.sort();
        self.publish(RoomEvent::Members { users });
    }

    /// A node's members of the room, in full: those not listed left it there.
    fn remote_members(&mut self, node: &str, users: &[String]) {
        let listed: HashSet<String> = users.iter().map(|u| u.to_lowercase()).collect();
        let gone: Vec<String> = self
            .remote
            .iter()
            .filter(|(k, m)| m.nodes.contains(node) && !listed.contains(*k))
            .map(|(_, m)| m.name.clone())
            .collect();
        for name in gone {
            self.remote_presence(node, &name, false);
        }
        for user in users {
            self.remote_presence(node, user, true);
        }
    }

    /// The other nodes told their members (or took too long): answer the joins that waited.
    fn settled(&mut self) {
        self.settle_at = None;
        self.awaiting = 0;
        for command in std::mem::take(&mut self.deferred) {
            self.handle(command);
        }
    }

    fn remote_presence(&mut self, node: &str, user: &str, online: bool) {
        let key = user.to_lowercase();
        let was_present = self.members.contains_key(&key) || self.remote.contains_key(&key);
        self.departures
            .retain(|(_, n, name)| !(n == node && name.to_lowercase() == key));
        if online {
            self.remote
                .entry(key)
                .or_insert_with(|| RemoteMember {
                    name: user.to_owned(),
                    nodes: HashSet::new(),
                })
                .nodes
                .insert(node.to_owned());
            if !was_present {
                self.fanout.presence(&self.info, user, true);
            }
            return;
        }
        let Some(member) = self.remote.get_mut(&key) else {
            return;
        };
        member.nodes.remove(node);
        if !member.nodes.is_empty() {
            return;
        }
        let name = member.name.clone();
        self.remote.remove(&key);
        if !self.members.contains_key(&key) {
            self.fanout.presence(&self.info, &name, false);
        }
    }

    /// Delivers a committed message once every earlier one was; a message that comes before
    /// its predecessor waits for it, and a gap still open after [`GAP_WAIT`] is read from the
    /// store.
    fn sequence(&mut self, message: StoredMessage, from: Option<Sid>, now: Instant) {
        if message.seq <= self.last_seq {
            return;
        }
        self.early.entry(message.seq).or_insert((message, from));
        while let Some((m, from)) = self.early.remove(&(self.last_seq + 1)) {
            self.last_seq = m.seq;
            tracing::trace!(room = %self.info.name, seq = m.seq, "delivered");
            self.fanout.message(&self.info, &m, from);
            self.recent.push_back(m);
            while self.recent.len() > self.settings.window {
                self.recent.pop_front();
            }
            if let Some(waiting) = self.acks.remove(&self.last_seq) {
                for (reply, appended) in waiting {
                    let _ = reply.send(Ok(appended));
                }
            }
            if !self.live_at.is_empty() {
                let seq = self.last_seq;
                let (ready, waiting) = std::mem::take(&mut self.live_at)
                    .into_iter()
                    .partition(|(_, since)| *since <= seq);
                self.live_at = waiting;
                for (socket, _) in ready {
                    self.go_live(socket, Group::Chat);
                }
            }
        }
        if self.early.is_empty() {
            self.gap_at = None;
        } else if self.gap_at.is_none() && !self.filling {
            self.gap_at = Some(now + GAP_WAIT);
        }
    }

    /// Reads the messages after `last_seq` from the store.
    fn fill(&mut self) {
        if self.filling {
            return;
        }
        self.filling = true;
        let (store, name, after, me) = (
            self.store.clone(),
            self.info.name.clone(),
            self.last_seq,
            self.me.clone(),
        );
        tokio::spawn(async move {
            let result = store.messages_after(&name, after, FILL_PAGE).await;
            if let Some(me) = me.upgrade() {
                let _ = me.send(Command::Filled { result }).await;
            }
        });
    }

    fn filled(&mut self, result: Result<Vec<StoredMessage>, StoreError>, now: Instant) {
        self.filling = false;
        match result {
            Ok(messages) => {
                let full = messages.len() >= FILL_PAGE;
                for m in messages {
                    self.sequence(m, None, now);
                }
                if full {
                    self.fill();
                } else if !self.early.is_empty() {
                    self.gap_at = Some(now + GAP_WAIT);
                }
            }
            Err(e) => {
                tracing::warn!(room = %self.info.name, error = %e, "gap read failed; retrying");
                self.gap_at = Some(now + GAP_WAIT * 20);
            }
        }
    }

    fn join(
        &mut self,
        user: String,
        socket: Sid,
        since: Option<u64>,
        now: Instant,
        reply: oneshot::Sender<JoinReply>,
    ) {
        self.fanout.join_socket(&self.info, socket, Group::Chat);
        self.add_member(&user, socket, now);
        // The latest messages are those after `last_seq - JOIN_LATEST`: one rule for both.
        let after = since.unwrap_or_else(|| self.last_seq.saturating_sub(JOIN_LATEST));

        let messages: Vec<_> = self
            .recent
            .iter()
            .filter(|m| m.seq > after)
            .cloned()
            .collect();
        let joined = Joined {
            info: self.info.clone(),
            members: self.member_names(),
            cursor: None,
            messages,
            last_seq: self.last_seq,
            more: false,
        };
        let forward = since.is_some();
        // `recent` holds the newest messages without a hole; what it does not reach back to
        // is read from the store (durable already: it was committed before `recent`'s oldest).
        let oldest = self.recent.front().map_or(self.last_seq + 1, |m| m.seq);
        if after.saturating_add(1) < oldest {
            self.read_older(after, oldest, joined, forward, reply);
        } else {
            let _ = reply.send(Ok(page(joined, forward)));
        }
    }

    /// Makes a connection of `user` a member: a user new to the room is announced (unless
    /// present through another node); one back within the grace period is not.
    fn add_member(&mut self, user: &str, socket: Sid, now: Instant) {
        let key = user.to_lowercase();
        self.socket_user.insert(socket, key.clone());
        let elsewhere = self.remote.contains_key(&key);
        let user = user.to_owned();
        let announce = match self.members.get_mut(&key) {
            Some(member) => {
                member.sockets.insert(socket);
                // Back within the grace period: no leave, no join.
                member.leave_at = None;
                false
            }
            None => {
                self.members.insert(
                    key,
                    Member {
                        name: user.clone(),
                        sockets: HashSet::from([socket]),
                        leave_at: None,
                    },
                );
                true
            }
        };
        if announce {
            self.publish(RoomEvent::Presence {
                user: user.clone(),
                online: true,
            });
            if !elsewhere {
                self.fanout.presence(&self.info, &user, true);
            }
        }
        self.update_idle(now);
    }

    /// Answers a join whose messages reach back beyond `recent`: reads those with
    /// `after < seq < before` from the store in a task of its own (the actor goes on) and puts
    /// them in front of the in-memory ones. Nothing of the room's state is needed afterwards:
    /// messages handled meanwhile reach the socket live (it is in the delivery group already).
    fn read_older(
        &self,
        after: u64,
        before: u64,
        mut joined: Joined,
        forward: bool,
        reply: oneshot::Sender<JoinReply>,
    ) {
        let store = self.store.clone();
        let name = self.info.name.clone();
        // One more than a page: enough to know whether more follow.
        let limit = usize::try_from(before - after - 1)
            .unwrap_or(usize::MAX)
            .min(PAGE + 1);
        tokio::spawn(async move {
            let result = match store.messages_after(&name, after, limit).await {
                Ok(mut older) => {
                    older.retain(|m| m.seq < before);
                    older.append(&mut joined.messages);
                    joined.messages = older;
                    Ok(page(joined, forward))
                }
                Err(e) => Err(store_error(e)),
            };
            let _ = reply.send(result);
        });
    }

    /// Removes a socket; `grace` delays the announcement when the user has no socket left.
    fn leave(&mut self, key_or_name: &str, socket: Sid, grace: Option<Instant>) -> bool {
        let key = key_or_name.to_lowercase();
        if self.socket_user.remove(&socket).is_none() {
            return false;
        }
        self.fanout.leave_socket(&self.info, socket, Group::Chat);
        let Some(member) = self.members.get_mut(&key) else {
            return true;
        };
        member.sockets.remove(&socket);
        if member.sockets.is_empty() {
            match grace {
                Some(at) => member.leave_at = Some(at),
                None => {
                    let name = member.name.clone();
                    self.members.remove(&key);
                    self.local_member_gone(&key, &name);
                }
            }
        }
        true
    }

    /// Sends a socket the messages after `since`, then adds it to the live group of `group`.
    fn attach(&mut self, socket: Sid, since: u64, group: Group, reply: oneshot::Sender<()>) {
        tracing::debug!(
            room = %self.info.name, %socket, since, last_seq = self.last_seq,
            oldest = ?self.recent.front().map(|m| m.seq), "attach"
        );
        if group == Group::Chat && since > self.last_seq {
            // Committed but not delivered here yet: on its way, or read after the gap wait.
            self.live_at.push((socket, since));
            if self.gap_at.is_none() && !self.filling {
                self.gap_at = Some(Instant::now() + GAP_WAIT);
            }
            let _ = reply.send(());
            return;
        }
        let in_window = self
            .recent
            .front()
            .is_some_and(|m| m.seq <= since.saturating_add(1))
            || self.last_seq <= since;
        if in_window {
            let missed: Vec<_> = self
                .recent
                .iter()
                .filter(|m| m.seq > since)
                .cloned()
                .collect();
            self.fanout.catch_up(&self.info, socket, group, &missed);
            self.go_live(socket, group);
            let _ = reply.send(());
            return;
        }
        self.read_catch_up(socket, since, group, reply);
    }

    fn go_live(&mut self, socket: Sid, group: Group) {
        self.fanout.join_socket(&self.info, socket, group);
        if group == Group::Tutorial {
            self.attached.insert(socket);
        }
    }

    /// Sends one page of the messages after `since` from the store, at the socket's pace and
    /// only those the room has delivered (up to `last_seq` now), then continues in `CaughtUp`,
    /// in mailbox order. The socket joins the live group only once it is within the window.
    fn read_catch_up(&self, socket: Sid, since: u64, group: Group, reply: oneshot::Sender<()>) {
        let store = self.store.clone();
        let fanout = self.fanout.clone();
        let info = self.info.clone();
        let limit = self.last_seq;
        let me = self.me.clone();
        tokio::spawn(async move {
            let page = match store.messages_after(&info.name, since, CATCH_UP_PAGE).await {
                Ok(page) => page,
                Err(err) => {
                    tracing::error!(%err, "catch-up read failed");
                    Vec::new()
                }
            };
            let page: Vec<_> = page
                .into_iter()
                .filter(|m| m.seq > since && m.seq <= limit)
                .collect();
            let upto = page.last().map_or(since, |m| m.seq);
            if !fanout.paced_catch_up(&info, socket, group, page).await {
                // Gone meanwhile: nothing to join.
                let _ = reply.send(());
                return;
            }
            if let Some(me) = me.upgrade() {
                let _ = me
                    .send(Command::CaughtUp {
                        socket,
                        upto,
                        progressed: upto > since,
                        group,
                        reply,
                    })
                    .await;
            }
        });
    }

    fn post(
        &mut self,
        user: String,
        client_id: String,
        text: String,
        from: Option<Sid>,
        reply: oneshot::Sender<Posted>,
    ) {
        // A message ends the sender's typing without a separate notice.
        if let Some(t) = self.typing.get_mut(&user.to_lowercase()) {
            t.gate.silence();
        }
        // Room first, then the write: a write the store took is always answered.
        let Ok(slot) = self.commits.try_reserve() else {
            let _ = reply.send(Err(crate::registry::overloaded()));
            return;
        };
        let started = Instant::now();
        let append = self.store.append(NewMessage {
            room: self.info.name.clone(),
            client_id,
            user,
            text,
            ts: now_ms(),
        });
        slot.send(Pending {
            append,
            from,
            reply,
            started,
        });
    }

    /// The store's catch-up read is back. It may hold messages whose `Stored` answer has not
    /// been handled yet: those go out live once it is (the socket is in the group by then), so
    /// only what the room has handled is sent here. If more was handled meanwhile than
    /// `recent` holds, read again from there (only after progress: a failed read ends here).
    fn caught_up(
        &mut self,
        socket: Sid,
        upto: u64,
        progressed: bool,
        group: Group,
        reply: oneshot::Sender<()>,
    ) {
        let in_window = self
            .recent
            .front()
            .is_some_and(|m| m.seq <= upto.saturating_add(1))
            || self.last_seq <= upto;
        if !in_window && progressed {
            self.read_catch_up(socket, upto, group, reply);
            return;
        }
        if !self.fanout.is_connected(socket, group) {
            let _ = reply.send(());
            return;
        }
        let rest: Vec<_> = self
            .recent
            .iter()
            .filter(|m| m.seq > upto)
            .cloned()
            .collect();
        self.fanout.catch_up(&self.info, socket, group, &rest);
        self.go_live(socket, group);
        let _ = reply.send(());
    }

    fn stored(
        &mut self,
        result: Result<Appended, StoreError>,
        from: Option<Sid>,
        reply: oneshot::Sender<Posted>,
        started: Instant,
    ) {
        self.metrics.store_write(started.elapsed());
        let appended = match result {
            Ok(appended) => appended,
            Err(e) => {
                let _ = reply.send(Err(store_error(e)));
                return;
            }
        };
        let seq = appended.message.seq;
        if !appended.duplicate {
            self.metrics.message_in();
            self.publish(RoomEvent::Message {
                kind: self.info.kind,
                message: appended.message.clone(),
            });
            self.sequence(appended.message.clone(), from, Instant::now());
        } else if seq > self.last_seq {
            // Committed by a write whose answer was lost (a timeout), never delivered: now.
            self.publish(RoomEvent::Message {
                kind: self.info.kind,
                message: appended.message.clone(),
            });
            self.sequence(appended.message.clone(), from, Instant::now());
        }
        if seq <= self.last_seq {
            let _ = reply.send(Ok(appended));
        } else {
            self.acks.entry(seq).or_default().push((reply, appended));
        }
    }

    fn typing(&mut self, user: String, socket: Sid, typing: bool, now: Instant) {
        let key = user.to_lowercase();
        if !self.members.contains_key(&key) {
            return;
        }
        let (interval, every) = (self.settings.typing_interval, self.settings.typing_throttle);
        let t = self.typing.entry(key).or_insert_with(|| Typist {
            name: user,
            socket: None,
            expires: now,
            gate: TypingGate::default(),
        });
        t.socket = Some(socket);
        if typing {
            t.expires = now + self.settings.typing_timeout;
        }
        let relay = match t.gate.set(typing, now, interval) {
            Some(state) => Some(state),
            None if typing && t.gate.refresh(now, every) => Some(true),
            None => None,
        };
        if let Some(state) = relay {
            let name = t.name.clone();
            self.relay_typing(&name, state, Some(socket));
        }
    }
}

/// Caps the messages of a join to one page: the oldest that fit when catching up from `since`
/// (`more` then tells that others follow), the newest otherwise (older ones are paged back
/// from `cursor`).
fn page(mut joined: Joined, forward: bool) -> Joined {
    if forward {
        joined.more = paging::keep_oldest(&mut joined.messages, PAGE, PAGE_BYTES);
    } else {
        paging::keep_newest(&mut joined.messages, PAGE, PAGE_BYTES);
    }
    joined.cursor = joined.messages.first().map(|m| m.seq);
    joined
}

/// The answer to a command whose store operation failed.
pub(crate) fn store_error(e: StoreError) -> ChatError {
    match e {
        StoreError::NoSuchRoom => ChatError::new(Code::NoSuchRoom, "no such room"),
        StoreError::Overloaded => crate::registry::overloaded(),
        other => {
            tracing::error!(error = %other, "store failure");
            ChatError::new(Code::Unavailable, "storage is unavailable, try again")
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Recent messages and last sequence number of a room, read from the store at start.
/// The messages are those up to the sequence number read first: one committed between the two
/// reads (by another node) comes as an event, and were it read only as the last number, the
/// room would take it for delivered and nobody here would get it.
pub(crate) async fn load(
    store: &dyn Store,
    name: &str,
    window: usize,
) -> Result<(Vec<StoredMessage>, u64), StoreError> {
    let last = store.last_seq(name).await?;
    let recent = store
        .messages_before(name, last.saturating_add(1), window)
        .await?;
    Ok((recent, last))
}

/// A room's kind is fixed by its name.
pub(crate) fn kind_of(name: &str) -> RoomKind {
    if name.starts_with('@') {
        RoomKind::Direct
    } else {
        RoomKind::Room
    }
}

#[cfg(test)]
mod tests {
    use super::OnStop;
    use crate::store::{
        now_ms, Appended, BoxFuture, MemoryStore, NewMessage, RoomInfo, RoomKind, Store,
        StoreError, StoredMessage,
    };
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// A store where another node commits a message right after the first read of a room.
    struct CommitsDuringLoad {
        inner: Arc<MemoryStore>,
        committed: Arc<AtomicBool>,
    }

    impl CommitsDuringLoad {
        /// Runs `read`, then has another node commit a message (the first time only).
        fn then_commit<T: Send + 'static>(&self, read: BoxFuture<T>) -> BoxFuture<T> {
            let (inner, committed) = (self.inner.clone(), self.committed.clone());
            Box::pin(async move {
                let out = read.await;
                if !committed.swap(true, Ordering::AcqRel) {
                    let _ = inner.append(message("elsewhere")).await;
                }
                out
            })
        }
    }

    fn message(id: &str) -> NewMessage {
        NewMessage {
            room: "lobby".into(),
            client_id: id.into(),
            user: "ann".into(),
            text: id.into(),
            ts: now_ms(),
        }
    }

    impl Store for CommitsDuringLoad {
        fn append(&self, m: NewMessage) -> BoxFuture<Result<Appended, StoreError>> {
            self.inner.append(m)
        }
        fn messages_after(
            &self,
            room: &str,
            after: u64,
            limit: usize,
        ) -> BoxFuture<Result<Vec<StoredMessage>, StoreError>> {
            self.inner.messages_after(room, after, limit)
        }
        fn messages_before(
            &self,
            room: &str,
            before: u64,
            limit: usize,
        ) -> BoxFuture<Result<Vec<StoredMessage>, StoreError>> {
            self.then_commit(self.inner.messages_before(room, before, limit))
        }
        fn last_seq(&self, room: &str) -> BoxFuture<Result<u64, StoreError>> {
            self.then_commit(self.inner.last_seq(room))
        }
        fn rooms(&self) -> BoxFuture<Result<Vec<RoomInfo>, StoreError>> {
            self.inner.rooms()
        }
        fn room(&self, name: &str) -> BoxFuture<Result<Option<RoomInfo>, StoreError>> {
            self.inner.room(name)
        }
        fn create_room(&self, info: RoomInfo) -> BoxFuture<Result<bool, StoreError>> {
            self.inner.create_room(info)
        }
        fn set_topic(&self, room: &str, topic: &str) -> BoxFuture<Result<(), StoreError>> {
            self.inner.set_topic(room, topic)
        }
        fn health(&self) -> BoxFuture<Result<(), StoreError>> {
            self.inner.health()
        }
        fn close(&self) -> BoxFuture<()> {
            self.inner.close()
        }
    }

    /// The room's last sequence number is that of its newest loaded message: a message
    /// committed while the room loads is not taken for delivered (it comes as an event).
    #[tokio::test]
    async fn a_room_loads_its_messages_and_last_seq_from_one_point() {
        let store = CommitsDuringLoad {
            inner: Arc::new(MemoryStore::new()),
            committed: Arc::new(AtomicBool::new(false)),
        };
        let info = RoomInfo {
            name: "lobby".into(),
            topic: String::new(),
            kind: RoomKind::Room,
            created_at: now_ms(),
        };
        store.create_room(info).await.unwrap();
        for id in ["a", "b"] {
            store.append(message(id)).await.unwrap();
        }
        let (recent, last) = super::load(&store, "lobby", 10).await.unwrap();
        assert_eq!(recent.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(last, 2);
        assert_eq!(store.last_seq("lobby").await, Ok(3));
    }

    #[tokio::test]
    async fn a_panicking_actor_still_reports_its_stop() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let _stopped = OnStop(Some(move || {
                let _ = tx.send(());
            }));
            panic!("room actor bug");
        });
        assert!(task.await.is_err());
        assert!(rx.await.is_ok());
    }
}
