//! The chat protocol's payload rules, error codes and ack shapes (see `docs/protocol.md`).

use serde::Serialize;
use serde_json::{json, Map, Value};

/// A machine-readable error code, sent as `error.code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The payload does not have the documented shape.
    BadRequest,
    /// The user name breaks the name rules.
    InvalidName,
    /// Another online user has this name.
    NameTaken,
    /// The room name breaks the room-name rules.
    InvalidRoomName,
    /// No such room.
    NoSuchRoom,
    /// A room with this name exists.
    RoomExists,
    /// The socket has not joined this room.
    NotMember,
    /// The text is empty.
    EmptyMessage,
    /// The text or topic is over the size limit.
    TooLong,
    /// Too many commands per second.
    RateLimited,
    /// Too many rooms joined.
    TooManyRooms,
    /// The recipient of a direct message is unknown.
    UnknownUser,
    /// Too many connections from one address.
    TooManyConnections,
    /// Storage failed; retry later.
    Unavailable,
    /// A queue of the server is full; retry later.
    Overloaded,
    /// Too many refused commands: the connection is closed.
    TooManyViolations,
}

/// A command's failure: `{"ok":false,"error":{"code":…,"message":…}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatError {
    /// The code.
    pub code: Code,
    /// A human-readable message.
    pub message: String,
}

impl ChatError {
    /// An error with a code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ChatError {
            code,
            message: message.into(),
        }
    }

    /// The ack payload.
    pub fn to_ack(&self) -> Value {
        json!({"ok": false, "error": {"code": self.code, "message": self.message}})
    }
}

impl std::fmt::Display for ChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}

/// A successful ack: `{"ok":true, …fields}`.
pub fn ok(fields: Value) -> Value {
    let mut out = Map::new();
    out.insert("ok".into(), Value::Bool(true));
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    Value::Object(out)
}

/// Checks a user name: 2 to 32 letters, digits, `_`, `-` or `.`; returns it trimmed.
pub fn user_name(raw: &str) -> Result<String, ChatError> {
    let name = raw.trim();
    let len = name.chars().count();
    let valid = (2..=32).contains(&len)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(ChatError::new(
            Code::InvalidName,
            "names are 2 to 32 letters, digits, '_', '-' or '.'",
        ))
    }
}

/// Checks a room name: 1 to 32 ASCII letters, digits, `_` or `-`; returns it lowercased.
pub fn room_name(raw: &str) -> Result<String, ChatError> {
    let name = raw.trim().to_ascii_lowercase();
    let valid = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(name)
    } else {
        Err(ChatError::new(
            Code::InvalidRoomName,
            "room names are 1 to 32 letters, digits, '_' or '-'",
        ))
    }
}

/// Checks message text: not blank, at most `max_bytes` bytes of UTF-8.
pub fn text(raw: &str, max_bytes: usize) -> Result<String, ChatError> {
    if raw.trim().is_empty() {
        return Err(ChatError::new(Code::EmptyMessage, "the message is empty"));
    }
    if raw.len() > max_bytes {
        return Err(ChatError::new(
            Code::TooLong,
            format!("messages are at most {max_bytes} bytes"),
        ));
    }
    Ok(raw.to_owned())
}

/// Checks a topic: at most 200 characters.
pub fn topic(raw: &str) -> Result<String, ChatError> {
    if raw.chars().count() > 200 {
        return Err(ChatError::new(
            Code::TooLong,
            "topics are at most 200 characters",
        ));
    }
    Ok(raw.trim().to_owned())
}

/// Checks a client message id: 1 to 64 characters.
pub fn client_id(raw: &str) -> Result<String, ChatError> {
    if raw.is_empty() || raw.chars().count() > 64 {
        return Err(ChatError::new(
            Code::BadRequest,
            "id must be 1 to 64 characters",
        ));
    }
    Ok(raw.to_owned())
}

/// The room holding the direct conversation of two users: `@a:b`, names lowercased and sorted.
pub fn direct_room(a: &str, b: &str) -> String {
    let (a, b) = (a.to_lowercase(), b.to_lowercase());
    if a <= b {
        format!("@{a}:{b}")
    } else {
        format!("@{b}:{a}")
    }
}

/// A bad payload error.
pub fn bad_request(message: impl Into<String>) -> ChatError {
    ChatError::new(Code::BadRequest, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(user_name("  alice ").unwrap(), "alice");
        assert!(user_name("Ünïcødé_9").is_ok());
        assert!(user_name("a").is_err());
        assert!(user_name("has space").is_err());
        assert!(user_name("<script>").is_err());
        assert!(user_name(&"x".repeat(33)).is_err());
        assert_eq!(room_name("Lobby").unwrap(), "lobby");
        assert!(room_name("@dm").is_err());
        assert!(room_name("").is_err());
    }

    #[test]
    fn texts() {
        assert!(text("  ", 10).is_err());
        assert_eq!(text("hi", 10).unwrap(), "hi");
        assert_eq!(text(&"é".repeat(6), 10).unwrap_err().code, Code::TooLong);
    }

    #[test]
    fn acks() {
        assert_eq!(ok(json!({"a": 1})), json!({"ok": true, "a": 1}));
        assert_eq!(
            ChatError::new(Code::RateLimited, "slow down").to_ack(),
            json!({"ok": false, "error": {"code": "rate_limited", "message": "slow down"}})
        );
        assert_eq!(direct_room("Bob", "alice"), "@alice:bob");
    }
}
