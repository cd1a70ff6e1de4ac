//! The handshake's request headers, kept for the session's whole life in little memory.

use std::fmt;

use http::HeaderMap;

/// Request headers, read-only: every name and value in one buffer.
///
/// A session keeps its handshake's headers as long as it lives. An `http::HeaderMap` of a
/// browser's 16 headers takes about 3.5 KB (its table rounds up to 32 entries of ~100 bytes,
/// and each value is an allocation of its own); this takes the headers' own ~700 bytes and an
/// index. Names are lowercase, as HTTP/1 parsing gives them; lookups ignore ASCII case.
///
/// ```
/// let mut map = http::HeaderMap::new();
/// map.insert("user-agent", http::HeaderValue::from_static("demo/1.0"));
/// map.append("x-tag", http::HeaderValue::from_static("a"));
/// map.append("x-tag", http::HeaderValue::from_static("b"));
/// let headers = engineio::Headers::from(&map);
/// assert_eq!(headers.get_str("User-Agent"), Some("demo/1.0"));
/// assert_eq!(headers.get_all("x-tag").collect::<Vec<_>>(), [b"a", b"b"]);
/// assert_eq!(headers.len(), 3);
/// assert_eq!(headers.to_header_map(), map);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    buf: Box<[u8]>,
    /// Header `i` has its name at `ends[2i-1]..ends[2i]` and its value at
    /// `ends[2i]..ends[2i+1]` (with `ends[-1]` read as 0).
    ends: Box<[u32]>,
}

impl Headers {
    /// How many headers there are (a repeated name counts each time).
    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Every header in the order received, as `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        (0..self.len()).filter_map(move |i| {
            let start = if i == 0 { 0 } else { self.ends[2 * i - 1] };
            let (mid, end) = (self.ends[2 * i], self.ends[2 * i + 1]);
            let name = self.buf.get(start as usize..mid as usize)?;
            let value = self.buf.get(mid as usize..end as usize)?;
            Some((std::str::from_utf8(name).ok()?, value))
        })
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first value of `name` as text; `None` when absent or not visible ASCII.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        let value = self.get(name)?;
        value
            .iter()
            .all(|b| *b == b'\t' || (0x20..0x7f).contains(b))
            .then(|| std::str::from_utf8(value).ok())
            .flatten()
    }

    /// Every value of `name` (any case), in the order received.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The headers as an `http::HeaderMap`.
    pub fn to_header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.len());
        for (name, value) in self.iter() {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(value),
            ) {
                map.append(name, value);
            }
        }
        map
    }
}

impl From<&HeaderMap> for Headers {
    /// A copy in memory of its own (the map's values may be slices of a connection's read
    /// buffer, which must not stay alive with the session). Past 4 GiB in all, the rest is left
    /// out, which no HTTP server's header limit comes near.
    fn from(map: &HeaderMap) -> Self {
        let size: usize = map.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
        let mut buf = Vec::with_capacity(size);
        let mut ends = Vec::with_capacity(map.len() * 2);
        for (name, value) in map {
            let total = buf.len() + name.as_str().len() + value.len();
            let (Ok(mid), Ok(end)) = (
                u32::try_from(buf.len() + name.as_str().len()),
                u32::try_from(total),
            ) else {
                break;
            };
            buf.extend_from_slice(name.as_str().as_bytes());
            buf.extend_from_slice(value.as_bytes());
            ends.push(mid);
            ends.push(end);
        }
        Headers {
            buf: buf.into_boxed_slice(),
            ends: ends.into_boxed_slice(),
        }
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(n, v)| (n, String::from_utf8_lossy(v).into_owned())),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &'static [u8])]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(*n, HeaderValue::from_bytes(v).unwrap());
        }
        m
    }

    #[test]
    fn keeps_every_header_in_order_with_repeats() {
        let m = map(&[
            ("host", b"a"),
            ("cookie", b"x=1"),
            ("cookie", b"y=2"),
            ("empty", b""),
        ]);
        let h = Headers::from(&m);
        assert_eq!(h.len(), 4);
        assert_eq!(h.get_str("HOST"), Some("a"));
        assert_eq!(h.get_all("cookie").collect::<Vec<_>>(), [b"x=1", b"y=2"]);
        assert_eq!(h.get("empty"), Some(&b""[..]));
        assert_eq!(h.get("missing"), None);
        assert_eq!(h.to_header_map(), m);
    }

    #[test]
    fn non_ascii_values_are_bytes_not_text() {
        let h = Headers::from(&map(&[("x-raw", b"caf\xe9")]));
        assert_eq!(h.get("x-raw"), Some(&b"caf\xe9"[..]));
        assert_eq!(h.get_str("x-raw"), None);
    }

    #[test]
    fn empty_and_default_agree() {
        let h = Headers::from(&HeaderMap::new());
        assert!(h.is_empty());
        assert_eq!(h, Headers::default());
        assert_eq!(h.iter().count(), 0);
        assert_eq!(format!("{h:?}"), "{}");
    }

    #[test]
    fn one_buffer_and_one_index() {
        let m = map(&[("user-agent", b"Mozilla/5.0"), ("accept", b"*/*")]);
        let h = Headers::from(&m);
        assert_eq!(h.buf.len(), "user-agentMozilla/5.0accept*/*".len());
        assert_eq!(h.ends.len(), 4);
    }
}
