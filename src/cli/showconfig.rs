//! `showconfig`: the effective config as YAML, every value followed by its source: `# file`,
//! `# default`, `# overrides file <path>` (pixl-server's `config_overrides_file`), or the
//! `POOLGATE_` / `PIXLPROXY_` variable it came from.

use crate::config::Override;
use serde_yaml::Value;

/// Where the value at `path` came from: the last override of it (or of a map holding it),
/// else the file when the file sets it, else the default.
fn source(path: &[String], file: &Value, overrides: &[Override]) -> String {
    let dotted = path.join(".");
    let overridden = overrides.iter().rev().find(|o| {
        dotted == o.path
            || dotted
                .strip_prefix(o.path.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
    });
    if let Some(o) = overridden {
        return o.source();
    }
    let mut node = file;
    for seg in path {
        match node.get(seg.as_str()) {
            Some(next) => node = next,
            None => return "default".into(),
        }
    }
    "file".into()
}

/// A YAML key as written by serde_yaml (quoted when it has to be).
fn unquote(key: &str) -> String {
    let key = key.trim();
    if key.len() >= 2
        && ((key.starts_with('\'') && key.ends_with('\''))
            || (key.starts_with('"') && key.ends_with('"')))
    {
        return key[1..key.len() - 1].replace("''", "'");
    }
    key.to_string()
}

/// `key: rest` of a mapping line (outside quotes), if it is one.
fn split_key(line: &str) -> Option<(&str, &str)> {
    let mut quote = None;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (None, b'\'' | b'"') if i == 0 => quote = Some(b),
            (Some(q), c) if c == q => quote = None,
            (None, b':') if bytes.get(i + 1).is_none_or(|n| *n == b' ') => {
                return Some((&line[..i], line[i + 1..].trim_start()));
            }
            _ => {}
        }
    }
    None
}

/// `yaml` (serde_yaml's rendering of the effective config) with each value's source as a
/// comment at the end of its line. `file` is the config file as written.
pub(super) fn annotate(yaml: &str, file: &Value, overrides: &[Override]) -> String {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = String::with_capacity(yaml.len() * 2);
    let mut stack: Vec<(usize, String)> = Vec::new();
    // Lines of a block scalar (`|-`) deeper than this indent are its text.
    let mut block: Option<usize> = None;
    for (n, line) in lines.iter().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        out.push_str(line);
        if let Some(at) = block {
            if indent > at || body.is_empty() {
                out.push('\n');
                continue;
            }
            block = None;
        }
        let parsed = match body.starts_with('-') {
            true => None,
            false => split_key(body),
        };
        if let Some((key, rest)) = parsed {
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let mut path: Vec<String> = stack.iter().map(|(_, k)| k.clone()).collect();
            path.push(unquote(key));
            let next_is_item = lines
                .get(n + 1)
                .is_some_and(|l| l.trim_start().starts_with('-'));
            if rest.is_empty() && !next_is_item {
                // A map: its members are annotated one by one.
                stack.push((indent, unquote(key)));
            } else {
                if rest.starts_with('|') || rest.starts_with('>') {
                    block = Some(indent);
                }
                out.push_str("  # ");
                out.push_str(&source(&path, file, overrides));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    #[test]
    fn every_value_names_its_source() {
        let file: Value = serde_yaml::from_str(
            "log_dir: x\nWebServer: {http_port: 1, http_response_headers: {Via: a}}",
        )
        .unwrap();
        let yaml = "log_dir: x\ndebug_level: 1\nlog_columns:\n- date\nWebServer:\n  http_port: 2\n  http_timeout: 120\n  http_response_headers:\n    Via: a\n";
        let overrides = [Override {
            path: "WebServer.http_port".into(),
            var: "PIXLPROXY_WebServer__http_port".into(),
            from_file: false,
            origin: Origin::Pixl,
        }];
        let out = annotate(yaml, &file, &overrides);
        assert_eq!(
            out,
            "log_dir: x  # file\ndebug_level: 1  # default\nlog_columns:  # default\n- date\nWebServer:\n  http_port: 2  # PIXLPROXY_WebServer__http_port\n  http_timeout: 120  # default\n  http_response_headers:\n    Via: a  # file\n"
        );
    }

    #[test]
    fn quoted_keys_and_values_with_colons_are_read_as_keys() {
        assert_eq!(split_key("'*.a.org': {}"), Some(("'*.a.org'", "{}")));
        assert_eq!(split_key("url: http://x:1"), Some(("url", "http://x:1")));
        assert_eq!(unquote("'*.a.org'"), "*.a.org");
        assert_eq!(split_key("- a"), None);
    }
}
