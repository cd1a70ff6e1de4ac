//! The chat protocol's payload rules, error codes and ack shapes (see `docs/protocol.md`).

use serde::Serialize;
use serde_json::{json, Map, Value};
use unicode_normalization::UnicodeNormalization;

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
    /// The text is empty, or only invisible characters.
    EmptyMessage,
    /// The text or topic holds a control or bidirectional-override character.
    InvalidText,
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
    /// An account session is needed (no guests here, or an account-only request).
    AuthRequired,
    /// The session token is unknown, expired or revoked.
    InvalidSession,
    /// Wrong name or password.
    InvalidCredentials,
    /// The password breaks the password rules.
    InvalidPassword,
    /// Registration is closed, or needs an invite.
    RegistrationClosed,
    /// The invite code is unknown, used or expired.
    InvalidInvite,
    /// Not allowed (an administrator's request, or a request from another origin).
    Forbidden,
    /// No such thing (an API path, a session id).
    NotFound,
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

/// Whether `c` is refused in text: a C0 or C1 control character (except newline and tab where
/// `lines` allows them), a line or paragraph separator, or a bidirectional embedding, override
/// or isolate (U+202A–U+202E, U+2066–U+2069), which can reorder what others see.
fn forbidden(c: char, lines: bool) -> bool {
    match c {
        '\n' | '\t' => !lines,
        '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => true,
        c => c.is_control(),
    }
}

/// Unicode's Default_Ignorable_Code_Point: characters shown as nothing (zero-width spaces and
/// joiners, bidi marks, word joiner, BOM, variation selectors, fillers, tags).
fn default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Whether `c` shows nothing: white space, a default-ignorable character, or the blank
/// braille pattern.
fn invisible(c: char) -> bool {
    c.is_whitespace() || default_ignorable(c) || c == '\u{2800}'
}

fn invalid_text(what: &str) -> ChatError {
    ChatError::new(
        Code::InvalidText,
        format!("{what} must not contain control or bidirectional-override characters"),
    )
}

/// Checks a user name, NFC-normalised and trimmed: 2 to 32 letters, digits, `_`, `-` or `.`,
/// none of them invisible (a Hangul filler is a letter); returns the normalised name.
pub fn user_name(raw: &str) -> Result<String, ChatError> {
    let name: String = raw.trim().nfc().collect();
    let len = name.chars().count();
    let valid = (2..=32).contains(&len)
        && name.chars().all(|c| {
            (c.is_alphanumeric() || matches!(c, '_' | '-' | '.')) && !default_ignorable(c)
        });
    if valid {
        Ok(name)
    } else {
        Err(ChatError::new(
            Code::InvalidName,
            "names are 2 to 32 letters, digits, '_', '-' or '.'",
        ))
    }
}

/// Checks a name of the classic demo on `/` (free text, HTML-escaped by the demo): at most
/// `max_bytes`, NFC-normalised, no control or bidi-override character, something visible.
pub fn demo_name(raw: &str, max_bytes: usize) -> Option<String> {
    let name: String = raw.nfc().collect();
    let valid = name.len() <= max_bytes
        && !name.chars().any(|c| forbidden(c, false))
        && !name.chars().all(invisible);
    valid.then_some(name)
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

/// Checks message text, kept as sent: no control characters but newline and tab, no bidi
/// override (`invalid_text`); something visible (`empty_message`); at most `max_bytes` bytes
/// of UTF-8 (`too_long`).
pub fn text(raw: &str, max_bytes: usize) -> Result<String, ChatError> {
    if raw.chars().any(|c| forbidden(c, true)) {
        return Err(invalid_text("messages"));
    }
    if raw.chars().all(invisible) {
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

/// Checks a topic: at most 200 characters, one line without control or bidi-override
/// characters, empty or with something visible; returns it trimmed.
pub fn topic(raw: &str) -> Result<String, ChatError> {
    if raw.chars().count() > 200 {
        return Err(ChatError::new(
            Code::TooLong,
            "topics are at most 200 characters",
        ));
    }
    let topic = raw.trim();
    if topic.chars().any(|c| forbidden(c, false))
        || (!topic.is_empty() && topic.chars().all(invisible))
    {
        return Err(invalid_text("topics"));
    }
    Ok(topic.to_owned())
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

    fn code(r: Result<String, ChatError>) -> Option<Code> {
        r.err().map(|e| e.code)
    }

    #[test]
    fn text_refuses_controls_and_bidi_overrides() {
        assert_eq!(
            text("two\nlines\tand a tab", 100).unwrap(),
            "two\nlines\tand a tab"
        );
        for bad in [
            "nul\0",
            "esc\u{1b}[31m",
            "cr\r",
            "del\u{7f}",
            "c1\u{85}",
            "c1\u{9b}",
            "ls\u{2028}",
            "ps\u{2029}",
            "abc\u{202E}cba",
            "\u{202A}",
            "\u{202B}",
            "\u{202C}",
            "\u{202D}",
            "\u{2066}",
            "\u{2067}",
            "\u{2068}",
            "\u{2069}",
        ] {
            assert_eq!(code(text(bad, 100)), Some(Code::InvalidText), "{bad:?}");
        }
        // Marks that RTL text needs stay, as do emoji with joiners and variation selectors.
        assert!(text("\u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{200F} hi", 100).is_ok());
        assert!(text(
            "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467} \u{2764}\u{FE0F}",
            100
        )
        .is_ok());
    }

    #[test]
    fn invisible_only_messages_are_empty() {
        for blank in [
            "\u{200B}\u{200B}\u{200B}",
            "\u{200C}\u{200D}",
            "\u{2060}",
            "\u{FEFF}",
            "\u{FE0F}",
            "\u{E0100}",
            "\u{3164}\u{3164}",
            "\u{00AD}",
            "\u{2800}",
            " \u{00A0}\u{3000}\n\t",
            "\u{180E}",
            "\u{E0041}",
        ] {
            assert_eq!(
                code(text(blank, 100)),
                Some(Code::EmptyMessage),
                "{blank:?}"
            );
        }
        assert!(text("\u{200B}x\u{200B}", 100).is_ok());
    }

    #[test]
    fn topics_are_one_visible_line() {
        assert_eq!(topic("  Crabs ").unwrap(), "Crabs");
        assert_eq!(topic("").unwrap(), "");
        for bad in ["a\nb", "a\tb", "\u{202E}evil", "\0", "\u{200B}\u{200B}"] {
            assert_eq!(code(topic(bad)), Some(Code::InvalidText), "{bad:?}");
        }
    }

    #[test]
    fn names_are_nfc_and_visible() {
        // "é" as e + combining acute is normalised to the one code point.
        assert_eq!(user_name("Jose\u{301}").unwrap(), "Jos\u{e9}");
        for bad in [
            "al\u{202E}ice",
            "al\u{200B}ice",
            "bob\u{0}",
            "\u{3164}\u{3164}",
            "a\u{115F}b",
            "a\u{FE0F}b",
            "ali\u{2066}ce",
        ] {
            assert_eq!(code(user_name(bad)), Some(Code::InvalidName), "{bad:?}");
        }
        assert_eq!(
            demo_name("&lt;b&gt; bob", 200).as_deref(),
            Some("&lt;b&gt; bob")
        );
        assert_eq!(demo_name("Jose\u{301}", 200).as_deref(), Some("Jos\u{e9}"));
        for bad in ["al\u{202E}ice", "a\nb", "\u{1b}[2J", "\u{200B}", " ", ""] {
            assert_eq!(demo_name(bad, 200), None, "{bad:?}");
        }
        assert_eq!(demo_name(&"x".repeat(201), 200), None);
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
