//! Which addresses `read_link` may connect to, and how host names are
//! resolved. The default policy allows only public unicast addresses:
//! private, loopback, link-local (incl. the cloud metadata address),
//! unique-local, CGNAT, multicast, documentation and reserved ranges are
//! refused, also when hidden in IPv4-mapped or NAT64 IPv6 addresses.
//!
//! Invariant: the production policy has no switch for loopback; tests get a
//! wider policy only through [`AddressPolicy::public_and`], a constructor
//! argument that no setting reaches.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The addresses a fetch may connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Extra addresses allowed besides public ones (tests only).
    extra: Vec<IpAddr>,
}

impl AddressPolicy {
    /// Public unicast addresses only (the production policy).
    pub fn public_only() -> Self {
        Self::default()
    }

    /// Public addresses plus exactly these (for tests against a local page server).
    pub fn public_and(extra: Vec<IpAddr>) -> Self {
        Self { extra }
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.extra.contains(&ip) || is_public(ip)
    }
}

/// Whether `ip` is a globally routable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)); // benchmarking
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 64:ff9b::/96 embeds an IPv4 address.
    if segments[0] == 0x64 && segments[1] == 0xff9b && segments[2..6].iter().all(|s| *s == 0) {
        let [.., hi, lo] = segments;
        return is_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    let refused = ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (segments[0] & 0xffc0) == 0xfe80 // link local fe80::/10
        || (segments[0] & 0xffc0) == 0xfec0 // site local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[..6].iter().all(|s| *s == 0); // IPv4-compatible ::a.b.c.d and ::
    !refused
}

/// Resolves host names to addresses (injectable so tests control DNS).
#[async_trait::async_trait]
pub trait Resolver: Send + Sync {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The system resolver.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl Resolver for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_refused() {
        for text in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.3.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(text.parse().unwrap()), "{text} must be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for text in ["1.1.1.1", "93.184.216.34", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(text.parse().unwrap()), "{text} must be allowed");
        }
    }

    #[test]
    fn the_test_policy_adds_exactly_the_listed_addresses() {
        let policy = AddressPolicy::public_and(vec!["127.0.0.2".parse().unwrap()]);
        assert!(policy.allows("127.0.0.2".parse().unwrap()));
        assert!(!policy.allows("127.0.0.1".parse().unwrap()));
        assert!(!AddressPolicy::public_only().allows("127.0.0.2".parse().unwrap()));
    }
}
