//! The room registry actor: finds running rooms, starts stopped ones from the store, creates
//! new ones. Loading happens off the actor's loop; requests for a room being loaded wait for it.
//!
//! Requests queue in a bounded mailbox ([`MAILBOX`]): when it is full they are answered
//! `overloaded` at once. The actor's own notices (a load done, a room stopped) use a second
//! channel that needs no bound: there is at most one per load and one per room instance.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::cluster::{Cluster, RoomEvent};
use crate::metrics::Metrics;
use crate::protocol::{ChatError, Code};
use crate::room::{self, Fanout, Remote, RoomDeps, RoomHandle, RoomSettings};
use crate::store::{now_ms, RoomInfo, RoomKind, Store, StoreError, StoredMessage};

type Reply = oneshot::Sender<Result<RoomHandle, ChatError>>;

/// Requests the registry holds at most; more are answered `overloaded`.
pub const MAILBOX: usize = 8192;

enum Command {
    Get {
        name: String,
        create: Option<RoomInfo>,
        reply: Reply,
    },
    Running {
        reply: oneshot::Sender<Vec<RoomHandle>>,
    },
    /// An event of another node for one room.
    ClusterEvent {
        room: String,
        node: String,
        event: RoomEvent,
    },
    /// For every running room.
    ClusterAll(AllRooms),
}

/// What the cluster tells every running room.
#[derive(Clone, Debug)]
enum AllRooms {
    NodeGone(String),
    State,
    Resync,
}

/// What the registry's own tasks report.
enum Notice {
    Loaded {
        name: String,
        result: Result<Option<(RoomInfo, Vec<StoredMessage>, u64)>, StoreError>,
        created: bool,
    },
    Stopped {
        name: String,
        instance: u64,
    },
}

/// A handle to the registry. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    tx: mpsc::Sender<Command>,
}

struct Waiting {
    replies: Vec<Reply>,
    /// The request that creates the room if it does not exist.
    create: Option<RoomInfo>,
    /// Events of other nodes that came while the room loaded, for it once started.
    remote: Vec<(String, RoomEvent)>,
    /// Loaded because another node's message must reach a connection here: that message and
    /// what follows it are delivered, whatever the store already holds.
    delivered_before: Option<u64>,
}

struct Actor {
    rooms: HashMap<String, RoomHandle>,
    loading: HashMap<String, Waiting>,
    next_instance: u64,
    deps: RoomDeps,
    /// Kept strong: the actor ends when every [`Registry`] handle is gone, not before.
    me: mpsc::UnboundedSender<Notice>,
}

fn unavailable(e: StoreError) -> ChatError {
    tracing::error!(error = %e, "store failure while loading a room");
    crate::room::store_error(e)
}

/// The answer to a request that found the mailbox full.
pub fn overloaded() -> ChatError {
    ChatError::new(Code::Overloaded, "the server is overloaded, try again")
}

impl Registry {
    /// Starts the registry.
    pub fn start(
        store: Arc<dyn Store>,
        fanout: Arc<dyn Fanout>,
        metrics: Arc<Metrics>,
        settings: RoomSettings,
        cluster: Option<Arc<Cluster>>,
    ) -> Registry {
        let deps = RoomDeps {
            settings,
            store,
            fanout,
            metrics,
            cluster,
        };
        Self::start_deps(deps, MAILBOX)
    }

    /// Starts the registry with a mailbox of `mailbox` requests.
    #[cfg(test)]
    pub(crate) fn start_with(
        store: Arc<dyn Store>,
        fanout: Arc<dyn Fanout>,
        metrics: Arc<Metrics>,
        settings: RoomSettings,
        mailbox: usize,
    ) -> Registry {
        let deps = RoomDeps {
            settings,
            store,
            fanout,
            metrics,
            cluster: None,
        };
        Self::start_deps(deps, mailbox)
    }

    fn start_deps(deps: RoomDeps, mailbox: usize) -> Registry {
        let (tx, mut rx) = mpsc::channel(mailbox.max(1));
        let (notices, mut notices_rx) = mpsc::unbounded_channel();
        let mut actor = Actor {
            rooms: HashMap::new(),
            loading: HashMap::new(),
            next_instance: 0,
            deps,
            me: notices,
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    // Notices first: they finish work that requests are waiting for.
                    biased;
                    Some(notice) = notices_rx.recv() => actor.notice(notice),
                    command = rx.recv() => match command {
                        Some(command) => actor.handle(command),
                        None => return,
                    },
                }
            }
        });
        Registry { tx }
    }

    fn send(&self, command: Command) -> Result<(), ChatError> {
        self.tx.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => overloaded(),
            mpsc::error::TrySendError::Closed(_) => {
                ChatError::new(Code::Unavailable, "server is shutting down")
            }
        })
    }

    async fn get_inner(
        &self,
        name: &str,
        create: Option<RoomInfo>,
    ) -> Result<RoomHandle, ChatError> {
        let (reply, rx) = oneshot::channel();
        let gone = || ChatError::new(Code::Unavailable, "server is shutting down");
        self.send(Command::Get {
            name: name.to_owned(),
            create,
            reply,
        })?;
        rx.await.map_err(|_| gone())?
    }

    /// A running room, started from the store if needed; `no_such_room` if it does not exist.
    pub async fn get(&self, name: &str) -> Result<RoomHandle, ChatError> {
        self.get_inner(name, None).await
    }

    /// A room, created with `info` if it does not exist yet (direct conversations, `lobby`).
    pub async fn get_or_create(&self, info: RoomInfo) -> Result<RoomHandle, ChatError> {
        let name = info.name.clone();
        self.get_inner(&name, Some(info)).await
    }

    /// Creates a room; `room_exists` if it exists.
    pub async fn create(
        &self,
        name: &str,
        topic: &str,
        store: &dyn Store,
    ) -> Result<RoomHandle, ChatError> {
        let info = RoomInfo {
            name: name.to_owned(),
            topic: topic.to_owned(),
            kind: room::kind_of(name),
            created_at: now_ms(),
        };
        let created = store.create_room(info.clone()).await.map_err(unavailable)?;
        if !created {
            return Err(ChatError::new(
                Code::RoomExists,
                "a room with this name exists",
            ));
        }
        // With `info`: a load that began before the room existed (a concurrent join) reads it
        // again instead of answering `no_such_room` to this request too.
        self.get_inner(name, Some(info)).await
    }

    /// The handle of a room just created in the store (by [`crate::access::create`]).
    pub async fn created(&self, info: RoomInfo) -> Result<RoomHandle, ChatError> {
        let name = info.name.clone();
        self.get_inner(&name, Some(info)).await
    }

    /// An event another node published for a room. Waits for room in the mailbox: the
    /// cluster's reader is slowed down rather than events lost.
    pub async fn cluster_event(&self, room: String, node: String, event: RoomEvent) {
        let _ = self
            .tx
            .send(Command::ClusterEvent { room, node, event })
            .await;
    }

    /// A node is gone: its members leave every room.
    pub async fn cluster_node_gone(&self, node: String) {
        let _ = self
            .tx
            .send(Command::ClusterAll(AllRooms::NodeGone(node)))
            .await;
    }

    /// Every running room publishes its local members again.
    pub async fn cluster_state(&self) {
        let _ = self.tx.send(Command::ClusterAll(AllRooms::State)).await;
    }

    /// Every running room reads what it may have missed from the store.
    pub async fn cluster_resync(&self) {
        let _ = self.tx.send(Command::ClusterAll(AllRooms::Resync)).await;
    }

    /// Handles of every running room; `overloaded` when the mailbox is full.
    pub async fn running(&self) -> Result<Vec<RoomHandle>, ChatError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Running { reply })?;
        Ok(rx.await.unwrap_or_default())
    }
}

impl Actor {
    fn handle(&mut self, command: Command) {
        match command {
            Command::Get {
                name,
                create,
                reply,
            } => {
                if let Some(handle) = self.rooms.get(&name) {
                    let _ = reply.send(Ok(handle.clone()));
                    return;
                }
                if let Some(waiting) = self.loading.get_mut(&name) {
                    waiting.replies.push(reply);
                    if waiting.create.is_none() {
                        waiting.create = create;
                    }
                    return;
                }
                self.loading.insert(
                    name.clone(),
                    Waiting {
                        replies: vec![reply],
                        create: create.clone(),
                        remote: Vec::new(),
                        delivered_before: None,
                    },
                );
                self.load(name, create);
            }
            Command::Running { reply } => {
                let _ = reply.send(self.rooms.values().cloned().collect());
            }
            Command::ClusterEvent { room, node, event } => self.cluster_event(room, node, event),
            Command::ClusterAll(all) => {
                for handle in self.rooms.values() {
                    handle.remote(match &all {
                        AllRooms::NodeGone(node) => Remote::NodeGone(node.clone()),
                        AllRooms::State => Remote::PublishState,
                        AllRooms::Resync => Remote::Resync,
                    });
                }
            }
        }
    }

    /// Routes another node's event: to the running room, to the room being loaded, or
    /// nowhere when no connection here is concerned. A direct message for a user connected
    /// here starts its conversation's room.
    fn cluster_event(&mut self, room: String, node: String, event: RoomEvent) {
        if let Some(handle) = self.rooms.get(&room) {
            handle.remote(Remote::Event { node, event });
            return;
        }
        if let Some(waiting) = self.loading.get_mut(&room) {
            waiting.remote.push((node, event));
            return;
        }
        let RoomEvent::Message {
            kind: RoomKind::Direct,
            message,
        } = &event
        else {
            return;
        };
        let stub = RoomInfo {
            name: room.clone(),
            topic: String::new(),
            kind: RoomKind::Direct,
            created_at: message.ts,
        };
        if !self.deps.fanout.has_recipients(&stub) {
            return;
        }
        let seq = message.seq;
        self.loading.insert(
            room.clone(),
            Waiting {
                replies: Vec::new(),
                create: None,
                remote: vec![(node, event)],
                delivered_before: Some(seq),
            },
        );
        self.load(room, None);
    }

    fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::Loaded {
                name,
                result,
                created,
            } => {
                let Some(waiting) = self.loading.remove(&name) else {
                    return;
                };
                match result {
                    Ok(Some((info, mut recent, mut last_seq))) => {
                        if let Some(seq) = waiting.delivered_before {
                            last_seq = last_seq.min(seq.saturating_sub(1));
                            recent.retain(|m| m.seq <= last_seq);
                        }
                        let handle = self.start(info, recent, last_seq);
                        for reply in waiting.replies {
                            let _ = reply.send(Ok(handle.clone()));
                        }
                        for (node, event) in waiting.remote {
                            handle.remote(Remote::Event { node, event });
                        }
                    }
                    Ok(None) if !created && waiting.create.is_some() => {
                        // A later request asked for creation while this load ran.
                        let create = waiting.create.clone();
                        self.loading.insert(name.clone(), waiting);
                        self.load(name, create);
                    }
                    Ok(None) => {
                        for reply in waiting.replies {
                            let _ =
                                reply.send(Err(ChatError::new(Code::NoSuchRoom, "no such room")));
                        }
                    }
                    Err(e) => {
                        let err = unavailable(e);
                        for reply in waiting.replies {
                            let _ = reply.send(Err(err.clone()));
                        }
                    }
                }
            }
            Notice::Stopped { name, instance } => {
                if self
                    .rooms
                    .get(&name)
                    .is_some_and(|h| h.instance == instance)
                {
                    self.rooms.remove(&name);
                }
            }
        }
    }

    fn load(&self, name: String, create: Option<RoomInfo>) {
        let store = self.deps.store.clone();
        let window = self.deps.settings.window;
        let me = self.me.clone();
        tokio::spawn(async move {
            let created = create.is_some();
            let result = async {
                if let Some(info) = create {
                    store.create_room(info).await?;
                }
                let Some(info) = store.room(&name).await? else {
                    return Ok(None);
                };
                let (recent, last) = room::load(store.as_ref(), &name, window).await?;
                Ok(Some((info, recent, last)))
            }
            .await;
            let _ = me.send(Notice::Loaded {
                name,
                result,
                created,
            });
        });
    }

    fn start(&mut self, info: RoomInfo, recent: Vec<StoredMessage>, last_seq: u64) -> RoomHandle {
        self.next_instance += 1;
        let instance = self.next_instance;
        let name = info.name.clone();
        let me = self.me.clone();
        let stopped_name = name.clone();
        let handle = room::spawn(
            info,
            recent,
            last_seq,
            self.deps.clone(),
            instance,
            move || {
                let _ = me.send(Notice::Stopped {
                    name: stopped_name,
                    instance,
                });
            },
        );
        self.rooms.insert(name, handle.clone());
        handle
    }
}
