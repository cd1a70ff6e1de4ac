//! The handshake's origin check (docs/protocol.md, "Origins").
//!
//! A browser's `Origin` is accepted when it is exactly one of `--allowed-origins`, or exactly
//! the server's own origin: the scheme the server is reached over (`http`, or `https` when a
//! trusted proxy says so in `X-Forwarded-Proto`) with the `Host` header. Origins are compared
//! as (scheme, host, port), lowercase, with the scheme's default port filled in.

use hyper::http::request::Parts;

/// A web origin: scheme, host and port, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    /// The port, the scheme's default filled in (`None` for a scheme without one).
    port: Option<u16>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl Origin {
    /// Parses `scheme://host[:port]` (no path, user or query; a bracketed IPv6 host is fine).
    pub fn parse(raw: &str) -> Result<Origin, String> {
        let bad = |why: &str| format!("{raw:?} is not an origin (scheme://host[:port]): {why}");
        let (scheme, authority) = raw.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(bad("bad scheme"));
        }
        let scheme = scheme.to_ascii_lowercase();
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        let port = match port {
            Some(p) => Some(p),
            None => default_port(&scheme),
        };
        Ok(Origin {
            host: host.to_ascii_lowercase(),
            scheme,
            port,
        })
    }

    /// This server's origin as the request reached it: `scheme` with its `Host` header.
    fn of_host(scheme: &str, host: &str) -> Option<Origin> {
        let (host, port) = split_host_port(host)?;
        Some(Origin {
            scheme: scheme.to_owned(),
            host: host.to_ascii_lowercase(),
            port: port.or_else(|| default_port(scheme)),
        })
    }
}

/// `host[:port]` → (host, port); `None` when malformed.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        // An IPv6 literal: `[…]`, kept with its brackets.
        let (v6, after) = rest.split_once(']')?;
        let v6_ok = !v6.is_empty()
            && v6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'));
        if !v6_ok {
            return None;
        }
        let host = &authority[..v6.len() + 2];
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !host_ok {
            return None;
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// Whether a handshake may go on. No `Origin` header: not a browser's cross-origin request,
/// nothing to check. `via_trusted_proxy`: the request came through a proxy chatd trusts, whose
/// `X-Forwarded-Proto` tells the scheme the browser used.
pub fn allowed(parts: &Parts, allowed: &[Origin], via_trusted_proxy: bool) -> bool {
    let Some(origin) = parts.headers.get("origin") else {
        return true;
    };
    // `null` (a file, a sandboxed frame), or anything malformed: refused.
    let Some(origin) = origin.to_str().ok().and_then(|o| Origin::parse(o).ok()) else {
        return false;
    };
    if allowed.contains(&origin) {
        return true;
    }
    let forwarded = || {
        let proto = parts.headers.get("x-forwarded-proto")?.to_str().ok()?;
        let first = proto.split(',').next()?.trim().to_ascii_lowercase();
        matches!(first.as_str(), "http" | "https").then_some(first)
    };
    let scheme = via_trusted_proxy
        .then(forwarded)
        .flatten()
        .unwrap_or_else(|| "http".to_owned());
    parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| Origin::of_host(&scheme, h))
        .is_some_and(|own| own == origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut req = hyper::Request::builder().uri("/socket.io/");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    fn o(s: &str) -> Origin {
        Origin::parse(s).unwrap()
    }

    #[test]
    fn origins_are_normalised() {
        assert_eq!(o("HTTP://Chat.Example"), o("http://chat.example:80"));
        assert_eq!(o("https://chat.example:443"), o("https://chat.example"));
        assert_ne!(o("https://chat.example"), o("http://chat.example"));
        assert_ne!(o("http://chat.example:8080"), o("http://chat.example"));
        assert_eq!(o("http://[::1]:3000"), o("http://[::1]:3000"));
        assert_ne!(o("http://[::1]"), o("http://[::2]"));
        for bad in [
            "null",
            "chat.example",
            "https://",
            "https://a.example/path",
            "https://user@a.example",
            "https://a.example:",
            "https://a.example:99999",
            "https://a.example:8x",
            "https://a b",
            "*",
            "1http://a",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn own_origin_is_scheme_and_host() {
        let host = ("host", "chat.example:3000");
        assert!(allowed(&parts(&[host]), &[], false), "no Origin");
        assert!(allowed(
            &parts(&[host, ("origin", "http://chat.example:3000")]),
            &[],
            false
        ));
        assert!(allowed(
            &parts(&[host, ("origin", "http://CHAT.example:3000")]),
            &[],
            false
        ));
        // The scheme counts: https is not the origin of a plain-http server.
        assert!(!allowed(
            &parts(&[host, ("origin", "https://chat.example:3000")]),
            &[],
            false
        ));
        assert!(!allowed(
            &parts(&[host, ("origin", "http://chat.example")]),
            &[],
            false
        ));
        assert!(!allowed(&parts(&[host, ("origin", "null")]), &[], false));
        assert!(!allowed(
            &parts(&[("origin", "http://chat.example:3000")]),
            &[],
            false
        ));
        // Default ports: `Host: chat.example` is port 80 over http, 443 over https.
        let plain = ("host", "chat.example");
        assert!(allowed(
            &parts(&[plain, ("origin", "http://chat.example:80")]),
            &[],
            false
        ));
    }

    #[test]
    fn forwarded_proto_counts_only_from_a_trusted_proxy() {
        let h = [
            ("host", "chat.example"),
            ("x-forwarded-proto", "https"),
            ("origin", "https://chat.example"),
        ];
        assert!(allowed(&parts(&h), &[], true));
        assert!(!allowed(&parts(&h), &[], false));
        let http = [
            ("host", "chat.example"),
            ("x-forwarded-proto", "https"),
            ("origin", "http://chat.example"),
        ];
        assert!(!allowed(&parts(&http), &[], true));
        assert!(allowed(&parts(&http), &[], false));
    }

    #[test]
    fn allowed_origins_match_exactly() {
        let list = [o("https://app.example"), o("http://localhost:5173")];
        let host = ("host", "chat.example");
        for ok in [
            "https://app.example",
            "https://APP.example:443",
            "http://localhost:5173",
        ] {
            assert!(
                allowed(&parts(&[host, ("origin", ok)]), &list, false),
                "{ok}"
            );
        }
        for no in [
            "http://app.example",
            "https://app.example:8443",
            "https://sub.app.example",
            "https://app.example.evil",
            "http://localhost",
            "https://localhost:5173",
        ] {
            assert!(
                !allowed(&parts(&[host, ("origin", no)]), &list, false),
                "{no}"
            );
        }
    }
}
