//! Engine.IO v3 framing: text polling payloads (`<length>:<packet>`), XHR2 binary payloads and
//! WebSocket binary frames. Every input goes to all three decoders.
#![no_main]

use bytes::Bytes;
use engineio::fuzzing::{
    decode_v3_binary_payload, decode_v3_text_payload, decode_v3_ws_binary,
    encode_v3_binary_payload, encode_v3_text_payload,
};
use engineio::{DecodeError, Message, Packet};
use libfuzzer_sys::fuzz_target;

/// At most one error, as the last item; the messages decoded.
fn check(decoded: &[Result<Packet, DecodeError>]) -> Vec<Message> {
    let errors = decoded.iter().filter(|r| r.is_err()).count();
    assert!(errors <= 1, "decoding goes on after an error");
    if errors == 1 {
        assert!(
            matches!(decoded.last(), Some(Err(_))),
            "the error is not last"
        );
    }
    decoded
        .iter()
        .filter_map(|r| match r {
            Ok(Packet::Message(m)) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// Messages survive both v3 polling encodings.
fn round_trip(messages: &[Message]) {
    if messages.is_empty() {
        return;
    }
    let expected: Vec<_> = messages
        .iter()
        .map(|m| Ok(Packet::Message(m.clone())))
        .collect();
    let text = encode_v3_text_payload(messages);
    assert_eq!(decode_v3_text_payload(&text), expected);
    let binary = encode_v3_binary_payload(messages);
    assert_eq!(decode_v3_binary_payload(Bytes::from(binary)), expected);
}

fuzz_target!(|data: &[u8]| {
    let text = decode_v3_text_payload(data);
    round_trip(&check(&text));

    let binary = decode_v3_binary_payload(Bytes::copy_from_slice(data));
    assert!(!binary.is_empty());
    round_trip(&check(&binary));

    match decode_v3_ws_binary(Bytes::copy_from_slice(data)) {
        Ok(Packet::Message(Message::Binary(b))) => {
            assert_eq!(data.first(), Some(&4));
            assert_eq!(&data[1..], &b[..]);
        }
        Ok(other) => panic!("a WebSocket binary frame decoded as {other:?}"),
        Err(_) => assert_ne!(data.first(), Some(&4)),
    }
});
