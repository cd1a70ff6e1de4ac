//! One Engine.IO v4 text packet (a WebSocket text frame or a polling record).
#![no_main]

use bytes::Bytes;
use engineio::{DecodeError, Message, Packet, Text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        assert!(Text::from_encoded_bytes(Bytes::copy_from_slice(data)).is_none());
        return;
    };
    let decoded = Packet::decode_text(s);
    match data.first() {
        None => assert_eq!(decoded, Err(DecodeError::Empty)),
        Some(b'0'..=b'6') => assert!(decoded.is_ok(), "{s:?}: {decoded:?}"),
        Some(_) => assert!(matches!(decoded, Err(DecodeError::UnknownType(_)))),
    }
    match &decoded {
        Ok(Packet::Message(Message::Text(t))) => {
            // The text keeps the packet as it came: encoding gives the input back.
            assert_eq!(t.encoded(), s);
            assert_eq!(&Text::from(t.as_str()), t);
            let wrapped = Text::from_encoded_bytes(Bytes::copy_from_slice(data));
            assert_eq!(wrapped.as_ref(), Some(t));
        }
        Ok(Packet::Ping { probe }) => assert_eq!(*probe, s == "2probe"),
        Ok(Packet::Message(Message::Binary(_))) => panic!("binary from a text packet"),
        _ => {}
    }
});
