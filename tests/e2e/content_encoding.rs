//! Content encoding: active gzip/brotli by `Accept-Encoding` and content type, pre-encoded
//! answers passed through untouched, on the streaming and the buffered (retrying) path.

use crate::config_with;
use crate::harness::{client, Poolgate};
use crate::origin::{self, text_of};
use std::io::Read;

fn pool(port: u16, extra: &str) -> String {
    format!("{{default: {{target_hostname: 127.0.0.1, target_port: {port}{extra}}}}}")
}

struct Answer {
    encoding: Option<String>,
    vary: Option<String>,
    length: Option<String>,
    body: Vec<u8>,
}

async fn get(pg: &Poolgate, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = client().get(pg.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("send");
    assert_eq!(resp.status(), 200);
    let h = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_string())
    };
    let (encoding, vary, length) = (h("content-encoding"), h("vary"), h("content-length"));
    let body = resp.bytes().await.expect("body").to_vec();
    Answer {
        encoding,
        vary,
        length,
        body,
    }
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn unbrotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(data, 4096)
        .read_to_end(&mut out)
        .expect("valid brotli");
    out
}

#[tokio::test]
async fn text_is_gzipped_for_clients_that_accept_it_and_only_text() {
    let o = origin::http();
    let web = "  http_compress_text: true\n";
    let pg = Poolgate::start(&config_with(web, &pool(o.port(), "")));
    let gz = [("accept-encoding", "gzip, deflate")];
    let a = get(&pg, "/typed/5000", &gz).await;
    assert_eq!(a.encoding.as_deref(), Some("gzip"));
    assert_eq!(a.vary.as_deref(), Some("Accept-Encoding"));
    assert!(a.body.len() < 1000, "compressed: {} bytes", a.body.len());
    assert_eq!(gunzip(&a.body), text_of(5000));
    // No Accept-Encoding: identity, but the answer still varies by it.
    let a = get(&pg, "/typed/5000", &[]).await;
    assert_eq!(a.encoding, None);
    assert_eq!(a.vary.as_deref(), Some("Accept-Encoding"));
    assert_eq!(a.length.as_deref(), Some("5000"));
    assert_eq!(a.body, text_of(5000));
    // A type outside http_regex_text is left alone.
    let png = [("accept-encoding", "gzip"), ("x-want-type", "image/png")];
    let a = get(&pg, "/typed/5000", &png).await;
    assert_eq!((a.encoding, a.vary), (None, None));
    assert_eq!(a.body, text_of(5000));
    // JSON matches the default regex; a streamed answer larger than min_stream_size too.
    let json = [
        ("accept-encoding", "gzip"),
        ("x-want-type", "application/json"),
        ("x-want-stream", "1"),
    ];
    let a = get(&pg, "/typed/400000", &json).await;
    assert_eq!(a.encoding.as_deref(), Some("gzip"));
    assert_eq!(gunzip(&a.body), text_of(400000));
}

#[tokio::test]
async fn pre_encoded_answers_pass_through_untouched() {
    let o = origin::http();
    let web = "  http_compress_text: true\n";
    let pg = Poolgate::start(&config_with(web, &pool(o.port(), "")));
    for accept in ["gzip", "identity"] {
        let h = [("accept-encoding", accept), ("x-want-gzip", "1")];
        let a = get(&pg, "/typed/3000", &h).await;
        assert_eq!(a.encoding.as_deref(), Some("gzip"), "accept {accept}");
        assert_eq!(
            gunzip(&a.body),
            text_of(3000),
            "encoded once, by the origin"
        );
    }
}

#[tokio::test]
async fn brotli_when_enabled_and_accepted_gzip_otherwise_and_off_by_default() {
    let o = origin::http();
    let web = "  http_gzip_text: true\n  http_enable_brotli: true\n  http_brotli_opts: {level: 5, mode: text}\n";
    let pg = Poolgate::start(&config_with(web, &pool(o.port(), "")));
    let a = get(
        &pg,
        "/typed/5000",
        &[("accept-encoding", "gzip, deflate, br")],
    )
    .await;
    assert_eq!(a.encoding.as_deref(), Some("br"));
    assert_eq!(unbrotli(&a.body), text_of(5000));
    let a = get(&pg, "/typed/5000", &[("accept-encoding", "br;q=0.1, gzip")]).await;
    assert_eq!(
        a.encoding.as_deref(),
        Some("gzip"),
        "the client prefers gzip"
    );
    assert_eq!(gunzip(&a.body), text_of(5000));
    let off = Poolgate::start(&config_with("", &pool(o.port(), "")));
    let a = get(&off, "/typed/5000", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!((a.encoding, a.vary), (None, None));
}

#[tokio::test]
async fn the_retrying_path_compresses_too() {
    let o = origin::http();
    let web = "  http_compress_text: true\n  http_gzip_opts: {level: 9, memLevel: 8}\n";
    let pg = Poolgate::start(&config_with(web, &pool(o.port(), ", retries: 2")));
    for path in ["/typed/5000", "/typed/200000"] {
        let a = get(&pg, path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(a.encoding.as_deref(), Some("gzip"), "{path}");
        let n: usize = path.trim_start_matches("/typed/").parse().expect("n");
        assert_eq!(gunzip(&a.body), text_of(n), "{path}");
    }
}

#[tokio::test]
async fn static_text_files_are_compressed_but_not_byte_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("page.html"), text_of(200_000)).expect("write");
    let web = format!(
        "  http_compress_text: true\n  http_htdocs_dir: '{}'\n",
        dir.path().display()
    );
    let pg = Poolgate::start(&(config_with(&web, "{}") + "  serve_static_files: true\n"));
    let a = get(&pg, "/page.html", &[("accept-encoding", "gzip")]).await;
    assert_eq!(a.encoding.as_deref(), Some("gzip"));
    assert_eq!(gunzip(&a.body), text_of(200_000));
    let resp = client()
        .get(pg.url("/page.html"))
        .header("accept-encoding", "gzip")
        .header("range", "bytes=0-9")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 206);
    assert!(resp.headers().get("content-encoding").is_none());
    assert_eq!(resp.bytes().await.expect("body").to_vec(), text_of(10));
}
