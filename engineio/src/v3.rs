//! Engine.IO v3 codec (sans-IO), used only by sessions opened with `EIO=3`
//! ([`Config::allow_eio3`](crate::Config::allow_eio3)).
//!
//! - Text polling payloads frame each packet as `<length>:<packet>`, the length counted in
//!   UTF-16 code units (JavaScript string length); binary is `b4<base64>` inside the framing.
//! - XHR2 polling payloads (`application/octet-stream`, for clients that did not ask for `b64`):
//!   per packet a marker byte (0 text, 1 binary), the length as decimal digits one byte per digit
//!   (values 0–9), `0xFF`, then the data: UTF-8 bytes of the text packet, or the type byte `4`
//!   followed by the binary data (the length counts the type byte).
//! - WebSocket binary frames carry the packet type byte `0x04` before the data.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::packet::{DecodeError, Frame, Message, Packet};

/// The packet type byte of a binary message.
pub(crate) const MESSAGE_TYPE: u8 = 4;
/// The most length digits accepted in an XHR2 payload (the reference allows 310; ten is plenty
/// for any payload under maxPayload).
const MAX_LENGTH_DIGITS: usize = 10;

/// Appends frames to a text polling payload: `<length>:<packet>` each, binary as `b4<base64>`.
pub(crate) fn encode_text_payload<'a>(
    frames: impl IntoIterator<Item = &'a Frame>,
    out: &mut Vec<u8>,
) {
    for frame in frames {
        match frame {
            Frame::Text(t) => {
                let units: usize = t.chars().map(char::len_utf16).sum();
                out.extend_from_slice(units.to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(t.as_bytes());
            }
            Frame::Binary(b) => {
                let encoded = STANDARD.encode(b);
                // `b4` and base64 are ASCII: one UTF-16 unit per byte.
                out.extend_from_slice((encoded.len() + 2).to_string().as_bytes());
                out.extend_from_slice(b":b4");
                out.extend_from_slice(encoded.as_bytes());
            }
        }
    }
}

/// Appends frames to an XHR2 binary polling payload.
pub(crate) fn encode_binary_payload<'a>(
    frames: impl IntoIterator<Item = &'a Frame>,
    out: &mut Vec<u8>,
) {
    let header = |out: &mut Vec<u8>, marker: u8, len: usize| {
        out.push(marker);
        out.extend(len.to_string().bytes().map(|d| d - b'0'));
        out.push(0xFF);
    };
    for frame in frames {
        match frame {
            Frame::Text(t) => {
                header(out, 0, t.len());
                out.extend_from_slice(t.as_bytes());
            }
            Frame::Binary(b) => {
                header(out, 1, b.len() + 1);
                out.push(MESSAGE_TYPE);
                out.extend_from_slice(b);
            }
        }
    }
}

/// Whether a GET answer must use the XHR2 format: binary present and the client takes it.
pub(crate) fn needs_binary_payload(frames: &[Frame], b64: bool) -> bool {
    !b64 && frames.iter().any(|f| matches!(f, Frame::Binary(_)))
}

/// Decodes a WebSocket binary frame: the type byte must be `4` (message).
pub(crate) fn decode_ws_binary(mut data: Bytes) -> Result<Packet, DecodeError> {
    match data.first() {
        None => Err(DecodeError::Empty),
        Some(&MESSAGE_TYPE) => {
            let _type = data.split_to(1);
            Ok(Packet::Message(Message::Binary(data)))
        }
        Some(&other) => Err(DecodeError::UnknownType(char::from(other))),
    }
}

/// Decodes one packet of a text payload (`b4…` is a base64 binary message).
fn decode_text_packet(packet: &str) -> Result<Packet, DecodeError> {
    if let Some(rest) = packet.strip_prefix('b') {
        let mut chars = rest.chars();
        return match chars.next() {
            Some('4') => STANDARD
                .decode(chars.as_str())
                .map(|data| Packet::Message(Message::Binary(Bytes::from(data))))
                .map_err(|_| DecodeError::Base64),
            Some(c) => Err(DecodeError::UnknownType(c)),
            None => Err(DecodeError::Empty),
        };
    }
    Packet::decode_wire(Utf8Bytes::from(packet))
}

/// Decodes a text polling payload. Stops at the first error, which is the last item. Empty
/// packets (`0:`) are skipped, as by the reference parser.
pub(crate) fn decode_text_payload(body: &[u8]) -> Vec<Result<Packet, DecodeError>> {
    let mut out = Vec::new();
    let Ok(mut rest) = std::str::from_utf8(body) else {
        out.push(Err(DecodeError::Utf8));
        return out;
    };
    while !rest.is_empty() {
        let Some((len, after)) = rest.split_once(':') else {
            out.push(Err(DecodeError::Framing));
            return out;
        };
        let units = match len.parse::<usize>() {
            Ok(n) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                out.push(Err(DecodeError::Framing));
                return out;
            }
        };
        // Find the byte offset where `units` UTF-16 code units end.
        let mut counted = 0usize;
        let mut end = None;
        for (i, c) in after.char_indices() {
            if counted == units {
                end = Some(i);
                break;
            }
            counted += c.len_utf16();
        }
        let end = match end {
            Some(i) => i,
            None if counted == units => after.len(),
            None => {
                out.push(Err(DecodeError::Framing));
                return out;
            }
        };
        if counted != units {
            // A surrogate pair split by the length.
            out.push(Err(DecodeError::Framing));
            return out;
        }
        let (packet, tail) = after.split_at(end);
        rest = tail;
        if packet.is_empty() {
            continue;
        }
        let decoded = decode_text_packet(packet);
        let failed = decoded.is_err();
        out.push(decoded);
        if failed {
            return out;
        }
    }
    out
}

/// Decodes an XHR2 binary polling payload (a POST with `Content-Type: application/octet-stream`).
pub(crate) fn decode_binary_payload(mut body: Bytes) -> Vec<Result<Packet, DecodeError>> {
    let mut out = Vec::new();
    if body.is_empty() {
        out.push(Err(DecodeError::Empty));
        return out;
    }
    while !body.is_empty() {
        let decoded = next_binary_packet(&mut body);
        let failed = decoded.is_err();
        out.push(decoded);
        if failed {
            return out;
        }
    }
    out
}

fn next_binary_packet(body: &mut Bytes) -> Result<Packet, DecodeError> {
    let is_text = match body.first() {
        Some(0) => true,
        Some(1) => false,
        _ => return Err(DecodeError::Framing),
    };
    let mut len = 0usize;
    let mut digits = 0usize;
    let mut i = 1;
    loop {
        match body.get(i) {
            Some(0xFF) if digits > 0 => break,
            Some(d @ 0..=9) if digits < MAX_LENGTH_DIGITS => {
                len = len * 10 + usize::from(*d);
                digits += 1;
            }
            _ => return Err(DecodeError::Framing),
        }
        i += 1;
    }
    let start = i + 1;
    let end = start.checked_add(len).ok_or(DecodeError::Framing)?;
    if end > body.len() {
        return Err(DecodeError::Framing);
    }
    let mut data = body.split_to(end);
    let data = data.split_off(start);
    if is_text {
        let text = Utf8Bytes::try_from(data).map_err(|_| DecodeError::Utf8)?;
        Packet::decode_wire(text)
    } else {
        decode_ws_binary(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(s: &'static str) -> Frame {
        Frame::Text(Utf8Bytes::from_static(s))
    }

    fn encode_text(frames: &[Frame]) -> String {
        let mut out = Vec::new();
        encode_text_payload(frames, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_framing_counts_utf16_units() {
        assert_eq!(
            encode_text(&[text("4hello"), text("4world")]),
            "6:4hello6:4world"
        );
        // é is one UTF-16 unit (two UTF-8 bytes); 🎉 is two units (four bytes).
        assert_eq!(encode_text(&[text("4é")]), "2:4é");
        assert_eq!(encode_text(&[text("4🎉")]), "3:4🎉");
        assert_eq!(encode_text(&[text("2"), text("4a€🎉b")]), "1:26:4a€🎉b");
    }

    #[test]
    fn text_framing_binary_is_b4_base64() {
        let frames = [Frame::Binary(Bytes::from_static(&[1, 2, 3, 4]))];
        assert_eq!(encode_text(&frames), "10:b4AQIDBA==");
        assert_eq!(
            decode_text_payload(b"10:b4AQIDBA=="),
            vec![Ok(Packet::Message(Message::binary(vec![1u8, 2, 3, 4])))]
        );
    }

    #[test]
    fn decodes_text_payloads_with_non_ascii_lengths() {
        assert_eq!(
            decode_text_payload("3:4🎉2:4é1:2".as_bytes()),
            vec![
                Ok(Packet::Message(Message::text("🎉"))),
                Ok(Packet::Message(Message::text("é"))),
                Ok(Packet::Ping { probe: false }),
            ]
        );
        assert_eq!(decode_text_payload(b"0:1:3"), vec![Ok(Packet::Pong)]);
    }

    #[test]
    fn text_payload_errors() {
        assert_eq!(
            decode_text_payload(b"4hello"),
            vec![Err(DecodeError::Framing)]
        );
        assert_eq!(
            decode_text_payload(b"9:4hello"),
            vec![Err(DecodeError::Framing)]
        );
        assert_eq!(decode_text_payload(b"x:4"), vec![Err(DecodeError::Framing)]);
        assert_eq!(decode_text_payload(b":4"), vec![Err(DecodeError::Framing)]);
        // A length that ends inside a surrogate pair.
        assert_eq!(
            decode_text_payload("2:4🎉".as_bytes()),
            vec![Err(DecodeError::Framing)]
        );
        assert_eq!(
            decode_text_payload(b"1:41:x"),
            vec![
                Ok(Packet::Message(Message::text(""))),
                Err(DecodeError::UnknownType('x'))
            ]
        );
        assert_eq!(
            decode_text_payload(b"3:b4!"),
            vec![Err(DecodeError::Base64)]
        );
        assert_eq!(decode_text_payload(b"\xff"), vec![Err(DecodeError::Utf8)]);
    }

    #[test]
    fn xhr2_binary_payload_format() {
        let frames = [
            text("4hello"),
            Frame::Binary(Bytes::from_static(&[1, 2, 3, 4])),
        ];
        let mut out = Vec::new();
        encode_binary_payload(&frames, &mut out);
        let mut expected = vec![0u8, 6, 0xFF];
        expected.extend_from_slice(b"4hello");
        expected.extend_from_slice(&[1, 5, 0xFF, 4, 1, 2, 3, 4]);
        assert_eq!(out, expected);
        // Text lengths are UTF-8 bytes here; lengths of several digits.
        let long = "4".to_owned() + &"é".repeat(6);
        let mut out = Vec::new();
        encode_binary_payload(&[Frame::Text(Utf8Bytes::from(long.clone()))], &mut out);
        assert_eq!(&out[..4], &[0, 1, 3, 0xFF]);
        assert_eq!(
            decode_binary_payload(Bytes::from(out)),
            vec![Ok(Packet::Message(Message::text(&long[1..])))]
        );
    }

    #[test]
    fn decodes_xhr2_binary_payloads() {
        let mut body = vec![0u8, 1, 0xFF, b'2', 1, 5, 0xFF, 4, 9, 8, 7, 6];
        body.extend_from_slice(&[0, 6, 0xFF]);
        body.extend_from_slice(b"4hello");
        assert_eq!(
            decode_binary_payload(Bytes::from(body)),
            vec![
                Ok(Packet::Ping { probe: false }),
                Ok(Packet::Message(Message::binary(vec![9u8, 8, 7, 6]))),
                Ok(Packet::Message(Message::text("hello"))),
            ]
        );
    }

    #[test]
    fn xhr2_errors() {
        let cases: [&[u8]; 7] = [
            &[2, 1, 0xFF, b'2'],
            &[0, 0xFF, b'2'],
            &[0, 10, 0xFF, b'2'],
            &[0, 5, 0xFF, b'2'],
            &[0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0xFF],
            &[1, 1, 0xFF, 2],
            &[0, 1],
        ];
        for body in cases {
            let decoded = decode_binary_payload(Bytes::copy_from_slice(body));
            assert!(
                matches!(decoded.last(), Some(Err(_))),
                "{body:?} gave {decoded:?}"
            );
        }
        assert_eq!(
            decode_binary_payload(Bytes::new()),
            vec![Err(DecodeError::Empty)]
        );
    }

    #[test]
    fn websocket_binary_needs_the_type_byte() {
        assert_eq!(
            decode_ws_binary(Bytes::from_static(&[4, 1, 2])),
            Ok(Packet::Message(Message::binary(vec![1u8, 2])))
        );
        assert_eq!(
            decode_ws_binary(Bytes::from_static(&[4])),
            Ok(Packet::Message(Message::binary(Vec::new())))
        );
        assert_eq!(decode_ws_binary(Bytes::new()), Err(DecodeError::Empty));
        assert!(decode_ws_binary(Bytes::from_static(&[2, 1])).is_err());
    }

    #[test]
    fn binary_payload_only_when_needed() {
        let t = [text("4a")];
        let b = [text("4a"), Frame::Binary(Bytes::new())];
        assert!(!needs_binary_payload(&t, false));
        assert!(needs_binary_payload(&b, false));
        assert!(!needs_binary_payload(&b, true));
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            any::<String>().prop_map(Message::text),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Message::binary),
        ]
    }

    proptest! {
        #[test]
        fn text_payload_round_trips(messages in proptest::collection::vec(message(), 1..8)) {
            let frames: Vec<Frame> = messages.iter().cloned().map(Frame::from).collect();
            let mut out = Vec::new();
            encode_text_payload(&frames, &mut out);
            let expected: Vec<_> = messages.iter().cloned().map(|m| Ok(Packet::Message(m))).collect();
            prop_assert_eq!(decode_text_payload(&out), expected.clone());
            let mut out = Vec::new();
            encode_binary_payload(&frames, &mut out);
            prop_assert_eq!(decode_binary_payload(Bytes::from(out)), expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_text_payload(&body);
            let _ = decode_binary_payload(Bytes::from(body));
        }
    }
}
