//! The request's query string, as the server reads `EIO`, `transport`, `sid` and the rest.
#![no_main]

use engineio::fuzzing::query_param;
use engineio::query_pairs;
use libfuzzer_sys::fuzz_target;

/// Percent-encodes every byte but unreserved ASCII.
fn encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let pairs: Vec<(String, String)> = query_pairs(query).collect();
    // `param` finds the first pair of a name.
    for (i, (k, v)) in pairs.iter().enumerate() {
        if k.is_empty() || pairs[..i].iter().any(|(k2, _)| k2 == k) {
            continue;
        }
        assert_eq!(query_param(query, k).as_ref(), Some(v), "{query:?} {k:?}");
    }
    // Encoding the pairs again and parsing gives them back.
    let mut again = String::new();
    for (k, v) in &pairs {
        if !again.is_empty() {
            again.push('&');
        }
        encode(k, &mut again);
        again.push('=');
        encode(v, &mut again);
    }
    let reparsed: Vec<(String, String)> = query_pairs(&again).collect();
    let expected: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, v)| !(k.is_empty() && v.is_empty()))
        .cloned()
        .collect();
    // `=` alone is an empty pair that reads back as (``, ``) too; only `&&` vanishes.
    let reparsed_non_empty: Vec<_> = reparsed
        .into_iter()
        .filter(|(k, v)| !(k.is_empty() && v.is_empty()))
        .collect();
    assert_eq!(reparsed_non_empty, expected, "{query:?} -> {again:?}");
});
