//! Broadcasts and bulk operations on a selection of sockets.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::adapter::{AdapterError, BroadcastAcks, BroadcastOptions, SocketInfo};
use crate::args::Args;
use crate::namespace::NsInner;
use crate::packet::{is_reserved_event, Packet};
use crate::socket::EmitError;
use crate::IntoRooms;

/// Selects sockets by rooms and flags, then emits to them or acts on them.
///
/// ```no_run
/// # fn run(io: socketio::SocketIo) {
/// // Every socket in "a" or "b" (each once), except those in "muted".
/// let _ = io.to(["a", "b"]).except("muted").emit("news", "hello");
/// # }
/// ```
#[derive(Clone)]
pub struct BroadcastOperator {
    ns: Arc<NsInner>,
    opts: BroadcastOptions,
}

impl std::fmt::Debug for BroadcastOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastOperator")
            .field("nsp", &self.ns.name)
            .field("opts", &self.opts)
            .finish()
    }
}

impl BroadcastOperator {
    pub(crate) fn new(ns: Arc<NsInner>, opts: BroadcastOptions) -> Self {
        BroadcastOperator { ns, opts }
    }

    /// Adds target rooms: sockets in any of them are reached once.
    pub fn to(mut self, rooms: impl IntoRooms) -> Self {
        for room in rooms.into_rooms() {
            if !self.opts.rooms.contains(&room) {
                self.opts.rooms.push(room);
            }
        }
        self
    }

    /// Same as [`BroadcastOperator::to`].
    pub fn within(self, rooms: impl IntoRooms) -> Self {
        self.to(rooms)
    }

    /// Excludes sockets in these rooms.
    pub fn except(mut self, rooms: impl IntoRooms) -> Self {
        for room in rooms.into_rooms() {
            if !self.opts.except.contains(&room) {
                self.opts.except.push(room);
            }
        }
        self
    }

    /// Drops the packet for clients that cannot take it at once.
    pub fn volatile(mut self) -> Self {
        self.opts.flags.volatile = true;
        self
    }

    /// Only this node's sockets.
    pub fn local(mut self) -> Self {
        self.opts.flags.local = true;
        self
    }

    /// How long [`BroadcastOperator::emit_with_ack`] waits.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.opts.flags.timeout = Some(d);
        self
    }

    /// The selection.
    pub fn options(&self) -> &BroadcastOptions {
        &self.opts
    }

    fn packet(&self, event: &str, args: Args) -> Result<Packet, EmitError> {
        if is_reserved_event(event) {
            return Err(EmitError::ReservedEvent(event.to_owned()));
        }
        Ok(Packet::event(
            self.ns.name.as_str(),
            args.into_array(Some(Value::String(event.to_owned()))),
            None,
        ))
    }

    /// Emits an event to every selected socket; the packet is encoded once for all of them.
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> Result<(), EmitError> {
        let packet = self.packet(event, args.into())?;
        self.ns.adapter().broadcast(packet, &self.opts);
        Ok(())
    }

    /// Emits an event to every selected socket and collects their acknowledgements until the
    /// timeout (the configured `ack_timeout` unless [`BroadcastOperator::timeout`] was set).
    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: impl Into<Args>,
    ) -> Result<BroadcastAcks, EmitError> {
        let packet = self.packet(event, args.into())?;
        let mut opts = self.opts.clone();
        if opts.flags.timeout.is_none() {
            opts.flags.timeout = self.ns.server.upgrade().map(|s| s.config.ack_timeout);
        }
        Ok(self.ns.adapter().broadcast_with_ack(packet, &opts).await)
    }

    /// Makes the selected sockets join rooms.
    pub fn sockets_join(&self, rooms: impl IntoRooms) {
        self.ns
            .adapter()
            .add_sockets(&self.opts, &rooms.into_rooms());
    }

    /// Makes the selected sockets leave rooms.
    pub fn sockets_leave(&self, rooms: impl IntoRooms) {
        self.ns
            .adapter()
            .del_sockets(&self.opts, &rooms.into_rooms());
    }

    /// Disconnects the selected sockets; `close` also closes their connections.
    pub fn disconnect_sockets(&self, close: bool) {
        self.ns.adapter().disconnect_sockets(&self.opts, close);
    }

    /// Describes the selected sockets.
    pub async fn fetch_sockets(&self) -> Result<Vec<SocketInfo>, AdapterError> {
        self.ns.adapter().fetch_sockets(&self.opts).await
    }
}
