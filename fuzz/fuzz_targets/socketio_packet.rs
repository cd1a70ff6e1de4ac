//! Socket.IO packets as a connection receives them: Engine.IO messages in order, text packets
//! parsed and validated, binary packets reassembled from their attachments.
//!
//! Input: messages separated by `\x1e`; a message starting with `b` is a binary message (the
//! bytes after the `b`), any other a text message (the Engine.IO data after its `4`).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use socketio::packet::{Decoder, Packet};

/// The packet, encoded and decoded again, is the same packet.
fn round_trip(packet: &Packet) {
    let (text, attachments) = packet.encode_engine_message();
    assert_eq!(text.first(), Some(&b'4'));
    let Ok(text) = std::str::from_utf8(&text[1..]) else {
        panic!("encoded packet is not UTF-8");
    };
    let mut decoder = Decoder::new();
    let mut again = match decoder.on_text(text) {
        Ok(p) => p,
        Err(e) => panic!("{text:?} does not decode again: {e}"),
    };
    for attachment in attachments {
        assert!(again.is_none(), "complete before its attachments");
        again = match decoder.on_binary(attachment) {
            Ok(p) => p,
            Err(e) => panic!("attachment refused: {e}"),
        };
    }
    assert_eq!(again.as_ref(), Some(packet), "{text:?}");
}

fn complete(mut packet: Packet) {
    assert!(packet.nsp.starts_with('/'), "{:?}", packet.nsp);
    assert!(!packet.nsp.contains(','));
    if !packet.kind.is_binary() {
        assert!(packet.attachments.is_empty());
    }
    round_trip(&packet);
    // The decoder checked the placeholders: putting the binary in place cannot fail.
    if let Err(e) = packet.take_data() {
        panic!("take_data failed on a decoded packet: {e}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new();
    for message in data.split(|b| *b == 0x1e) {
        let result = match message.strip_prefix(b"b") {
            Some(binary) => decoder.on_binary(Bytes::copy_from_slice(binary)),
            None => match std::str::from_utf8(message) {
                Ok(text) => decoder.on_text(text),
                Err(_) => return,
            },
        };
        match result {
            Ok(Some(packet)) => {
                assert!(!decoder.is_reassembling());
                complete(packet);
            }
            Ok(None) => assert!(decoder.remaining_attachments() > 0),
            Err(_) => assert!(!decoder.is_reassembling(), "not reset after an error"),
        }
    }
});
