//! Long-polling payloads: packets joined by the record separator `\x1e`, binary as `b`+base64.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::packet::{DecodeError, Frame, Message, Packet};

/// The byte that separates packets in a polling payload.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// Decodes a polling POST body into packets, lazily and in order.
///
/// Decoding stops at the first bad record, which is yielded as an error; the packets before it
/// are still yielded, so they can be dispatched before the session closes. An empty body and a
/// trailing separator both produce an empty record, which is an error.
///
/// ```
/// use engineio::{payload::decode_payload, Message, Packet};
/// let packets: Vec<_> = decode_payload("4hello\x1ebAQIDBA==\x1e3".into()).collect();
/// assert_eq!(packets, vec![
///     Ok(Packet::Message(Message::text("hello"))),
///     Ok(Packet::Message(Message::binary(vec![1u8, 2, 3, 4]))),
///     Ok(Packet::Pong),
/// ]);
/// ```
pub fn decode_payload(body: Bytes) -> PayloadDecoder {
    PayloadDecoder {
        rest: Some(body),
        failed: false,
    }
}

/// Iterator returned by [`decode_payload`].
#[derive(Debug)]
pub struct PayloadDecoder {
    rest: Option<Bytes>,
    failed: bool,
}

impl Iterator for PayloadDecoder {
    type Item = Result<Packet, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut rest = self.rest.take()?;
        let record = match rest.iter().position(|b| *b == RECORD_SEPARATOR) {
            Some(at) => {
                let record = rest.split_to(at);
                let _separator = rest.split_to(1);
                self.rest = Some(rest);
                record
            }
            None => rest,
        };
        let decoded = decode_record(record);
        self.failed = decoded.is_err();
        Some(decoded)
    }
}

fn decode_record(record: Bytes) -> Result<Packet, DecodeError> {
    if record.first() == Some(&b'b') {
        let data = STANDARD
            .decode(&record[1..])
            .map_err(|_| DecodeError::Base64)?;
        return Ok(Packet::Message(Message::Binary(Bytes::from(data))));
    }
    let text = Utf8Bytes::try_from(record).map_err(|_| DecodeError::Utf8)?;
    Packet::decode_wire(text)
}

/// Appends frames to a polling response body, separated by `\x1e`.
pub(crate) fn encode_payload<'a>(frames: impl IntoIterator<Item = &'a Frame>, out: &mut Vec<u8>) {
    for (i, frame) in frames.into_iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        match frame {
            Frame::Text(t) => out.extend_from_slice(t.as_bytes()),
            Frame::Binary(b) => {
                out.push(b'b');
                let start = out.len();
                out.resize(start + base64::encoded_len(b.len(), true).unwrap_or(0), 0);
                let written = STANDARD.encode_slice(b, &mut out[start..]).unwrap_or(0);
                out.truncate(start + written);
            }
        }
    }
}

/// Upper bound of a frame's size in a polling payload, for sizing the response buffer.
pub(crate) fn encoded_len(frame: &Frame) -> usize {
    match frame {
        Frame::Text(t) => t.len() + 1,
        Frame::Binary(b) => base64::encoded_len(b.len(), true).unwrap_or(0) + 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(s: &'static [u8]) -> Vec<Result<Packet, DecodeError>> {
        decode_payload(Bytes::from_static(s)).collect()
    }

    #[test]
    fn decodes_mixed_payload() {
        assert_eq!(
            decode_all(b"4hello\x1e2\x1e4world"),
            vec![
                Ok(Packet::Message(Message::text("hello"))),
                Ok(Packet::Ping { probe: false }),
                Ok(Packet::Message(Message::text("world"))),
            ]
        );
    }

    #[test]
    fn empty_binary_is_b_alone() {
        assert_eq!(
            decode_all(b"b"),
            vec![Ok(Packet::Message(Message::binary(Vec::new())))]
        );
        let mut out = Vec::new();
        encode_payload(&[Frame::Binary(Bytes::new())], &mut out);
        assert_eq!(out, b"b");
    }

    #[test]
    fn errors_stop_decoding() {
        assert_eq!(decode_all(b""), vec![Err(DecodeError::Empty)]);
        assert_eq!(
            decode_all(b"4a\x1e"),
            vec![
                Ok(Packet::Message(Message::text("a"))),
                Err(DecodeError::Empty)
            ]
        );
        assert_eq!(
            decode_all(b"abc\x1e4a"),
            vec![Err(DecodeError::UnknownType('a'))]
        );
        assert_eq!(decode_all(b"b!!!"), vec![Err(DecodeError::Base64)]);
        assert_eq!(decode_all(b"4\xff\xfe"), vec![Err(DecodeError::Utf8)]);
    }

    #[test]
    fn encodes_text_and_binary() {
        let frames = [
            Frame::from(Message::text("hello")),
            Frame::Binary(Bytes::from_static(&[1, 2, 3, 4])),
            Frame::PING,
        ];
        let mut out = Vec::new();
        encode_payload(&frames, &mut out);
        assert_eq!(out, b"4hello\x1ebAQIDBA==\x1e2");
        assert!(out.len() <= frames.iter().map(encoded_len).sum::<usize>());
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            "[^\x1e]*".prop_map(Message::text),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Message::binary),
        ]
    }

    proptest! {
        #[test]
        fn payload_round_trips(messages in proptest::collection::vec(message(), 1..8)) {
            let frames: Vec<Frame> = messages.iter().cloned().map(Frame::from).collect();
            let mut out = Vec::new();
            encode_payload(&frames, &mut out);
            let decoded: Vec<_> = decode_payload(Bytes::from(out)).collect();
            let expected: Vec<_> = messages.into_iter().map(|m| Ok(Packet::Message(m))).collect();
            prop_assert_eq!(decoded, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let n = decode_payload(Bytes::from(body)).count();
            prop_assert!(n >= 1);
        }
    }
}
