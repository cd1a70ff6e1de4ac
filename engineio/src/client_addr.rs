//! The client's address behind reverse proxies: `X-Forwarded-For` is believed only as far as
//! it was written by proxies the server trusts.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The client's address: the peer, or, when the peer is a trusted proxy, the rightmost
/// `X-Forwarded-For` entry that is not a trusted proxy itself.
///
/// Every proxy appends the address it received the request from, so entries left of the last
/// untrusted one were written by the client and are ignored: a client cannot choose its
/// address by sending the header itself.
///
/// ```
/// # use engineio::client_ip;
/// let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
/// let peer = Some("127.0.0.1".parse().unwrap());
/// let forwarded = [b"6.6.6.6, 203.0.113.7".as_slice()];
/// let ip = client_ip(peer, forwarded.into_iter(), &trusted);
/// assert_eq!(ip, Some("203.0.113.7".parse().unwrap()));
/// ```
pub fn client_ip<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl Iterator<Item = &'a [u8]>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let entries: Vec<&[u8]> = forwarded_for
        .flat_map(|value| value.split(|b| *b == b','))
        .collect();
    let mut client = peer;
    for entry in entries.into_iter().rev() {
        let Some(ip) = parse_entry(entry) else {
            // Garbage: whoever wrote it is not a proxy; the last hop we could read stands.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client)
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim();
    text.parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(canonical)
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they stand for.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn resolve(peer: &str, xff: &[&str], trusted: &[&str]) -> IpAddr {
        client_ip(
            Some(ip(peer)),
            xff.iter().map(|v| v.as_bytes()),
            &nets(trusted),
        )
        .expect("address")
    }

    #[test]
    fn untrusted_peers_are_the_client() {
        assert_eq!(resolve("9.9.9.9", &["1.1.1.1"], &[]), ip("9.9.9.9"));
        assert_eq!(
            resolve("9.9.9.9", &["1.1.1.1"], &["10.0.0.0/8"]),
            ip("9.9.9.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = ["127.0.0.0/8", "10.0.0.0/8"];
        assert_eq!(
            resolve("127.0.0.1", &["203.0.113.7"], &trusted),
            ip("203.0.113.7")
        );
        // A forged entry left of the one nginx appended changes nothing.
        assert_eq!(
            resolve("127.0.0.1", &["6.6.6.6, 203.0.113.7"], &trusted),
            ip("203.0.113.7")
        );
        // Two proxies, and the header split over two lines.
        assert_eq!(
            resolve("127.0.0.1", &["6.6.6.6, 203.0.113.7", "10.1.2.3"], &trusted),
            ip("203.0.113.7")
        );
        // Only trusted hops: the leftmost.
        assert_eq!(
            resolve("127.0.0.1", &["10.0.0.9"], &trusted),
            ip("10.0.0.9")
        );
        // No header: the proxy itself.
        assert_eq!(resolve("127.0.0.1", &[], &trusted), ip("127.0.0.1"));
    }

    #[test]
    fn ports_garbage_and_mapped_addresses() {
        let trusted = ["127.0.0.0/8"];
        assert_eq!(
            resolve("127.0.0.1", &["203.0.113.7:4431"], &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            resolve("127.0.0.1", &["[2001:db8::1]:80"], &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            resolve("127.0.0.1", &["1.1.1.1, nonsense"], &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            resolve("::ffff:127.0.0.1", &["203.0.113.7"], &trusted),
            ip("203.0.113.7")
        );
    }
}
