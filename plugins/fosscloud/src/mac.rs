//! MAC addresses (FC4School) and the peer address a request came from.

use std::net::{IpAddr, SocketAddr};

/// A MAC address in canonical form (`52:54:00:ab:cd:ef`): six hex octets
/// separated by `:` or `-`, or twelve hex digits (also dotted `5254.00ab.cdef`).
pub fn normalize(text: &str) -> Option<String> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    let separators = text.len() - digits.len();
    if digits.len() != 12
        || !digits.chars().all(|c| c.is_ascii_hexdigit())
        || !matches!(separators, 0 | 2 | 5)
    {
        return None;
    }
    let lower = digits.to_ascii_lowercase();
    let octets: Vec<&str> = (0..6).map(|i| &lower[i * 2..i * 2 + 2]).collect();
    Some(octets.join(":"))
}

/// The IP address of a peer written `ip:port` (`[v6]:port`), canonical.
pub fn peer_ip(peer: &str) -> Option<String> {
    if let Ok(addr) = peer.parse::<SocketAddr>() {
        return Some(canonical_ip(addr.ip()));
    }
    peer.parse::<IpAddr>().ok().map(canonical_ip)
}

/// An IP address written canonically (an IPv4-mapped IPv6 address as IPv4).
pub fn normalize_ip(text: &str) -> Option<String> {
    text.trim().parse::<IpAddr>().ok().map(canonical_ip)
}

fn canonical_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        v4 => v4.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_in_common_spellings_normalize() {
        for text in [
            "52:54:00:AB:cd:ef",
            "52-54-00-ab-cd-ef",
            "525400abcdef",
            "5254.00ab.cdef",
        ] {
            assert_eq!(
                normalize(text).as_deref(),
                Some("52:54:00:ab:cd:ef"),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_macs_are_refused() {
        for text in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:eg",
            "52:54:00:ab:cd:ef:00",
            "5:2:5:4:0:0:a:b:c:d:e:f",
        ] {
            assert_eq!(normalize(text), None, "{text}");
        }
    }

    #[test]
    fn peers_give_their_ip() {
        assert_eq!(peer_ip("127.0.0.1:5555").as_deref(), Some("127.0.0.1"));
        assert_eq!(peer_ip("[::1]:5555").as_deref(), Some("::1"));
        assert_eq!(peer_ip("[::ffff:10.0.0.7]:1").as_deref(), Some("10.0.0.7"));
        assert_eq!(normalize_ip(" 10.0.0.7 ").as_deref(), Some("10.0.0.7"));
        assert_eq!(peer_ip("nonsense"), None);
    }
}
