//! Reading a config file: YAML (and therefore JSON) text -> typed `FileConfig` -> problems.
//!
//! One loader serves both formats because JSON is a subset of YAML 1.2, so a PixlProxy
//! `config.json` loads unchanged. The text's size and nesting are checked first (`limits.rs`).
//! Syntax and type errors come from serde_yaml with the key path; a type error is then placed
//! at its key's line and column (`locate.rs`), as are the key audit's problems.

use super::keys;
use super::limits;
use super::locate::Locator;
use super::model::FileConfig;
use crate::config::problem::Problem;
use serde_yaml::Value;

/// The typed config plus the warnings the key audit raised.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) config: FileConfig,
    pub(crate) problems: Vec<Problem>,
    /// The text holds no document (nothing, or only comments).
    pub(crate) empty: bool,
}

/// Parse config text. Fails with the first limit, syntax or type error (nothing else can be
/// checked without a well-formed document); otherwise returns the config and the key-audit
/// problems.
pub(crate) fn parse(text: &str) -> Result<Parsed, Problem> {
    limits::check(text)?;
    let doc: Value = serde_yaml::from_str(text).map_err(|e| serde_problem(e, text))?;
    let config: FileConfig = match doc {
        Value::Null => FileConfig::default(),
        Value::Mapping(_) => serde_yaml::from_str(text).map_err(|e| serde_problem(e, text))?,
        _ => {
            return Err(Problem::error(
                "",
                "the config must be a map of settings (a YAML or JSON object)",
            ))
        }
    };
    let mut locator = Locator::new(text);
    let problems = keys::audit(&doc)
        .into_iter()
        .map(|p| {
            let at = locator.key(&p.path);
            p.at(at)
        })
        .collect();
    Ok(Parsed {
        config,
        problems,
        empty: doc.is_null(),
    })
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
    let (found, mut problems) = super::env::apply_all(&mut doc, vars, &read);
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

/// Turn a serde_yaml error into a problem, splitting off its key path and position. An
/// unknown field's name joins the path; a key found in the text gives the position (serde_yaml
/// gives the value's, or for some errors the enclosing map's).
fn serde_problem(e: serde_yaml::Error, text: &str) -> Problem {
    let location = e.location().map(|l| (l.line(), l.column()));
    let mut message = e.to_string();
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    let (mut path, message) = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (path.to_string(), rest.to_string()),
        _ => (String::new(), message),
    };
    if let Some(field) = unknown_field(&message) {
        path = match path.as_str() {
            "" | "." => field.to_string(),
            parent => format!("{parent}.{field}"),
        };
    }
    let at_key = Locator::new(text).key(&path);
    let mut problem = Problem::error(path, message);
    problem.location = at_key.or(location);
    problem
}

/// The field of serde's "unknown field `name`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.get(..rest.find('`')?)
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
        assert_eq!(err.location, Some((4, 7)));
    }

    #[test]
    fn type_errors_in_a_pool_are_at_the_key_itself() {
        let at = |text: &str| {
            let err = parse(text).unwrap_err();
            (err.path, err.location)
        };
        let pool = "PixlProxy:\n  pools:\n    api:\n      target_hostname: h\n";
        let path = |key: &str| format!("PixlProxy.pools.api.{key}");
        let redirects = format!("{pool}      follow_redirects: \"yes\"\n");
        assert_eq!(at(&redirects), (path("follow_redirects"), Some((5, 7))));
        let negative = format!("{pool}      max_concurrent_requests: -1\n");
        assert_eq!(
            at(&negative),
            (path("max_concurrent_requests"), Some((5, 7)))
        );
        let flag = format!("{pool}      log_errors: sometimes\n");
        assert_eq!(at(&flag), (path("log_errors"), Some((5, 7))));
        let flow = "PixlProxy: {pools: {api: {target_hostname: h, follow_redirects: 'yes'}}}";
        assert_eq!(at(flow), (path("follow_redirects"), Some((1, 47))));
        let unknown = format!("{pool}      health_check: {{type: tcp, intervall_ms: 5}}\n");
        assert_eq!(
            at(&unknown),
            (path("health_check.intervall_ms"), Some((5, 33)))
        );
    }

    #[test]
    fn top_level_forms_are_at_their_keys() {
        let err = parse("log_dir: x\nuid: [1]\n").unwrap_err();
        assert_eq!((err.path.as_str(), err.location), ("uid", Some((2, 1))));
        let err = parse("PixlProxy:\n  stats_uri_match: true\n").unwrap_err();
        assert_eq!(err.path, "PixlProxy.stats_uri_match");
        assert_eq!(err.location, Some((2, 3)));
    }

    #[test]
    fn a_deeply_nested_file_fails_before_it_is_parsed() {
        let text = format!("a: {}", "[".repeat(100_000));
        let err = parse(&text).unwrap_err();
        assert!(
            err.message.starts_with("nested more than 64 levels"),
            "{err:?}"
        );
        assert_eq!(err.location, Some((1, 67)));
    }
}
