//! Session ids: 20 URL-safe characters, 15 CSPRNG bytes in unpadded base64url, optionally
//! behind a node prefix (`a-` + 18 random characters) that a load balancer routes on.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// A 20-character session id, `[A-Za-z0-9_-]{20}`.
///
/// Used for Engine.IO sessions and, by the Socket.IO layer, for namespace socket ids and private
/// recovery ids. Stored inline: no heap allocation, cheap to copy and hash.
///
/// ```
/// let sid = engineio::Sid::random();
/// assert_eq!(sid.as_str().len(), 20);
/// assert_eq!(engineio::Sid::parse(sid.as_str()), Some(sid));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid([u8; 20]);

impl Sid {
    /// A fresh id from 15 cryptographically secure random bytes.
    pub fn random() -> Self {
        let raw: [u8; 15] = rand::random();
        let mut out = [0u8; 20];
        // 15 bytes always encode to exactly 20 characters, so this cannot fail.
        let written = URL_SAFE_NO_PAD
            .encode_slice(raw, &mut out)
            .unwrap_or_default();
        debug_assert_eq!(written, 20);
        Sid(out)
    }

    /// A fresh id that starts with `prefix` and `-`, the rest random: `node1-Xq3…`, still 20
    /// characters. A prefix is `[a-z0-9]` only, so it is exactly the text before the first
    /// `-`: `^a-` matches the ids of node `a` and never those of node `ab` (`ab-…`), whatever
    /// the random part holds. With the longest prefix (8) 11 random characters remain (66 bits).
    ///
    /// ```
    /// let prefix: engineio::SidPrefix = "b".parse().unwrap();
    /// let sid = engineio::Sid::random_with_prefix(&prefix);
    /// assert!(sid.as_str().starts_with("b-"));
    /// assert_eq!(sid.as_str().len(), 20);
    /// ```
    pub fn random_with_prefix(prefix: &SidPrefix) -> Self {
        let mut out = Sid::random().0;
        let p = prefix.as_str().as_bytes();
        // The random characters after the prefix stay as they were: each is uniform.
        out[..p.len()].copy_from_slice(p);
        out[p.len()] = SidPrefix::SEPARATOR;
        Sid(out)
    }

    /// Parses an id received from a client; `None` unless it is 20 URL-safe characters.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 20 {
            return None;
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        {
            return None;
        }
        let mut out = [0u8; 20];
        out.copy_from_slice(bytes);
        Some(Sid(out))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked in `parse`, produced by base64 in `random`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({})", self.as_str())
    }
}

/// A node's session id prefix: 1 to 8 characters `[a-z0-9]` (see [`Sid::random_with_prefix`]).
///
/// ```
/// assert!("node1".parse::<engineio::SidPrefix>().is_ok());
/// assert!("Node-1".parse::<engineio::SidPrefix>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SidPrefix(String);

/// Why a text is not a [`SidPrefix`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("session id prefix {0:?} is not 1 to {max} characters a-z, 0-9", max = SidPrefix::MAX_LEN)]
pub struct InvalidSidPrefix(pub String);

impl SidPrefix {
    /// Longest prefix: 8 characters, leaving 11 random ones.
    pub const MAX_LEN: usize = 8;
    /// What separates the prefix from the random part; never in a prefix.
    pub const SEPARATOR: u8 = b'-';

    /// Checks `text`: 1 to [`MAX_LEN`](Self::MAX_LEN) characters, each `a-z` or `0-9`.
    pub fn new(text: &str) -> Result<Self, InvalidSidPrefix> {
        let ok = (1..=Self::MAX_LEN).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(SidPrefix(text.to_owned()))
        } else {
            Err(InvalidSidPrefix(text.to_owned()))
        }
    }

    /// The prefix as text (without the separator).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `sid` was made with this prefix.
    pub fn owns(&self, sid: &Sid) -> bool {
        sid.as_str()
            .strip_prefix(self.as_str())
            .is_some_and(|rest| rest.as_bytes().first() == Some(&Self::SEPARATOR))
    }
}

impl FromStr for SidPrefix {
    type Err = InvalidSidPrefix;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SidPrefix::new(s)
    }
}

impl fmt::Display for SidPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SidPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SidPrefix({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_url_safe_and_distinct() {
        let a = Sid::random();
        let b = Sid::random();
        assert_ne!(a, b);
        assert!(a
            .as_str()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn parse_rejects_bad_ids() {
        assert_eq!(Sid::parse(""), None);
        assert_eq!(Sid::parse("short"), None);
        assert_eq!(Sid::parse("aaaaaaaaaaaaaaaaaaa+"), None);
        assert_eq!(Sid::parse("aaaaaaaaaaaaaaaaaaaaa"), None);
        assert!(Sid::parse("lv_VI97HAXpY6yYWAAAC").is_some());
    }

    #[test]
    fn prefixes_are_checked() {
        for good in ["a", "b", "node1", "12345678", "z9"] {
            assert_eq!(
                SidPrefix::new(good).map(|p| p.to_string()),
                Ok(good.to_owned())
            );
        }
        for bad in ["", "123456789", "A", "a-b", "a_b", "é", "a b", "a.", " a"] {
            let err = SidPrefix::new(bad).unwrap_err();
            assert_eq!(err, InvalidSidPrefix(bad.to_owned()));
            assert!(
                err.to_string().contains("1 to 8 characters a-z, 0-9"),
                "{err}"
            );
        }
    }

    #[test]
    fn prefixed_ids_carry_the_prefix_and_stay_valid() {
        for text in ["a", "node1", "12345678"] {
            let prefix = SidPrefix::new(text).unwrap();
            let mut seen = std::collections::HashSet::new();
            for _ in 0..200 {
                let sid = Sid::random_with_prefix(&prefix);
                let s = sid.as_str();
                assert_eq!(s.len(), 20);
                assert!(s.starts_with(&format!("{text}-")), "{s}");
                assert_eq!(Sid::parse(s), Some(sid));
                assert!(prefix.owns(&sid));
                assert!(seen.insert(sid), "duplicate {s}");
            }
        }
    }

    #[test]
    fn one_nodes_ids_never_match_another_nodes_prefix() {
        // `a` is a prefix of `ab` as text; the separator keeps their ids apart.
        let (a, ab) = (SidPrefix::new("a").unwrap(), SidPrefix::new("ab").unwrap());
        for _ in 0..500 {
            let from_a = Sid::random_with_prefix(&a);
            let from_ab = Sid::random_with_prefix(&ab);
            assert!(a.owns(&from_a) && !ab.owns(&from_a), "{from_a}");
            assert!(ab.owns(&from_ab) && !a.owns(&from_ab), "{from_ab}");
        }
        assert!(!a.owns(&Sid::parse("abcdefghijklmnopqrst").unwrap()));
        assert!(a.owns(&Sid::parse("a-bcdefghijklmnopqrs").unwrap()));
    }
}
