//! Sans-IO codec for Socket.IO v5 packets.
//!
//! This module only turns [`Packet`]s into bytes and back. It owns no socket, does no I/O and knows
//! nothing about Engine.IO beyond the fact that a Socket.IO packet travels as one Engine.IO text
//! message (`4…`) followed by zero or more Engine.IO binary messages (the attachments).
//!
//! # Representation of binary data
//!
//! A [`Packet`] keeps its payload as plain JSON ([`serde_json::Value`]) **in wire form**: binary
//! values are the placeholder objects `{"_placeholder":true,"num":N}` and the buffers travel next to
//! the JSON in [`Packet::attachments`], in order (`attachments[N]` is the buffer of placeholder `N`).
//! This is exactly what the wire carries, so decoding never has to rebuild the JSON tree.
//!
//! The application-facing "JSON that may hold binary" is [`Data`]. Convert between the two with
//! [`deconstruct`] (walks depth-first, replaces each [`Data::Binary`] by a placeholder numbered
//! 0, 1, … in visiting order) and [`reconstruct`] (the inverse), or use [`Packet::event`] /
//! [`Packet::ack`] and [`Packet::take_data`], which call them for you.
//!
//! # Encoding
//!
//! ```
//! use socketio::packet::{Data, Packet};
//! use bytes::Bytes;
//! use serde_json::json;
//!
//! // 42/admin,7["hello",{"a":1}]
//! let p = Packet::event("/admin", json!(["hello", {"a": 1}]), Some(7));
//! assert_eq!(p.encode_to_string(), r#"2/admin,7["hello",{"a":1}]"#);
//!
//! // One Engine.IO message (with the `4` prefix) + attachments, ready to be shared by a broadcast.
//! let p = Packet::event(
//!     "/",
//!     Data::Array(vec![Data::from("file"), Data::Binary(Bytes::from_static(b"\x01\x02"))]),
//!     None,
//! );
//! let (text, attachments) = p.encode_engine_message();
//! assert_eq!(&text[..], br#"451-["file",{"_placeholder":true,"num":0}]"#);
//! assert_eq!(attachments, vec![Bytes::from_static(b"\x01\x02")]);
//! ```
//!
//! # Decoding
//!
//! ```
//! use socketio::packet::{Data, Decoder, PacketType};
//! use bytes::Bytes;
//! use serde_json::json;
//!
//! let mut decoder = Decoder::new();
//!
//! // Engine.IO delivered the message `42/admin,12["bar"]`; the decoder gets what follows the `4`.
//! let p = decoder.on_text(r#"2/admin,12["bar"]"#)?.expect("complete packet");
//! assert_eq!(p.kind, PacketType::Event);
//! assert_eq!(p.nsp, "/admin");
//! assert_eq!(p.id, Some(12));
//! assert_eq!(p.data, Some(json!(["bar"])));
//!
//! // A binary event: the header announces one attachment, which arrives next.
//! assert!(decoder.on_text(r#"51-["baz",{"_placeholder":true,"num":0}]"#)?.is_none());
//! let mut p = decoder.on_binary(Bytes::from_static(b"\xff"))?.expect("complete packet");
//! assert_eq!(p.kind, PacketType::BinaryEvent);
//! assert_eq!(
//!     p.take_data()?,
//!     Some(Data::Array(vec![Data::from("baz"), Data::Binary(Bytes::from_static(b"\xff"))]))
//! );
//!
//! // Malformed input is an error, never a panic.
//! assert!(decoder.on_text(r#"2["disconnect"]"#).is_err());
//! # Ok::<(), socketio::packet::DecodeError>(())
//! ```

mod binary;
mod decode;
mod encode;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use serde_json::Value;

pub use binary::{deconstruct, deconstruct_into, reconstruct, Data};
pub use decode::{DecodeError, Decoder, DEFAULT_MAX_ATTACHMENTS};

/// Event names that are reserved by Socket.IO: a client may not send them and the server must
/// never emit them.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Whether `name` is one of the [`RESERVED_EVENTS`].
pub fn is_reserved_event(name: &str) -> bool {
    RESERVED_EVENTS.contains(&name)
}

/// The Socket.IO v5 packet type (the first character of a packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// `0`: join a namespace (client → server, optional auth object) or accept it (server → client,
    /// `{"sid":…}`).
    Connect = 0,
    /// `1`: leave a namespace. No payload.
    Disconnect = 1,
    /// `2`: an event, payload `[name, …args]`.
    Event = 2,
    /// `3`: an acknowledgement, payload `[…args]`.
    Ack = 3,
    /// `4`: refusal of a CONNECT, payload `{"message":…,"data"?:…}` (or a string).
    ConnectError = 4,
    /// `5`: an event whose arguments contain binary (placeholders + attachments).
    BinaryEvent = 5,
    /// `6`: an acknowledgement whose arguments contain binary (placeholders + attachments).
    BinaryAck = 6,
}

impl PacketType {
    /// The numeric type (0–6).
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The type for a numeric value 0–6, `None` otherwise.
    pub const fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            0 => Self::Connect,
            1 => Self::Disconnect,
            2 => Self::Event,
            3 => Self::Ack,
            4 => Self::ConnectError,
            5 => Self::BinaryEvent,
            6 => Self::BinaryAck,
            _ => return None,
        })
    }

    /// The type for an ASCII digit `b'0'`–`b'6'`, `None` otherwise.
    pub const fn from_ascii_digit(c: u8) -> Option<Self> {
        if c.is_ascii_digit() {
            Self::from_u8(c - b'0')
        } else {
            None
        }
    }

    /// The ASCII digit written on the wire for this type.
    pub const fn as_ascii_digit(self) -> u8 {
        b'0' + self as u8
    }

    /// `true` for [`BinaryEvent`](Self::BinaryEvent) and [`BinaryAck`](Self::BinaryAck), the types
    /// whose header carries an attachment count.
    pub const fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }

    /// `true` for [`Event`](Self::Event) and [`BinaryEvent`](Self::BinaryEvent).
    pub const fn is_event(self) -> bool {
        matches!(self, Self::Event | Self::BinaryEvent)
    }

    /// `true` for [`Ack`](Self::Ack) and [`BinaryAck`](Self::BinaryAck).
    pub const fn is_ack(self) -> bool {
        matches!(self, Self::Ack | Self::BinaryAck)
    }
}

/// One Socket.IO packet, with its payload in wire form.
///
/// * `data` is the JSON payload exactly as it travels, `None` when the packet has none. For
///   [`BinaryEvent`](PacketType::BinaryEvent) / [`BinaryAck`](PacketType::BinaryAck) it holds
///   `{"_placeholder":true,"num":N}` objects where the binary values go.
/// * `attachments` are the binary buffers, `attachments[N]` belonging to placeholder `N`. They are
///   only meaningful (and only sent) for the binary types.
/// * `id` is the ack id. The decoder reads it for every type, like the reference parser does (so
///   `40123` is a CONNECT with id 123), but it only means something for events and acks; the
///   encoder writes it whenever it is `Some`.
///
/// Build packets with the constructors ([`Packet::event`], [`Packet::ack`], …), which pick the
/// binary types when needed, or fill the fields directly.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The packet type.
    pub kind: PacketType,
    /// The namespace, `/` by default. Always starts with `/` when decoded.
    pub nsp: String,
    /// The ack id, if any.
    pub id: Option<u64>,
    /// The JSON payload in wire form (binary replaced by placeholders), if any.
    pub data: Option<Value>,
    /// The binary attachments, in placeholder order.
    pub attachments: Vec<Bytes>,
}

impl Packet {
    /// A packet of type `kind` on namespace `nsp`, without id, payload or attachments.
    pub fn new(kind: PacketType, nsp: impl Into<String>) -> Self {
        Self {
            kind,
            nsp: nsp.into(),
            id: None,
            data: None,
            attachments: Vec::new(),
        }
    }

    /// A CONNECT packet: `0[<nsp>,][<data>]`. The server's reply carries `{"sid":"…"}`.
    pub fn connect(nsp: impl Into<String>, data: Option<Value>) -> Self {
        Self {
            data,
            ..Self::new(PacketType::Connect, nsp)
        }
    }

    /// A DISCONNECT packet: `1[<nsp>,]`.
    pub fn disconnect(nsp: impl Into<String>) -> Self {
        Self::new(PacketType::Disconnect, nsp)
    }

    /// A CONNECT_ERROR packet: `4[<nsp>,]<data>`, `data` normally `{"message":…,"data"?:…}`.
    pub fn connect_error(nsp: impl Into<String>, data: Value) -> Self {
        Self {
            data: Some(data),
            ..Self::new(PacketType::ConnectError, nsp)
        }
    }

    /// An EVENT, or a BINARY_EVENT if `data` holds binary. `data` should be the array
    /// `[name, …args]`; binary values are replaced by placeholders (see [`deconstruct`]).
    pub fn event(nsp: impl Into<String>, data: impl Into<Data>, id: Option<u64>) -> Self {
        Self::with_data(PacketType::Event, nsp.into(), data.into(), id)
    }

    /// An ACK, or a BINARY_ACK if `data` holds binary. `data` should be the array `[…args]`.
    pub fn ack(nsp: impl Into<String>, data: impl Into<Data>, id: u64) -> Self {
        Self::with_data(PacketType::Ack, nsp.into(), data.into(), Some(id))
    }

    fn with_data(kind: PacketType, nsp: String, data: Data, id: Option<u64>) -> Self {
        let (data, attachments) = deconstruct(data);
        let kind = match (kind, attachments.is_empty()) {
            (PacketType::Event, false) => PacketType::BinaryEvent,
            (PacketType::Ack, false) => PacketType::BinaryAck,
            (kind, _) => kind,
        };
        Self {
            kind,
            nsp,
            id,
            data: Some(data),
            attachments,
        }
    }

    /// The type the encoder writes: [`kind`](Self::kind), except that an
    /// [`Event`](PacketType::Event) / [`Ack`](PacketType::Ack) with attachments is sent as
    /// [`BinaryEvent`](PacketType::BinaryEvent) / [`BinaryAck`](PacketType::BinaryAck).
    pub fn wire_type(&self) -> PacketType {
        match self.kind {
            PacketType::Event if !self.attachments.is_empty() => PacketType::BinaryEvent,
            PacketType::Ack if !self.attachments.is_empty() => PacketType::BinaryAck,
            kind => kind,
        }
    }

    /// Takes the payload out as application [`Data`], leaving `data` and `attachments` empty.
    ///
    /// For the binary types the placeholders are replaced by their attachments (see
    /// [`reconstruct`]); for the other types the JSON is returned untouched as [`Data::Json`] (a
    /// placeholder-shaped object in a text packet is just an object, as in the reference parser).
    ///
    /// Fails only for hand-built packets with bad placeholders: the [`Decoder`] has already
    /// checked them.
    pub fn take_data(&mut self) -> Result<Option<Data>, DecodeError> {
        let attachments = std::mem::take(&mut self.attachments);
        match self.data.take() {
            None => Ok(None),
            Some(value) if self.kind.is_binary() => reconstruct(value, &attachments).map(Some),
            Some(value) => Ok(Some(Data::Json(value))),
        }
    }
}
