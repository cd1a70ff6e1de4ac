//! chatd commands as they arrive: a Socket.IO EVENT (`2/chat,["message:send",{…}]`), decoded,
//! then its first argument parsed into the command's request and checked.
#![no_main]

use chatd::chat::check_command;
use chatd::protocol;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use socketio::packet::{Decoder, PacketType};

/// Validators that clean their input give a value that they accept unchanged.
fn idempotent(s: &str) {
    if let Ok(name) = protocol::user_name(s) {
        assert_eq!(protocol::user_name(&name).as_ref(), Ok(&name));
    }
    if let Ok(room) = protocol::room_name(s) {
        assert_eq!(protocol::room_name(&room).as_ref(), Ok(&room));
    }
    if let Ok(topic) = protocol::topic(s) {
        assert_eq!(protocol::topic(&topic).as_ref(), Ok(&topic));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(Some(mut packet)) = Decoder::new().on_text(text) else {
        return;
    };
    if packet.kind != PacketType::Event {
        return;
    }
    let Some(Value::Array(mut args)) = packet.data.take() else {
        return;
    };
    if args.is_empty() {
        return;
    }
    let Value::String(name) = args.remove(0) else {
        return;
    };
    let payload = if args.is_empty() {
        Value::Null
    } else {
        args.swap_remove(0)
    };
    if let Value::Object(fields) = &payload {
        for value in fields.values() {
            if let Value::String(s) = value {
                idempotent(s);
            }
        }
    }
    let _ = check_command(&name, payload, 1000);
});
