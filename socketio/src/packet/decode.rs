//! Decoding: wire text (+ attachments) → [`Packet`], with the reference parser's validation.

use bytes::Bytes;
use serde_json::Value;

use super::binary::validate_placeholders;
use super::{is_reserved_event, Packet, PacketType};

/// The default cap on the attachment count of one binary packet (the reference's
/// `maxAttachments`).
pub const DEFAULT_MAX_ATTACHMENTS: usize = 10;

/// Why a Socket.IO packet could not be decoded. Any of these closes the whole Engine.IO connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The Engine.IO message carried no Socket.IO packet at all (`4`).
    #[error("empty packet")]
    Empty,
    /// The first character is not a packet type digit `0`–`6`.
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// A binary packet's header lacks the attachment count digits or the `-` after them.
    #[error("illegal attachments")]
    InvalidAttachmentCount,
    /// A binary packet announces more attachments than allowed.
    #[error("too many attachments (max {max})")]
    TooManyAttachments {
        /// The configured maximum.
        max: usize,
    },
    /// The ack id does not fit in a `u64`.
    #[error("invalid ack id")]
    InvalidAckId,
    /// The payload is not valid JSON (or has trailing garbage, or nests 128 or more containers deep).
    #[error("invalid JSON payload: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The payload is valid JSON but not what the packet type requires.
    #[error("invalid payload for a {0:?} packet")]
    InvalidPayload(PacketType),
    /// An EVENT whose name is one of the [`RESERVED_EVENTS`](super::RESERVED_EVENTS).
    #[error("reserved event name {0:?}")]
    ReservedEvent(String),
    /// An object with `"_placeholder": true` whose `num` is missing or not a non-negative integer.
    #[error("malformed placeholder")]
    InvalidPlaceholder,
    /// A placeholder whose `num` is not below the attachment count.
    #[error("placeholder num {num} out of range ({count} attachments)")]
    PlaceholderOutOfRange {
        /// The placeholder's `num`.
        num: u64,
        /// The number of attachments of the packet.
        count: usize,
    },
    /// A text message arrived while the attachments of a binary packet were awaited.
    #[error("text packet received while reconstructing a binary packet")]
    UnexpectedText,
    /// A binary message arrived with no binary packet awaiting attachments.
    #[error("binary message received with no binary packet pending")]
    UnexpectedBinary,
}

/// Parses one text packet. Returns the packet (attachments still empty) and the number of
/// attachments announced by its header (0 for the non-binary types).
fn parse(input: &str, max_attachments: usize) -> Result<(Packet, usize), DecodeError> {
    let b = input.as_bytes();
    let Some(&first) = b.first() else {
        return Err(DecodeError::Empty);
    };
    let kind = PacketType::from_ascii_digit(first).ok_or_else(|| {
        DecodeError::UnknownType(input.chars().next().unwrap_or(char::REPLACEMENT_CHARACTER))
    })?;
    let mut pos = 1;

    // Attachment count, then a mandatory `-`.
    let mut count = 0usize;
    if kind.is_binary() {
        let start = pos;
        while let Some(&c) = b.get(pos).filter(|c| c.is_ascii_digit()) {
            count = count
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(c - b'0')))
                .ok_or(DecodeError::TooManyAttachments {
                    max: max_attachments,
                })?;
            pos += 1;
        }
        if pos == start || b.get(pos) != Some(&b'-') {
            return Err(DecodeError::InvalidAttachmentCount);
        }
        if count > max_attachments {
            return Err(DecodeError::TooManyAttachments {
                max: max_attachments,
            });
        }
        pos += 1;
    }

    // Namespace: from `/` to the first `,` or the end of the input.
    let nsp = if b.get(pos) == Some(&b'/') {
        let rest = &input[pos..];
        match rest.find(',') {
            Some(comma) => {
                pos += comma + 1;
                &rest[..comma]
            }
            None => {
                pos = b.len();
                rest
            }
        }
    } else {
        "/"
    };

    // Ack id: a run of digits.
    let mut id = None;
    if b.get(pos).is_some_and(u8::is_ascii_digit) {
        let mut n = 0u64;
        while let Some(&c) = b.get(pos).filter(|c| c.is_ascii_digit()) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(c - b'0')))
                .ok_or(DecodeError::InvalidAckId)?;
            pos += 1;
        }
        id = Some(n);
    }

    // JSON payload: everything left. `pos` is always on a char boundary (after ASCII bytes).
    let rest = &input[pos..];
    let data = if rest.is_empty() {
        None
    } else {
        Some(parse_json(rest)?)
    };
    check_payload(kind, data.as_ref())?;
    if kind.is_binary() {
        if let Some(data) = &data {
            validate_placeholders(data, count)?;
        }
    }

    let packet = Packet {
        kind,
        nsp: nsp.to_owned(),
        id,
        data,
        attachments: Vec::new(),
    };
    Ok((packet, count))
}

/// Parses a JSON payload. JSON allows escaped lone surrogates (`"\ud83d"`, which
/// `JSON.stringify` writes for a string cut inside an emoji) but a Rust string cannot hold them:
/// on failure, they are replaced by U+FFFD and the text parsed again, as the reference parser
/// would have accepted it.
fn parse_json(text: &str) -> Result<Value, DecodeError> {
    serde_json::from_str::<Value>(text).or_else(|err| {
        match replace_lone_surrogates(text) {
            Some(fixed) => serde_json::from_str::<Value>(&fixed),
            None => Err(err),
        }
        .map_err(DecodeError::InvalidJson)
    })
}

/// `text` with every `\uXXXX` escape of an unpaired surrogate replaced by `\ufffd`; `None`
/// when there is none. Every `\` of valid JSON starts an escape inside a string, so a scan of
/// the escapes is enough.
fn replace_lone_surrogates(text: &str) -> Option<String> {
    fn hex4(b: &[u8], at: usize) -> Option<u32> {
        let digits = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
        u32::from_str_radix(digits, 16).ok()
    }
    let b = text.as_bytes();
    let is_escape_u = |at: usize| b.get(at) == Some(&b'\\') && b.get(at + 1) == Some(&b'u');
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(unit) = is_escape_u(i).then(|| hex4(b, i + 2)).flatten() else {
            // Any other escape: skip the escaped character.
            i += 2;
            continue;
        };
        let paired = (0xD800..0xDC00).contains(&unit)
            && is_escape_u(i + 6)
            && hex4(b, i + 8).is_some_and(|low| (0xDC00..0xE000).contains(&low));
        if paired {
            i += 12;
        } else if (0xD800..0xE000).contains(&unit) {
            // The escape is ASCII, so these indices are on character boundaries.
            out.push_str(&text[copied..i]);
            out.push_str("\\ufffd");
            i += 6;
            copied = i;
        } else {
            i += 6;
        }
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// Checks that the payload fits the packet type.
fn check_payload(kind: PacketType, data: Option<&Value>) -> Result<(), DecodeError> {
    let ok = match (kind, data) {
        (PacketType::Connect, None | Some(Value::Object(_))) => true,
        (PacketType::Disconnect, None) => true,
        (PacketType::Event | PacketType::BinaryEvent, Some(Value::Array(items))) => {
            match items.first() {
                Some(Value::Number(_)) => true,
                Some(Value::String(name)) if is_reserved_event(name) => {
                    return Err(DecodeError::ReservedEvent(name.clone()))
                }
                Some(Value::String(_)) => true,
                _ => false,
            }
        }
        (PacketType::Ack | PacketType::BinaryAck, Some(Value::Array(_))) => true,
        (PacketType::ConnectError, Some(Value::String(_) | Value::Object(_))) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(DecodeError::InvalidPayload(kind))
    }
}

/// The packet that waits for its attachments.
#[derive(Debug)]
struct Pending {
    packet: Packet,
    expected: usize,
}

/// Sans-IO decoder for one connection: feed it the Engine.IO messages in order, get complete
/// packets out.
///
/// A text message is parsed and validated at once. A BINARY_EVENT / BINARY_ACK with `n > 0`
/// attachments is then held until `n` binary messages have arrived; the packet is returned with
/// `data` still holding the placeholders and `attachments` holding the buffers in order (use
/// [`Packet::take_data`] to get the binary values in place). The placeholders are checked when the
/// header arrives, before any attachment is buffered.
///
/// After an error the decoder is reset (any partial packet is dropped); the caller is expected to
/// close the connection anyway.
///
/// Choices where the reference parser is looser (documented so they are not a surprise):
/// * EVENT / ACK (and binary forms) without a payload are rejected (the reference lets `42`
///   through with no data);
/// * CONNECT_ERROR without a payload is rejected;
/// * an empty attachment count (`5-[…]`) is rejected (the reference reads it as 0);
/// * in a binary packet with 0 attachments any placeholder is out of range, hence an error (the
///   reference leaves such placeholders as plain objects);
/// * a placeholder's `num` must be a JSON integer (`0.0` is rejected);
/// * an ack id is read for every packet type, like the reference does (`40123` is a CONNECT with
///   id 123, `4112` a DISCONNECT with id 12); it is up to the caller to ignore it where it means
///   nothing.
///
/// ```
/// use socketio::packet::{Decoder, DecodeError, PacketType};
/// use bytes::Bytes;
///
/// let mut decoder = Decoder::new();
/// // The Engine.IO message `40/admin,{"token":"123"}`, without its `4` prefix:
/// let p = decoder.on_text(r#"0/admin,{"token":"123"}"#)?.unwrap();
/// assert_eq!((p.kind, p.nsp.as_str()), (PacketType::Connect, "/admin"));
///
/// assert!(decoder.on_text(r#"61-15["bar",{"_placeholder":true,"num":0}]"#)?.is_none());
/// assert!(decoder.is_reassembling());
/// let p = decoder.on_binary(Bytes::from_static(b"\x00\x01"))?.unwrap();
/// assert_eq!((p.kind, p.id, p.attachments.len()), (PacketType::BinaryAck, Some(15), 1));
///
/// assert!(matches!(decoder.on_binary(Bytes::new()), Err(DecodeError::UnexpectedBinary)));
/// # Ok::<(), DecodeError>(())
/// ```
#[derive(Debug)]
pub struct Decoder {
    max_attachments: usize,
    pending: Option<Pending>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder accepting up to [`DEFAULT_MAX_ATTACHMENTS`] attachments per packet.
    pub fn new() -> Self {
        Self::with_max_attachments(DEFAULT_MAX_ATTACHMENTS)
    }

    /// A decoder accepting up to `max_attachments` attachments per packet.
    pub fn with_max_attachments(max_attachments: usize) -> Self {
        Self {
            max_attachments,
            pending: None,
        }
    }

    /// The configured attachment cap.
    pub fn max_attachments(&self) -> usize {
        self.max_attachments
    }

    /// Whether a binary packet is waiting for attachments (a text message now would be an error).
    pub fn is_reassembling(&self) -> bool {
        self.pending.is_some()
    }

    /// How many attachments are still awaited (0 when not reassembling).
    pub fn remaining_attachments(&self) -> usize {
        self.pending
            .as_ref()
            .map_or(0, |p| p.expected.saturating_sub(p.packet.attachments.len()))
    }

    /// Drops any partially received packet.
    pub fn reset(&mut self) {
        self.pending = None;
    }

    /// Feeds the data of an Engine.IO text message, **without** its `4` (message) prefix: for the
    /// Engine.IO message `42["foo"]` pass `2["foo"]`.
    ///
    /// Returns the packet if it is complete, `None` if it is a binary packet that now waits for
    /// its attachments.
    pub fn on_text(&mut self, text: &str) -> Result<Option<Packet>, DecodeError> {
        if self.pending.take().is_some() {
            return Err(DecodeError::UnexpectedText);
        }
        let (packet, expected) = parse(text, self.max_attachments)?;
        if expected == 0 {
            return Ok(Some(packet));
        }
        let mut packet = packet;
        // `expected` is capped by `max_attachments`, which may be large: don't trust it for the
        // allocation.
        packet.attachments = Vec::with_capacity(expected.min(DEFAULT_MAX_ATTACHMENTS));
        self.pending = Some(Pending { packet, expected });
        Ok(None)
    }

    /// Feeds the data of an Engine.IO binary message.
    ///
    /// Returns the packet once its last attachment has arrived, `None` while more are awaited.
    pub fn on_binary(&mut self, data: Bytes) -> Result<Option<Packet>, DecodeError> {
        let Some(mut pending) = self.pending.take() else {
            return Err(DecodeError::UnexpectedBinary);
        };
        pending.packet.attachments.push(data);
        if pending.packet.attachments.len() >= pending.expected {
            Ok(Some(pending.packet))
        } else {
            self.pending = Some(pending);
            Ok(None)
        }
    }
}
