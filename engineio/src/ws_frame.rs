//! Server-to-client WebSocket frames (RFC 6455 §5.2: unmasked, unfragmented), written by the
//! connection task itself so a batch of queued packets becomes one buffer and one write.

use crate::config::Protocol;
use crate::packet::Frame;

const OPCODE_TEXT: u8 = 0x1;
const OPCODE_BINARY: u8 = 0x2;
const FIN: u8 = 0x80;

/// Payloads at least this big are written from their own buffer instead of being copied.
pub(crate) const COPY_LIMIT: usize = 16 << 10;

/// The header of a final frame with `opcode` and a payload of `len` bytes, and its length.
pub(crate) fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = FIN | opcode;
    let n = if len < 126 {
        h[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (h, n)
}

/// The opcode, the prefix and the payload of one queued frame.
pub(crate) fn parts(frame: &Frame, protocol: Protocol) -> (u8, &'static [u8], &[u8]) {
    match (frame, protocol) {
        (Frame::Text(t), _) => (OPCODE_TEXT, &[], t.as_bytes()),
        (Frame::Binary(b), Protocol::V4) => (OPCODE_BINARY, &[], b),
        (Frame::Binary(b), Protocol::V3) => (OPCODE_BINARY, &[crate::v3::MESSAGE_TYPE], b),
    }
}

/// Appends a frame to `out`: header, prefix and payload.
pub(crate) fn put(out: &mut Vec<u8>, opcode: u8, prefix: &[u8], payload: &[u8]) {
    put_header(out, opcode, prefix, payload.len());
    out.extend_from_slice(payload);
}

/// Appends only the header and the prefix of a frame whose payload is written separately.
pub(crate) fn put_header(out: &mut Vec<u8>, opcode: u8, prefix: &[u8], payload_len: usize) {
    let (h, n) = header(opcode, prefix.len() + payload_len);
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(prefix);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    fn tungstenite_text(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        WsFrame::message(s.as_bytes().to_vec(), OpCode::Data(Data::Text), true)
            .format(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn text_frames_match_tungstenite_at_every_length_boundary() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let text = "x".repeat(len);
            let frame = Frame::Text(Utf8Bytes::from(text.clone()));
            let (op, prefix, payload) = parts(&frame, Protocol::V4);
            let mut ours = Vec::new();
            put(&mut ours, op, prefix, payload);
            assert_eq!(ours, tungstenite_text(&text), "length {len}");
        }
    }

    #[test]
    fn binary_frames_and_the_v3_type_byte() {
        let frame = Frame::Binary(Bytes::from_static(&[1, 2, 3]));
        let (op, prefix, payload) = parts(&frame, Protocol::V4);
        let mut v4 = Vec::new();
        put(&mut v4, op, prefix, payload);
        assert_eq!(v4, [0x82, 3, 1, 2, 3]);
        let (op, prefix, payload) = parts(&frame, Protocol::V3);
        let mut v3 = Vec::new();
        put(&mut v3, op, prefix, payload);
        assert_eq!(v3, [0x82, 4, 4, 1, 2, 3]);
    }

    #[test]
    fn a_header_written_apart_from_its_payload() {
        let payload = vec![7u8; 300];
        let mut whole = Vec::new();
        put(&mut whole, OPCODE_BINARY, &[], &payload);
        let mut split = Vec::new();
        put_header(&mut split, OPCODE_BINARY, &[], payload.len());
        assert_eq!(split, [0x82, 126, 1, 44]);
        split.extend_from_slice(&payload);
        assert_eq!(split, whole);
    }
}
