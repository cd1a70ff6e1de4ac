//! Development mode: what happens to every socket, told to the admin namespace as Node's
//! `registerVerboseListeners` tells it (`socket_connected`, `socket_updated`,
//! `socket_disconnected`, `room_joined`, `room_left`, `event_received`, `event_sent`), each
//! with the date as its last argument. Sent through the admin namespace's adapter, so a UI
//! hears about the sockets of every node.

use std::sync::{Arc, Weak};
use std::time::SystemTime;

use serde_json::{json, Value};

use super::serialize::{client_id, decorate, serialize, visible_data};
use crate::args::Args;
use crate::namespace::NsInner;
use crate::observer::Observer;
use crate::packet::Data;
use crate::reason::DisconnectReason;
use crate::socket::Socket;
use crate::Namespace;
use engineio::Sid;

/// Emits to the admin namespace while it exists.
#[derive(Clone)]
struct Admin(Weak<NsInner>);

impl Admin {
    /// Emits with the date as the last argument.
    fn emit(&self, event: &str, mut args: Vec<Data>) {
        args.push(Data::Json(Value::String(now())));
        self.emit_undated(event, args);
    }

    fn emit_undated(&self, event: &str, args: Vec<Data>) {
        if let Some(ns) = self.0.upgrade() {
            let _ = Namespace(ns).emit(event, Args(args));
        }
    }

    fn is(&self, ns: &Arc<NsInner>) -> bool {
        std::ptr::eq(self.0.as_ptr(), Arc::as_ptr(ns))
    }
}

fn now() -> String {
    crate::time::iso_string(SystemTime::now())
}

fn text(s: &str) -> Data {
    Data::Json(Value::String(s.to_owned()))
}

/// The observer of a server instrumented in development mode.
pub(crate) struct DevEvents {
    admin: Admin,
}

impl DevEvents {
    pub(crate) fn new(admin: &Namespace) -> Self {
        DevEvents {
            admin: Admin(Arc::downgrade(&admin.0)),
        }
    }

    /// `[nsp, id, [event, args…]]` of `event_received` and `event_sent`.
    fn event_args(socket: &Socket, event: &str, args: &Args) -> Vec<Data> {
        vec![
            text(socket.ns().name()),
            text(socket.id().as_str()),
            args.clone()
                .into_array(Some(Value::String(event.to_owned()))),
        ]
    }
}

impl Observer for DevEvents {
    fn socket_connected(&self, socket: &Socket) {
        let nsp = socket.ns().name().to_owned();
        let info = serialize(&socket.info(), &nsp);
        self.admin.emit("socket_connected", vec![Data::Json(info)]);
        if self.admin.is(&socket.inner.ns) {
            return;
        }
        let admin = self.admin.clone();
        socket.on_any(move |socket, event, args| {
            admin.emit("event_received", DevEvents::event_args(socket, event, args));
        });
        let admin = self.admin.clone();
        socket.on_any_outgoing(move |socket, event, args| {
            admin.emit("event_sent", DevEvents::event_args(socket, event, args));
        });
    }

    fn socket_disconnected(&self, socket: &Socket, reason: DisconnectReason) {
        self.admin.emit(
            "socket_disconnected",
            vec![
                text(socket.ns().name()),
                text(socket.id().as_str()),
                text(reason.as_str()),
            ],
        );
    }

    fn socket_upgraded(&self, socket: &Socket) {
        let update = json!({
            "id": socket.id().as_str(),
            "nsp": socket.ns().name(),
            "transport": socket.transport().as_str(),
        });
        self.admin
            .emit_undated("socket_updated", vec![Data::Json(update)]);
    }

    fn data_changed(&self, socket: &Socket) {
        let update = json!({
            "id": socket.id().as_str(),
            "nsp": socket.ns().name(),
            "data": visible_data(&socket.data()),
        });
        self.admin
            .emit_undated("socket_updated", vec![Data::Json(update)]);
    }

    fn room_joined(&self, nsp: &str, room: &str, id: Sid) {
        self.admin.emit(
            "room_joined",
            vec![text(nsp), text(room), text(id.as_str())],
        );
    }

    fn room_left(&self, nsp: &str, room: &str, id: Sid) {
        self.admin
            .emit("room_left", vec![text(nsp), text(room), text(id.as_str())]);
    }

    fn decorate_data(&self, socket: &Socket, data: &mut Value) {
        decorate(data, client_id(socket), socket.transport().as_str());
    }
}
