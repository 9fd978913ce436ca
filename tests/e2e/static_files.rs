//! `serve_static_files`: requests no pool takes are answered from `http_htdocs_dir`, with
//! validators, 304s, byte ranges, and no way out of the directory.

use crate::harness::{client, run_cli, Poolgate};
use crate::{config_with, described, origin, raw};
use std::path::{Path, PathBuf};

const SECRET: &str = "TOP-SECRET-CONTENT-8d1f";
const HOME: &str = "<h1>home</h1>\n";
const DIGITS: &str = "0123456789abcdefghij";

/// A site in a temporary directory: `htdocs/` with files, and a `secret` next to it (outside
/// the htdocs dir) that a symlink inside points to. Removed when dropped.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("htdocs");
        for sub in ["docs", "empty"] {
            std::fs::create_dir_all(root.join(sub)).expect("mkdir");
        }
        let files: [(&str, &[u8]); 4] = [
            ("index.html", HOME.as_bytes()),
            ("docs/index.html", b"<p>docs</p>\n"),
            ("digits.txt", DIGITS.as_bytes()),
            ("style.css", b"body {}\n"),
        ];
        for (name, body) in files {
            std::fs::write(root.join(name), body).expect("write");
        }
        std::fs::write(root.join("big.bin"), big()).expect("write");
        std::fs::write(dir.path().join("secret"), SECRET).expect("write secret");
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("leak.txt"))
            .expect("symlink");
        Site { dir }
    }

    fn htdocs(&self) -> PathBuf {
        self.dir.path().join("htdocs")
    }

    /// A config serving this site (`Via` on every response), with `pools`.
    fn config(&self, pools: &str) -> String {
        let web = format!(
            "  http_htdocs_dir: '{}'\n  http_static_ttl: 3600\n  http_response_headers: {{Via: poolgate-test}}\n",
            self.htdocs().display()
        );
        config_with(&web, pools) + "  serve_static_files: true\n"
    }
}

/// Several chunks of 64 KiB and a partial one, so streaming is exercised.
fn big() -> Vec<u8> {
    (0..200_003u32).map(|i| (i % 251) as u8).collect()
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn static_files_serve_files_and_directory_indexes_with_validators() {
    let site = Site::new();
    let pg = Poolgate::start(&site.config("{}"));
    let c = client();

    let resp = c.get(pg.url("/")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&resp, "cache-control"), "public, max-age=3600");
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
    assert_eq!(header(&resp, "via"), "poolgate-test", "global headers too");
    let etag = header(&resp, "etag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(header(&resp, "last-modified").ends_with(" GMT"));
    assert_eq!(resp.text().await.expect("body"), HOME);

    let resp = c.get(pg.url("/docs/")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "<p>docs</p>\n");
    let resp = c.get(pg.url("/style.css")).send().await.expect("send");
    assert_eq!(header(&resp, "content-type"), "text/css; charset=utf-8");

    let resp = c.get(pg.url("/docs?a=1")).send().await.expect("send");
    assert_eq!(resp.status(), 301);
    assert_eq!(header(&resp, "location"), "/docs/?a=1");

    for missing in ["/empty/", "/nothing.html", "/digits.txt/"] {
        let resp = c.get(pg.url(missing)).send().await.expect("send");
        assert_eq!(resp.status(), 404, "{missing}");
    }

    let resp = c.get(pg.url("/big.bin")).send().await.expect("send");
    assert_eq!(header(&resp, "content-type"), "application/octet-stream");
    assert_eq!(header(&resp, "content-length"), "200003");
    assert!(
        resp.bytes().await.expect("body") == big(),
        "streamed intact"
    );

    let resp = c.head(pg.url("/big.bin")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), "200003");
    assert!(!header(&resp, "etag").is_empty());
    assert!(resp.bytes().await.expect("body").is_empty());
    // HEAD on a raw socket: the headers, and not one byte after them.
    let reply = raw(
        pg.addr(),
        b"HEAD /digits.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("\r\n\r\n"), "no body after HEAD: {reply:?}");

    let resp = c.post(pg.url("/index.html")).body("x").send().await;
    let resp = resp.expect("send");
    assert_eq!(resp.status(), 405);
    assert_eq!(header(&resp, "allow"), "GET, HEAD");
}

#[tokio::test]
async fn static_files_answer_304_by_etag_or_by_date() {
    let site = Site::new();
    let pg = Poolgate::start(&site.config("{}"));
    let c = client();
    let url = pg.url("/digits.txt");
    let first = c.get(&url).send().await.expect("send");
    let etag = header(&first, "etag").to_string();
    let modified = header(&first, "last-modified").to_string();

    for (name, value) in [
        ("if-none-match", etag.clone()),
        ("if-none-match", format!("\"other\", W/{etag}")),
        ("if-none-match", "*".to_string()),
        ("if-modified-since", modified.clone()),
    ] {
        let resp = c.get(&url).header(name, &value).send().await.expect("send");
        assert_eq!(resp.status(), 304, "{name}: {value}");
        assert_eq!(header(&resp, "etag"), etag);
        assert_eq!(header(&resp, "last-modified"), modified);
        assert_eq!(header(&resp, "cache-control"), "public, max-age=3600");
        assert!(resp.bytes().await.expect("body").is_empty());
    }
    let old = "Thu, 01 Jan 1970 00:00:00 GMT";
    let resp = c.get(&url).header("if-modified-since", old);
    assert_eq!(resp.send().await.expect("send").status(), 200);
    // A tag that does not match wins over a date that would.
    let resp = c
        .get(&url)
        .header("if-none-match", "\"other\"")
        .header("if-modified-since", &modified);
    assert_eq!(resp.send().await.expect("send").status(), 200);
}

#[tokio::test]
async fn static_files_serve_single_byte_ranges() {
    let site = Site::new();
    let pg = Poolgate::start(&site.config("{}"));
    let c = client();
    let url = pg.url("/digits.txt");
    let etag = header(&c.get(&url).send().await.expect("send"), "etag").to_string();
    for (range, content_range, body) in [
        ("bytes=0-4", "bytes 0-4/20", "01234"),
        ("bytes=-3", "bytes 17-19/20", "hij"),
        ("bytes=15-", "bytes 15-19/20", "fghij"),
        ("bytes=18-99", "bytes 18-19/20", "ij"),
    ] {
        let resp = c.get(&url).header("range", range).send().await;
        let resp = resp.expect("send");
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(header(&resp, "content-range"), content_range);
        assert_eq!(header(&resp, "content-length"), body.len().to_string());
        assert_eq!(resp.text().await.expect("body"), body);
    }
    let resp = c.get(&url).header("range", "bytes=20-").send().await;
    let resp = resp.expect("send");
    assert_eq!(resp.status(), 416);
    assert_eq!(header(&resp, "content-range"), "bytes */20");
    for range in ["bytes=0-1,4-5", "bytes=5-1", "lines=1-2"] {
        let resp = c.get(&url).header("range", range).send().await;
        let resp = resp.expect("send");
        assert_eq!(resp.status(), 200, "{range}");
        assert_eq!(resp.text().await.expect("body"), DIGITS);
    }
    let matching = c
        .get(&url)
        .header("range", "bytes=0-1")
        .header("if-range", &etag);
    assert_eq!(matching.send().await.expect("send").status(), 206);
    let stale = c
        .get(&url)
        .header("range", "bytes=0-1")
        .header("if-range", "\"stale\"");
    let resp = stale.send().await.expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), DIGITS);
    // A range in a big file starting inside a later chunk.
    let resp = c
        .get(pg.url("/big.bin"))
        .header("range", "bytes=131070-131075")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 206);
    let expected: Vec<u8> = big()[131_070..=131_075].to_vec();
    assert_eq!(resp.bytes().await.expect("body").to_vec(), expected);
}

#[tokio::test]
async fn static_files_come_after_the_pools() {
    let o = origin::http();
    let site = Site::new();
    let pools = format!(
        "{{api: {{uri_match: '^/api', target_hostname: 127.0.0.1, target_port: {}}}}}",
        o.port()
    );
    let pg = Poolgate::start(&site.config(&pools));
    let c = client();
    let desc = described(c.get(pg.url("/api/index.html")).send().await.expect("send")).await;
    assert_eq!(desc["uri"], "/api/index.html");
    let resp = c.get(pg.url("/index.html")).send().await.expect("send");
    assert_eq!(resp.text().await.expect("body"), HOME);
    assert_eq!(
        o.requests(),
        1,
        "only the pool's request reached the origin"
    );
}

#[tokio::test]
async fn static_files_never_leave_the_htdocs_dir() {
    let site = Site::new();
    let pg = Poolgate::start(&site.config("{}"));
    for path in [
        "/../secret",
        "/%2e%2e/secret",
        "/a/..%2fsecret",
        "/%2e%2e%2fsecret",
        "/..%5csecret",
        "/docs/../../secret",
        "/.%2e/secret",
        "//../secret",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let reply = raw(pg.addr(), request.as_bytes());
        let status = reply.get(9..12).unwrap_or("");
        assert!(["400", "403", "404"].contains(&status), "{path}: {reply:?}");
        assert!(!reply.contains(SECRET), "{path} leaked the secret");
    }
    // A symlink inside htdocs that points outside it.
    let resp = client()
        .get(pg.url("/leak.txt"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 403);
    assert!(!resp.text().await.expect("body").contains(SECRET));
}

#[test]
fn static_files_check_rejects_a_default_pool_beside_them() {
    let site = Site::new();
    let text = site
        .config("{default: {target_hostname: 127.0.0.1, target_port: 9}}")
        .replace("$PORT", "3020");
    let path = site.dir.path().join("config.yaml");
    std::fs::write(&path, text).expect("write config");
    let (code, out) = run_cli(
        &["check", "--config", &path.display().to_string()],
        &[],
        None,
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("PixlProxy.serve_static_files: mutually exclusive"),
        "{out}"
    );
    let missing = Path::new("/nonexistent-htdocs-dir");
    let text = std::fs::read_to_string(&path)
        .expect("read config")
        .replace(
            &site.htdocs().display().to_string(),
            &missing.display().to_string(),
        )
        .replace("default:", "other:");
    std::fs::write(&path, text).expect("write config");
    let (code, out) = run_cli(
        &["check", "--config", &path.display().to_string()],
        &[],
        None,
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("WebServer.http_htdocs_dir"), "{out}");
}

#[tokio::test]
async fn static_files_end_the_response_when_the_file_goes_away_mid_stream() {
    use std::io::{Read, Write};
    let site = Site::new();
    // Larger than what loopback socket buffers hold, so poolgate is still reading the file
    // when it is cut short.
    let len: usize = 48 * 1024 * 1024;
    let file = site.htdocs().join("huge.bin");
    std::fs::write(&file, vec![7u8; len]).expect("write");
    let pg = Poolgate::start(&site.config("{}"));
    let mut s = std::net::TcpStream::connect(pg.addr()).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let mut first = [0u8; 4096];
    let n = s.read(&mut first).expect("read head");
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    std::fs::File::create(&file).expect("truncate");
    let mut received = n;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => received += k,
        }
    }
    assert!(received < len, "the body was cut short ({received} bytes)");
    assert!(
        pg.wait_for_log("huge.bin: read failed mid-response"),
        "{}",
        pg.log()
    );
    // A client that hangs up mid-body does not disturb the server.
    let mut s = std::net::TcpStream::connect(pg.addr()).expect("connect");
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let _ = s.read(&mut first);
    drop(s);
    let resp = client().get(pg.url("/")).send().await.expect("send");
    assert_eq!(resp.text().await.expect("body"), HOME);
}
