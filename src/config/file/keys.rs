//! Key audit: which keys of a config file poolgate uses, which it knowingly ignores, and which
//! nobody knows (probable typos).
//!
//! The keys poolgate uses are read off the typed structs (by serializing their defaults), so this
//! file only lists the keys that PixlProxy and its frameworks (pixl-server, pixl-server-web)
//! document but poolgate does not act on. Those are accepted with one warning each.

use super::model::{FileConfig, PoolConfig};
use crate::config::problem::Problem;
use serde_yaml::{Mapping, Value};

/// Top-level keys of pixl-server that poolgate accepts and ignores.
const IGNORED_TOP: &[&str] = &[
    "log_async",
    "inject_cli_args",
    "log_archive_path",
    "log_archive_keep",
    "log_archive_storage",
];

/// `WebServer` keys of pixl-server-web that poolgate accepts and ignores (for now).
const IGNORED_WEB: &[&str] = &[
    "http_regex_json",
    "http_perf_report",
    "http_full_uri_match",
    "http_flatten_query",
    "http_uri_handlers",
];

/// `PixlProxy` keys outside the pools that poolgate accepts and ignores (for now).
const IGNORED_PROXY: &[&str] = &[];

/// Pool keys of PixlProxy that poolgate accepts and ignores (for now).
const IGNORED_POOL: &[&str] = &[];

/// Warnings for every key that is not used: known-but-ignored ones and probable typos.
pub(super) fn audit(doc: &Value) -> Vec<Problem> {
    let defaults = match serde_yaml::to_value(FileConfig::default()) {
        Ok(v) => v,
        Err(_) => return Vec::new(),
    };
    let pool_defaults = serde_yaml::to_value(PoolConfig::default()).unwrap_or(Value::Null);
    let mut found = Vec::new();
    let Some(top) = doc.as_mapping() else {
        return found;
    };
    let known_top = key_names(&defaults);
    audit_map(top, "", &known_top, IGNORED_TOP, &mut found);
    if let Some(web) = section(top, "WebServer") {
        let known = key_names(defaults.get("WebServer").unwrap_or(&Value::Null));
        audit_map(web, "WebServer.", &known, IGNORED_WEB, &mut found);
    }
    if let Some(proxy) = section(top, "PixlProxy") {
        let known = key_names(defaults.get("PixlProxy").unwrap_or(&Value::Null));
        audit_map(proxy, "PixlProxy.", &known, IGNORED_PROXY, &mut found);
        if let Some(pools) = section(proxy, "pools") {
            let known = key_names(&pool_defaults);
            for (id, pool) in pools {
                if let (Some(id), Some(pool)) = (id.as_str(), pool.as_mapping()) {
                    let prefix = format!("PixlProxy.pools.{id}.");
                    audit_map(pool, &prefix, &known, IGNORED_POOL, &mut found);
                }
            }
        }
    }
    found
}

fn section<'a>(map: &'a Mapping, key: &str) -> Option<&'a Mapping> {
    map.get(key).and_then(Value::as_mapping)
}

fn key_names(v: &Value) -> Vec<String> {
    v.as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn audit_map(
    map: &Mapping,
    prefix: &str,
    known: &[String],
    ignored: &[&str],
    out: &mut Vec<Problem>,
) {
    for key in map.keys() {
        let Some(key) = key.as_str() else { continue };
        if known.iter().any(|k| k == key) {
            continue;
        }
        let path = format!("{prefix}{key}");
        if ignored.contains(&key) {
            out.push(Problem::ignored(path));
        } else {
            let hint = closest(
                key,
                known
                    .iter()
                    .map(String::as_str)
                    .chain(ignored.iter().copied()),
            );
            out.push(Problem::unknown(path, hint));
        }
    }
}

/// The known key nearest to `key` by edit distance, if it is close enough to be a typo.
fn closest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    candidates
        .map(|c| (strsim::levenshtein(key, c), c))
        .filter(|(d, c)| *d <= 3.max(c.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::problem::Severity;

    fn audit_str(s: &str) -> Vec<Problem> {
        audit(&serde_yaml::from_str(s).unwrap())
    }

    #[test]
    fn used_keys_raise_nothing() {
        let found = audit_str(
            "log_dir: logs\nWebServer: {http_port: 1}\nPixlProxy: {pools: {a: {target_hostname: x}}}",
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn framework_keys_are_ignored_with_a_warning() {
        let found = audit_str("log_async: true\nWebServer: {http_regex_json: x}");
        let paths: Vec<_> = found
            .iter()
            .map(|p| (p.path.as_str(), p.severity))
            .collect();
        let w = Severity::Ignored;
        assert_eq!(
            paths,
            vec![("log_async", w), ("WebServer.http_regex_json", w),]
        );
    }

    #[test]
    fn unknown_keys_are_typos_with_a_suggestion() {
        let found = audit_str("PixlProxy: {pools: {a: {target_hostnme: x}}}");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Typo);
        assert_eq!(found[0].path, "PixlProxy.pools.a.target_hostnme");
        assert!(
            found[0].message.contains("target_hostname"),
            "{}",
            found[0].message
        );
    }
}
