//! The bytes each transport carries, by protocol revision (sans-IO): the one place where the
//! transports tell Engine.IO v3 from v4 (the codecs themselves are `payload` and `v3`).

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::config::Protocol;
use crate::packet::{DecodeError, Frame, Message, Packet};
use crate::payload::{decode_payload, encode_payload, PayloadDecoder};

/// A WebSocket binary frame: a message in v4; in v3 the type byte `4` comes first.
pub(crate) fn decode_ws_binary(protocol: Protocol, data: Bytes) -> Result<Packet, DecodeError> {
    match protocol {
        Protocol::V4 => Ok(Packet::Message(Message::Binary(data))),
        Protocol::V3 => crate::v3::decode_ws_binary(data),
    }
}

/// The packets of a polling POST body; `binary` for an `application/octet-stream` body (v3
/// XHR2 payloads; the machine refuses it on v4).
pub(crate) fn decode_post(protocol: Protocol, binary: bool, body: Bytes) -> PostPackets {
    match protocol {
        Protocol::V4 => PostPackets::V4(decode_payload(body)),
        Protocol::V3 if binary => {
            PostPackets::V3(crate::v3::decode_binary_payload(body).into_iter())
        }
        Protocol::V3 => PostPackets::V3(crate::v3::decode_text_payload(&body).into_iter()),
    }
}

/// The packets of a POST body, decoded by the session's protocol revision.
pub(crate) enum PostPackets {
    V4(PayloadDecoder),
    V3(std::vec::IntoIter<Result<Packet, DecodeError>>),
}

impl Iterator for PostPackets {
    type Item = Result<Packet, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            PostPackets::V4(d) => d.next(),
            PostPackets::V3(d) => d.next(),
        }
    }
}

/// Appends the answer of a polling GET to `out`; true when it is binary
/// (`application/octet-stream`: a v3 client that did not ask for `b64` gets binary messages so).
/// `b64` is only asked for v3.
pub(crate) fn encode_poll(
    protocol: Protocol,
    frames: &[Frame],
    b64: impl FnOnce() -> bool,
    out: &mut Vec<u8>,
) -> bool {
    match protocol {
        Protocol::V4 => {
            encode_payload(frames, out);
            false
        }
        Protocol::V3 if crate::v3::needs_binary_payload(frames, b64()) => {
            crate::v3::encode_binary_payload(frames, out);
            true
        }
        Protocol::V3 => {
            crate::v3::encode_text_payload(frames, out);
            false
        }
    }
}

/// The body of a polling handshake: the open packet, framed as a payload (v3 frames it like
/// any packet, `<length>:0{…}`).
pub(crate) fn encode_open(protocol: Protocol, open: Bytes) -> Bytes {
    match protocol {
        Protocol::V4 => open,
        Protocol::V3 => {
            let mut out = Vec::with_capacity(open.len() + 8);
            if let Ok(text) = Utf8Bytes::try_from(open) {
                crate::v3::encode_text_payload(&[Frame::Text(text)], &mut out);
            }
            Bytes::from(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_binary_by_revision() {
        let data = Bytes::from_static(&[4, 1]);
        assert_eq!(
            decode_ws_binary(Protocol::V4, data.clone()),
            Ok(Packet::Message(Message::binary(vec![4u8, 1])))
        );
        assert_eq!(
            decode_ws_binary(Protocol::V3, data),
            Ok(Packet::Message(Message::binary(vec![1u8])))
        );
    }

    #[test]
    fn post_bodies_by_revision() {
        let v4: Vec<_> = decode_post(Protocol::V4, false, Bytes::from_static(b"4a\x1e3")).collect();
        assert_eq!(
            v4,
            vec![Ok(Packet::Message(Message::text("a"))), Ok(Packet::Pong)]
        );
        let v3: Vec<_> = decode_post(Protocol::V3, false, Bytes::from_static(b"2:4a1:3")).collect();
        assert_eq!(v4, v3);
        let xhr2 = Bytes::from_static(&[0, 2, 0xFF, b'4', b'a', 0, 1, 0xFF, b'3']);
        let v3: Vec<_> = decode_post(Protocol::V3, true, xhr2).collect();
        assert_eq!(v4, v3);
    }

    #[test]
    fn poll_answers_by_revision() {
        let frames = [
            Frame::from(Message::text("a")),
            Frame::Binary(Bytes::from_static(&[1])),
        ];
        let mut out = Vec::new();
        assert!(!encode_poll(
            Protocol::V4,
            &frames,
            || unreachable!(),
            &mut out
        ));
        assert_eq!(out, b"4a\x1ebAQ==");
        out.clear();
        assert!(!encode_poll(Protocol::V3, &frames, || true, &mut out));
        assert_eq!(out, b"2:4a6:b4AQ==");
        out.clear();
        assert!(encode_poll(Protocol::V3, &frames, || false, &mut out));
        assert_eq!(out, [0, 2, 0xFF, b'4', b'a', 1, 2, 0xFF, 4, 1]);
    }

    #[test]
    fn open_packet_by_revision() {
        let open = Bytes::from_static(b"0{}");
        assert_eq!(encode_open(Protocol::V4, open.clone()), open);
        assert_eq!(
            encode_open(Protocol::V3, open),
            Bytes::from_static(b"3:0{}")
        );
    }
}
