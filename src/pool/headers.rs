//! Header rewriting between client and back end (PixlProxy pool properties
//! `scrub_*_headers`, `insert_*_headers`, `preserve_host`, `append_to_x_forwarded_for`,
//! `http_user_agent`, `http_basic_auth`), and the hop-by-hop headers that never travel on.
//!
//! Rules are compiled once at start (validated names and values, compiled regexes); applying
//! them clones only reference-counted bytes.

use super::scrub::{ScrubRule, MANAGED};
use crate::front_end::{ClientFacts, HeaderPair};
use base64::Engine;
use http::header::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::Result;
use std::net::IpAddr;

/// What a pool does to the request before it goes to the back end.
#[derive(Debug, Clone)]
pub(crate) struct RequestRules {
    pub(crate) scrub: ScrubRule,
    pub(crate) insert: Vec<HeaderPair>,
    pub(crate) user_agent: Option<HeaderValue>,
    pub(crate) authorization: Option<HeaderValue>,
    pub(crate) append_x_forwarded_for: bool,
    /// `preserve_host`: keep the client's Host; otherwise send the target's host name.
    pub(crate) preserve_host: bool,
    /// `use_keep_alives: false` sends `Connection: close` so the back-end connection is not pooled.
    pub(crate) close_connection: bool,
}

impl RequestRules {
    /// `USERNAME:PASSWORD` -> `Basic base64(...)`.
    pub(crate) fn basic_auth(credentials: &str) -> Option<HeaderValue> {
        if credentials.is_empty() {
            return None;
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        HeaderValue::from_str(&format!("Basic {encoded}")).ok()
    }

    /// Rewrite `req` for the back end; `target_host` is what `preserve_host: false` sends.
    pub(crate) fn apply(
        &self,
        req: &mut RequestHeader,
        client: ClientFacts,
        target_host: Option<&HeaderValue>,
    ) -> Result<()> {
        for name in self.scrub.doomed(&req.headers) {
            req.remove_header(&name);
        }
        // The socket peer, whatever address the proxy headers chose as the client's.
        if let (true, Some(ip)) = (self.append_x_forwarded_for, client.peer) {
            let xff = forwarded_for(req.headers.get(&X_FORWARDED_FOR), ip);
            req.insert_header("X-Forwarded-For", xff)?;
        }
        if client.tls {
            req.insert_header("X-Forwarded-Proto", "https")?;
        }
        if let Some(ua) = &self.user_agent {
            if !req.headers.contains_key(http::header::USER_AGENT) {
                req.insert_header("User-Agent", ua.clone())?;
            }
        }
        if let Some(auth) = &self.authorization {
            req.insert_header("Authorization", auth.clone())?;
        }
        if let (false, Some(host)) = (self.preserve_host, target_host) {
            req.insert_header("Host", host.clone())?;
        }
        for h in &self.insert {
            req.insert_header(h.name.clone(), h.value.clone())?;
        }
        if self.close_connection {
            req.insert_header("Connection", "close")?;
        }
        Ok(())
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// `X-Forwarded-For` with the client's address appended (or alone when there is none yet),
/// written byte by byte: this runs for every proxied request. The address is written on the
/// stack first, so the value is allocated once at its exact size (a `Vec` with spare capacity
/// would cost `Bytes` a second allocation when it becomes the header value).
fn forwarded_for(prev: Option<&HeaderValue>, ip: IpAddr) -> Vec<u8> {
    let prev = prev
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    // The longest IPv6 text (an IPv4-mapped address in full) is 45 bytes.
    let mut text = [0u8; 48];
    let len = write_ip(&mut text, ip);
    let ip_text = &text[..len];
    let mut out = Vec::with_capacity(prev.map_or(0, |p| p.len() + 2) + ip_text.len());
    if let Some(prev) = prev {
        out.extend_from_slice(prev.as_bytes());
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(ip_text);
    out
}

/// Write `ip` as text at the start of `buf`; returns its length.
fn write_ip(buf: &mut [u8; 48], ip: IpAddr) -> usize {
    match ip {
        IpAddr::V4(v4) => {
            let mut len = 0;
            let mut push = |b: u8| {
                buf[len] = b;
                len += 1;
            };
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    push(b'.');
                }
                if octet >= 100 {
                    push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    push(b'0' + octet / 10 % 10);
                }
                push(b'0' + octet % 10);
            }
            len
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            let _ = write!(cursor, "{v6}");
            usize::try_from(cursor.position()).unwrap_or(0)
        }
    }
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1) that never travel to the next hop.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Remove hop-by-hop headers and the ones the client nominated in `Connection`, as Pingora's
/// proxy does for each hop; used where poolgate sends requests with Pingora's client itself.
pub(crate) fn strip_hop_by_hop(req: &mut RequestHeader) {
    let nominated: Vec<String> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty() && !MANAGED.iter().any(|m| m.as_str() == n))
        .collect();
    for name in nominated
        .iter()
        .map(String::as_str)
        .chain(HOP_BY_HOP.iter().copied())
    {
        req.remove_header(name);
    }
}

/// What a pool does to the back end's response before it goes to the client.
#[derive(Debug, Clone)]
pub(crate) struct ResponseRules {
    pub(crate) scrub: ScrubRule,
    pub(crate) insert: Vec<HeaderPair>,
}

impl ResponseRules {
    pub(crate) fn apply(&self, resp: &mut ResponseHeader) -> Result<()> {
        for name in self.scrub.doomed(&resp.headers) {
            resp.remove_header(&name);
        }
        for h in &self.insert {
            resp.insert_header(h.name.clone(), h.value.clone())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_reads_like_the_address_printed() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mut ips = vec![v6, "::ffff:10.0.0.1".parse().unwrap()];
        for a in [0u8, 1, 9, 10, 99, 100, 199, 255] {
            ips.push(IpAddr::from([a, 255 - a, a / 2, 7]));
        }
        for ip in ips {
            assert_eq!(forwarded_for(None, ip), ip.to_string().into_bytes());
            let prev = HeaderValue::from_static("1.2.3.4");
            assert_eq!(
                forwarded_for(Some(&prev), ip),
                format!("1.2.3.4, {ip}").into_bytes()
            );
            let blank = HeaderValue::from_static("  ");
            assert_eq!(forwarded_for(Some(&blank), ip), ip.to_string().into_bytes());
        }
    }

    const PLAIN: ClientFacts = ClientFacts::direct(None, false);

    fn rules() -> RequestRules {
        RequestRules {
            scrub: ScrubRule::new(crate::config::DEFAULT_SCRUB_REQUEST).unwrap(),
            insert: vec![HeaderPair::new("Via", "poolgate").unwrap()],
            user_agent: HeaderValue::from_str("UA/1").ok(),
            authorization: RequestRules::basic_auth("admin:12345"),
            append_x_forwarded_for: true,
            preserve_host: true,
            close_connection: false,
        }
    }

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in headers {
            req.append_header(n.to_string(), *v).unwrap();
        }
        req
    }

    fn get<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
        req.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn default_scrub_removes_x_proxy_but_keeps_framing_and_host() {
        let mut req = request(&[
            ("Host", "h"),
            ("X-Proxy", "p"),
            ("X-Proxy-Queue", "1"),
            ("Content-Length", "3"),
            ("Expect", "100-continue"),
        ]);
        rules().apply(&mut req, PLAIN, None).unwrap();
        assert_eq!(get(&req, "x-proxy"), None);
        assert_eq!(get(&req, "x-proxy-queue"), None);
        assert_eq!(get(&req, "expect"), None);
        assert_eq!(get(&req, "host"), Some("h"));
        assert_eq!(get(&req, "content-length"), Some("3"));
    }

    #[test]
    fn forwarding_headers() {
        let mut req = request(&[("X-Forwarded-For", "10.0.0.1")]);
        let ip = "127.0.0.2".parse().ok();
        rules()
            .apply(&mut req, ClientFacts::direct(ip, true), None)
            .unwrap();
        assert_eq!(get(&req, "x-forwarded-for"), Some("10.0.0.1, 127.0.0.2"));
        // A client chosen from the proxy headers does not change what is appended.
        let mut req = request(&[("X-Forwarded-For", "203.0.113.7")]);
        let client = ClientFacts {
            ip: "203.0.113.7".parse().ok(),
            peer: ip,
            tls: true,
            forwarded: true,
        };
        rules().apply(&mut req, client, None).unwrap();
        assert_eq!(get(&req, "x-forwarded-for"), Some("203.0.113.7, 127.0.0.2"));
        assert_eq!(get(&req, "x-forwarded-proto"), Some("https"));
        assert_eq!(get(&req, "user-agent"), Some("UA/1"));
        assert_eq!(get(&req, "authorization"), Some("Basic YWRtaW46MTIzNDU="));
        assert_eq!(get(&req, "via"), Some("poolgate"));
    }

    #[test]
    fn client_user_agent_wins() {
        let mut req = request(&[("User-Agent", "curl")]);
        rules().apply(&mut req, PLAIN, None).unwrap();
        assert_eq!(get(&req, "user-agent"), Some("curl"));
    }

    #[test]
    fn hop_by_hop_and_nominated_headers_are_stripped() {
        let mut req = request(&[
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Content-Length", "2"),
            ("X-Kept", "1"),
        ]);
        strip_hop_by_hop(&mut req);
        assert_eq!(get(&req, "x-secret"), None);
        assert_eq!(get(&req, "connection"), None);
        assert_eq!(get(&req, "keep-alive"), None);
        assert_eq!(get(&req, "te"), None);
        assert_eq!(get(&req, "content-length"), Some("2"));
        assert_eq!(get(&req, "x-kept"), Some("1"));
    }
}
