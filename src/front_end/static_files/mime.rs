//! `Content-Type` by file extension. A small table of the types web sites serve, rather than a
//! crate with every registered type: the behaviour stays predictable and reviewable, and an
//! unknown extension is sent as `application/octet-stream` (downloaded, never sniffed as HTML).

use std::path::Path;

/// Extension (lower case) -> type. `text/*` types get `; charset=utf-8` in `content_type`.
const TYPES: &[(&str, &str)] = &[
    ("html", "text/html"),
    ("htm", "text/html"),
    ("css", "text/css"),
    ("js", "text/javascript"),
    ("mjs", "text/javascript"),
    ("txt", "text/plain"),
    ("csv", "text/csv"),
    ("md", "text/markdown"),
    ("ics", "text/calendar"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("xml", "application/xml"),
    ("rss", "application/rss+xml"),
    ("atom", "application/atom+xml"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/x-icon"),
    ("bmp", "image/bmp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("pdf", "application/pdf"),
    ("wasm", "application/wasm"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("ogv", "video/ogg"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("oga", "audio/ogg"),
    ("wav", "audio/wav"),
    ("flac", "audio/flac"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tgz", "application/gzip"),
    ("tar", "application/x-tar"),
];

const FALLBACK: &str = "application/octet-stream";

/// The `Content-Type` of a file, from its extension (case-insensitive).
pub(super) fn content_type(path: &Path) -> String {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let found = TYPES.iter().find(|(e, _)| *e == ext).map(|(_, t)| *t);
    match found {
        Some(t) if t.starts_with("text/") => format!("{t}; charset=utf-8"),
        Some(t) => t.to_string(),
        None => FALLBACK.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(name: &str) -> String {
        content_type(Path::new(name))
    }

    #[test]
    fn common_types_by_extension() {
        assert_eq!(of("index.html"), "text/html; charset=utf-8");
        assert_eq!(of("a/b/APP.JS"), "text/javascript; charset=utf-8");
        assert_eq!(of("style.css"), "text/css; charset=utf-8");
        assert_eq!(of("data.json"), "application/json");
        assert_eq!(of("logo.svg"), "image/svg+xml");
        assert_eq!(of("photo.JPEG"), "image/jpeg");
        assert_eq!(of("font.woff2"), "font/woff2");
        assert_eq!(of("module.wasm"), "application/wasm");
        assert_eq!(of("archive.tar.gz"), "application/gzip");
    }

    #[test]
    fn unknown_or_missing_extensions_are_octet_streams() {
        assert_eq!(of("README"), FALLBACK);
        assert_eq!(of("thing.unknown"), FALLBACK);
        assert_eq!(of(".hidden"), FALLBACK);
    }
}
