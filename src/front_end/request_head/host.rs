//! What a `Host` header (or the authority of an absolute-form target, or HTTP/2's
//! `:authority`) may hold: a DNS name, an IPv4 address or a bracketed IPv6 address, with an
//! optional `:port` of 1 to 5 digits up to 65535. Anything else (spaces, tabs, `/`, `@`,
//! commas of several values, control characters, an empty port) is refused, so `host_match`
//! routing and back ends that build URLs from `Host` only ever see one well-formed host.

/// Whether `value` is `host[:port]`.
pub(crate) fn valid_authority(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        None => return false,
        Some(b'[') => {
            let Some(close) = value.iter().position(|&b| b == b']') else {
                return false;
            };
            let literal = &value[1..close];
            let ipv6 = std::str::from_utf8(literal)
                .ok()
                .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok());
            if ipv6.is_none() {
                return false;
            }
            match &value[close + 1..] {
                [] => return true,
                [b':', port @ ..] => (None, Some(port)),
                _ => return false,
            }
        }
        Some(_) => match value.iter().position(|&b| b == b':') {
            Some(colon) => (Some(&value[..colon]), Some(&value[colon + 1..])),
            None => (Some(value), None),
        },
    };
    host.is_none_or(valid_name) && port.is_none_or(valid_port)
}

/// A registered name or IPv4 address: letters, digits, `-`, `.`, `_`, `~` and `%XX`.
fn valid_name(name: &[u8]) -> bool {
    if name.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => i += 1,
            b'%' if name.len() > i + 2
                && name[i + 1].is_ascii_hexdigit()
                && name[i + 2].is_ascii_hexdigit() =>
            {
                i += 3
            }
            _ => return false,
        }
    }
    true
}

fn valid_port(port: &[u8]) -> bool {
    if port.is_empty() || port.len() > 5 {
        return false;
    }
    let mut value: u32 = 0;
    for &b in port {
        if !b.is_ascii_digit() {
            return false;
        }
        value = value * 10 + u32::from(b - b'0');
    }
    value <= 65535
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_and_ports_are_valid() {
        for ok in [
            "example.com",
            "example.com:8080",
            "EXAMPLE.com.",
            "127.0.0.1",
            "127.0.0.1:3020",
            "[::1]",
            "[::1]:443",
            "[2001:db8::7]:65535",
            "my_host",
            "a%2Db",
            "localhost:1",
        ] {
            assert!(valid_authority(ok.as_bytes()), "{ok}");
        }
    }

    #[test]
    fn spaces_slashes_userinfo_lists_and_bad_ports_are_not() {
        for bad in [
            "",
            "exa mple.com",
            "example.com\t",
            "a.com/evil",
            "user@a.com",
            "a.com, b.com",
            "a.com,b.com",
            "a.com:",
            "a.com:80:80",
            "a.com:65536",
            "a.com:123456",
            "a.com:8o",
            ":80",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[zz::1]",
            "a\u{0}b",
            "a%2",
            "a%zz",
            "caf\u{e9}.com",
        ] {
            assert!(!valid_authority(bad.as_bytes()), "{bad:?}");
        }
    }
}
