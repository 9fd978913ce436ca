//! Reading a config file: YAML (and therefore JSON) text -> typed `FileConfig` -> problems.
//!
//! One loader serves both formats because JSON is a subset of YAML 1.2, so a PixlProxy
//! `config.json` loads unchanged. Syntax and type errors come from serde_yaml with the key path
//! and line; semantic errors found later are located by `locate`.

use super::keys;
use super::model::FileConfig;
use crate::config::problem::Problem;
use serde_yaml::Value;

/// The typed config plus the warnings the key audit raised.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) config: FileConfig,
    pub(crate) problems: Vec<Problem>,
}

/// Parse config text. Fails with the first syntax or type error (nothing else can be checked
/// without a well-formed document); otherwise returns the config and the key-audit problems.
pub(crate) fn parse(text: &str) -> Result<Parsed, Problem> {
    let doc: Value = serde_yaml::from_str(text).map_err(serde_problem)?;
    let config: FileConfig = match doc {
        Value::Null => FileConfig::default(),
        Value::Mapping(_) => serde_yaml::from_str(text).map_err(serde_problem)?,
        _ => {
            return Err(Problem::error(
                "",
                "the config must be a map of settings (a YAML or JSON object)",
            ))
        }
    };
    let problems = keys::audit(&doc)
        .into_iter()
        .map(|p| {
            let at = locate(text, &p.path);
            p.at(at)
        })
        .collect();
    Ok(Parsed { config, problems })
}

/// The config with the environment's overrides applied (see `env.rs`), what was overridden,
/// and the problems (each naming its variable). `None` when the result does not deserialize.
pub(crate) fn with_env(
    text: &str,
    vars: &[(String, String)],
) -> (Option<FileConfig>, Vec<super::env::Override>, Vec<Problem>) {
    let mut doc: Value = serde_yaml::from_str(text).unwrap_or(Value::Null);
    if doc.is_null() {
        doc = Value::Mapping(serde_yaml::Mapping::new());
    }
    let read = |path: &str| std::fs::read_to_string(path);
    let (found, mut problems) = super::env::apply(&mut doc, vars, &read);
    let config = match serde_yaml::from_value::<FileConfig>(doc) {
        Ok(c) => Some(c),
        Err(e) => {
            let vars: Vec<&str> = found.iter().map(|o| o.var.as_str()).collect();
            let why = format!("with the environment's settings ({}): {e}", vars.join(", "));
            problems.push(Problem::error("environment", why));
            None
        }
    };
    (config, found, problems)
}

/// Turn a serde_yaml error into a problem, splitting off its key path and position.
fn serde_problem(e: serde_yaml::Error) -> Problem {
    let location = e.location().map(|l| (l.line(), l.column()));
    let mut text = e.to_string();
    if let Some(cut) = text.rfind(" at line ") {
        text.truncate(cut);
    }
    let (path, message) = match text.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (path.to_string(), rest.to_string()),
        _ => (String::new(), text),
    };
    Problem::error(path, message).at(location)
}

/// Best-effort line/column of a dotted key path in YAML or JSON text: each segment is looked
/// for as a key (`seg:` or `"seg":`) on a line after the previous segment's line.
pub(crate) fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    if path.is_empty() {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0;
    let mut found = None;
    for seg in path.split('.') {
        let plain = format!("{seg}:");
        let quoted = format!("\"{seg}\"");
        let (idx, col) = lines
            .iter()
            .enumerate()
            .skip(from)
            .find_map(|(i, line)| key_column(line, &plain, &quoted).map(|c| (i, c)))?;
        found = Some((idx + 1, col + 1));
        from = idx;
    }
    found
}

fn key_column(line: &str, plain: &str, quoted: &str) -> Option<usize> {
    let at_key = |pos: usize| {
        let before = &line[..pos];
        before.trim().is_empty() || before.trim_end().ends_with(['{', ','])
    };
    if let Some(pos) = line.find(quoted) {
        let rest = line[pos + quoted.len()..].trim_start();
        if rest.starts_with(':') && at_key(pos) {
            return Some(pos);
        }
    }
    line.find(plain).filter(|&pos| at_key(pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_loads_as_yaml() {
        let text = r#"{"WebServer": {"http_port": 3020}, "PixlProxy": {"pools": {"a": {"target_hostname": "h"}}}}"#;
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.config.web_server.http_port, 3020);
        assert_eq!(parsed.config.proxy.pools.0[0].0, "a");
    }

    #[test]
    fn defaults_follow_pixlproxy() {
        let parsed = parse("PixlProxy: {pools: {a: {target_hostname: h}}}").unwrap();
        let pool = &parsed.config.proxy.pools.0[0].1;
        assert!(pool.use_keep_alives && pool.preserve_host && pool.append_to_x_forwarded_for);
        assert_eq!(pool.target_protocol, "http");
        assert_eq!(parsed.config.web_server.http_keep_alives, "default");
        assert!(parsed.config.proxy.validate_ssl_certs);
        assert_eq!(parsed.config.debug_level, 1);
    }

    #[test]
    fn pools_keep_file_order() {
        let parsed = parse("PixlProxy:\n  pools:\n    zeta: {target_hostname: a}\n    alpha: {target_hostname: b}\n    mid: {target_hostname: c}\n").unwrap();
        let ids: Vec<_> = parsed
            .config
            .proxy
            .pools
            .0
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(ids, ["zeta", "alpha", "mid"]);
    }

    #[test]
    fn bad_yaml_has_a_line() {
        let err = parse("WebServer:\n  http_port: [1,\n").unwrap_err();
        assert!(err.location.is_some(), "{err:?}");
    }

    #[test]
    fn wrong_type_names_the_key_path_and_line() {
        let err = parse("WebServer:\n  http_port: eighty\n").unwrap_err();
        assert_eq!(err.path, "WebServer.http_port");
        assert_eq!(err.location.map(|l| l.0), Some(2));
    }

    #[test]
    fn wrong_type_in_a_pool_names_the_pool() {
        let err = parse("PixlProxy:\n  pools:\n    P1:\n      target_port: lots\n").unwrap_err();
        assert_eq!(err.path, "PixlProxy.pools.P1.target_port");
        assert_eq!(err.location.map(|l| l.0), Some(4));
    }

    #[test]
    fn locate_finds_nested_keys_in_yaml_and_json() {
        let yaml = "PixlProxy:\n  pools:\n    A:\n      uri_match: x\n    B:\n      uri_match: y\n";
        assert_eq!(locate(yaml, "PixlProxy.pools.B.uri_match"), Some((6, 7)));
        let json = "{\n\"PixlProxy\": {\n\"pools\": {\n\"B\": {\n\"uri_match\": \"(\"\n}}}}";
        assert_eq!(locate(json, "PixlProxy.pools.B.uri_match"), Some((5, 1)));
    }
}
