//! Request headers: the copy a session keeps (`engineio::Headers`), what the server reads from
//! them (upgrade, origin, accept-encoding) and chatd's `X-Forwarded-For`.
//!
//! Input: `name:value` lines; lines hyper would refuse (bad name or value bytes) are left out.
#![no_main]

use engineio::fuzzing::request_headers;
use engineio::Headers;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut map = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }

    let headers = Headers::from(&map);
    assert_eq!(headers.len(), map.len());
    assert_eq!(headers.is_empty(), map.is_empty());
    let ours: Vec<(&str, &[u8])> = headers.iter().collect();
    let theirs: Vec<(&str, &[u8])> = map
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(headers.to_header_map(), map);
    for name in map.keys() {
        let upper = name.as_str().to_ascii_uppercase();
        let first = map.get(name).map(HeaderValue::as_bytes);
        assert_eq!(headers.get(name.as_str()), first);
        assert_eq!(headers.get(&upper), first);
        let all: Vec<&[u8]> = map
            .get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        assert_eq!(headers.get_all(&upper).collect::<Vec<_>>(), all);
        let text = map.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(headers.get_str(name.as_str()), text);
    }
    let _ = format!("{headers:?}");

    // The client address behind trusted proxies: never a panic, and without the header (or an
    // untrusted peer) always the peer.
    let peer: std::net::IpAddr = [127, 0, 0, 1].into();
    let trusted: Vec<engineio::IpNet> = ["127.0.0.0/8", "10.0.0.0/8"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    let forwarded = headers.get_all("x-forwarded-for");
    let ip = engineio::client_ip(Some(peer), forwarded, &trusted);
    if !map.contains_key("x-forwarded-for") {
        assert_eq!(ip, Some(peer));
    }
    let outside: std::net::IpAddr = [192, 0, 2, 1].into();
    let ip = engineio::client_ip(Some(outside), headers.get_all("x-forwarded-for"), &trusted);
    assert_eq!(ip, Some(outside));

    let mut request = Request::new(());
    *request.headers_mut() = map;
    let (parts, ()) = request.into_parts();
    let read = request_headers(&parts);
    if read.upgrade {
        assert!(parts.headers.contains_key(http::header::UPGRADE));
    }
    if read.gzip || read.deflate {
        assert!(parts.headers.contains_key(http::header::ACCEPT_ENCODING));
    }
});
