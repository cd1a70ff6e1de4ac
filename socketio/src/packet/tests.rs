use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

fn ph(n: u64) -> Value {
    json!({"_placeholder": true, "num": n})
}

/// Feeds `text` then `bins` to a fresh decoder; the packet must come out exactly after the last
/// message.
fn decode_all(text: &str, bins: &[&'static [u8]]) -> Result<Packet, DecodeError> {
    let mut d = Decoder::new();
    let mut out = d.on_text(text)?;
    for (i, b) in bins.iter().enumerate() {
        assert!(out.is_none(), "packet complete before attachment {i}");
        out = d.on_binary(Bytes::from_static(b))?;
    }
    assert!(!d.is_reassembling());
    Ok(out.expect("packet incomplete after all attachments"))
}

fn decode_one(text: &str) -> Result<Packet, DecodeError> {
    Decoder::new()
        .on_text(text)
        .map(|p| p.expect("expected a complete packet"))
}

fn pkt(kind: PacketType, nsp: &str, id: Option<u64>, data: Option<Value>) -> Packet {
    Packet {
        kind,
        nsp: nsp.to_owned(),
        id,
        data,
        attachments: Vec::new(),
    }
}

/// Both directions: `packet` encodes to the Engine.IO message `engine_wire` (+ `bins`, as written
/// in the protocol notes, `4` prefix included) and `engine_wire` (+ `bins`) decodes to `packet`.
fn both_ways(engine_wire: &str, bins: &[&'static [u8]], packet: Packet) {
    let wire = engine_wire
        .strip_prefix('4')
        .expect("Engine.IO message prefix");
    assert_eq!(packet.encode_to_string(), wire, "encode {packet:?}");
    let (text, atts) = packet.encode_engine_message();
    assert_eq!(&text[..], engine_wire.as_bytes());
    let expected: Vec<Bytes> = bins.iter().map(|b| Bytes::from_static(b)).collect();
    assert_eq!(atts, expected);
    let decoded = decode_all(wire, bins).unwrap_or_else(|e| panic!("decode {wire}: {e}"));
    assert_eq!(decoded, packet, "decode {wire}");
}

// ---------------------------------------------------------------------------------------------
// B.2 table, both ways
// ---------------------------------------------------------------------------------------------

#[test]
fn b2_connect_root_no_auth() {
    both_ways("40", &[], Packet::connect("/", None));
}

#[test]
fn b2_connect_admin_with_auth() {
    both_ways(
        r#"40/admin,{"token":"123"}"#,
        &[],
        Packet::connect("/admin", Some(json!({"token": "123"}))),
    );
}

#[test]
fn b2_connect_accepted_root() {
    both_ways(
        r#"40{"sid":"wZX3oN0bSVIhsaknAAAI"}"#,
        &[],
        Packet::connect("/", Some(json!({"sid": "wZX3oN0bSVIhsaknAAAI"}))),
    );
}

#[test]
fn b2_connect_accepted_custom() {
    both_ways(
        r#"40/custom,{"sid":"wZX3oN0bSVIhsaknAAAI"}"#,
        &[],
        Packet::connect("/custom", Some(json!({"sid": "wZX3oN0bSVIhsaknAAAI"}))),
    );
}

#[test]
fn b2_connect_with_pid() {
    both_ways(
        r#"40{"sid":"GNpWD7LbGCBNCr8GAAAB","pid":"YHcX2sdAF1z452-HAAAW"}"#,
        &[],
        Packet::connect(
            "/",
            Some(json!({"sid": "GNpWD7LbGCBNCr8GAAAB", "pid": "YHcX2sdAF1z452-HAAAW"})),
        ),
    );
}

#[test]
fn b2_connect_error() {
    both_ways(
        r#"44/random,{"message":"Invalid namespace"}"#,
        &[],
        Packet::connect_error("/random", json!({"message": "Invalid namespace"})),
    );
    both_ways(
        r#"44/auth,{"message":"not authorized","data":{"content":"x"}}"#,
        &[],
        Packet::connect_error(
            "/auth",
            json!({"message": "not authorized", "data": {"content": "x"}}),
        ),
    );
    both_ways(
        r#"44/plain,{"message":"nope"}"#,
        &[],
        Packet::connect_error("/plain", json!({"message": "nope"})),
    );
}

#[test]
fn b2_event() {
    both_ways(
        r#"42["foo"]"#,
        &[],
        Packet::event("/", json!(["foo"]), None),
    );
    both_ways(
        r#"42/admin,["bar"]"#,
        &[],
        Packet::event("/admin", json!(["bar"]), None),
    );
    both_ways(
        r#"42["hello","world","Q81CYwh"]"#,
        &[],
        Packet::event("/", json!(["hello", "world", "Q81CYwh"]), None),
    );
}

#[test]
fn b2_event_with_ack_id() {
    both_ways(
        r#"4212["foo"]"#,
        &[],
        Packet::event("/", json!(["foo"]), Some(12)),
    );
}

#[test]
fn b2_ack() {
    both_ways(r#"4312["bar"]"#, &[], Packet::ack("/", json!(["bar"]), 12));
    both_ways(
        r#"43/admin,13["bar"]"#,
        &[],
        Packet::ack("/admin", json!(["bar"]), 13),
    );
    both_ways(r#"437[]"#, &[], Packet::ack("/", json!([]), 7));
}

#[test]
fn b2_binary_event() {
    let data = Data::Array(vec![
        Data::from("baz"),
        Data::Binary(Bytes::from_static(b"\x01\x02")),
    ]);
    let p = Packet::event("/", data, None);
    assert_eq!(p.kind, PacketType::BinaryEvent);
    both_ways(
        r#"451-["baz",{"_placeholder":true,"num":0}]"#,
        &[b"\x01\x02"],
        p,
    );
}

#[test]
fn b2_binary_event_admin_two_attachments() {
    let data = Data::Array(vec![
        Data::from("baz"),
        Data::Binary(Bytes::from_static(b"a")),
        Data::Binary(Bytes::from_static(b"b")),
    ]);
    both_ways(
        r#"452-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        &[b"a", b"b"],
        Packet::event("/admin", data, None),
    );
}

#[test]
fn b2_binary_ack() {
    let data = Data::Array(vec![
        Data::from("bar"),
        Data::Binary(Bytes::from_static(b"\xff")),
    ]);
    let p = Packet::ack("/", data, 15);
    assert_eq!(p.kind, PacketType::BinaryAck);
    both_ways(
        r#"461-15["bar",{"_placeholder":true,"num":0}]"#,
        &[b"\xff"],
        p,
    );
}

#[test]
fn b2_disconnect() {
    both_ways("41", &[], Packet::disconnect("/"));
    both_ways("41/admin,", &[], Packet::disconnect("/admin"));
}

#[test]
fn b2_binary_with_zero_attachments() {
    let mut p = pkt(PacketType::BinaryEvent, "/", None, Some(json!(["a"])));
    both_ways(r#"450-["a"]"#, &[], p.clone());
    p.kind = PacketType::BinaryAck;
    p.id = Some(3);
    p.data = Some(json!([]));
    both_ways("460-3[]", &[], p);
}

// ---------------------------------------------------------------------------------------------
// Encoder details
// ---------------------------------------------------------------------------------------------

#[test]
fn encode_json_is_compact_ordered_utf8_unescaped_slash() {
    let p = Packet::event(
        "/ñs",
        json!(["é/x", {"b": 1, "a": [1, -2, 1.5]}, "\u{1F600}", "tab\t\"q\""]),
        None,
    );
    let s = p.encode_to_string();
    assert_eq!(
        s,
        "2/ñs,[\"é/x\",{\"b\":1,\"a\":[1,-2,1.5]},\"\u{1F600}\",\"tab\\t\\\"q\\\"\"]"
    );
    assert_eq!(decode_one(&s).unwrap(), p);
}

#[test]
fn encode_relays_client_json_byte_exactly() {
    let wire = r#"2/x,["ev",{"z":1,"a":{"y":[true,false,null]},"m":"ü/\\"},1,-0.5,12345678901234]"#;
    let p = decode_one(wire).unwrap();
    assert_eq!(p.encode_to_string(), wire);
}

#[test]
fn encode_into_appends_after_prefix() {
    let mut out = b"4".to_vec();
    Packet::event("/", json!(["foo"]), None).encode_into(&mut out);
    assert_eq!(out, br#"42["foo"]"#);
    // Appends: a second packet follows the first.
    Packet::disconnect("/a").encode_into(&mut out);
    assert_eq!(out, br#"42["foo"]1/a,"#);
}

#[test]
fn encode_promotes_event_and_ack_with_attachments() {
    let mut p = pkt(PacketType::Event, "/", None, Some(json!(["a", ph(0)])));
    p.attachments.push(Bytes::from_static(b"x"));
    assert_eq!(p.wire_type(), PacketType::BinaryEvent);
    assert_eq!(
        p.encode_to_string(),
        r#"51-["a",{"_placeholder":true,"num":0}]"#
    );
    p.kind = PacketType::Ack;
    p.id = Some(1);
    assert_eq!(
        p.encode_to_string(),
        r#"61-1["a",{"_placeholder":true,"num":0}]"#
    );
    let (_, atts) = p.clone().into_engine_message();
    assert_eq!(atts.len(), 1);
}

#[test]
fn encode_drops_attachments_of_non_binary_types() {
    let mut p = Packet::connect("/", None);
    p.attachments.push(Bytes::from_static(b"x"));
    let (text, atts) = p.encode_engine_message();
    assert_eq!(&text[..], b"40");
    assert!(atts.is_empty());
    assert!(p.into_engine_message().1.is_empty());
}

#[test]
fn encode_max_id() {
    let p = Packet::event("/", json!(["a"]), Some(u64::MAX));
    let s = p.encode_to_string();
    assert_eq!(s, r#"218446744073709551615["a"]"#);
    assert_eq!(decode_one(&s).unwrap(), p);
}

#[test]
fn placeholder_numbering_is_depth_first() {
    let b = |s: &'static [u8]| Data::Binary(Bytes::from_static(s));
    let data = Data::Array(vec![
        Data::from("ev"),
        Data::Object(vec![
            (
                "x".into(),
                Data::Array(vec![b(b"0"), Data::Json(json!(1)), b(b"1")]),
            ),
            ("y".into(), b(b"2")),
        ]),
        b(b"3"),
    ]);
    let (json, atts) = deconstruct(data.clone());
    assert_eq!(
        serde_json::to_string(&json).unwrap(),
        concat!(
            r#"["ev",{"x":[{"_placeholder":true,"num":0},1,{"_placeholder":true,"num":1}],"#,
            r#""y":{"_placeholder":true,"num":2}},{"_placeholder":true,"num":3}]"#
        )
    );
    let expected: Vec<Bytes> = [b"0", b"1", b"2", b"3"]
        .iter()
        .map(|s| Bytes::from_static(*s))
        .collect();
    assert_eq!(atts, expected);
    assert_eq!(reconstruct(json, &atts).unwrap(), data.normalized());
}

#[test]
fn deconstruct_into_continues_numbering() {
    let mut atts = vec![Bytes::from_static(b"a")];
    let v = deconstruct_into(Data::Binary(Bytes::from_static(b"b")), &mut atts);
    assert_eq!(v, ph(1));
    assert_eq!(atts.len(), 2);
}

#[test]
fn normalized_collapses_binary_free_parts() {
    let d = Data::Array(vec![
        Data::Json(json!(1)),
        Data::Object(vec![("k".into(), Data::Json(json!("v")))]),
    ]);
    assert!(!d.has_binary());
    assert_eq!(d.normalized(), Data::Json(json!([1, {"k": "v"}])));
    let d = Data::Array(vec![Data::Binary(Bytes::new()), Data::Array(vec![])]);
    assert!(d.has_binary());
    assert_eq!(
        d.normalized(),
        Data::Array(vec![Data::Binary(Bytes::new()), Data::Json(json!([]))])
    );
}

// ---------------------------------------------------------------------------------------------
// Lenient decoding that must be accepted (B.3)
// ---------------------------------------------------------------------------------------------

#[test]
fn namespace_without_trailing_comma() {
    assert_eq!(
        decode_one("0/custom").unwrap(),
        pkt(PacketType::Connect, "/custom", None, None)
    );
    assert_eq!(
        decode_one("1/custom").unwrap(),
        pkt(PacketType::Disconnect, "/custom", None, None)
    );
    assert_eq!(decode_one("0/random").unwrap().nsp, "/random");
    // Echoed with the comma added.
    let p = Packet::connect_error(
        decode_one("0/random").unwrap().nsp,
        json!({"message": "Invalid namespace"}),
    );
    assert_eq!(
        p.encode_to_string(),
        r#"4/random,{"message":"Invalid namespace"}"#
    );
}

#[test]
fn missing_comma_swallows_data_into_namespace() {
    let p = decode_one(r#"0/custom{"a":1}"#).unwrap();
    assert_eq!(p.nsp, r#"/custom{"a":1}"#);
    assert_eq!(p.data, None);
}

#[test]
fn namespace_with_query_is_just_a_name() {
    let p = decode_one("0/custom?x=1,").unwrap();
    assert_eq!(p.nsp, "/custom?x=1");
    assert_eq!(p.data, None);
}

#[test]
fn event_name_may_be_a_number() {
    let p = decode_one("2[1,2]").unwrap();
    assert_eq!(p.data, Some(json!([1, 2])));
    assert!(decode_one("2[1.5]").is_ok());
}

#[test]
fn unknown_ack_id_is_fine_for_the_codec() {
    let p = decode_one("3999[1]").unwrap();
    assert_eq!(p.id, Some(999));
}

#[test]
fn ack_id_is_read_for_every_type() {
    assert_eq!(
        decode_one("0123").unwrap(),
        pkt(PacketType::Connect, "/", Some(123), None)
    );
    assert_eq!(
        decode_one("112").unwrap(),
        pkt(PacketType::Disconnect, "/", Some(12), None)
    );
    assert_eq!(decode_one("0/a,5{}").unwrap().id, Some(5));
}

#[test]
fn connect_error_may_be_a_string() {
    assert_eq!(
        decode_one(r#"4/nsp,"Not authorized""#).unwrap().data,
        Some(json!("Not authorized"))
    );
}

#[test]
fn json_whitespace_is_tolerated_like_json_parse() {
    assert_eq!(decode_one(r#"2 ["a"] "#).unwrap().data, Some(json!(["a"])));
}

#[test]
fn non_reserved_near_miss_names_are_fine() {
    for name in ["Connect", "connected", "disconnect ", "message", ""] {
        let wire = format!("2[{}]", serde_json::to_string(name).unwrap());
        assert!(decode_one(&wire).is_ok(), "{wire}");
    }
}

#[test]
fn placeholder_like_objects_in_text_packets_are_plain_json() {
    let mut p = decode_one(r#"2["a",{"_placeholder":true,"num":7}]"#).unwrap();
    assert_eq!(
        p.take_data().unwrap(),
        Some(Data::Json(json!(["a", ph(7)])))
    );
}

#[test]
fn non_placeholder_objects_in_binary_packets() {
    let p = decode_all(
        r#"51-["a",{"_placeholder":false,"num":99},{"_placeholder":"true"},{"_placeholder":true,"num":0,"extra":1}]"#,
        &[b"z"],
    );
    let mut p = p.unwrap();
    assert_eq!(
        p.take_data().unwrap(),
        Some(Data::Array(vec![
            Data::from("a"),
            Data::Json(json!({"_placeholder": false, "num": 99})),
            Data::Json(json!({"_placeholder": "true"})),
            Data::Binary(Bytes::from_static(b"z")),
        ]))
    );
    assert!(p.attachments.is_empty() && p.data.is_none());
}

#[test]
fn placeholder_reused_and_nested() {
    let mut p = decode_all(
        r#"62-/n,9[{"a":[{"b":{"_placeholder":true,"num":1}}]},{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]"#,
        &[b"zero", b"one"],
    )
    .unwrap();
    assert_eq!(
        (p.kind, p.nsp.as_str(), p.id),
        (PacketType::BinaryAck, "/n", Some(9))
    );
    let one = || Data::Binary(Bytes::from_static(b"one"));
    assert_eq!(
        p.take_data().unwrap(),
        Some(Data::Array(vec![
            Data::Object(vec![(
                "a".into(),
                Data::Array(vec![Data::Object(vec![("b".into(), one())])])
            )]),
            one(),
            Data::Binary(Bytes::from_static(b"zero")),
        ]))
    );
}

#[test]
fn binary_zero_count_is_complete_at_once() {
    let mut d = Decoder::new();
    let p = d.on_text(r#"50-["a",{"x":1}]"#).unwrap().unwrap();
    assert_eq!(p.kind, PacketType::BinaryEvent);
    assert!(!d.is_reassembling());
    assert!(matches!(
        d.on_binary(Bytes::new()),
        Err(DecodeError::UnexpectedBinary)
    ));
}

#[test]
fn attachment_count_with_leading_zero_and_at_max() {
    assert!(decode_all(r#"501-["a",{"_placeholder":true,"num":0}]"#, &[b"x"]).is_ok());
    let text = format!(
        "510-[\"a\"{}]",
        (0..10).map(|i| format!(",{}", ph(i))).collect::<String>()
    );
    let bins: Vec<&'static [u8]> = vec![b"b"; 10];
    let p = decode_all(&text, &bins).unwrap();
    assert_eq!(p.attachments.len(), 10);
    assert_eq!(p.encode_to_string(), text);
}

#[test]
fn configurable_max_attachments() {
    let mut d = Decoder::with_max_attachments(2);
    assert_eq!(d.max_attachments(), 2);
    assert!(matches!(
        d.on_text(r#"53-["a"]"#),
        Err(DecodeError::TooManyAttachments { max: 2 })
    ));
    assert!(d.on_text(r#"52-["a"]"#).unwrap().is_none());
    assert_eq!(d.remaining_attachments(), 2);
    assert!(d.on_binary(Bytes::new()).unwrap().is_none());
    assert_eq!(d.remaining_attachments(), 1);
    assert!(d.on_binary(Bytes::new()).unwrap().is_some());
    assert_eq!(d.remaining_attachments(), 0);

    // A huge cap must not turn into a huge allocation.
    let mut d = Decoder::with_max_attachments(usize::MAX);
    assert!(d.on_text(r#"5999999999999-["a"]"#).unwrap().is_none());
    assert_eq!(d.remaining_attachments(), 999999999999);
    d.reset();
    assert!(!d.is_reassembling());
}

// ---------------------------------------------------------------------------------------------
// Malformed input (B.3): each is an error, never a panic
// ---------------------------------------------------------------------------------------------

macro_rules! assert_err {
    ($wire:expr, $pat:pat) => {{
        let wire: &str = $wire;
        let r = Decoder::new().on_text(wire);
        assert!(matches!(r, Err($pat)), "{wire:?} gave {r:?}");
    }};
}

#[test]
fn malformed_empty() {
    assert_err!("", DecodeError::Empty);
}

#[test]
fn malformed_type() {
    for wire in ["7", "8[]", "9", "a", "-1", " 2[\"a\"]", "/", "[", "é2"] {
        assert_err!(wire, DecodeError::UnknownType(_));
    }
    assert!(matches!(
        Decoder::new().on_text("é"),
        Err(DecodeError::UnknownType('é'))
    ));
}

#[test]
fn malformed_attachment_count() {
    for wire in [
        "5",
        "6",
        "5-",
        r#"5-["a"]"#,
        r#"5["a"]"#,
        r#"51["a"]"#,
        r#"5a-["a"]"#,
        r#"5 1-["a"]"#,
        r#"51 -["a"]"#,
        r#"5+1-["a"]"#,
        r#"51.0-["a"]"#,
        r#"5/admin,1-["a"]"#,
        "61",
    ] {
        assert_err!(wire, DecodeError::InvalidAttachmentCount);
    }
}

#[test]
fn malformed_too_many_attachments() {
    assert_err!(r#"511-["a"]"#, DecodeError::TooManyAttachments { max: 10 });
    assert_err!(r#"6100-[]"#, DecodeError::TooManyAttachments { .. });
    assert_err!(
        r#"599999999999999999999999999999-["a"]"#,
        DecodeError::TooManyAttachments { .. }
    );
}

#[test]
fn malformed_ack_id_overflow() {
    assert_err!(r#"218446744073709551616["a"]"#, DecodeError::InvalidAckId);
    assert_err!(
        r#"3/a,99999999999999999999999[]"#,
        DecodeError::InvalidAckId
    );
    assert_err!("099999999999999999999", DecodeError::InvalidAckId);
}

#[test]
fn malformed_connect_payload() {
    for wire in [
        r#"0"abc""#,
        "0[1]",
        "0[]",
        "0null",
        "0true",
        r#"0/admin,"x""#,
        r#"0/admin,[{}]"#,
        "0/a,-1",
    ] {
        assert_err!(wire, DecodeError::InvalidPayload(PacketType::Connect));
    }
    assert_err!("0{", DecodeError::InvalidJson(_));
    assert_err!(r#"0{"a":1}x"#, DecodeError::InvalidJson(_));
    assert_err!(r#"0{"a":1}{}"#, DecodeError::InvalidJson(_));
}

#[test]
fn malformed_disconnect_payload() {
    for wire in ["1{}", "1/admin,{}", r#"1"x""#, "1[]", "1/a,null"] {
        assert_err!(wire, DecodeError::InvalidPayload(PacketType::Disconnect));
    }
    assert_err!("1 ", DecodeError::InvalidJson(_));
    assert_err!("1/a,x", DecodeError::InvalidJson(_));
}

#[test]
fn malformed_event_payload() {
    for wire in [
        "2",
        "2/admin,",
        "21",
        "2[]",
        "2{}",
        r#"2"foo""#,
        "2null",
        "21[null]",
        "2[true]",
        "2[{}]",
        r#"2[["a"]]"#,
        "2/a,3{}",
        r#"50-[]"#,
        r#"50-{"a":1}"#,
        r#"50-"#,
    ] {
        assert_err!(wire, DecodeError::InvalidPayload(_));
    }
}

#[test]
fn malformed_event_reserved_names() {
    for name in RESERVED_EVENTS {
        assert!(is_reserved_event(name));
        assert_err!(&format!(r#"2["{name}",1]"#), DecodeError::ReservedEvent(_));
        assert_err!(
            &format!(r#"2/admin,5["{name}"]"#),
            DecodeError::ReservedEvent(_)
        );
        assert_err!(&format!(r#"50-["{name}"]"#), DecodeError::ReservedEvent(_));
    }
}

#[test]
fn malformed_event_json() {
    for wire in [
        r#"2["a""#,
        r#"2["a"]x"#,
        r#"2["a"]]"#,
        r#"2["a"],"#,
        r#"2["a"][]"#,
        "2 ",
        r#"2['a']"#,
        r#"2[a]"#,
        r#"2["a",]"#,
        "2/admin,,[\"a\"]",
        "2/admin,x[\"a\"]",
        r#"2[NaN]"#,
        r#"2["a",1e400]"#,
    ] {
        assert_err!(wire, DecodeError::InvalidJson(_));
    }
}

#[test]
fn malformed_ack_payload() {
    for wire in [
        "3", "31", "3/a,1", "31{}", r#"31"x""#, "31null", "31 1", "60-1{}",
    ] {
        assert_err!(wire, DecodeError::InvalidPayload(_));
    }
}

#[test]
fn malformed_connect_error_payload() {
    for wire in ["4", "4/a,", "4[1]", "41", "4null", "4/a,true"] {
        assert_err!(wire, DecodeError::InvalidPayload(PacketType::ConnectError));
    }
}

#[test]
fn malformed_placeholder_out_of_range() {
    assert_err!(
        r#"51-["a",{"_placeholder":true,"num":5}]"#,
        DecodeError::PlaceholderOutOfRange { num: 5, count: 1 }
    );
    assert_err!(
        r#"51-["a",{"_placeholder":true,"num":1}]"#,
        DecodeError::PlaceholderOutOfRange { num: 1, count: 1 }
    );
    assert_err!(
        r#"50-["a",{"_placeholder":true,"num":0}]"#,
        DecodeError::PlaceholderOutOfRange { num: 0, count: 0 }
    );
    // At depth.
    assert_err!(
        r#"62-/x,1[{"a":[[{"b":{"_placeholder":true,"num":2}}]]}]"#,
        DecodeError::PlaceholderOutOfRange { num: 2, count: 2 }
    );
    assert_err!(
        r#"51-["a",{"_placeholder":true,"num":18446744073709551615}]"#,
        DecodeError::PlaceholderOutOfRange { .. }
    );
}

#[test]
fn malformed_placeholder_objects() {
    for obj in [
        r#"{"_placeholder":true}"#,
        r#"{"_placeholder":true,"num":"0"}"#,
        r#"{"_placeholder":true,"num":-1}"#,
        r#"{"_placeholder":true,"num":0.5}"#,
        r#"{"_placeholder":true,"num":0.0}"#,
        r#"{"_placeholder":true,"num":null}"#,
        r#"{"_placeholder":true,"num":[0]}"#,
        r#"{"_placeholder":true,"num":1e400}"#,
    ] {
        let wire = format!(r#"51-["a",{{"x":[{obj}]}}]"#);
        let r = Decoder::new().on_text(&wire);
        assert!(
            matches!(
                r,
                Err(DecodeError::InvalidPlaceholder | DecodeError::InvalidJson(_))
            ),
            "{wire}: {r:?}"
        );
    }
    assert_err!(
        r#"51-["a",{"_placeholder":true,"num":-1}]"#,
        DecodeError::InvalidPlaceholder
    );
}

#[test]
fn reconstruct_rejects_bad_placeholders() {
    assert!(matches!(
        reconstruct(json!([ph(0)]), &[]),
        Err(DecodeError::PlaceholderOutOfRange { num: 0, count: 0 })
    ));
    assert!(matches!(
        reconstruct(
            json!({"a": {"_placeholder": true, "num": "x"}}),
            &[Bytes::new()]
        ),
        Err(DecodeError::InvalidPlaceholder)
    ));
    let mut p = pkt(
        PacketType::BinaryEvent,
        "/",
        None,
        Some(json!(["a", ph(3)])),
    );
    assert!(p.take_data().is_err());
}

#[test]
fn reassembly_text_while_pending_is_an_error() {
    let mut d = Decoder::new();
    assert!(d
        .on_text(r#"52-["a",{"_placeholder":true,"num":0}]"#)
        .unwrap()
        .is_none());
    assert!(d.on_binary(Bytes::from_static(b"1")).unwrap().is_none());
    assert!(matches!(
        d.on_text(r#"2["b"]"#),
        Err(DecodeError::UnexpectedText)
    ));
    // The decoder was reset: it works again (the caller would have closed the connection).
    assert!(!d.is_reassembling());
    assert!(d.on_text(r#"2["b"]"#).unwrap().is_some());
}

#[test]
fn reassembly_binary_without_pending_is_an_error() {
    let mut d = Decoder::new();
    assert!(matches!(
        d.on_binary(Bytes::from_static(b"x")),
        Err(DecodeError::UnexpectedBinary)
    ));
    assert!(d.on_text(r#"2["a"]"#).unwrap().is_some());
    assert!(matches!(
        d.on_binary(Bytes::from_static(b"x")),
        Err(DecodeError::UnexpectedBinary)
    ));
    // One too many after a completed binary packet.
    assert!(d
        .on_text(r#"61-1[{"_placeholder":true,"num":0}]"#)
        .unwrap()
        .is_none());
    assert!(d.on_binary(Bytes::new()).unwrap().is_some());
    assert!(matches!(
        d.on_binary(Bytes::new()),
        Err(DecodeError::UnexpectedBinary)
    ));
}

#[test]
fn errors_reset_the_decoder() {
    let mut d = Decoder::new();
    assert!(d.on_text(r#"51-["a"]"#).unwrap().is_none());
    assert!(d.on_text("x").is_err());
    assert!(!d.is_reassembling());
    assert!(d.on_text(r#"2["ok"]"#).unwrap().is_some());
}

#[test]
fn errors_display() {
    let e = Decoder::new().on_text("").unwrap_err();
    assert_eq!(e.to_string(), "empty packet");
    let e = Decoder::new().on_text(r#"2["x""#).unwrap_err();
    assert!(e.to_string().starts_with("invalid JSON payload"));
    assert!(std::error::Error::source(&e).is_some());
}

// ---------------------------------------------------------------------------------------------
// Deep nesting
// ---------------------------------------------------------------------------------------------

fn nested(depth: usize, inner: &str) -> String {
    format!("{}{}{}", "[".repeat(depth), inner, "]".repeat(depth))
}

#[test]
fn deep_nesting_within_serde_limit_works() {
    // serde_json accepts 127 nested containers: the event array, 125 arrays, the placeholder.
    let inner_depth_ok = format!(
        r#"51-["a",{}]"#,
        nested(125, r#"{"_placeholder":true,"num":0}"#)
    );
    let mut p = decode_all(&inner_depth_ok, &[b"deep"]).unwrap();
    let data = p.take_data().unwrap().unwrap();
    assert!(data.has_binary());
    let (v, atts) = deconstruct(data);
    assert_eq!(atts.len(), 1);
    let p = Packet {
        kind: PacketType::BinaryEvent,
        nsp: "/".into(),
        id: None,
        data: Some(v),
        attachments: atts,
    };
    assert_eq!(p.encode_to_string(), inner_depth_ok);
}

#[test]
fn deep_nesting_beyond_limit_is_an_error_not_a_crash() {
    // One level more than the test above.
    let wire = format!(r#"2["a",{}]"#, nested(126, "{}"));
    assert_err!(&wire, DecodeError::InvalidJson(_));
    for depth in [127, 1_000, 100_000] {
        let wire = format!(r#"2["a",{}]"#, nested(depth, ""));
        assert_err!(&wire, DecodeError::InvalidJson(_));
        let wire = format!(
            r#"51-["a",{}]"#,
            nested(depth, r#"{"_placeholder":true,"num":0}"#)
        );
        assert_err!(&wire, DecodeError::InvalidJson(_));
        // CONNECT's object is the only container: 128 nested objects are one too many.
        let objs = format!("{}1{}", r#"{"a":"#.repeat(depth + 1), "}".repeat(depth + 1));
        assert_err!(&format!("0{objs}"), DecodeError::InvalidJson(_));
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

/// JSON numbers that survive a text round trip exactly (no float parsing ULP issues).
fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1000i32..1000).prop_map(|n| Value::from(f64::from(n) / 8.0)),
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    // No `_placeholder` key: a user object that looks like a placeholder is ambiguous by design.
    prop_oneof!["[a-z]{0,6}", "\\PC{0,6}"]
        .prop_filter("not a placeholder key", |k| k != "_placeholder")
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        "\\PC{0,12}".prop_map(Value::String),
        "[\"\\\\/\\t\\n\\u{0}-\\u{1f}\\u{7f}é😀]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..16).prop_map(Bytes::from)
}

fn arb_data() -> impl Strategy<Value = Data> {
    let leaf = prop_oneof![
        3 => arb_json().prop_map(Data::Json),
        1 => arb_bytes().prop_map(Data::Binary),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Data::Array),
            prop::collection::vec((arb_key(), inner), 0..5).prop_map(|kv| {
                // Unique keys, so that the Object → JSON map conversion loses nothing.
                let mut seen = std::collections::HashSet::new();
                Data::Object(
                    kv.into_iter()
                        .filter(|(k, _)| seen.insert(k.clone()))
                        .collect(),
                )
            }),
        ]
    })
}

fn arb_nsp() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_owned()),
        "/[a-zA-Z0-9_\\-?#=&.é/{}\\[\\]\"]{0,10}",
    ]
}

fn arb_event_name() -> impl Strategy<Value = Value> {
    prop_oneof![
        "\\PC{0,10}"
            .prop_filter("reserved", |s| !is_reserved_event(s))
            .prop_map(Value::String),
        arb_number(),
    ]
}

fn arb_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((arb_key(), arb_json()), 0..5)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()))
}

/// Data for an event: `[name, …args]`, args possibly holding binary (at most 10 buffers).
fn arb_event_data() -> impl Strategy<Value = Data> {
    (arb_event_name(), prop::collection::vec(arb_data(), 0..4))
        .prop_map(|(name, args)| {
            let mut items = vec![Data::Json(name)];
            items.extend(args);
            Data::Array(items)
        })
        .prop_filter("at most 10 attachments", |d| count_binary(d) <= 10)
}

fn arb_ack_data() -> impl Strategy<Value = Data> {
    prop::collection::vec(arb_data(), 0..4)
        .prop_map(Data::Array)
        .prop_filter("at most 10 attachments", |d| count_binary(d) <= 10)
}

fn count_binary(d: &Data) -> usize {
    match d {
        Data::Json(_) => 0,
        Data::Binary(_) => 1,
        Data::Array(items) => items.iter().map(count_binary).sum(),
        Data::Object(kv) => kv.iter().map(|(_, d)| count_binary(d)).sum(),
    }
}

/// Random valid packets, in the normalized form the decoder produces.
fn arb_packet() -> impl Strategy<Value = (Packet, Option<Data>)> {
    let id = prop::option::of(any::<u64>());
    prop_oneof![
        (arb_nsp(), id.clone(), prop::option::of(arb_object())).prop_map(|(nsp, id, data)| {
            let mut p = Packet::connect(nsp, data);
            p.id = id;
            (p, None)
        }),
        (arb_nsp(), id.clone()).prop_map(|(nsp, id)| {
            let mut p = Packet::disconnect(nsp);
            p.id = id;
            (p, None)
        }),
        (arb_nsp(), id.clone(), arb_event_data(), any::<bool>()).prop_map(
            |(nsp, id, data, force_binary)| {
                let mut p = Packet::event(nsp, data.clone(), id);
                if force_binary {
                    p.kind = PacketType::BinaryEvent;
                }
                (p, Some(data))
            }
        ),
        (arb_nsp(), any::<u64>(), arb_ack_data(), any::<bool>()).prop_map(
            |(nsp, id, data, force_binary)| {
                let mut p = Packet::ack(nsp, data.clone(), id);
                if force_binary {
                    p.kind = PacketType::BinaryAck;
                }
                (p, Some(data))
            }
        ),
        (
            arb_nsp(),
            id,
            prop_oneof!["\\PC{0,10}".prop_map(Value::String), arb_object()]
        )
            .prop_map(|(nsp, id, data)| {
                let mut p = Packet::connect_error(nsp, data);
                p.id = id;
                (p, None)
            }),
    ]
}

/// Messages fed to the decoder by the fuzz-style property: text or binary.
#[derive(Debug, Clone)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
}

fn arb_wireish() -> impl Strategy<Value = String> {
    // Strings close to the grammar, to reach deep into the parser.
    let head = prop_oneof![
        "[0-6]",
        "[56][0-9]{0,3}-?",
        "[0-9]{0,3}",
        Just(String::new())
    ];
    let nsp = prop_oneof![Just(String::new()), "/[a-z,{}\"]{0,5},?"];
    let id = "[0-9]{0,22}";
    let body = prop_oneof![
        Just(String::new()),
        arb_json().prop_map(|v| v.to_string()),
        "[\\[\\]{}\",:0-9a-z_ .\\-]{0,24}",
        Just(r#"["a",{"_placeholder":true,"num":0}]"#.to_owned()),
        (0u64..20, "[a-z0-9\"\\-.]{0,4}")
            .prop_map(|(n, junk)| format!(r#"["a",{{"_placeholder":true,"num":{n}{junk}}}]"#)),
    ];
    (head, nsp, id, body).prop_map(|(h, n, i, b)| format!("{h}{n}{i}{b}"))
}

fn arb_msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        3 => arb_wireish().prop_map(Msg::Text),
        1 => any::<String>().prop_map(Msg::Text),
        1 => prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| Msg::Text(String::from_utf8_lossy(&b).into_owned())),
        2 => prop::collection::vec(any::<u8>(), 0..8).prop_map(Msg::Binary),
    ]
}

#[test]
fn lone_surrogate_escapes_become_replacement_characters() {
    // Paired surrogates decode as usual.
    let p = decode_one(r#"2["x","\ud83d\ude00"]"#).unwrap();
    assert_eq!(p.data, Some(json!(["x", "\u{1F600}"])));
    // Unpaired ones (valid JSON, accepted by the reference parser) become U+FFFD.
    let p = decode_one(r#"2["x","a\ud83d","\ude00b","\ud83d\ud83d\ude00",{"\udfff":1}]"#).unwrap();
    assert_eq!(
        p.data,
        Some(json!(["x", "a\u{FFFD}", "\u{FFFD}b", "\u{FFFD}\u{1F600}", {"\u{FFFD}": 1}]))
    );
    // An escaped backslash before `u` is not an escape of its own.
    let p = decode_one(r#"2["x","\\ud83d"]"#).unwrap();
    assert_eq!(p.data, Some(json!(["x", "\\ud83d"])));
    // Still invalid JSON is still an error.
    assert!(decode_one(r#"2["x","\ud83d"#).is_err());
    assert!(decode_one(r#"2["x","\ud8"]"#).is_err());
}

#[test]
fn numbers_decode_to_the_nearest_double() {
    // Found by the fuzzer (fuzz/seeds/socketio_packet/crash-float-roundtrip): a best-effort
    // float parse was one unit off, so a relayed number changed value on its way through.
    let p = decode_one("2[\"x\",1.2345678901234567e+30,123456789012345678901234567839]").unwrap();
    let expected = [1.2345678901234567e30, 123456789012345678901234567839.0];
    let Some(Value::Array(items)) = &p.data else {
        panic!("{p:?}")
    };
    let got: Vec<Option<f64>> = items[1..].iter().map(Value::as_f64).collect();
    assert_eq!(got, expected.map(Some));
    // Encoded and decoded again, the numbers stay the same.
    assert_eq!(decode_one(&p.encode_to_string()).unwrap(), p);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_encode_decode_round_trip((packet, original) in arb_packet()) {
        let (text, atts) = packet.encode_engine_message();
        prop_assert_eq!(text[0], b'4');
        let text = std::str::from_utf8(&text[1..]).expect("encoder output is UTF-8");
        prop_assert_eq!(text, packet.encode_to_string());

        let mut d = Decoder::new();
        let mut out = d.on_text(text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        for a in &atts {
            prop_assert!(out.is_none());
            out = d.on_binary(a.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        prop_assert!(!d.is_reassembling());
        let mut decoded = out.expect("complete");
        prop_assert_eq!(&decoded, &packet);

        // The application data comes back (binary in place, canonical form).
        if let Some(original) = original {
            let data = decoded.take_data().map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(data, Some(original.normalized()));
        }
    }

    #[test]
    fn prop_deconstruct_reconstruct(data in arb_data()) {
        let (json, atts) = deconstruct(data.clone());
        prop_assert_eq!(atts.len(), count_binary(&data));
        // Placeholders are numbered in order of appearance in the serialized JSON (depth-first).
        let s = serde_json::to_string(&json).expect("serializable");
        let mut from = 0;
        for i in 0..atts.len() {
            let needle = format!(r#"{{"_placeholder":true,"num":{i}}}"#);
            let at = s[from..].find(&needle);
            prop_assert!(at.is_some(), "placeholder {} missing in {}", i, s);
            from += at.unwrap_or(0) + needle.len();
        }
        let back = reconstruct(json, &atts).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, data.normalized());
    }

    #[test]
    fn prop_decoder_never_panics(msgs in prop::collection::vec(arb_msg(), 1..12)) {
        let mut d = Decoder::with_max_attachments(3);
        for m in msgs {
            let r = match m {
                Msg::Text(s) => d.on_text(&s),
                Msg::Binary(b) => d.on_binary(Bytes::from(b)),
            };
            if let Ok(Some(mut p)) = r {
                // Whatever was accepted re-encodes and takes its data without panicking...
                let s = p.encode_to_string();
                prop_assert!(!s.is_empty());
                prop_assert!(p.take_data().is_ok());
            }
        }
    }

    #[test]
    fn prop_accepted_text_packets_reencode_identically(s in arb_wireish()) {
        // Anything accepted as a complete packet re-encodes to an equivalent packet.
        if let Ok(Some(p)) = Decoder::new().on_text(&s) {
            let again = p.encode_to_string();
            let p2 = Decoder::new().on_text(&again);
            prop_assert!(matches!(&p2, Ok(Some(q)) if *q == p), "{} -> {} -> {:?}", s, again, p2);
        }
    }

    #[test]
    fn prop_arbitrary_strings_never_panic(s in any::<String>()) {
        let _ = Decoder::new().on_text(&s);
        let _ = Decoder::with_max_attachments(usize::MAX).on_text(&s);
    }
}

/// A double as JSON text, through the decoder, and back: the same bits and the same text.
fn double_round_trip(x: f64) -> Result<(), String> {
    let number = serde_json::to_string(&x).map_err(|e| e.to_string())?;
    let mut p = decode_one(&format!(r#"2["n",{number}]"#)).map_err(|e| e.to_string())?;
    let Some(Data::Json(data)) = p.take_data().map_err(|e| e.to_string())? else {
        return Err("no JSON data".into());
    };
    let back = data[1]
        .as_f64()
        .ok_or_else(|| format!("no number in {data:?}"))?;
    if back.to_bits() != x.to_bits() {
        return Err(format!("{number} came back as {back:?}"));
    }
    let encoded = Packet::event("/", data, None).encode_to_string();
    if encoded != format!(r#"2["n",{number}]"#) {
        return Err(format!("{number} re-encoded as {encoded}"));
    }
    Ok(())
}

#[test]
fn doubles_come_back_exactly() {
    for x in [
        1.5e-300,
        0.1,
        1e21,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        -2.2250738585072014e-308,
    ] {
        double_round_trip(x).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn prop_doubles_come_back_exactly(bits in any::<u64>()) {
        let x = f64::from_bits(bits);
        prop_assume!(x.is_finite());
        double_round_trip(x).map_err(TestCaseError::fail)?;
    }
}
