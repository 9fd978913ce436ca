//! What never reaches a log line, the stats or `showconfig` in the clear: the values of
//! `Authorization`, `Proxy-Authorization`, `Cookie` and `Set-Cookie`, and the configured
//! secrets (the stats API tokens and the pools' `http_basic_auth` credentials, plain and
//! base64-encoded) wherever they appear in a logged header value or URL.
//!
//! The configured secrets are set once at start (`set_secrets`); with none (the default) a
//! check costs one comparison of a header name.

use memchr::memmem;
use once_cell::sync::OnceCell;
use std::borrow::Cow;

/// What a redacted value is shown as.
pub(crate) const REDACTED: &str = "[redacted]";

static SECRETS: OnceCell<Vec<String>> = OnceCell::new();

/// Record the configured secrets (once per process; later calls change nothing). Values
/// shorter than four bytes are left out: they would match by chance.
pub(crate) fn set_secrets(secrets: Vec<String>) {
    let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 4).collect();
    secrets.sort();
    secrets.dedup();
    let _ = SECRETS.set(secrets);
}

fn secrets() -> &'static [String] {
    SECRETS.get().map_or(&[], Vec::as_slice)
}

/// Whether a header's values are secret whatever they hold.
pub(crate) fn is_secret_header(name: &http::HeaderName) -> bool {
    name == http::header::AUTHORIZATION
        || name == http::header::PROXY_AUTHORIZATION
        || name == http::header::COOKIE
        || name == http::header::SET_COOKIE
}

/// A header value as it may be logged: `[redacted]` for a secret header or a value holding a
/// configured secret, else the value (lossy UTF-8).
pub(crate) fn header_value<'a>(name: &http::HeaderName, value: &'a [u8]) -> Cow<'a, str> {
    if is_secret_header(name) || holds_secret(value, secrets()) {
        return Cow::Borrowed(REDACTED);
    }
    // `from_utf8` first: its word-at-a-time check is several times faster than the lossy
    // conversion's on the long ASCII values headers usually are.
    match std::str::from_utf8(value) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(value),
    }
}

/// `text` with every configured secret in it replaced by `[redacted]` (URLs in log lines and
/// the stats).
pub(crate) fn text(text: &str) -> Cow<'_, str> {
    replace_secrets(text, secrets())
}

fn holds_secret(value: &[u8], secrets: &[String]) -> bool {
    secrets
        .iter()
        .any(|s| memmem::find(value, s.as_bytes()).is_some())
}

fn replace_secrets<'a>(text: &'a str, secrets: &[String]) -> Cow<'a, str> {
    if !holds_secret(text.as_bytes(), secrets) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for secret in secrets {
        out = out.replace(secret.as_str(), REDACTED);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_headers_are_redacted_by_name() {
        for name in [
            "authorization",
            "proxy-authorization",
            "cookie",
            "set-cookie",
        ] {
            let name = http::HeaderName::from_static(name);
            assert_eq!(header_value(&name, b"anything"), REDACTED);
        }
        let plain = http::HeaderName::from_static("x-a");
        assert_eq!(header_value(&plain, b"1"), "1");
    }

    #[test]
    fn configured_secrets_are_redacted_wherever_they_appear() {
        let secrets = vec!["s3cr3t-token".to_string()];
        assert!(holds_secret(b"Bearer s3cr3t-token", &secrets));
        assert!(!holds_secret(b"Bearer other", &secrets));
        assert_eq!(
            replace_secrets("/api?key=s3cr3t-token&x=1", &secrets),
            "/api?key=[redacted]&x=1"
        );
        assert!(matches!(
            replace_secrets("/api?x=1", &secrets),
            Cow::Borrowed(_)
        ));
    }
}
