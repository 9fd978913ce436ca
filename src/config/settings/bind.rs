//! `WebServer.http_bind_address` and `WebServer.https_bind_address`: each is empty (every
//! address) or an IP address, IPv4 or IPv6 (bracketed or not), checked here as the listener
//! will parse it, whether `https` is on or not. A host name is refused: `serve` would resolve
//! it at start, and a name that does not resolve to a local address fails there, after `check`
//! has passed.

use crate::config::file::WebServerConfig;
use crate::config::problem::Problems;
use crate::server::listen_addr;
use std::net::SocketAddr;

/// A problem for each bind address that is not an IP address.
pub(super) fn bind_addresses(web: &WebServerConfig, problems: &mut Problems) {
    for (key, address, port) in [
        ("http_bind_address", &web.http_bind_address, web.http_port),
        (
            "https_bind_address",
            &web.https_bind_address,
            web.https_port,
        ),
    ] {
        if !is_ip_or_empty(address, port) {
            let why = format!(
                "`{address}` is not an IP address (e.g. `127.0.0.1` or `::1`; empty = all addresses)"
            );
            problems.push(format!("WebServer.{key}"), why);
        }
    }
}

/// Whether `address` with `port` makes a listen address of an IP (empty: all IPv4 addresses).
fn is_ip_or_empty(address: &str, port: u16) -> bool {
    listen_addr(address, port).parse::<SocketAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_in_every_form_are_accepted() {
        for address in ["", "127.0.0.1", "0.0.0.0", "::1", "[::1]", "::", "fe80::1"] {
            assert!(is_ip_or_empty(address, 80), "{address}");
        }
    }

    #[test]
    fn names_and_malformed_addresses_are_refused() {
        for address in [
            "localhost",
            "example.com",
            "127.0.0.1:80",
            "1.2.3",
            " 127.0.0.1",
            "[::1",
        ] {
            assert!(!is_ip_or_empty(address, 80), "{address}");
        }
    }
}
