//! Query-string parsing for the handful of parameters Engine.IO reads.

use std::borrow::Cow;

/// The first value of `name` in a raw query string, percent-decoded (`+` as space).
pub(crate) fn param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

/// Every `name=value` pair of a raw query string, percent-decoded, in order.
pub(crate) fn pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k), decode(v))
    })
}

fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_decodes() {
        let q = "EIO=4&transport=polling&t=N8hyd6w&x=a%2Fb+c&flag";
        assert_eq!(param(q, "EIO").as_deref(), Some("4"));
        assert_eq!(param(q, "transport").as_deref(), Some("polling"));
        assert_eq!(param(q, "x").as_deref(), Some("a/b c"));
        assert_eq!(param(q, "flag").as_deref(), Some(""));
        assert_eq!(param(q, "sid"), None);
        assert_eq!(param("a=%", "a").as_deref(), Some("%"));
        assert_eq!(param("a=%4", "a").as_deref(), Some("%4"));
        assert_eq!(param("a=%zz", "a").as_deref(), Some("%zz"));
        assert_eq!(param("", "a"), None);
        let all: Vec<_> = pairs("a=1&&b=x%20y&c").collect();
        assert_eq!(
            all,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "".into())
            ]
        );
    }
}
