//! Who the client is: its address, and whether its request counts as HTTPS — over a TLS
//! connection, or (pixl-server-web's `https_header_detect`) behind a load balancer that says
//! so. This is the one place that decides it; `X-Forwarded-Proto`, `https_force`, HSTS, the web
//! log's `proto` and `web.sockets` all read the answer.
//!
//! The address is pixl-server-web's `args.ip`, chosen from `args.ips` (`WebServer.
//! http_public_ip_offset`): the chain of addresses the proxy headers name — `X-Client-IP`,
//! `CF-Connecting-IP`, `True-Client-IP`, `X-Real-IP`, `X-Cluster-Client-IP` (one address
//! each), `X-Forwarded-For`, `Forwarded-For` (comma-separated), `X-Forwarded`, `Forwarded`
//! (RFC 7239 `for=`), in that order — followed by the socket peer. Entries that are not IP
//! addresses stay in the chain (it is shown as sent) but are never chosen. Offset 0 picks the
//! first address outside the private ranges (else the first address); a positive offset
//! picks that index from the left (0-based), a negative one from the right (-1 = the socket
//! peer); an offset past either end picks the first address.
//!
//! Per-client limits, the logs, `web.recent`, `web.sockets` and the stats page read the chosen
//! address; the stats ACL checks every address of the chain; the `X-Forwarded-For` poolgate
//! appends for the back end stays the socket peer (`peer`).

use super::HttpsPolicy;
use http::{HeaderMap, HeaderName};
use pingora::proxy::Session;
use std::net::{IpAddr, Ipv6Addr};
use std::ops::ControlFlow;

/// What poolgate knows about the client of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ClientFacts {
    /// The client's address as pixl-server-web chooses it (`args.ip`).
    pub(crate) ip: Option<IpAddr>,
    /// The socket peer's address, as the socket reports it.
    pub(crate) peer: Option<IpAddr>,
    /// The request counts as HTTPS.
    pub(crate) tls: bool,
    /// The proxy headers named at least one address (else the chain is the peer alone, and
    /// reading it again skips the header lookups).
    pub(crate) forwarded: bool,
}

impl ClientFacts {
    pub(crate) fn of(session: &Session, policy: &HttpsPolicy, public_ip_offset: i32) -> Self {
        let connection_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let req = session.req_header();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let (ip, forwarded) = Chain::new(&req.headers, peer).choose_seeing(public_ip_offset);
        ClientFacts {
            ip,
            peer,
            tls: connection_tls || policy.detected(req),
            forwarded,
        }
    }

    /// A client that reached poolgate with no proxy headers: its address is the peer's.
    pub(crate) const fn direct(ip: Option<IpAddr>, tls: bool) -> Self {
        ClientFacts {
            ip,
            peer: ip,
            tls,
            forwarded: false,
        }
    }

    /// The request's whole chain of client addresses (`args.ips`), from its headers.
    pub(crate) fn chain<'a>(&self, headers: &'a HeaderMap) -> Chain<'a> {
        Chain {
            headers: self.forwarded.then_some(headers),
            peer: self.peer,
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) as the IPv4 address it carries.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// pixl-server-web's private ranges (`http_private_ip_ranges`' default), which offset 0 skips:
/// loopback, `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `169.254.0.0/16`, `::1`,
/// `fd00::/8`, `fe80::/10`.
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6 == Ipv6Addr::LOCALHOST || first >> 8 == 0xfd || first & 0xffc0 == 0xfe80
        }
    }
}

/// Headers naming one address each, in pixl-server-web's order.
const SINGLE: [HeaderName; 5] = [
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("cf-connecting-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
];

/// Comma-separated lists of addresses.
const LISTS: [HeaderName; 2] = [
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("forwarded-for"),
];

/// RFC 7239 syntax: `for=192.0.2.43, for="[2001:db8:cafe::17]"`.
const FORWARDED: [HeaderName; 2] = [
    HeaderName::from_static("x-forwarded"),
    HeaderName::from_static("forwarded"),
];

/// Whether `name` is one of the headers above.
fn is_proxy_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    // Every one of them ends in `-ip`, `-for` or `forwarded`; most other names are out at once.
    (name.ends_with("-ip") || name.ends_with("-for") || name.ends_with("forwarded"))
        && SINGLE
            .iter()
            .chain(&LISTS)
            .chain(&FORWARDED)
            .any(|h| h.as_str() == name)
}

/// One address of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry<'a> {
    /// As a proxy header wrote it (trimmed), which may not be an address at all.
    Named(&'a str),
    /// The socket peer (an IPv4-mapped address as IPv4).
    Peer(IpAddr),
}

impl Entry<'_> {
    /// The address, if the entry is one.
    pub(crate) fn addr(&self) -> Option<IpAddr> {
        match self {
            Entry::Named(text) => text.parse::<IpAddr>().ok().map(canonical_ip),
            Entry::Peer(ip) => Some(*ip),
        }
    }

    pub(crate) fn text(&self) -> String {
        match self {
            Entry::Named(text) => (*text).to_owned(),
            Entry::Peer(ip) => ip.to_string(),
        }
    }
}

/// The addresses of one request: the proxy headers' entries, then the socket peer. A view
/// of the request's headers: walking it allocates nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chain<'a> {
    /// `None`: the request is known to carry no proxy header entries.
    headers: Option<&'a HeaderMap>,
    peer: Option<IpAddr>,
}

impl<'a> Chain<'a> {
    pub(crate) fn new(headers: &'a HeaderMap, peer: Option<IpAddr>) -> Self {
        // One pass over the names (a request has a handful) instead of nine lookups, each
        // hashing its name: most requests carry no proxy header at all.
        let named = headers.keys().any(is_proxy_header);
        Chain {
            headers: named.then_some(headers),
            peer,
        }
    }

    /// Call `f` on each entry in order until it breaks.
    pub(crate) fn walk(&self, mut f: impl FnMut(Entry<'a>) -> ControlFlow<()>) -> ControlFlow<()> {
        self.walk_named(&mut f)?;
        match self.peer {
            Some(ip) => f(Entry::Peer(canonical_ip(ip))),
            None => ControlFlow::Continue(()),
        }
    }

    /// The proxy headers' entries alone.
    fn walk_named(&self, f: &mut impl FnMut(Entry<'a>) -> ControlFlow<()>) -> ControlFlow<()> {
        let Some(headers) = self.headers else {
            return ControlFlow::Continue(());
        };
        let text = |v: &'a http::HeaderValue| v.to_str().ok().map(str::trim);
        for name in &SINGLE {
            for value in headers.get_all(name).iter().filter_map(text) {
                if !value.is_empty() {
                    f(Entry::Named(value))?;
                }
            }
        }
        for name in &LISTS {
            for value in headers.get_all(name).iter().filter_map(text) {
                for part in value.split(',').map(str::trim) {
                    if !part.is_empty() {
                        f(Entry::Named(part))?;
                    }
                }
            }
        }
        for name in &FORWARDED {
            for value in headers.get_all(name).iter().filter_map(text) {
                for_each_forwarded_for(value, &mut *f)?;
            }
        }
        ControlFlow::Continue(())
    }

    /// Whether every entry satisfies `allowed` (`None`: the entry is not an address); a
    /// request without a peer address fails.
    pub(crate) fn all(&self, mut allowed: impl FnMut(Option<IpAddr>) -> bool) -> bool {
        self.peer.is_some()
            && self
                .walk(|e| match allowed(e.addr()) {
                    true => ControlFlow::Continue(()),
                    false => ControlFlow::Break(()),
                })
                .is_continue()
    }

    /// Every entry as text (`args.ips`).
    pub(crate) fn texts(&self) -> Vec<String> {
        let mut out = Vec::new();
        let _ = self.walk(|e| {
            out.push(e.text());
            ControlFlow::Continue(())
        });
        out
    }

    /// The proxy headers' entries as text, without the peer; empty (no allocation) when the
    /// request has none.
    pub(crate) fn named_texts(&self) -> Vec<String> {
        let mut out = Vec::new();
        let _ = self.walk_named(&mut |e| {
            out.push(e.text());
            ControlFlow::Continue(())
        });
        out
    }

    /// The client's address (`args.ip`) for `http_public_ip_offset`.
    #[cfg(test)]
    pub(crate) fn choose(&self, offset: i32) -> Option<IpAddr> {
        self.choose_seeing(offset).0
    }

    /// `choose`, and whether the walk met any proxy header entry (it stops early only at
    /// one, so `false` means the headers name none).
    fn choose_seeing(&self, offset: i32) -> (Option<IpAddr>, bool) {
        let mut named = false;
        let mut first = None;
        let mut found = None;
        if offset == 0 {
            let _ = self.walk(|e| {
                named |= matches!(e, Entry::Named(_));
                let Some(ip) = e.addr() else {
                    return ControlFlow::Continue(());
                };
                first.get_or_insert(ip);
                match is_private(ip) {
                    true => ControlFlow::Continue(()),
                    false => {
                        found = Some(ip);
                        ControlFlow::Break(())
                    }
                }
            });
            return (found.or(first), named);
        }
        let index = match usize::try_from(offset) {
            Ok(from_left) => Some(from_left),
            Err(_) => {
                let mut count = 0usize;
                let _ = self.walk(|e| {
                    count += usize::from(e.addr().is_some());
                    ControlFlow::Continue(())
                });
                count.checked_sub(offset.unsigned_abs() as usize)
            }
        };
        let mut seen = 0usize;
        let _ = self.walk(|e| {
            named |= matches!(e, Entry::Named(_));
            let Some(ip) = e.addr() else {
                return ControlFlow::Continue(());
            };
            first.get_or_insert(ip);
            if Some(seen) == index {
                found = Some(ip);
                return ControlFlow::Break(());
            }
            seen += 1;
            ControlFlow::Continue(())
        });
        (found.or(first), named)
    }
}

/// Each `for=` value of an RFC 7239 header, without its quotes and brackets (as
/// pixl-server-web reads it: `for=` at a word boundary, any case of `for` not accepted).
fn for_each_forwarded_for<'a>(
    value: &'a str,
    f: &mut impl FnMut(Entry<'a>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let bytes = value.as_bytes();
    let mut from = 0;
    while let Some(at) = value.get(from..).and_then(|rest| rest.find("for=")) {
        let start = from + at;
        from = start + 4;
        let boundary = start == 0 || {
            let b = bytes[start - 1];
            !(b.is_ascii_alphanumeric() || b == b'_')
        };
        if !boundary {
            continue;
        }
        let mut rest = &value[from..];
        rest = rest.strip_prefix('"').unwrap_or(rest);
        rest = rest.strip_prefix('[').unwrap_or(rest);
        let end = rest
            .find(|c: char| matches!(c, ',' | ']' | '"' | ';') || c.is_whitespace())
            .unwrap_or(rest.len());
        if end > 0 {
            f(Entry::Named(&rest[..end]))?;
        }
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn chosen(pairs: &[(&str, &str)], peer: &str, offset: i32) -> Option<IpAddr> {
        Chain::new(&headers(pairs), Some(ip(peer))).choose(offset)
    }

    fn texts(pairs: &[(&str, &str)], peer: &str) -> Vec<String> {
        Chain::new(&headers(pairs), Some(ip(peer))).texts()
    }

    #[test]
    fn private_ranges_of_both_families_are_recognised() {
        for private in [
            "127.0.0.1",
            "127.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.0.9",
            "::1",
            "fd12::1",
            "fe80::1",
            "febf::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip(private)), "{private}");
        }
        for public in [
            "8.8.8.8",
            "172.32.0.1",
            "11.0.0.1",
            "192.169.0.1",
            "2001:db8::1",
            "fc00::1",
            "fec0::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_private(ip(public)), "{public}");
        }
    }

    #[test]
    fn without_proxy_headers_the_peer_is_the_client() {
        assert_eq!(chosen(&[], "127.0.0.1", 0), Some(ip("127.0.0.1")));
        assert_eq!(chosen(&[], "127.0.0.1", -2), Some(ip("127.0.0.1")));
        assert_eq!(chosen(&[], "::ffff:10.0.0.1", 0), Some(ip("10.0.0.1")));
        assert_eq!(texts(&[], "::ffff:10.0.0.1"), ["10.0.0.1"]);
        assert_eq!(Chain::new(&HeaderMap::new(), None).choose(0), None);
    }

    #[test]
    fn offset_zero_picks_the_first_public_address_else_the_first() {
        let xff = [("X-Forwarded-For", "10.0.0.5, 203.0.113.7, 198.51.100.1")];
        assert_eq!(chosen(&xff, "127.0.0.1", 0), Some(ip("203.0.113.7")));
        let private = [("X-Forwarded-For", "10.0.0.5, 192.168.0.2")];
        assert_eq!(chosen(&private, "127.0.0.1", 0), Some(ip("10.0.0.5")));
        assert_eq!(chosen(&private, "8.8.4.4", 0), Some(ip("8.8.4.4")));
    }

    #[test]
    fn negative_offsets_count_from_the_socket_end_and_positive_from_the_left() {
        let xff = [("X-Forwarded-For", "203.0.113.7, 198.51.100.1")];
        assert_eq!(chosen(&xff, "127.0.0.1", -1), Some(ip("127.0.0.1")));
        assert_eq!(chosen(&xff, "127.0.0.1", -2), Some(ip("198.51.100.1")));
        assert_eq!(chosen(&xff, "127.0.0.1", -3), Some(ip("203.0.113.7")));
        assert_eq!(chosen(&xff, "127.0.0.1", 1), Some(ip("198.51.100.1")));
        assert_eq!(chosen(&xff, "127.0.0.1", 2), Some(ip("127.0.0.1")));
        // Past either end: the first address, as pixl-server-web falls back.
        assert_eq!(chosen(&xff, "127.0.0.1", -4), Some(ip("203.0.113.7")));
        assert_eq!(chosen(&xff, "127.0.0.1", 3), Some(ip("203.0.113.7")));
        assert_eq!(chosen(&xff, "127.0.0.1", i32::MIN), Some(ip("203.0.113.7")));
        assert_eq!(chosen(&xff, "127.0.0.1", i32::MAX), Some(ip("203.0.113.7")));
    }

    #[test]
    fn malformed_entries_stay_in_the_chain_but_are_never_chosen_or_counted() {
        let xff = [(
            "X-Forwarded-For",
            "unknown, 1.2.3.4:80, 999.1.1.1, , 203.0.113.7, fe80::1%eth0",
        )];
        assert_eq!(chosen(&xff, "127.0.0.1", 0), Some(ip("203.0.113.7")));
        assert_eq!(chosen(&xff, "127.0.0.1", -2), Some(ip("203.0.113.7")));
        let all = [
            "unknown",
            "1.2.3.4:80",
            "999.1.1.1",
            "203.0.113.7",
            "fe80::1%eth0",
        ];
        let mut expected: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        expected.push("127.0.0.1".into());
        assert_eq!(texts(&xff, "127.0.0.1"), expected);
        let garbage = [("X-Forwarded-For", "nobody, ,,")];
        assert_eq!(chosen(&garbage, "10.0.0.1", 0), Some(ip("10.0.0.1")));
    }

    #[test]
    fn spaces_and_tabs_around_entries_are_ignored() {
        let xff = [(
            "X-Forwarded-For",
            "  203.0.113.7 ,\t198.51.100.1  ,10.0.0.1",
        )];
        assert_eq!(
            texts(&xff, "127.0.0.1"),
            ["203.0.113.7", "198.51.100.1", "10.0.0.1", "127.0.0.1"]
        );
        assert_eq!(chosen(&xff, "127.0.0.1", -3), Some(ip("198.51.100.1")));
    }

    #[test]
    fn every_proxy_header_joins_the_chain_in_pixl_server_web_order() {
        let h = [
            (
                "Forwarded",
                "for=192.0.2.43, for=\"[2001:db8:cafe::17]\";proto=https",
            ),
            ("X-Forwarded-For", "198.51.100.1, 198.51.100.2"),
            ("X-Real-IP", "203.0.113.9"),
            ("Forwarded-For", "198.51.100.3"),
            ("X-Client-IP", "203.0.113.8"),
            ("X-Forwarded", "by=10.0.0.1;for=192.0.2.44"),
        ];
        assert_eq!(
            texts(&h, "127.0.0.1"),
            [
                "203.0.113.8",
                "203.0.113.9",
                "198.51.100.1",
                "198.51.100.2",
                "198.51.100.3",
                "192.0.2.44",
                "192.0.2.43",
                "2001:db8:cafe::17",
                "127.0.0.1"
            ]
        );
        assert_eq!(chosen(&h, "127.0.0.1", 0), Some(ip("203.0.113.8")));
        assert_eq!(chosen(&h, "127.0.0.1", -2), Some(ip("2001:db8:cafe::17")));
    }

    #[test]
    fn forwarded_for_needs_a_word_boundary() {
        let h = [("Forwarded", "xfor=1.1.1.1;for=192.0.2.1")];
        assert_eq!(texts(&h, "127.0.0.1"), ["192.0.2.1", "127.0.0.1"]);
        let odd = [("Forwarded", "for=;for=\"\";for=")];
        assert_eq!(texts(&odd, "127.0.0.1"), ["127.0.0.1"]);
    }

    #[test]
    fn a_chain_is_allowed_only_when_every_entry_is() {
        let h = headers(&[("X-Forwarded-For", "10.0.0.1, 8.8.8.8")]);
        let inside = |ip: Option<IpAddr>| ip.is_some_and(is_private);
        let peer = Some(ip("127.0.0.1"));
        assert!(!Chain::new(&h, peer).all(inside));
        let h = headers(&[("X-Forwarded-For", "10.0.0.1, 192.168.1.1")]);
        assert!(Chain::new(&h, peer).all(inside));
        let h = headers(&[("X-Forwarded-For", "10.0.0.1, garbage")]);
        assert!(!Chain::new(&h, peer).all(inside));
        assert!(!Chain::new(&HeaderMap::new(), None).all(|_| true));
    }

    #[test]
    fn named_texts_leave_the_peer_out_and_allocate_nothing_without_headers() {
        let none = HeaderMap::new();
        let named = Chain::new(&none, Some(ip("127.0.0.1"))).named_texts();
        assert!(named.is_empty() && named.capacity() == 0);
        let h = headers(&[("X-Forwarded-For", "203.0.113.7")]);
        assert_eq!(
            Chain::new(&h, Some(ip("127.0.0.1"))).named_texts(),
            ["203.0.113.7"]
        );
    }

    #[test]
    fn the_walk_tells_whether_any_proxy_header_named_an_entry() {
        let peer = Some(ip("127.0.0.1"));
        for offset in [0, -1, -2, 1] {
            let none = headers(&[("Host", "x"), ("X-Forwarded-For", " , ")]);
            assert!(!Chain::new(&none, peer).choose_seeing(offset).1, "{offset}");
            let some = headers(&[("X-Forwarded-For", "203.0.113.7")]);
            assert!(Chain::new(&some, peer).choose_seeing(offset).1, "{offset}");
        }
        let h = headers(&[("X-Forwarded-For", "203.0.113.7")]);
        let known_empty = ClientFacts::direct(peer, false).chain(&h);
        assert_eq!(known_empty.texts(), ["127.0.0.1"]);
        let facts = ClientFacts {
            forwarded: true,
            ..ClientFacts::direct(peer, false)
        };
        assert_eq!(facts.chain(&h).texts(), ["203.0.113.7", "127.0.0.1"]);
    }

    #[test]
    fn direct_clients_are_their_own_peer() {
        let facts = ClientFacts::direct(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), true);
        assert_eq!(
            (facts.ip, facts.peer, facts.tls),
            (facts.peer, facts.ip, true)
        );
    }
}
