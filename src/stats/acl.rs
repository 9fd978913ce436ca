//! Access control lists (pixl-server-web's `http_default_acl`): addresses and CIDR blocks,
//! IPv4 and IPv6. An IPv4-mapped IPv6 client (`::ffff:10.1.2.3`) is matched as IPv4.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Block {
    net: IpAddr,
    bits: u8,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Acl(Vec<Block>);

impl Acl {
    /// Parse every entry; the error names the first bad one.
    pub fn parse(entries: &[String]) -> Result<Acl, String> {
        entries
            .iter()
            .map(|e| block(e))
            .collect::<Result<_, _>>()
            .map(Acl)
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|b| contains(b, ip))
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn block(entry: &str) -> Result<Block, String> {
    let bad = || format!("`{entry}` is not an IP address or CIDR block");
    let (addr, bits) = match entry.trim().split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().map_err(|_| bad())?)),
        None => (entry.trim(), None),
    };
    let net = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
    let max = if net.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    if bits > max {
        return Err(bad());
    }
    Ok(Block { net, bits })
}

fn contains(b: &Block, ip: IpAddr) -> bool {
    match (b.net, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), b.bits),
        (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), b.bits),
        _ => false,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
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
    fn bad_entries_are_named() {
        let e = Acl::parse(&["10.0.0.0/33".to_string()]).unwrap_err();
        assert!(e.contains("10.0.0.0/33"), "{e}");
        assert!(Acl::parse(&["nope".to_string()]).is_err());
    }
}
