//! The seam for instrumentation (the admin UI): server events an observer sees, once one is
//! installed. Checked when a socket connects, leaves, changes its data or transport, joins or
//! leaves a room: never per packet. Without an observer each check is one atomic load.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::reason::DisconnectReason;
use crate::socket::Socket;
use engineio::Sid;

/// Sees what happens to sockets. Called outside the server's locks, on the path that made the
/// change: it must not block.
pub(crate) trait Observer: Send + Sync + 'static {
    /// A socket is connected (its CONNECT reply went out), before its connection handler.
    fn socket_connected(&self, socket: &Socket);
    /// A socket is leaving, still in its rooms.
    fn socket_disconnected(&self, socket: &Socket, reason: DisconnectReason);
    /// The socket's connection moved to WebSocket.
    fn socket_upgraded(&self, socket: &Socket);
    /// [`Socket::set_data`] changed the socket's data.
    fn data_changed(&self, socket: &Socket);
    /// A socket of this node joined a room it was not in.
    fn room_joined(&self, nsp: &str, room: &str, id: Sid);
    /// A socket of this node left a room.
    fn room_left(&self, nsp: &str, room: &str, id: Sid);
    /// Adds what the observer keeps about a socket to the data that `fetch_sockets` reports
    /// (`socket.data`), so that other nodes see it too.
    fn decorate_data(&self, socket: &Socket, data: &mut Value);
}

/// The server's observer, shared by its namespaces and their adapters; installed at most once.
pub(crate) type ObserverSlot = Arc<OnceLock<Arc<dyn Observer>>>;
