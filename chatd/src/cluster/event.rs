//! What nodes tell each other over Redis: JSON envelopes on one channel.

use serde::{Deserialize, Serialize};

use crate::store::{RoomKind, StoredMessage};

/// One published event with its sender.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node's id.
    pub node: String,
    /// The sending process: a node restarted under the same id has a new one.
    pub instance: String,
    /// The event.
    pub event: Event,
}

/// An event between nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Event {
    /// A node started or came back after a Redis outage: forget what it had, and resync.
    Hello,
    /// A node is alive.
    Beat,
    /// A node lost events it published: read what you missed from the store.
    Resync,
    /// A node stops: its members leave, and what it committed last is read from the store.
    Bye,
    /// Asks node `to` to publish its local presence again.
    Sync {
        /// The node asked.
        to: String,
    },
    /// Something happened in a room.
    Room {
        /// The room.
        room: String,
        /// What.
        #[serde(flatten)]
        event: RoomEvent,
    },
}

/// A room-scoped event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum RoomEvent {
    /// A message was committed.
    Message {
        /// Public room or direct conversation.
        kind: RoomKind,
        /// The stored message, with its sequence number.
        message: StoredMessage,
    },
    /// A user's presence on the sending node changed: first local connection, or gone after
    /// the grace period.
    Presence {
        /// User name.
        user: String,
        /// Present on that node.
        online: bool,
    },
    /// A (throttled) typing relay.
    Typing {
        /// User name.
        user: String,
        /// Typing or not.
        typing: bool,
    },
    /// The topic changed (committed).
    Topic {
        /// New topic.
        topic: String,
        /// Who changed it.
        by: String,
    },
    /// A member moved their read marker: their connections on every node learn it.
    Read {
        /// User name.
        user: String,
        /// The marker: the last message read.
        seq: u64,
    },
    /// A node started its actor for the room: every node running it tells who is there.
    Who,
    /// The sending node's members of the room, in full (an answer to [`RoomEvent::Who`], or
    /// the node's state again after an outage).
    Members {
        /// User names.
        users: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let events = [
            Event::Hello,
            Event::Beat,
            Event::Sync { to: "b".into() },
            Event::Room {
                room: "general".into(),
                event: RoomEvent::Message {
                    kind: RoomKind::Room,
                    message: StoredMessage {
                        room: "general".into(),
                        seq: 7,
                        id: "c1".into(),
                        user: "alice".into(),
                        text: "hi 1.0000000000000002".into(),
                        ts: 1,
                    },
                },
            },
            Event::Room {
                room: "general".into(),
                event: RoomEvent::Presence {
                    user: "Bob".into(),
                    online: true,
                },
            },
            Event::Room {
                room: "general".into(),
                event: RoomEvent::Who,
            },
        ];
        for event in events {
            let env = Envelope {
                node: "a".into(),
                instance: "x".into(),
                event,
            };
            let text = serde_json::to_string(&env).unwrap();
            assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap(), env);
        }
        assert!(serde_json::from_str::<Envelope>(
            r#"{"node":"a","instance":"x","event":{"t":"nope"}}"#
        )
        .is_err());
    }
}
