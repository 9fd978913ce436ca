//! The stats API's settings: `stats_uri_match`, `metrics_uri`, `http_default_acl`,
//! and the tokens from `stats_api_tokens`, `POOLGATE_STATS_API_TOKENS` (comma-separated) and
//! the file named by `POOLGATE_STATS_API_TOKENS_FILE` (one per line or comma-separated).

use crate::config::file::FileConfig;
use crate::config::problem::Problems;
use crate::stats::{Acl, StatsApi, StatsSettings};

/// Stats API tokens, comma-separated.
pub(crate) const TOKENS_ENV: &str = "POOLGATE_STATS_API_TOKENS";
/// A file of stats API tokens, one per line or comma-separated.
pub(crate) const TOKENS_FILE_ENV: &str = "POOLGATE_STATS_API_TOKENS_FILE";

/// The stats API and what only it shows (`http_recent_requests`).
pub(super) fn stats(cfg: &FileConfig, problems: &mut Problems) -> StatsSettings {
    let api = stats_api(cfg, problems);
    // The recent requests are read only by the stats API: without it, none are kept.
    let recent_requests = match api.uri.is_some() {
        true => cfg.web_server.http_recent_requests,
        false => 0,
    };
    StatsSettings {
        api,
        recent_requests,
    }
}

fn stats_api(cfg: &FileConfig, problems: &mut Problems) -> StatsApi {
    let uri = cfg
        .proxy
        .stats_uri_match
        .as_deref()
        .and_then(|p| problems.regex("PixlProxy.stats_uri_match", p, false));
    let metrics_uri = match cfg.proxy.metrics_uri.as_str() {
        "" => None,
        m if m.starts_with('/') => Some(m.to_string()),
        _ => {
            problems.push("PixlProxy.metrics_uri", "must be a path starting with `/`");
            None
        }
    };
    let acl = Acl::parse(&cfg.web_server.http_default_acl).unwrap_or_else(|e| {
        problems.push("WebServer.http_default_acl", e.to_string());
        Acl::default()
    });
    StatsApi {
        uri,
        metrics_uri,
        acl,
        tokens: tokens(cfg, problems),
    }
}

fn tokens(cfg: &FileConfig, problems: &mut Problems) -> Vec<String> {
    let mut tokens = cfg.proxy.stats_api_tokens.clone();
    if let Ok(list) = std::env::var(TOKENS_ENV) {
        tokens.extend(split(&list));
    }
    if let Some(path) = std::env::var_os(TOKENS_FILE_ENV).filter(|p| !p.is_empty()) {
        match std::fs::read_to_string(&path) {
            Ok(text) => tokens.extend(split(&text)),
            Err(e) => problems.push(
                TOKENS_FILE_ENV,
                format!("cannot read {}: {e}", path.to_string_lossy()),
            ),
        }
    }
    tokens.retain(|t| !t.is_empty());
    tokens
}

fn split(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split([',', '\n']).map(|t| t.trim().to_string())
}
