//! The origin of the benchmarks when nginx is not installed: a hyper HTTP/1.1 server with
//! keep-alive, answering `/1m` with 1 MiB, `/1g` with 1 GiB (streamed) and anything else with
//! a small body.
//!
//! `bench_origin <listen addr>`

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;

const SMALL: &[u8] = b"hello from the origin\n";

type Body = UnsyncBoxBody<Bytes, Infallible>;

async fn answer(
    req: Request<hyper::body::Incoming>,
    big: Bytes,
) -> Result<Response<Body>, Infallible> {
    let body = match req.uri().path() {
        "/1m" => Full::new(big).boxed_unsync(),
        "/1g" => {
            let chunks = (0..1024).map(move |_| Ok::<_, Infallible>(Frame::data(big.clone())));
            StreamBody::new(futures_util::stream::iter(chunks)).boxed_unsync()
        }
        _ => Full::new(Bytes::from_static(SMALL)).boxed_unsync(),
    };
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    Ok(resp)
}

fn main() {
    let Some(listen) = std::env::args().nth(1) else {
        eprintln!("usage: bench_origin <listen addr>");
        std::process::exit(2);
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let big = Bytes::from(vec![b'x'; 1024 * 1024]);
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bind {listen}: {e}");
                std::process::exit(1);
            }
        };
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let big = big.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| answer(req, big.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}
