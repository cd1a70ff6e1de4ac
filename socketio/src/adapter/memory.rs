//! The in-process adapter.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;

use super::{
    Adapter, AdapterError, BoxFuture, BroadcastAcks, BroadcastOptions, LocalNamespace, Room,
    SocketInfo,
};
use crate::args::Args;
use crate::packet::Packet;
use crate::recovery::StoredPacket;
use crate::socket::Socket;
use engineio::Sid;

/// Where a broadcast goes for one member: its connection, resolved once when it joins, so a
/// broadcast walks the room without looking every receiver up. `None` for an id that is not a
/// local socket (yet).
type Receiver = Option<engineio::Socket>;

fn same(a: &Receiver, b: &Receiver) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.same_connection(b),
        (None, None) => true,
        _ => false,
    }
}

#[derive(Default)]
struct Member {
    receiver: Receiver,
    rooms: HashSet<Room>,
}

#[derive(Default)]
struct Rooms {
    members: HashMap<Room, HashMap<Sid, Receiver>>,
    of_socket: HashMap<Sid, Member>,
}

impl Rooms {
    /// Calls `f` once for each socket the options target.
    fn targets(&self, opts: &BroadcastOptions, mut f: impl FnMut(&Sid, &Receiver)) {
        let excluded: HashSet<Sid> = opts
            .except
            .iter()
            .filter_map(|r| self.members.get(r))
            .flat_map(|m| m.keys())
            .copied()
            .collect();
        match opts.rooms.as_slice() {
            [] => {
                for (id, member) in &self.of_socket {
                    if !excluded.contains(id) {
                        f(id, &member.receiver);
                    }
                }
            }
            [room] => {
                for (id, receiver) in self.members.get(room).into_iter().flatten() {
                    if excluded.is_empty() || !excluded.contains(id) {
                        f(id, receiver);
                    }
                }
            }
            rooms => {
                let mut seen = HashSet::new();
                for (id, receiver) in rooms.iter().filter_map(|r| self.members.get(r)).flatten() {
                    if !excluded.contains(id) && seen.insert(*id) {
                        f(id, receiver);
                    }
                }
            }
        }
    }
}

/// Rooms and broadcasts for one process. Broadcast packets are encoded once and the same
/// bytes are queued for every receiver. With connection state recovery on, every broadcast
/// event without an ack id and not volatile gets an offset and is kept for replay.
pub struct MemoryAdapter {
    ns: LocalNamespace,
    rooms: RwLock<Rooms>,
    /// Held from a recorded packet's offset to its hand-off to every connection, so that each
    /// connection gets recorded packets in offset order (see [`MemoryAdapter::broadcast`]).
    recording: Mutex<()>,
}

impl MemoryAdapter {
    /// The adapter of one namespace.
    pub fn new(ns: LocalNamespace) -> Self {
        MemoryAdapter {
            ns,
            rooms: RwLock::new(Rooms::default()),
            recording: Mutex::new(()),
        }
    }

    /// A factory for [`crate::Config`]-independent use: `MemoryAdapter::factory()`.
    pub fn factory() -> impl super::AdapterFactory {
        |ns: LocalNamespace| Arc::new(MemoryAdapter::new(ns)) as Arc<dyn Adapter>
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Rooms> {
        self.rooms.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Rooms> {
        self.rooms.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `f` for each local socket the options target, each at most once.
    fn for_each(&self, opts: &BroadcastOptions, mut f: impl FnMut(Socket)) {
        for id in self.sockets(opts) {
            if let Some(socket) = self.ns.socket(&id) {
                f(socket);
            }
        }
    }

    /// Sends a packet to the local sockets the options target, as it is: unlike
    /// [`Adapter::broadcast`], nothing is stored for connection state recovery. For a cluster
    /// adapter whose packets already carry an offset (or must not get one).
    pub fn deliver(&self, packet: &Packet, opts: &BroadcastOptions) {
        let encoded = crate::socket::encode(packet);
        let volatile = opts.flags.volatile;
        // Sending under the read lock is safe: a send never calls back into the application.
        self.read().targets(opts, |_, receiver| {
            if let Some(engine) = receiver {
                let _ = if volatile {
                    engine.send_all_volatile(&encoded)
                } else {
                    engine.send_all(&encoded)
                };
            }
        });
    }

    /// Appends the recovery offset, stores the packet and sends it, when it is eligible;
    /// `false` (nothing done) when it is not.
    fn record_and_deliver(&self, packet: &mut Packet, opts: &BroadcastOptions) -> bool {
        let eligible = packet.kind.is_event() && packet.id.is_none() && !opts.flags.volatile;
        if !eligible {
            return false;
        }
        let Some(store) = self.ns.recovery_store() else {
            return false;
        };
        let Some(Value::Array(items)) = packet.data.as_mut() else {
            return false;
        };
        // A client resumes from the last offset it got: had a later offset overtaken this one
        // on some connection, a reconnect from it would skip this packet.
        let _order = self.recording.lock().unwrap_or_else(|e| e.into_inner());
        store.store_packet(&mut |offset: &str| {
            items.push(Value::String(offset.to_owned()));
            StoredPacket {
                offset: offset.to_owned(),
                nsp: packet.nsp.clone(),
                data: Value::Array(items.clone()),
                attachments: packet.attachments.clone(),
                rooms: opts.rooms.clone(),
                except: opts.except.clone(),
            }
        });
        self.deliver(packet, opts);
        true
    }
}

impl Adapter for MemoryAdapter {
    fn add_all(&self, id: Sid, rooms: &[Room]) {
        // Resolved before the lock: the namespace's map has a lock of its own.
        let resolved = self.ns.socket(&id).map(|s| s.inner.client.engine.clone());
        let observer = self.ns.observer();
        let mut joined = Vec::new();
        let mut state = self.write();
        let member = state.of_socket.entry(id).or_default();
        let changed = resolved.is_some() && !same(&member.receiver, &resolved);
        if changed {
            member.receiver = resolved;
        }
        for room in rooms {
            if member.rooms.insert(room.clone()) && observer.is_some() {
                joined.push(room);
            }
        }
        let receiver = member.receiver.clone();
        // A new connection for the id (a recovered session) updates every room it is in.
        let update: Vec<Room> = if changed {
            member.rooms.iter().cloned().collect()
        } else {
            rooms.to_vec()
        };
        for room in update {
            state
                .members
                .entry(room)
                .or_default()
                .insert(id, receiver.clone());
        }
        drop(state);
        // Outside the lock: the observer broadcasts, maybe in this very namespace.
        if let Some(observer) = observer {
            for room in joined {
                observer.room_joined(self.ns.name(), room, id);
            }
        }
    }

    fn add_all_after(&self, id: Sid, rooms: &[Room], before: &mut dyn FnMut()) {
        // Recorded broadcasts hold this lock from their offset to their delivery.
        let _order = self.recording.lock().unwrap_or_else(|e| e.into_inner());
        before();
        self.add_all(id, rooms);
    }

    fn del(&self, id: Sid, room: &str) {
        let mut state = self.write();
        let mut left = false;
        if let Some(members) = state.members.get_mut(room) {
            left = members.remove(&id).is_some();
            if members.is_empty() {
                state.members.remove(room);
            }
        }
        if let Some(member) = state.of_socket.get_mut(&id) {
            member.rooms.remove(room);
        }
        drop(state);
        if let (true, Some(observer)) = (left, self.ns.observer()) {
            observer.room_left(self.ns.name(), room, id);
        }
    }

    fn del_all(&self, id: Sid) {
        let mut state = self.write();
        let Some(member) = state.of_socket.remove(&id) else {
            return;
        };
        for room in &member.rooms {
            if let Some(members) = state.members.get_mut(room) {
                members.remove(&id);
                if members.is_empty() {
                    state.members.remove(room);
                }
            }
        }
        drop(state);
        if let Some(observer) = self.ns.observer() {
            for room in &member.rooms {
                observer.room_left(self.ns.name(), room, id);
            }
        }
    }

    fn socket_rooms(&self, id: Sid) -> Vec<Room> {
        self.read()
            .of_socket
            .get(&id)
            .map(|m| m.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn rooms(&self) -> Vec<Room> {
        self.read().members.keys().cloned().collect()
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        let mut out = Vec::new();
        self.read().targets(opts, |id, _| out.push(*id));
        out
    }

    fn broadcast(&self, mut packet: Packet, opts: &BroadcastOptions) {
        if !self.record_and_deliver(&mut packet, opts) {
            self.deliver(&packet, opts);
        }
    }

    fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: &BroadcastOptions,
    ) -> BoxFuture<BroadcastAcks> {
        let timeout = opts.flags.timeout;
        let mut waits = Vec::new();
        self.for_each(opts, |socket| {
            let mut packet = packet.clone();
            if let Some(wait) = socket.send_with_ack(&mut packet, timeout) {
                waits.push(wait);
            }
        });
        Box::pin(async move {
            let results = futures_util::future::join_all(waits).await;
            let mut acks = BroadcastAcks::default();
            for result in results {
                match result {
                    Ok(args) => acks.responses.push(args),
                    Err(_) => acks.missing += 1,
                }
            }
            acks
        })
    }

    fn add_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        for id in self.sockets(opts) {
            self.add_all(id, rooms);
        }
    }

    fn del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        for id in self.sockets(opts) {
            for room in rooms {
                self.del(id, room);
            }
        }
    }

    fn disconnect_sockets(&self, opts: &BroadcastOptions, close: bool) {
        self.for_each(opts, |socket| {
            if close {
                socket.disconnect_and_close();
            } else {
                socket.disconnect();
            }
        });
    }

    fn fetch_sockets(
        &self,
        opts: &BroadcastOptions,
    ) -> BoxFuture<Result<Vec<SocketInfo>, AdapterError>> {
        let mut out = Vec::new();
        self.for_each(opts, |socket| out.push(socket.info()));
        Box::pin(std::future::ready(Ok(out)))
    }

    fn server_side_emit(&self, _args: Args) -> BoxFuture<Result<Vec<Args>, AdapterError>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    fn server_count(&self) -> BoxFuture<usize> {
        Box::pin(std::future::ready(1))
    }
}
