//! Delivery of room events over Socket.IO: the chat namespace, and the `lobby` bridge to the
//! demo clients on `/`.

use engineio::Sid;
use serde_json::{json, Value};
use socketio::adapter::BroadcastOptions;
use socketio::{Args, Namespace};

use crate::cluster::recovery::JOINING;
use crate::metrics::Metrics;
use crate::room::{Fanout, Group};
use crate::store::{RoomInfo, RoomKind, StoredMessage};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The room every demo client is in.
pub const LOBBY: &str = "lobby";
/// Socket.IO room of the classic demo's clients on `/`.
pub const DEMO_GROUP: &str = "demo";
/// Socket.IO room of the tutorial chat's clients on `/`.
pub const TUTORIAL_GROUP: &str = "tutorial";

/// The Socket.IO room of a chat room's members.
pub fn room_group(room: &str) -> String {
    format!("r:{room}")
}

/// The Socket.IO room of every connection of a user.
pub fn user_group(user: &str) -> String {
    format!("u:{}", user.to_lowercase())
}

/// The event a chat connection gets for a message of `room`.
fn message_event(room: &RoomInfo) -> &'static str {
    if room.kind == RoomKind::Direct {
        "dm"
    } else {
        "message"
    }
}

/// One message to one chat connection (a catch-up): until the connection goes live in the
/// room, its session data keeps the last one sent (see [`JOINING`]).
fn emit_chat_message(socket: &socketio::Socket, room: &RoomInfo, m: &StoredMessage) {
    if let Ok(payload) = serde_json::to_value(m) {
        let _ = socket.emit(message_event(room), payload);
        mark_joining(socket, &room.name, m.seq);
    }
}

/// Notes in the session data that the connection is being caught up in `room` and has got
/// its messages up to `seq`.
pub fn mark_joining(socket: &socketio::Socket, room: &str, seq: u64) {
    socket.update_data(|data| {
        if !data.is_object() {
            *data = json!({});
        }
        if let Some(d) = data.as_object_mut() {
            let joining = d.entry(JOINING).or_insert_with(|| json!({}));
            if let Some(rooms) = joining.as_object_mut() {
                rooms.insert(room.to_owned(), json!(seq));
            }
        }
    });
}

/// The connection is no longer being caught up in `room`: live there, or out of it.
pub fn not_joining(socket: &socketio::Socket, room: &str) {
    socket.update_data(|data| {
        let Some(d) = data.as_object_mut() else {
            return;
        };
        if let Some(Value::Object(rooms)) = d.get_mut(JOINING) {
            rooms.remove(room);
            if rooms.is_empty() {
                d.remove(JOINING);
            }
        }
    });
}

/// Delivers room events through the Socket.IO namespaces.
pub struct SocketFanout {
    /// The chat protocol's namespace.
    pub chat: Namespace,
    /// The demo namespace (`/`).
    pub demo: Namespace,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl SocketFanout {
    fn targets(&self, room: &RoomInfo) -> Vec<String> {
        match room.kind {
            RoomKind::Room => vec![room_group(&room.name)],
            RoomKind::Direct => room
                .name
                .trim_start_matches('@')
                .split(':')
                .map(user_group)
                .collect(),
        }
    }

    fn count(&self, ns: &Namespace, rooms: Vec<String>, except: Option<Sid>) -> usize {
        let opts = BroadcastOptions {
            rooms,
            except: except.map(|s| vec![s.to_string()]).unwrap_or_default(),
            ..Default::default()
        };
        ns.adapter().sockets(&opts).len()
    }
}

impl Fanout for SocketFanout {
    fn join_socket(&self, room: &RoomInfo, socket: Sid, group: Group) {
        match group {
            Group::Chat => {
                self.chat
                    .adapter()
                    .add_all(socket, &[room_group(&room.name)]);
                if let Some(s) = self.chat.socket(&socket) {
                    not_joining(&s, &room.name);
                }
            }
            Group::Tutorial => self
                .demo
                .adapter()
                .add_all(socket, &[TUTORIAL_GROUP.to_owned()]),
        }
    }

    fn leave_socket(&self, room: &RoomInfo, socket: Sid, group: Group) {
        match group {
            Group::Chat => {
                self.chat.adapter().del(socket, &room_group(&room.name));
                if let Some(s) = self.chat.socket(&socket) {
                    not_joining(&s, &room.name);
                }
            }
            Group::Tutorial => self.demo.adapter().del(socket, TUTORIAL_GROUP),
        }
    }

    fn catch_up(&self, room: &RoomInfo, socket: Sid, group: Group, messages: &[StoredMessage]) {
        match group {
            Group::Tutorial => {
                if let Some(s) = self.demo.socket(&socket) {
                    for m in messages {
                        let _ = s.emit("chat message", (m.text.as_str(), json!(m.seq)));
                    }
                }
            }
            Group::Chat => {
                if let Some(s) = self.chat.socket(&socket) {
                    for m in messages {
                        emit_chat_message(&s, room, m);
                    }
                }
            }
        }
    }

    fn paced_catch_up(
        &self,
        room: &RoomInfo,
        socket: Sid,
        group: Group,
        messages: Vec<StoredMessage>,
    ) -> Pin<Box<dyn Future<Output = bool> + Send>> {
        let socket = match group {
            Group::Tutorial => self.demo.socket(&socket),
            Group::Chat => self.chat.socket(&socket),
        };
        let Some(socket) = socket else {
            return Box::pin(std::future::ready(false));
        };
        let room = room.clone();
        Box::pin(async move {
            for m in messages {
                // The event's size on the wire, near enough: the text and the framing.
                if socket.writable(m.text.len() + 32).await.is_err() {
                    return false;
                }
                match group {
                    Group::Tutorial => {
                        let _ = socket.emit("chat message", (m.text.as_str(), json!(m.seq)));
                    }
                    Group::Chat => emit_chat_message(&socket, &room, &m),
                }
            }
            true
        })
    }

    fn is_connected(&self, socket: Sid, group: Group) -> bool {
        match group {
            Group::Tutorial => self.demo.socket(&socket).is_some(),
            Group::Chat => self.chat.socket(&socket).is_some(),
        }
    }

    fn message(&self, room: &RoomInfo, message: &StoredMessage, except: Option<Sid>) {
        let payload = match serde_json::to_value(message) {
            Ok(v) => v,
            Err(_) => return,
        };
        let targets = self.targets(room);
        let event = message_event(room);
        let mut op = self.chat.to(targets.clone());
        if let Some(sid) = except {
            op = op.except(sid);
        }
        let _ = op.emit(event, payload);
        let mut delivered = self.count(&self.chat, targets, except);
        if room.name == LOBBY {
            let mut op = self.demo.to(DEMO_GROUP);
            if let Some(sid) = except {
                op = op.except(sid);
            }
            let _ = op.emit(
                "new message",
                json!({"username": message.user, "message": message.text}),
            );
            let _ = self.demo.to(TUTORIAL_GROUP).emit(
                "chat message",
                Args::from((message.text.as_str(), json!(message.seq))),
            );
            delivered += self.count(&self.demo, vec![DEMO_GROUP.into()], except)
                + self.count(&self.demo, vec![TUTORIAL_GROUP.into()], None);
        }
        self.metrics.messages_out(delivered);
    }

    fn presence(&self, room: &RoomInfo, user: &str, online: bool) {
        let _ = self.chat.to(self.targets(room)).emit(
            "presence",
            json!({"room": room.name, "user": user, "online": online}),
        );
    }

    fn typing(&self, room: &RoomInfo, user: &str, typing: bool, except: Option<Sid>) {
        let mut op = self.chat.to(self.targets(room)).volatile();
        if let Some(sid) = except {
            op = op.except(sid);
        }
        let _ = op.emit(
            "typing",
            json!({"room": room.name, "user": user, "typing": typing}),
        );
    }

    fn has_recipients(&self, room: &RoomInfo) -> bool {
        self.count(&self.chat, self.targets(room), None) > 0
    }

    fn read(&self, room: &RoomInfo, user: &str, seq: u64) {
        let _ = self
            .chat
            .to(user_group(user))
            .emit("read", json!({"room": room.name, "seq": seq}));
    }

    fn topic(&self, room: &RoomInfo, by: &str) {
        let _ = self.chat.to(self.targets(room)).emit(
            "topic",
            json!({"room": room.name, "topic": room.topic, "by": by}),
        );
    }
}
