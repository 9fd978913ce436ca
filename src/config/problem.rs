//! A problem found in a config file: where it is (file, line, key path) and how bad it is.

use std::fmt;

/// How a problem affects `serve` and `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The config cannot run: `serve` and `check` both stop with exit code 2.
    Error,
    /// A key nobody knows, probably a typo: `check` fails, `serve` warns and runs.
    Typo,
    /// A key of PixlProxy's frameworks that poolgate does not use: a warning only.
    Ignored,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub severity: Severity,
    /// Dotted key path, e.g. `PixlProxy.pools.MyPool1.uri_match`; empty for file-level problems.
    pub path: String,
    pub message: String,
    /// 1-based line and column, where known.
    pub location: Option<(usize, usize)>,
}

impl Problem {
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
            location: None,
        }
    }

    pub fn ignored(path: String) -> Self {
        let message =
            "accepted for PixlProxy compatibility but not used by poolgate; ignored".into();
        Problem {
            severity: Severity::Ignored,
            path,
            message,
            location: None,
        }
    }

    pub fn unknown(path: String, hint: Option<String>) -> Self {
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

    pub fn at(mut self, location: Option<(usize, usize)>) -> Self {
        self.location = self.location.or(location);
        self
    }
}

/// A problem printed with the file it came from: `FILE:LINE:COL: error: PATH: MESSAGE`.
pub struct Located<'a> {
    pub file: &'a str,
    pub problem: &'a Problem,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.problem;
        write!(f, "{}", self.file)?;
        if let Some((line, col)) = p.location {
            write!(f, ":{line}:{col}")?;
        }
        let label = match p.severity {
            Severity::Error => "error",
            Severity::Typo => "error (unknown key)",
            Severity::Ignored => "warning",
        };
        write!(f, ": {label}: ")?;
        if !p.path.is_empty() {
            write!(f, "{}: ", p.path)?;
        }
        f.write_str(&p.message)
    }
}
