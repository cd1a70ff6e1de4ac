//! The adapter: rooms, broadcasts and everything that must work across a cluster.
//!
//! A namespace talks to its adapter only through [`Adapter`]. The in-memory [`MemoryAdapter`]
//! serves a single process. A cluster adapter (such as one speaking the wire format of Node's
//! `@socket.io/redis-adapter`) implements the same trait: it publishes broadcasts and requests,
//! delivers what other nodes publish through [`LocalNamespace`], and answers their requests.
//! Operations that need answers from other nodes return futures.

mod memory;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::Value;

use crate::ack::AckError;
use crate::args::Args;
use crate::namespace::NsInner;
use crate::observer::{Observer, ObserverSlot};
use crate::packet::Packet;
use crate::socket::Socket;
use engineio::Sid;

pub use memory::MemoryAdapter;

/// A room name. Every socket is also in the room named after its own id.
pub type Room = String;

/// A boxed future, as returned by adapter operations that may wait for other nodes.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Flags of a broadcast.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BroadcastFlags {
    /// Drop the packet for clients that cannot take it at once.
    pub volatile: bool,
    /// Only this node's clients, even in a cluster.
    pub local: bool,
    /// How long to wait for acknowledgements.
    pub timeout: Option<Duration>,
}

/// Who a broadcast or a bulk operation targets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BroadcastOptions {
    /// Sockets in any of these rooms; every socket of the namespace when empty.
    pub rooms: Vec<Room>,
    /// Minus sockets in any of these rooms.
    pub except: Vec<Room>,
    /// Flags.
    pub flags: BroadcastFlags,
}

/// A socket as seen through the adapter, possibly on another node.
#[derive(Clone, Debug, PartialEq)]
pub struct SocketInfo {
    /// Socket id.
    pub id: Sid,
    /// Rooms it is in, its own-id room included.
    pub rooms: Vec<Room>,
    /// Its application data (`socket.data`).
    pub data: Value,
    /// The handshake as JSON: `headers`, `address`, `query`, `auth`, `issued`, `secure`.
    pub handshake: Value,
}

/// The acknowledgements collected by a broadcast that asked for them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BroadcastAcks {
    /// One entry per client that answered in time.
    pub responses: Vec<Args>,
    /// Clients that did not answer in time.
    pub missing: usize,
}

impl BroadcastAcks {
    /// The responses, or [`AckError::Timeout`] when some client did not answer.
    pub fn into_result(self) -> Result<Vec<Args>, AckError> {
        if self.missing == 0 {
            Ok(self.responses)
        } else {
            Err(AckError::Timeout)
        }
    }
}

/// An adapter operation that failed (a cluster request that timed out, for instance).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AdapterError(pub String);

/// Rooms and broadcasts of one namespace.
pub trait Adapter: Send + Sync + 'static {
    /// Adds a socket to rooms.
    fn add_all(&self, id: Sid, rooms: &[Room]);
    /// Runs `before`, then adds a socket to rooms, with no recorded broadcast in between: a
    /// recovered socket is sent what it missed in `before`, and nothing recorded meanwhile may
    /// slip between that and its joining the rooms. By default, with no such guarantee.
    fn add_all_after(&self, id: Sid, rooms: &[Room], before: &mut dyn FnMut()) {
        before();
        self.add_all(id, rooms);
    }
    /// Removes a socket from one room.
    fn del(&self, id: Sid, room: &str);
    /// Removes a socket from every room.
    fn del_all(&self, id: Sid);
    /// The rooms of a local socket.
    fn socket_rooms(&self, id: Sid) -> Vec<Room>;
    /// Every room with at least one local socket.
    fn rooms(&self) -> Vec<Room>;
    /// Ids of the local sockets the options target.
    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid>;
    /// Sends a packet to every socket the options target (and publishes it, in a cluster).
    fn broadcast(&self, packet: Packet, opts: &BroadcastOptions);
    /// Sends a packet with an ack id to every target and collects the acknowledgements.
    fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: &BroadcastOptions,
    ) -> BoxFuture<BroadcastAcks>;
    /// Makes the targeted sockets join rooms.
    fn add_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]);
    /// Makes the targeted sockets leave rooms.
    fn del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]);
    /// Disconnects the targeted sockets; `close` also closes their connections.
    fn disconnect_sockets(&self, opts: &BroadcastOptions, close: bool);
    /// Describes the targeted sockets, on every node.
    fn fetch_sockets(
        &self,
        opts: &BroadcastOptions,
    ) -> BoxFuture<Result<Vec<SocketInfo>, AdapterError>>;
    /// Sends an event to the other nodes' server-side listeners; no-op on a single node.
    fn server_side_emit(&self, args: Args) -> BoxFuture<Result<Vec<Args>, AdapterError>>;
    /// Number of nodes, this one included.
    fn server_count(&self) -> BoxFuture<usize>;
    /// Every room with at least one socket, on every node (this node's rooms by default).
    fn all_rooms(&self) -> BoxFuture<Result<Vec<Room>, AdapterError>> {
        Box::pin(std::future::ready(Ok(self.rooms())))
    }
}

/// Builds the adapter of each namespace.
pub trait AdapterFactory: Send + Sync + 'static {
    /// The adapter for a namespace that has just been created.
    fn create(&self, ns: LocalNamespace) -> Arc<dyn Adapter>;
}

impl<F> AdapterFactory for F
where
    F: Fn(LocalNamespace) -> Arc<dyn Adapter> + Send + Sync + 'static,
{
    fn create(&self, ns: LocalNamespace) -> Arc<dyn Adapter> {
        self(ns)
    }
}

/// What an adapter may do with its namespace on this node: find and deliver to local sockets.
#[derive(Clone)]
pub struct LocalNamespace {
    ns: Weak<NsInner>,
    name: Arc<str>,
    observer: ObserverSlot,
}

impl LocalNamespace {
    pub(crate) fn new(ns: Weak<NsInner>, name: &str, observer: ObserverSlot) -> Self {
        LocalNamespace {
            ns,
            name: name.into(),
            observer,
        }
    }

    /// The server's instrumentation, when installed.
    pub(crate) fn observer(&self) -> Option<&Arc<dyn Observer>> {
        self.observer.get()
    }

    /// The namespace name, such as `/` or `/chat`. Known from the start: a cluster adapter
    /// needs it in [`AdapterFactory::create`] to subscribe, before the namespace is reachable.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A local socket by id.
    pub fn socket(&self, id: &Sid) -> Option<Socket> {
        self.ns.upgrade().and_then(|ns| ns.socket(id))
    }

    /// Ids of every local socket.
    pub fn socket_ids(&self) -> Vec<Sid> {
        self.ns
            .upgrade()
            .map(|ns| ns.socket_ids())
            .unwrap_or_default()
    }

    /// Runs this node's server-side listener for an event another node sent with
    /// `server_side_emit` (`args` starts with the event name); resolves to its answer.
    pub fn server_side_event(&self, args: Args) -> BoxFuture<Option<Args>> {
        let handler = self
            .ns
            .upgrade()
            .and_then(|ns| ns.setup.server_side_handler());
        match handler {
            Some(handler) => handler(args),
            None => Box::pin(std::future::ready(None)),
        }
    }

    /// What a recovery store would save if this connected local socket dropped now: `None`
    /// when there is no such socket or it cannot be recovered (recovery off, protocol v4).
    /// A cluster store saves it ahead of time, so that the session outlives a node that dies
    /// without running its disconnect path.
    pub fn live_session(&self, id: &Sid) -> Option<crate::recovery::SavedSession> {
        let socket = self.socket(id)?;
        let pid = socket.inner.pid?;
        Some(crate::recovery::SavedSession {
            sid: *id,
            pid,
            nsp: self.name.to_string(),
            rooms: socket.rooms(),
            data: socket.data(),
            disconnected_at: std::time::SystemTime::now(),
        })
    }

    /// The connection-state-recovery store, when recovery is on.
    pub fn recovery_store(&self) -> Option<Arc<dyn crate::recovery::SessionStore>> {
        self.ns.upgrade().and_then(|ns| ns.recovery_store())
    }
}

impl std::fmt::Debug for LocalNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LocalNamespace").field(&self.name()).finish()
    }
}
