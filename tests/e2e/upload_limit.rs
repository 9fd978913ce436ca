//! `http_max_upload_size`: larger request bodies get 413, declared or streamed, on every path.

use crate::harness::{client, Poolgate};
use crate::{config_with, origin, raw};

fn setup(pool_extra: &str) -> (origin::Origin, Poolgate) {
    let o = origin::http();
    let pools = format!(
        "{{default: {{target_hostname: 127.0.0.1, target_port: {}{pool_extra}}}}}",
        o.port()
    );
    let pg = Poolgate::start(&config_with("  http_max_upload_size: 1000\n", &pools));
    (o, pg)
}

/// A chunked upload of `total` bytes in 100-byte chunks.
fn chunked(total: usize) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..total / 100).map(|_| Ok(vec![b'x'; 100])).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

#[tokio::test]
async fn a_declared_size_over_the_limit_is_refused_before_the_back_end() {
    for extra in ["", ", retries: 2"] {
        let (o, pg) = setup(extra);
        let resp = client()
            .post(pg.url("/big"))
            .body(vec![b'x'; 2000])
            .send()
            .await;
        // The body may be refused while it is still being sent: the status is what counts.
        if let Ok(resp) = resp {
            assert_eq!(resp.status(), 413, "pool{extra}");
            let text = resp.text().await.unwrap_or_default();
            assert!(text.contains("http_max_upload_size"), "{text}");
        }
        let head = raw(
            pg.addr(),
            b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
        );
        assert!(head.starts_with("HTTP/1.1 413"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
        assert_eq!(o.requests(), 0, "nothing reached the back end");
        let resp = client()
            .post(pg.url("/small"))
            .body(vec![b'x'; 1000])
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200, "at the limit is fine");
    }
}

#[tokio::test]
async fn a_streamed_body_growing_past_the_limit_gets_413() {
    for extra in ["", ", retries: 2"] {
        let (_o, pg) = setup(extra);
        let resp = client()
            .post(pg.url("/stream"))
            .body(chunked(3000))
            .send()
            .await;
        if let Ok(resp) = resp {
            assert_eq!(resp.status(), 413, "pool{extra}");
        }
        let resp = client()
            .post(pg.url("/stream"))
            .body(chunked(900))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200, "pool{extra}: under the limit");
    }
}
