//! An Engine.IO v4 polling POST body: records joined by `\x1e`, binary as `b`+base64.
#![no_main]

use bytes::Bytes;
use engineio::fuzzing::encode_payload;
use engineio::payload::{decode_payload, RECORD_SEPARATOR};
use engineio::{Message, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded: Vec<_> = decode_payload(Bytes::copy_from_slice(data)).collect();
    let errors = decoded.iter().filter(|r| r.is_err()).count();
    assert!(errors <= 1, "decoding goes on after an error");
    if errors == 1 {
        assert!(
            matches!(decoded.last(), Some(Err(_))),
            "the error is not last"
        );
    } else {
        let records = data.iter().filter(|b| **b == RECORD_SEPARATOR).count() + 1;
        assert_eq!(decoded.len(), records);
    }
    let messages: Vec<Message> = decoded
        .iter()
        .filter_map(|r| match r {
            Ok(Packet::Message(m)) => Some(m.clone()),
            _ => None,
        })
        .collect();
    if messages.is_empty() {
        return;
    }
    // Messages survive encoding and decoding again.
    let encoded = encode_payload(&messages);
    let again: Vec<_> = decode_payload(Bytes::from(encoded.clone())).collect();
    let expected: Vec<_> = messages
        .iter()
        .map(|m| Ok(Packet::Message(m.clone())))
        .collect();
    assert_eq!(again, expected);
    // A body of messages only is in canonical form: it encodes back to itself.
    if errors == 0 && messages.len() == decoded.len() {
        assert_eq!(encoded, data);
    }
});
