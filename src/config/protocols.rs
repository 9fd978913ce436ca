//! Compiling the front end's protocol settings: active content encoding and the certificates
//! chosen by SNI.

use super::compile::Problems;
use super::model::{CompressOptions, WebServerConfig};
use crate::front_end::compression::CompressionPolicy;

/// `http_compress_text` / `http_gzip_text`, `http_regex_text`, the levels and brotli.
pub(super) fn compression(web: &WebServerConfig, problems: &mut Problems) -> CompressionPolicy {
    let on = web.http_compress_text || web.http_gzip_text;
    let text_types = match on {
        true => problems.regex("WebServer.http_regex_text", &web.http_regex_text, true),
        false => None,
    };
    let gzip_level = level(problems, "http_gzip_opts", &web.http_gzip_opts, 6, 9);
    let brotli_level = level(problems, "http_brotli_opts", &web.http_brotli_opts, 4, 11);
    CompressionPolicy {
        text_types,
        gzip_level,
        brotli_level: web.http_enable_brotli.then_some(brotli_level),
    }
}

fn level(
    problems: &mut Problems,
    key: &str,
    opts: &CompressOptions,
    default: u32,
    max: u32,
) -> u32 {
    match opts.level {
        None => default,
        Some(n) if (1..=max).contains(&n) => n,
        Some(_) => {
            problems.push(
                format!("WebServer.{key}.level"),
                format!("must be 1 to {max}"),
            );
            default
        }
    }
}

/// `https_sni_certs` as (name, cert file, key file), each file checked to exist.
pub(super) fn sni_certs(
    web: &WebServerConfig,
    problems: &mut Problems,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (name, files) in &web.https_sni_certs {
        let path = format!("WebServer.https_sni_certs.{name}");
        let valid_name = name
            .strip_prefix("*.")
            .unwrap_or(name)
            .split('.')
            .all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid_name {
            problems.push(path.clone(), "not a host name or `*.domain`");
        }
        for (key, file) in [
            ("cert_file", &files.cert_file),
            ("key_file", &files.key_file),
        ] {
            if !std::path::Path::new(file).is_file() {
                problems.push(format!("{path}.{key}"), format!("file `{file}` not found"));
            }
        }
        out.push((
            name.clone(),
            files.cert_file.clone(),
            files.key_file.clone(),
        ));
    }
    out
}
