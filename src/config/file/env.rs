//! Overrides of the file's settings, applied in this order (a later one wins):
//!
//! 1. pixl-server's `config_overrides_file`: a JSON (or YAML) object of `dot.path` keys, e.g.
//!    `{"debug_level": 5, "WebServer.http_port": 8080}`, read after the file;
//! 2. pixl-server's environment form, `PIXLPROXY_<path>` with `__` between levels and the key
//!    names as written (case-sensitive): `PIXLPROXY_debug_level`, `PIXLPROXY_WebServer__http_port`,
//!    `PIXLPROXY_PixlProxy__pools__api__target_hostname`;
//! 3. poolgate's own environment form, `POOLGATE_` and the key path in upper case, sections
//!    and keys joined by `_`:
//!    - top level: `POOLGATE_DEBUG_LEVEL`, `POOLGATE_SHUTDOWN_TIMEOUT_SEC`;
//!    - `WebServer`: `POOLGATE_WEBSERVER_HTTP_PORT`; `PixlProxy`: `POOLGATE_PIXLPROXY_QUEUE_DIR`;
//!    - a pool in the file: `POOLGATE_POOL_<ID>_<KEY>` (the id in upper case, other characters
//!      than letters and digits as `_`), e.g. `POOLGATE_POOL_API_TARGET_HOSTNAME`, and its health
//!      check: `POOLGATE_POOL_API_HEALTH_CHECK_INTERVAL_MS`.
//!
//! Values are YAML, so lists and maps can be given inline (`'["a:1", "b:2"]'`); text given for
//! a number or a flag is read as one (pixl-server's "auto-detect"). `POOLGATE_<NAME>_FILE`
//! reads the value from a file (its trailing newline dropped), for secrets. A value of the
//! wrong type is an error naming its variable (or overrides key); a name that matches no
//! setting is a warning (a variable may belong to another tool).

use super::model::{FileConfig, PoolConfig};
use crate::config::problem::{Problem, Severity};
use serde_yaml::{Mapping, Value};

/// Variables with a meaning of their own (not settings by the rule above).
const OWN: &[&str] = &[
    "POOLGATE_CONFIG",
    "POOLGATE_STATS_API_TOKENS",
    "POOLGATE_STATS_API_TOKENS_FILE",
];

/// Prefix of pixl-server's environment form (its `__name` upper-cased).
pub(crate) const PIXL_PREFIX: &str = "PIXLPROXY_";

/// Where an overridden setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A `POOLGATE_` variable.
    Poolgate,
    /// A `PIXLPROXY_` variable.
    Pixl,
    /// The `config_overrides_file`.
    OverridesFile,
}

/// One setting taken from the overrides file or the environment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Override {
    /// Dotted key path, e.g. `WebServer.http_port`.
    pub(crate) path: String,
    /// The variable, or the overrides file's path.
    pub(crate) var: String,
    /// The value came from the file named by `<var>_FILE`.
    pub(crate) from_file: bool,
    pub(crate) origin: Origin,
}

impl Override {
    /// The source as `showconfig` names it.
    pub(crate) fn source(&self) -> String {
        match (self.origin, self.from_file) {
            (Origin::OverridesFile, _) => format!("overrides file {}", self.var),
            (_, true) => format!("the file named by {}", self.var),
            (_, false) => self.var.clone(),
        }
    }
}

/// The known key paths: (POOLGATE_ suffix, dotted path) of the top level and the sections,
/// and of a pool.
struct Known {
    defaults: Value,
    pool_defaults: Value,
    top: Vec<(String, String)>,
    pool_keys: Vec<(String, String)>,
}

impl Known {
    fn new() -> Known {
        let defaults = serde_yaml::to_value(FileConfig::default()).unwrap_or(Value::Null);
        let pool_defaults = serde_yaml::to_value(PoolConfig::default()).unwrap_or(Value::Null);
        let mut top = Vec::new();
        paths(&defaults, "", &mut top);
        let mut pool_keys = Vec::new();
        paths(&pool_defaults, "", &mut pool_keys);
        Known {
            defaults,
            pool_defaults,
            top,
            pool_keys,
        }
    }

    /// Whether a dotted path names a setting (a pool's keys under any pool id).
    fn knows(&self, path: &str) -> bool {
        if let Some(after) = path.strip_prefix("PixlProxy.pools.") {
            return after
                .split_once('.')
                .is_some_and(|(id, key)| !id.is_empty() && self.pool_knows(key));
        }
        self.top.iter().any(|(_, p)| p == path) || self.inside_leaf(&self.top, path)
    }

    fn pool_knows(&self, key: &str) -> bool {
        self.pool_keys.iter().any(|(_, p)| p == key) || self.inside_leaf(&self.pool_keys, key)
    }

    /// A key inside a map-valued setting (`WebServer.http_response_headers.Via`).
    fn inside_leaf(&self, list: &[(String, String)], path: &str) -> bool {
        list.iter().any(|(_, p)| {
            path.strip_prefix(p.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
                && matches!(
                    default_at(&self.defaults, &self.pool_defaults, p),
                    Some(Value::Mapping(_))
                )
        })
    }

    fn expected(&self, path: &str) -> Option<&Value> {
        default_at(&self.defaults, &self.pool_defaults, path)
    }
}

/// Apply the overrides file named in `doc`, then the `PIXLPROXY_` and the `POOLGATE_`
/// variables of `vars`. `read_file` reads the overrides file and `_FILE` values.
pub(crate) fn apply_all(
    doc: &mut Value,
    vars: &[(String, String)],
    read_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> (Vec<Override>, Vec<Problem>) {
    let known = Known::new();
    let (mut found, mut problems) = overrides_file(doc, &known, read_file);
    let (pixl, pixl_problems) = pixl_vars(doc, vars, &known);
    found.extend(pixl);
    problems.extend(pixl_problems);
    let (own, own_problems) = apply(doc, vars, read_file);
    found.extend(own);
    problems.extend(own_problems);
    // The last override of a path is the one in effect.
    let mut last: Vec<Override> = Vec::with_capacity(found.len());
    for o in found.into_iter().rev() {
        if !last.iter().any(|l| l.path == o.path) {
            last.push(o);
        }
    }
    last.reverse();
    (last, problems)
}

/// pixl-server's `config_overrides_file`: a JSON object of dotted paths to values.
fn overrides_file(
    doc: &mut Value,
    known: &Known,
    read_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> (Vec<Override>, Vec<Problem>) {
    let (mut found, mut problems) = (Vec::new(), Vec::new());
    let Some(file) = doc
        .get("config_overrides_file")
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty())
        .map(String::from)
    else {
        return (found, problems);
    };
    let key = "config_overrides_file";
    let text = match read_file(&file) {
        Ok(text) => text,
        // pixl-server skips a missing overrides file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let why = format!("{file} not found; no overrides applied");
            problems.push(Problem::new(Severity::Warning, key, why));
            return (found, problems);
        }
        Err(e) => {
            problems.push(Problem::error(key, format!("cannot read {file}: {e}")));
            return (found, problems);
        }
    };
    if super::limits::check(&text).is_err() {
        problems.push(Problem::error(
            key,
            format!("{file}: too large or too deeply nested"),
        ));
        return (found, problems);
    }
    let entries = match serde_yaml::from_str::<Value>(&text) {
        Ok(Value::Mapping(map)) => map,
        Ok(Value::Null) => Mapping::new(),
        Ok(_) => {
            let why = format!("{file}: must be an object of \"dot.path\": value");
            problems.push(Problem::error(key, why));
            return (found, problems);
        }
        Err(e) => {
            problems.push(Problem::error(key, format!("{file}: {e}")));
            return (found, problems);
        }
    };
    for (path, value) in entries {
        let Some(written) = path.as_str() else {
            continue;
        };
        // `dot.path`, `slash/path`, or the environment form (`PIXLPROXY_WebServer__http_port`).
        let path = match written.strip_prefix(PIXL_PREFIX) {
            Some(rest) => rest.replace("__", "."),
            None => written.replace('/', "."),
        };
        let named = format!("{key} {file}: {written}");
        if !known.knows(&path) {
            let why = "matches no setting; ignored";
            problems.push(Problem::new(Severity::Warning, named, why));
            continue;
        }
        let value = typed_value(value, known.expected(&path));
        let source = (file.clone(), false, Origin::OverridesFile);
        let out = (&mut found, &mut problems);
        apply_one(doc, path, value, source, named, out);
    }
    (found, problems)
}

/// pixl-server's environment form: `PIXLPROXY_WebServer__http_port=8080`.
fn pixl_vars(
    doc: &mut Value,
    vars: &[(String, String)],
    known: &Known,
) -> (Vec<Override>, Vec<Problem>) {
    let (mut found, mut problems) = (Vec::new(), Vec::new());
    for (var, raw) in vars {
        let Some(rest) = var.strip_prefix(PIXL_PREFIX) else {
            continue;
        };
        let path = rest.replace("__", ".");
        if path.is_empty() || !known.knows(&path) {
            let why = "matches no setting; ignored (the form is PIXLPROXY_WebServer__http_port)";
            problems.push(Problem::new(Severity::Warning, var.clone(), why));
            continue;
        }
        let value = typed(raw, known.expected(&path));
        let source = (var.clone(), false, Origin::Pixl);
        let out = (&mut found, &mut problems);
        apply_one(doc, path, value, source, var.clone(), out);
    }
    (found, problems)
}

/// A value from the overrides file: text is read as YAML when the setting is no text.
fn typed_value(value: Value, expected: Option<&Value>) -> Result<Value, String> {
    match value {
        Value::String(text) => typed(&text, expected),
        other => {
            let text = serde_yaml::to_string(&other).unwrap_or_default();
            typed(text.trim_end(), expected)
        }
    }
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
        let value = typed(&text, expected);
        let source = (var.clone(), from_file, Origin::Poolgate);
        let out = (&mut found, &mut problems);
        apply_one(doc, path, value, source, var.clone(), out);
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
/// Set one override's value at `path` and record where it came from (`source`: the variable
/// or file, whether it was read from a `_FILE`, and the kind), or record why it cannot be
/// used, under `named`.
fn apply_one(
    doc: &mut Value,
    path: String,
    value: Result<Value, String>,
    (var, from_file, origin): (String, bool, Origin),
    named: String,
    (found, problems): (&mut Vec<Override>, &mut Vec<Problem>),
) {
    match value {
        Ok(value) => {
            set(doc, &path, value);
            found.push(Override {
                path,
                var,
                from_file,
                origin,
            });
        }
        Err(why) => problems.push(Problem::error(named, why)),
    }
}

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

    fn run_all(
        text: &str,
        vars: &[(&str, &str)],
        overrides: &str,
    ) -> (Value, Vec<Override>, Vec<Problem>) {
        let mut doc: Value = serde_yaml::from_str(text).unwrap();
        let vars: Vec<_> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let overrides = overrides.to_string();
        let read = move |p: &str| match p {
            "/o.json" => Ok(overrides.clone()),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        };
        let (found, problems) = apply_all(&mut doc, &vars, &read);
        (doc, found, problems)
    }

    #[test]
    fn pixl_server_variables_use_double_underscores_between_levels() {
        let (doc, found, problems) = run_all(
            "PixlProxy: {pools: {api: {target_hostname: a}}}",
            &[
                ("PIXLPROXY_debug_level", "5"),
                ("PIXLPROXY_WebServer__http_port", "8080"),
                ("PIXLPROXY_WebServer__http_log_requests", "true"),
                ("PIXLPROXY_PixlProxy__pools__api__target_hostname", "b"),
                ("PIXLPROXY_WebServer__http_prot", "1"),
                ("PIXLPROXY_WebServer__http_port_", "1"),
            ],
            "",
        );
        assert_eq!(doc["debug_level"], Value::from(5));
        assert_eq!(doc["WebServer"]["http_port"], Value::from(8080));
        assert_eq!(doc["WebServer"]["http_log_requests"], Value::from(true));
        assert_eq!(
            doc["PixlProxy"]["pools"]["api"]["target_hostname"],
            Value::from("b")
        );
        assert!(found.iter().all(|o| o.origin == Origin::Pixl));
        let warned: Vec<_> = problems
            .iter()
            .map(|p| (p.severity, p.path.as_str()))
            .collect();
        assert_eq!(
            warned,
            [
                (Severity::Warning, "PIXLPROXY_WebServer__http_prot"),
                (Severity::Warning, "PIXLPROXY_WebServer__http_port_")
            ]
        );
    }

    #[test]
    fn the_overrides_file_comes_after_the_file_and_before_the_environment() {
        let overrides = r#"{"debug_level": "5", "WebServer.http_port": 81, "WebServer/http_timeout": 9, "log_dir": "/o", "PixlProxy.pools.api.retries": 2, "Storage.engine": "S3"}"#;
        let (doc, found, problems) = run_all(
            "config_overrides_file: /o.json
log_dir: /f
PixlProxy: {pools: {api: {target_hostname: a}}}",
            &[
                ("PIXLPROXY_WebServer__http_port", "82"),
                ("POOLGATE_LOG_DIR", "/e"),
            ],
            overrides,
        );
        assert_eq!(doc["debug_level"], Value::from(5));
        assert_eq!(doc["WebServer"]["http_port"], Value::from(82));
        assert_eq!(doc["WebServer"]["http_timeout"], Value::from(9));
        assert_eq!(doc["log_dir"], Value::from("/e"));
        assert_eq!(doc["PixlProxy"]["pools"]["api"]["retries"], Value::from(2));
        let sources: Vec<_> = found
            .iter()
            .map(|o| (o.path.as_str(), o.source()))
            .collect();
        assert!(
            sources.contains(&("debug_level", "overrides file /o.json".into())),
            "{sources:?}"
        );
        assert!(
            sources.contains(&(
                "WebServer.http_port",
                "PIXLPROXY_WebServer__http_port".into()
            )),
            "{sources:?}"
        );
        assert!(
            sources.contains(&("log_dir", "POOLGATE_LOG_DIR".into())),
            "{sources:?}"
        );
        assert_eq!(found.iter().filter(|o| o.path == "log_dir").count(), 1);
        let paths: Vec<_> = problems
            .iter()
            .map(|p| (p.severity, p.path.as_str()))
            .collect();
        assert_eq!(
            paths,
            [(
                Severity::Warning,
                "config_overrides_file /o.json: Storage.engine"
            )]
        );
    }

    #[test]
    fn a_bad_overrides_file_is_an_error_and_a_missing_one_a_warning() {
        let (_, _, problems) = run_all("config_overrides_file: /o.json", &[], "[1, 2]");
        assert_eq!(problems[0].severity, Severity::Error);
        assert!(
            problems[0].message.contains("must be an object"),
            "{problems:?}"
        );
        let (_, _, problems) = run_all(
            "config_overrides_file: /o.json",
            &[],
            r#"{"WebServer.http_port": "eighty"}"#,
        );
        assert_eq!(problems[0].severity, Severity::Error);
        assert!(
            problems[0].message.contains("expected a number"),
            "{problems:?}"
        );
        let (_, _, problems) = run_all("config_overrides_file: /gone.json", &[], "");
        assert_eq!(problems[0].severity, Severity::Warning);
    }
}
