//! Environment overrides: every setting can come from a `POOLGATE_` variable, by one rule —
//! the key path in upper case, sections and keys joined by `_`:
//!
//! - top level: `POOLGATE_DEBUG_LEVEL`, `POOLGATE_SHUTDOWN_TIMEOUT_SEC`;
//! - `WebServer`: `POOLGATE_WEBSERVER_HTTP_PORT`; `PixlProxy`: `POOLGATE_PIXLPROXY_QUEUE_DIR`;
//! - a pool in the file: `POOLGATE_POOL_<ID>_<KEY>` (the id in upper case, other characters
//!   than letters and digits as `_`), e.g. `POOLGATE_POOL_API_TARGET_HOSTNAME`, and its health
//!   check: `POOLGATE_POOL_API_HEALTH_CHECK_INTERVAL_MS`.
//!
//! Values are YAML, so lists and maps can be given inline (`'["a:1", "b:2"]'`). `<NAME>_FILE`
//! reads the value from a file (its trailing newline dropped), for secrets. The environment wins
//! over the file; a value of the wrong type is an error naming the variable, and a `POOLGATE_`
//! name that matches no setting a warning (it may be another tool's variable).

use super::model::{FileConfig, PoolConfig};
use crate::config::problem::{Problem, Severity};
use serde_yaml::{Mapping, Value};

/// Variables with a meaning of their own (not settings by the rule above).
const OWN: &[&str] = &[
    "POOLGATE_CONFIG",
    "POOLGATE_STATS_API_TOKENS",
    "POOLGATE_STATS_API_TOKENS_FILE",
];

/// One setting taken from the environment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Override {
    /// Dotted key path, e.g. `WebServer.http_port`.
    pub(crate) path: String,
    pub(crate) var: String,
    /// The value came from the file named by `<var>_FILE`.
    pub(crate) from_file: bool,
}

fn norm(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Every overridable key path below `prefix` in `defaults`, with its variable-name suffix.
fn paths(defaults: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    let Value::Mapping(map) = defaults else {
        return;
    };
    for (key, value) in map {
        let Some(key) = key.as_str() else { continue };
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        if key == "pools" {
            continue;
        }
        if matches!(value, Value::Mapping(m) if !m.is_empty()) && key != "http_response_headers" {
            paths(value, &path, out);
        } else {
            out.push((norm(&path.replace('.', "_")), path));
        }
    }
}

/// The settings the environment overrides in `doc`, which is changed in place.
pub(crate) fn apply(
    doc: &mut Value,
    vars: &[(String, String)],
    read_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> (Vec<Override>, Vec<Problem>) {
    let defaults = serde_yaml::to_value(FileConfig::default()).unwrap_or(Value::Null);
    let pool_defaults = serde_yaml::to_value(PoolConfig::default()).unwrap_or(Value::Null);
    let mut top = Vec::new();
    paths(&defaults, "", &mut top);
    let mut pool_keys = Vec::new();
    paths(&pool_defaults, "", &mut pool_keys);
    let pool_ids: Vec<String> = doc
        .get("PixlProxy")
        .and_then(|p| p.get("pools"))
        .and_then(Value::as_mapping)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let (mut found, mut problems) = (Vec::new(), Vec::new());
    for (var, raw) in vars {
        let Some(rest) = var.strip_prefix("POOLGATE_") else {
            continue;
        };
        if OWN.contains(&var.as_str()) {
            continue;
        }
        let (rest, from_file) = match rest.strip_suffix("_FILE") {
            Some(r) if resolve(r, &top, &pool_keys, &pool_ids).is_some() => (r, true),
            _ => (rest, false),
        };
        let Some(path) = resolve(rest, &top, &pool_keys, &pool_ids) else {
            problems.push(not_a_setting(var, &top, &pool_keys, &pool_ids));
            continue;
        };
        let text = if from_file {
            match read_file(raw) {
                Ok(t) => t.trim_end_matches(['\n', '\r']).to_string(),
                Err(e) => {
                    problems.push(Problem::error(
                        var.clone(),
                        format!("cannot read {raw}: {e}"),
                    ));
                    continue;
                }
            }
        } else {
            raw.clone()
        };
        let expected = default_at(&defaults, &pool_defaults, &path);
        match typed(&text, expected) {
            Ok(value) => {
                set(doc, &path, value);
                found.push(Override {
                    path,
                    var: var.clone(),
                    from_file,
                });
            }
            Err(why) => problems.push(Problem::error(var.clone(), why)),
        }
    }
    (found, problems)
}

/// A warning for a `POOLGATE_` variable that names no setting: it may well belong to something
/// else (a build script's `POOLGATE_BIN`), so it does not fail `check`. A close setting's
/// variable is suggested.
fn not_a_setting(
    var: &str,
    top: &[(String, String)],
    pool_keys: &[(String, String)],
    pool_ids: &[String],
) -> Problem {
    let pool_names = pool_ids.iter().flat_map(|id| {
        let id = norm(id);
        pool_keys
            .iter()
            .map(move |(key, _)| format!("POOLGATE_POOL_{id}_{key}"))
    });
    let names = top
        .iter()
        .map(|(name, _)| format!("POOLGATE_{name}"))
        .chain(pool_names);
    let message = match closest_name(var, names) {
        Some(name) => format!("matches no setting; ignored (did you mean `{name}`?)"),
        None => "matches no setting; ignored (see README, \"Environment\")".into(),
    };
    Problem::new(Severity::Warning, var, message)
}

/// The name nearest to `var` if it is a likely misspelling: at most one edit per five
/// characters of the name, and at least one.
fn closest_name(var: &str, names: impl Iterator<Item = String>) -> Option<String> {
    names
        .map(|name| (strsim::levenshtein(var, &name), name))
        .filter(|(distance, name)| {
            *distance <= 1.max(name.len().saturating_sub("POOLGATE_".len()) / 5)
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// The key path a variable suffix names.
fn resolve(
    rest: &str,
    top: &[(String, String)],
    pool_keys: &[(String, String)],
    pool_ids: &[String],
) -> Option<String> {
    if let Some(after) = rest.strip_prefix("POOL_") {
        // The longest pool id that leaves a known pool key.
        let mut ids: Vec<&String> = pool_ids.iter().collect();
        ids.sort_by_key(|id| std::cmp::Reverse(id.len()));
        for id in ids {
            let Some(key) = after.strip_prefix(&format!("{}_", norm(id))) else {
                continue;
            };
            if let Some((_, path)) = pool_keys.iter().find(|(name, _)| name == key) {
                return Some(format!("PixlProxy.pools.{id}.{path}"));
            }
        }
        return None;
    }
    let sections = [("WEBSERVER_", "WebServer."), ("PIXLPROXY_", "PixlProxy.")];
    top.iter()
        .find(|(name, path)| {
            name == rest
                && (path.contains('.') || !sections.iter().any(|(p, _)| rest.starts_with(p)))
        })
        .map(|(_, path)| path.clone())
}

/// The default value at `path` (for its type).
fn default_at<'a>(defaults: &'a Value, pool_defaults: &'a Value, path: &str) -> Option<&'a Value> {
    let (mut node, rest) = match path.strip_prefix("PixlProxy.pools.") {
        Some(after) => (pool_defaults, after.split_once('.').map(|(_, k)| k)?),
        None => (defaults, path),
    };
    for seg in rest.split('.') {
        node = node.get(seg)?;
    }
    Some(node)
}

/// Parse `text` as YAML and check it has the default's kind.
fn typed(text: &str, expected: Option<&Value>) -> Result<Value, String> {
    let value: Value = serde_yaml::from_str(text).unwrap_or(Value::String(text.to_string()));
    let ok = match (expected, &value) {
        (None | Some(Value::Null), _) => true,
        (Some(Value::String(_)), Value::String(_)) => true,
        // Text-valued settings keep digits and `true` as written.
        (Some(Value::String(_)), _) => return Ok(Value::String(text.to_string())),
        (Some(Value::Bool(_)), Value::Bool(_)) => true,
        (Some(Value::Bool(_)), Value::Number(n)) => n.as_u64().is_some(),
        (Some(Value::Number(d)), Value::Number(n)) => d.is_f64() || !n.is_f64(),
        (Some(Value::Number(_)), Value::Bool(_)) => false,
        (Some(Value::Sequence(_)), Value::Sequence(_)) => true,
        (Some(Value::Mapping(_)), Value::Mapping(_)) => true,
        _ => false,
    };
    let kind = match expected {
        Some(Value::Bool(_)) => "true or false",
        Some(Value::Number(_)) => "a number",
        Some(Value::Sequence(_)) => "a list, e.g. [\"a\", \"b\"]",
        Some(Value::Mapping(_)) => "a map, e.g. {Name: value}",
        _ => "a value",
    };
    ok.then_some(value)
        .ok_or_else(|| format!("expected {kind}, got `{text}`"))
}

fn set(doc: &mut Value, path: &str, value: Value) {
    if !doc.is_mapping() {
        *doc = Value::Mapping(Mapping::new());
    }
    let segs: Vec<&str> = path.split('.').collect();
    let mut node = doc;
    for seg in &segs[..segs.len() - 1] {
        let Value::Mapping(map) = node else { return };
        let key = Value::String((*seg).to_string());
        if !map.get(&key).is_some_and(Value::is_mapping) {
            map.insert(key.clone(), Value::Mapping(Mapping::new()));
        }
        let Some(next) = map.get_mut(&key) else {
            return;
        };
        node = next;
    }
    if let (Value::Mapping(map), Some(last)) = (node, segs.last()) {
        map.insert(Value::String((*last).to_string()), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, vars: &[(&str, &str)]) -> (Value, Vec<Override>, Vec<Problem>) {
        let mut doc: Value = serde_yaml::from_str(text).unwrap();
        let vars: Vec<_> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let read = |p: &str| match p {
            "/secret" => Ok("user:pw\n".to_string()),
            _ => Err(std::io::Error::other("no such file")),
        };
        let (found, problems) = apply(&mut doc, &vars, &read);
        (doc, found, problems)
    }

    #[test]
    fn the_naming_rule_reaches_every_level() {
        let (doc, found, problems) = run(
            "PixlProxy: {pools: {my-api: {target_hostname: a}}}",
            &[
                ("POOLGATE_DEBUG_LEVEL", "7"),
                ("POOLGATE_WEBSERVER_HTTP_PORT", "8080"),
                ("POOLGATE_PIXLPROXY_VALIDATE_SSL_CERTS", "false"),
                ("POOLGATE_POOL_MY_API_TARGET_HOSTNAME", "b.internal"),
                ("POOLGATE_POOL_MY_API_HEALTH_CHECK_INTERVAL_MS", "250"),
                ("POOLGATE_POOL_MY_API_TARGETS", "[\"x:1\", \"y:2\"]"),
                ("POOLGATE_POOL_MY_API_HTTP_BASIC_AUTH_FILE", "/secret"),
                ("HOME", "/root"),
            ],
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(found.len(), 7);
        assert_eq!(doc["debug_level"], Value::from(7));
        assert_eq!(doc["WebServer"]["http_port"], Value::from(8080));
        assert_eq!(doc["PixlProxy"]["validate_ssl_certs"], Value::from(false));
        let pool = &doc["PixlProxy"]["pools"]["my-api"];
        assert_eq!(pool["target_hostname"], Value::from("b.internal"));
        assert_eq!(pool["health_check"]["interval_ms"], Value::from(250));
        assert_eq!(pool["targets"][1], Value::from("y:2"));
        assert_eq!(pool["http_basic_auth"], Value::from("user:pw"));
        assert!(found
            .iter()
            .any(|o| o.from_file && o.path.ends_with("http_basic_auth")));
    }

    #[test]
    fn wrong_types_and_unknown_names_name_the_variable() {
        let (_, _, problems) = run(
            "{}",
            &[
                ("POOLGATE_WEBSERVER_HTTP_PORT", "eighty"),
                ("POOLGATE_WEBSERVER_HTTP_PROT", "80"),
                ("POOLGATE_POOL_NOPE_TARGET_HOSTNAME", "x"),
                ("POOLGATE_PIXLPROXY_QUEUE_DIR_FILE", "/missing"),
            ],
        );
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "POOLGATE_WEBSERVER_HTTP_PORT",
                "POOLGATE_WEBSERVER_HTTP_PROT",
                "POOLGATE_POOL_NOPE_TARGET_HOSTNAME",
                "POOLGATE_PIXLPROXY_QUEUE_DIR_FILE"
            ]
        );
        assert!(
            problems[0].message.contains("expected a number"),
            "{}",
            problems[0].message
        );
        let severities: Vec<_> = problems.iter().map(|p| p.severity).collect();
        use Severity::{Error, Warning};
        assert_eq!(severities, [Error, Warning, Warning, Error]);
    }

    #[test]
    fn variables_that_are_no_setting_are_warnings_with_a_near_name() {
        let (_, found, problems) = run(
            "PixlProxy: {pools: {api: {target_hostname: a}}}",
            &[
                ("POOLGATE_BIN", "/usr/local/bin/poolgate"),
                ("POOLGATE_WEBSERVER_HTTP_PROT", "80"),
                ("POOLGATE_POOL_API_TARGET_HOSTNMAE", "b"),
            ],
        );
        assert!(found.is_empty());
        let seen: Vec<_> = problems
            .iter()
            .map(|p| (p.severity, p.path.as_str(), p.message.as_str()))
            .collect();
        let w = Severity::Warning;
        assert_eq!(
            seen,
            [
                (w, "POOLGATE_BIN", "matches no setting; ignored (see README, \"Environment\")"),
                (w, "POOLGATE_WEBSERVER_HTTP_PROT", "matches no setting; ignored (did you mean `POOLGATE_WEBSERVER_HTTP_PORT`?)"),
                (w, "POOLGATE_POOL_API_TARGET_HOSTNMAE", "matches no setting; ignored (did you mean `POOLGATE_POOL_API_TARGET_HOSTNAME`?)"),
            ]
        );
    }

    #[test]
    fn text_settings_keep_what_was_written() {
        let (doc, _, problems) = run("{}", &[("POOLGATE_WEBSERVER_HTTP_SERVER_SIGNATURE", "1.0")]);
        assert!(problems.is_empty());
        assert_eq!(
            doc["WebServer"]["http_server_signature"],
            Value::from("1.0")
        );
    }
}
