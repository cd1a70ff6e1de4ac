//! Engine.IO v4 packets: the application-facing [`Message`] and the wire codec for single packets.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A text message, stored already encoded as the Engine.IO packet `4<text>`.
///
/// Cloning is a reference-count increment, so one `Text` can be sent to many connections
/// without copying: build it once for a broadcast and clone it for every receiver.
///
/// ```
/// use engineio::Text;
/// let text = Text::from("hello");
/// assert_eq!(text.as_str(), "hello");
/// assert_eq!(text.encoded(), "4hello");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Text(Utf8Bytes);

impl Text {
    /// Wraps an already encoded message packet; `None` unless it starts with the type digit `4`.
    ///
    /// Encoders that write `4` followed by their payload straight into one buffer use this to
    /// avoid a second copy.
    ///
    /// ```
    /// let text = engineio::Text::from_encoded(String::from("42[\"chat\"]")).unwrap();
    /// assert_eq!(text.as_str(), "2[\"chat\"]");
    /// ```
    pub fn from_encoded(packet: String) -> Option<Self> {
        packet
            .starts_with('4')
            .then(|| Text(Utf8Bytes::from(packet)))
    }

    /// Like [`Text::from_encoded`], for bytes that still have to be checked for UTF-8.
    pub fn from_encoded_bytes(packet: Bytes) -> Option<Self> {
        if packet.first() != Some(&b'4') {
            return None;
        }
        Utf8Bytes::try_from(packet).ok().map(Text)
    }

    pub(crate) fn from_wire(packet: Utf8Bytes) -> Self {
        debug_assert!(packet.starts_with('4'));
        Text(packet)
    }

    /// The message text, without the packet type.
    pub fn as_str(&self) -> &str {
        self.0.get(1..).unwrap_or_default()
    }

    /// The whole packet as it travels: `4` followed by the text.
    pub fn encoded(&self) -> &str {
        &self.0
    }

    #[cfg(test)]
    fn wire(&self) -> &Utf8Bytes {
        &self.0
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        let mut packet = String::with_capacity(s.len() + 1);
        packet.push('4');
        packet.push_str(s);
        Text(Utf8Bytes::from(packet))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text::from(s.as_str())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message exchanged with a client: text or binary.
///
/// Cloning never copies the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(Text),
    /// A binary message: a raw WebSocket binary frame, or `b`+base64 on polling.
    Binary(Bytes),
}

impl Message {
    /// A text message.
    pub fn text(s: impl Into<Text>) -> Self {
        Message::Text(s.into())
    }

    /// A binary message.
    pub fn binary(b: impl Into<Bytes>) -> Self {
        Message::Binary(b.into())
    }

    /// Payload size in bytes, as counted against queue limits.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(t) => t.0.len(),
            Message::Binary(b) => b.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        match self {
            Message::Text(t) => t.as_str().is_empty(),
            Message::Binary(b) => b.is_empty(),
        }
    }
}

/// A packet as it is queued for a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Any text packet, type digit included (`2`, `6`, `3probe`, `4hello`).
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Frame {
    pub(crate) const PING: Frame = Frame::Text(Utf8Bytes::from_static("2"));
    pub(crate) const CLOSE: Frame = Frame::Text(Utf8Bytes::from_static("1"));
    pub(crate) const NOOP: Frame = Frame::Text(Utf8Bytes::from_static("6"));
    /// The answer to an Engine.IO v3 client ping.
    pub(crate) const PONG: Frame = Frame::Text(Utf8Bytes::from_static("3"));
    pub(crate) const PONG_PROBE: Frame = Frame::Text(Utf8Bytes::from_static("3probe"));

    pub(crate) fn len(&self) -> usize {
        match self {
            Frame::Text(t) => t.len(),
            Frame::Binary(b) => b.len(),
        }
    }
}

impl From<Message> for Frame {
    fn from(m: Message) -> Self {
        match m {
            Message::Text(t) => Frame::Text(t.0),
            Message::Binary(b) => Frame::Binary(b),
        }
    }
}

/// A packet received from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// `0`: only the server sends it; ignored when received.
    Open,
    /// `1`: the client closes the session.
    Close,
    /// `2` (`2probe` when `probe`): a client ping, only legal as the upgrade probe in v4.
    Ping {
        /// Whether the payload was `probe`.
        probe: bool,
    },
    /// `3`: the answer to a server ping.
    Pong,
    /// `4…`, or a binary message.
    Message(Message),
    /// `5`: completes a WebSocket upgrade.
    Upgrade,
    /// `6`: does nothing.
    Noop,
}

/// Why a packet could not be decoded. Every such error closes the session (`parse error`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// An empty packet.
    #[error("empty packet")]
    Empty,
    /// The first character is not a packet type.
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// A `b` record whose base64 does not decode.
    #[error("invalid base64 in binary packet")]
    Base64,
    /// A polling payload that is not UTF-8.
    #[error("payload is not valid UTF-8")]
    Utf8,
    /// An Engine.IO v3 polling payload whose length prefixes do not match its packets.
    #[error("invalid payload framing")]
    Framing,
}

impl Packet {
    /// Decodes one text packet (`4hello`, `2probe`, `3`, …).
    ///
    /// ```
    /// use engineio::{Message, Packet, Text};
    /// assert_eq!(Packet::decode_text("4hi"), Ok(Packet::Message(Message::Text(Text::from("hi")))));
    /// assert_eq!(Packet::decode_text("3"), Ok(Packet::Pong));
    /// assert!(Packet::decode_text("").is_err());
    /// assert!(Packet::decode_text("abc").is_err());
    /// ```
    pub fn decode_text(data: &str) -> Result<Packet, DecodeError> {
        Packet::decode_wire(Utf8Bytes::from(data))
    }

    /// Decodes a text packet without copying its payload.
    pub(crate) fn decode_wire(data: Utf8Bytes) -> Result<Packet, DecodeError> {
        let first = *data.as_bytes().first().ok_or(DecodeError::Empty)?;
        let rest = data.get(1..).unwrap_or_default();
        Ok(match first {
            b'0' => Packet::Open,
            b'1' => Packet::Close,
            b'2' => Packet::Ping {
                probe: rest == "probe",
            },
            b'3' => Packet::Pong,
            b'4' => Packet::Message(Message::Text(Text::from_wire(data))),
            b'5' => Packet::Upgrade,
            b'6' => Packet::Noop,
            _ => {
                let c = data.chars().next().unwrap_or('\u{fffd}');
                return Err(DecodeError::UnknownType(c));
            }
        })
    }
}

/// The open packet's JSON: exactly the five keys clients expect.
pub(crate) fn open_packet(
    sid: &str,
    upgrades: bool,
    ping_interval_ms: u64,
    ping_timeout_ms: u64,
    max_payload: u64,
) -> Utf8Bytes {
    let upgrades = if upgrades { r#"["websocket"]"# } else { "[]" };
    Utf8Bytes::from(format!(
        r#"0{{"sid":"{sid}","upgrades":{upgrades},"pingInterval":{ping_interval_ms},"pingTimeout":{ping_timeout_ms},"maxPayload":{max_payload}}}"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_packet_type() {
        let cases: [(&str, Packet); 9] = [
            ("0", Packet::Open),
            ("1", Packet::Close),
            ("2", Packet::Ping { probe: false }),
            ("2probe", Packet::Ping { probe: true }),
            ("3", Packet::Pong),
            ("3probe", Packet::Pong),
            ("4", Packet::Message(Message::text(""))),
            ("5", Packet::Upgrade),
            ("6", Packet::Noop),
        ];
        for (wire, expected) in cases {
            assert_eq!(Packet::decode_text(wire), Ok(expected), "{wire}");
        }
    }

    #[test]
    fn rejects_empty_and_unknown() {
        assert_eq!(Packet::decode_text(""), Err(DecodeError::Empty));
        assert_eq!(
            Packet::decode_text("abc"),
            Err(DecodeError::UnknownType('a'))
        );
        assert_eq!(Packet::decode_text("7"), Err(DecodeError::UnknownType('7')));
        assert_eq!(Packet::decode_text("é"), Err(DecodeError::UnknownType('é')));
    }

    #[test]
    fn text_keeps_unicode_and_shares_bytes() {
        let t = Text::from("héllo 🎉");
        assert_eq!(t.as_str(), "héllo 🎉");
        assert_eq!(t.encoded(), "4héllo 🎉");
        let c = t.clone();
        assert_eq!(c.wire().as_ptr(), t.wire().as_ptr());
        assert!(Text::from_encoded("2x".into()).is_none());
        assert!(Text::from_encoded_bytes(Bytes::from_static(b"4\xff")).is_none());
    }

    #[test]
    fn open_packet_has_exactly_five_keys() {
        let p = open_packet("lv_VI97HAXpY6yYWAAAC", true, 25000, 20000, 1_000_000);
        assert_eq!(
            p.as_str(),
            r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
        let p = open_packet("lv_VI97HAXpY6yYWAAAC", false, 1, 2, 3);
        let v: serde_json::Value = serde_json::from_str(&p[1..]).unwrap();
        assert_eq!(v.as_object().map(|o| o.len()), Some(5));
        assert_eq!(v["upgrades"], serde_json::json!([]));
    }
}
