//! A problem found in a config file: where it is (file, line, key path) and how bad it is;
//! and the collector the settings are built with, so `check` can print every problem at once.

use crate::front_end::HeaderPair;
use regex::Regex;
use std::collections::BTreeMap;
use std::fmt;

/// How a problem affects `serve` and `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    /// The config cannot run: `serve` and `check` both stop with exit code 2.
    Error,
    /// A key nobody knows, probably a typo: `check` fails, `serve` warns and runs.
    Typo,
    /// A key of PixlProxy's frameworks that poolgate does not use: a warning only.
    Ignored,
    /// Something poolgate passes over that may be a slip (a `POOLGATE_` variable that names no
    /// setting): a warning only.
    Warning,
    /// The config runs but proxies nothing (no pools, no static files): `check` fails, `serve`
    /// reports it and runs (every request gets 404).
    Idle,
}

impl Severity {
    /// Whether `check` fails on a problem of this severity (`serve` stops only on `Error`).
    pub(crate) fn fails_check(self) -> bool {
        matches!(self, Severity::Error | Severity::Typo | Severity::Idle)
    }
}

/// One problem.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub(crate) severity: Severity,
    /// Dotted key path, e.g. `PixlProxy.pools.MyPool1.uri_match`; empty for file-level problems.
    pub(crate) path: String,
    pub(crate) message: String,
    /// 1-based line and column, where known.
    pub(crate) location: Option<(usize, usize)>,
}

impl Problem {
    pub(crate) fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
            location: None,
        }
    }

    pub(crate) fn ignored(path: String) -> Self {
        let message =
            "accepted for PixlProxy compatibility but not used by poolgate; ignored".into();
        Problem {
            severity: Severity::Ignored,
            path,
            message,
            location: None,
        }
    }

    pub(crate) fn unknown(path: String, hint: Option<String>) -> Self {
        let message = match hint {
            Some(h) => format!("unknown key (probable typo; did you mean `{h}`?)"),
            None => "unknown key (probable typo)".into(),
        };
        Problem {
            severity: Severity::Typo,
            path,
            message,
            location: None,
        }
    }

    /// A problem of the given severity.
    pub(crate) fn new(
        severity: Severity,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            severity,
            path: path.into(),
            message: message.into(),
            location: None,
        }
    }

    pub(crate) fn at(mut self, location: Option<(usize, usize)>) -> Self {
        self.location = self.location.or(location);
        self
    }
}

/// A problem printed with the file it came from: `FILE:LINE:COL: error: PATH: MESSAGE`.
pub(crate) struct Located<'a> {
    pub(crate) file: &'a str,
    pub(crate) problem: &'a Problem,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.problem;
        write!(f, "{}", self.file)?;
        if let Some((line, col)) = p.location {
            write!(f, ":{line}:{col}")?;
        }
        let label = match p.severity {
            Severity::Error | Severity::Idle => "error",
            Severity::Typo => "error (unknown key)",
            Severity::Ignored | Severity::Warning => "warning",
        };
        write!(f, ": {label}: ")?;
        if !p.path.is_empty() {
            write!(f, "{}: ", p.path)?;
        }
        f.write_str(&p.message)
    }
}

/// Collects problems while the settings are built.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::error(path, message));
    }

    /// A regex, or `None` (with a problem recorded) when it does not compile.
    pub(crate) fn regex(
        &mut self,
        path: &str,
        pattern: &str,
        case_insensitive: bool,
    ) -> Option<Regex> {
        let source = if case_insensitive {
            format!("(?i){pattern}")
        } else {
            pattern.to_string()
        };
        Regex::new(&source)
            .map_err(|e| self.push(path, format!("invalid regex: {}", one_line(&e.to_string()))))
            .ok()
    }

    /// Validated header pairs of a `name: value` map, each bad one recorded.
    pub(crate) fn headers(
        &mut self,
        path: &str,
        map: &BTreeMap<String, String>,
    ) -> Vec<HeaderPair> {
        map.iter()
            .filter_map(|(k, v)| {
                HeaderPair::new(k, v)
                    .map_err(|e| self.push(format!("{path}.{k}"), e.to_string()))
                    .ok()
            })
            .collect()
    }
}

/// A message on one line (regex errors span several).
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Key path of a pool setting, for problem messages.
pub(crate) struct PoolPath<'a>(pub(crate) &'a str);

impl PoolPath<'_> {
    pub(crate) fn key(&self, key: &str) -> String {
        format!("PixlProxy.pools.{}.{key}", self.0)
    }
}
