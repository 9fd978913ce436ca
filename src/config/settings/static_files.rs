//! Compiling `PixlProxy.serve_static_files` with `WebServer.http_htdocs_dir`,
//! `http_static_index` and `http_static_ttl`.

use crate::config::file::FileConfig;
use crate::config::problem::Problems;
use crate::front_end::static_files::SetupError;
use crate::front_end::StaticFilesSettings;
use std::path::Path;

/// The static files, when `serve_static_files` is on and its directory exists.
pub(super) fn static_files(
    cfg: &FileConfig,
    problems: &mut Problems,
) -> Option<StaticFilesSettings> {
    if !cfg.proxy.serve_static_files {
        return None;
    }
    // The `default` pool takes every request no other pool matches, so static files would
    // never be reached; PixlProxy documents the two as mutually exclusive.
    if cfg.proxy.pools.0.iter().any(|(id, _)| id == "default") {
        problems.push(
            "PixlProxy.serve_static_files",
            "mutually exclusive with the `default` pool (which takes every request no other pool matches)",
        );
    }
    let web = &cfg.web_server;
    let root = Path::new(&web.http_htdocs_dir);
    StaticFilesSettings::new(root, &web.http_static_index, web.http_static_ttl)
        .map_err(|e| match e {
            SetupError::Root(why) => problems.push("WebServer.http_htdocs_dir", why),
            SetupError::Index(why) => problems.push("WebServer.http_static_index", why),
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::config::tests::errors;

    fn on(dir: &str, rest: &str) -> String {
        format!("WebServer: {{http_htdocs_dir: '{dir}'{rest}}}\nPixlProxy: {{serve_static_files: true}}")
    }

    #[test]
    fn static_files_are_off_by_default_whatever_the_directory() {
        let rt = load_str("WebServer: {http_htdocs_dir: /no/such/dir}").settings;
        assert!(rt.is_some_and(|rt| rt.front_end.static_files.is_none()));
    }

    #[test]
    fn static_files_root_is_absolute_and_canonical() {
        let dir = tempfile::tempdir().unwrap();
        let text = on(&format!("{}/./", dir.path().display()), "");
        let rt = load_str(&text).settings.unwrap();
        let files = rt.front_end.static_files.unwrap();
        assert_eq!(files.root(), dir.path().canonicalize().unwrap());
        // Relative: against the working directory (the crate root under `cargo test`).
        let rt = load_str(&on("src", "")).settings.unwrap();
        let expected = std::path::Path::new("src").canonicalize().unwrap();
        assert_eq!(rt.front_end.static_files.unwrap().root(), expected);
    }

    #[test]
    fn static_files_need_a_directory_and_a_plain_index_name() {
        let errs = errors(&on("/no/such/dir", ""));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("WebServer.http_htdocs_dir: "),
            "{errs:?}"
        );
        let errs = errors(&on("Cargo.toml", ""));
        assert!(errs[0].contains("not a directory"), "{errs:?}");
        let errs = errors(&on("src", ", http_static_index: '../x.html'"));
        assert!(
            errs[0].starts_with("WebServer.http_static_index: "),
            "{errs:?}"
        );
    }

    #[test]
    fn static_files_exclude_the_default_pool() {
        let text = "PixlProxy: {serve_static_files: true, pools: {default: {target_hostname: h}}}";
        let errs =
            errors(&text.replace("PixlProxy", "WebServer: {http_htdocs_dir: src}\nPixlProxy"));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "PixlProxy.serve_static_files: mutually exclusive with the `default` pool"
            ),
            "{errs:?}"
        );
    }
}
