//! `scrub_request_headers` / `scrub_response_headers`: which headers a pool removes.
//!
//! The patterns are regexes matched case-insensitively against each header name, for every
//! request. PixlProxy's defaults and most real patterns are an anchored list of names
//! (`^(host|x\-proxy|x\-proxy\-\w+|expect)$`); such a pattern is compiled to plain name
//! comparisons, which read a short name in a few nanoseconds where a regex search takes a
//! hundred or more. Anything else stays a regex.

use http::header::HeaderName;
use regex::Regex;

/// Headers poolgate itself manages on both sides: message framing and the connection. A scrub
/// rule never removes these, because Pingora rewrites them for each hop and removing them would
/// break the message (PixlProxy scrubs them for the same reason: its HTTP library re-adds them).
pub(crate) const MANAGED: &[HeaderName] = &[
    http::header::HOST,
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
    http::header::CONNECTION,
];

/// Removes every header whose (lower-case) name matches the pattern, except the managed ones.
#[derive(Debug, Clone)]
pub(crate) struct ScrubRule(Matcher);

#[derive(Debug, Clone)]
enum Matcher {
    Nothing,
    /// The pattern was a list of names (and name prefixes followed by `\w+`).
    Names(Vec<NamePattern>),
    Regex(Regex),
}

/// One alternative of a name list: an exact lower-case name, or a prefix followed by one or
/// more word characters (`x\-proxy\-\w+`).
#[derive(Debug, Clone, PartialEq)]
struct NamePattern {
    name: String,
    word_tail: bool,
}

impl NamePattern {
    fn matches(&self, name: &str) -> bool {
        if !self.word_tail {
            return name == self.name;
        }
        name.strip_prefix(self.name.as_str()).is_some_and(|tail| {
            !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
    }
}

impl ScrubRule {
    /// Scrub nothing.
    pub(crate) fn none() -> Self {
        ScrubRule(Matcher::Nothing)
    }

    /// Compile a PixlProxy scrub pattern; matching is case-insensitive as the README says.
    pub(crate) fn new(pattern: &str) -> std::result::Result<Self, regex::Error> {
        if pattern.is_empty() {
            return Ok(ScrubRule::none());
        }
        let regex = Regex::new(&format!("(?i){pattern}"))?;
        Ok(ScrubRule(match name_list(pattern) {
            Some(names) => Matcher::Names(names),
            None => Matcher::Regex(regex),
        }))
    }

    fn matches(&self, name: &str) -> bool {
        match &self.0 {
            Matcher::Nothing => false,
            Matcher::Names(names) => names.iter().any(|n| n.matches(name)),
            Matcher::Regex(re) => re.is_match(name),
        }
    }

    /// The headers to remove (none, without allocating, in the usual case).
    pub(crate) fn doomed(&self, headers: &http::HeaderMap) -> Vec<HeaderName> {
        if matches!(self.0, Matcher::Nothing) {
            return Vec::new();
        }
        headers
            .keys()
            .filter(|n| !MANAGED.contains(n) && self.matches(n.as_str()))
            .cloned()
            .collect()
    }
}

/// `^(a|b\-c|d\-\w+)$` as name patterns, or `None` when the pattern is anything else.
fn name_list(pattern: &str) -> Option<Vec<NamePattern>> {
    let inner = pattern.strip_prefix("^(")?.strip_suffix(")$")?;
    inner.split('|').map(name_pattern).collect()
}

/// One alternative: name characters (`a-z`, `0-9`, `_`, and `-` escaped or not), optionally
/// ending in `\w+`. Letters are lower-cased (the regex is case-insensitive; names are lower
/// case).
fn name_pattern(alt: &str) -> Option<NamePattern> {
    let (body, word_tail) = match alt.strip_suffix("\\w+") {
        Some(body) => (body, true),
        None => (alt, false),
    };
    let mut name = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.next()? == '-' => name.push('-'),
            '-' | '_' => name.push(c),
            c if c.is_ascii_alphanumeric() => name.push(c.to_ascii_lowercase()),
            _ => return None,
        }
    }
    (!name.is_empty()).then_some(NamePattern { name, word_tail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_lists_match_as_their_regex_does() {
        let names = [
            "host",
            "x-proxy",
            "x-proxy-",
            "x-proxy-a1_b",
            "x-proxy-a.b",
            "x-proxyz",
            "expect",
            "content-length",
            "connection",
            "transfer-encoding",
            "x-b",
            "a",
            "x-custom",
            "h0st",
        ];
        for pattern in [
            crate::config::DEFAULT_SCRUB_REQUEST,
            crate::config::DEFAULT_SCRUB_RESPONSE,
            r"^(X\-Custom|A)$",
            r"^(x-b|x_c)$",
        ] {
            let rule = ScrubRule::new(pattern).unwrap();
            assert!(matches!(rule.0, Matcher::Names(_)), "{pattern}");
            let re = Regex::new(&format!("(?i){pattern}")).unwrap();
            for name in names {
                assert_eq!(rule.matches(name), re.is_match(name), "{pattern} {name}");
            }
        }
    }

    #[test]
    fn anything_else_stays_a_regex() {
        for pattern in [
            r"^x\-",
            r"^(a|b)",
            r"(a|b)$",
            r"^(a.b)$",
            r"^(a|(b))$",
            r"^(a|)$",
            r"^(\d+)$",
        ] {
            let rule = ScrubRule::new(pattern).unwrap();
            assert!(matches!(rule.0, Matcher::Regex(_)), "{pattern}");
        }
        assert!(ScrubRule::new("(").is_err());
        let h: http::HeaderMap = [(http::header::HOST, "h".parse().unwrap())]
            .into_iter()
            .collect();
        assert!(ScrubRule::new("^(host)$").unwrap().doomed(&h).is_empty());
    }
}
