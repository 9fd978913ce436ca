//! Access control lists (pixl-server-web's `http_default_acl`): addresses and CIDR blocks,
//! IPv4 and IPv6, matched with `ipnet`. An IPv4-mapped IPv6 client (`::ffff:10.1.2.3`) is
//! matched as IPv4, and so is a mapped entry.
//!
//! A request passes only if every address of its chain does (pixl-server-web's `checkAll`
//! of `args.ips`): each address a proxy header names, and the socket peer. An entry that is
//! not an address fails, as it does in pixl-server-web.

use crate::front_end::{canonical_ip as canonical, Chain};
use ipnet::IpNet;
use std::net::IpAddr;

/// An ACL entry that is neither an address nor a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR block")]
pub(crate) struct InvalidAclEntry(pub(crate) String);

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Acl(Vec<IpNet>);

impl Acl {
    /// Parse every entry; the error names the first bad one.
    pub(crate) fn parse(entries: &[String]) -> Result<Acl, InvalidAclEntry> {
        entries
            .iter()
            .map(|e| block(e.trim()).ok_or_else(|| InvalidAclEntry(e.clone())))
            .collect::<Result<_, _>>()
            .map(Acl)
    }

    pub(crate) fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether every address of the request's chain is in the ACL.
    pub(crate) fn allows_chain(&self, chain: &Chain<'_>) -> bool {
        chain.all(|ip| ip.is_some_and(|ip| self.allows(ip)))
    }
}

/// `addr` or `addr/bits`, with an IPv4-mapped address read as IPv4 (its prefix length then
/// counts the IPv4 bits: `::ffff:10.0.0.0/8` is `10.0.0.0/8`).
fn block(entry: &str) -> Option<IpNet> {
    let (addr, bits) = match entry.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
        None => (entry, None),
    };
    let addr = canonical(addr.parse::<IpAddr>().ok()?);
    let max = if addr.is_ipv4() { 32 } else { 128 };
    IpNet::new(addr, bits.unwrap_or(max)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[&str]) -> Acl {
        Acl::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn blocks_and_addresses_match() {
        let a = acl(&["127.0.0.1", "10.0.0.0/8", "172.16.0.0/12", "fd00::/8"]);
        for ok in [
            "127.0.0.1",
            "10.200.1.1",
            "172.31.255.255",
            "fd12::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(a.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in ["127.0.0.2", "11.0.0.1", "172.32.0.1", "fe00::1", "8.8.8.8"] {
            assert!(!a.allows(no.parse().unwrap()), "{no}");
        }
    }

    #[test]
    fn a_chain_passes_only_when_every_address_is_in_the_acl() {
        let a = acl(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = Some("127.0.0.1".parse().unwrap());
        let chain_of = |xff: &str| {
            let mut h = http::HeaderMap::new();
            h.insert("x-forwarded-for", xff.parse().unwrap());
            h
        };
        let inside = chain_of("10.1.1.1, 10.2.2.2");
        assert!(a.allows_chain(&Chain::new(&inside, peer)));
        let outside = chain_of("10.1.1.1, 8.8.8.8");
        assert!(!a.allows_chain(&Chain::new(&outside, peer)));
        let garbage = chain_of("10.1.1.1, unknown");
        assert!(!a.allows_chain(&Chain::new(&garbage, peer)));
        let none = http::HeaderMap::new();
        assert!(a.allows_chain(&Chain::new(&none, peer)));
        assert!(!a.allows_chain(&Chain::new(&none, "8.8.8.8".parse().ok())));
        assert!(!a.allows_chain(&Chain::new(&none, None)));
    }

    #[test]
    fn bad_entries_are_named() {
        let e = Acl::parse(&["10.0.0.0/33".to_string()]).unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/33"), "{e}");
        assert!(Acl::parse(&["nope".to_string()]).is_err());
    }
}
