//! A tiny built-in origin for the sample config (`demo_origin_port`): it answers every request
//! on loopback with a JSON description of what it received, so a fresh install can be tried
//! end to end with nothing else running.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;

/// Loopback only: the demo origin is never exposed.
pub(super) fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

pub(super) struct DemoOrigin;

#[async_trait]
impl ServeHttp for DemoOrigin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let mut body_bytes = 0usize;
        while let Ok(Some(chunk)) = session.read_request_body().await {
            body_bytes += chunk.len();
        }
        let req = session.req_header();
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into(),
                )
            })
            .collect();
        let body = serde_json::json!({
            "origin": "poolgate demo origin",
            "method": req.method.as_str(),
            "uri": req.uri.to_string(),
            "headers": headers,
            "body_bytes": body_bytes,
        })
        .to_string();
        Response::builder()
            .status(200)
            .header("Content-Type", "application/json")
            .header("Content-Length", body.len())
            .body(body.into_bytes())
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}

pub(super) fn service(port: u16) -> Service<HttpServer<DemoOrigin>> {
    let mut svc = Service::new(
        "poolgate demo origin".to_string(),
        HttpServer::new_app(DemoOrigin),
    );
    svc.add_tcp(&addr(port));
    svc.threads = Some(1);
    svc
}

/// Holds the proxy back until the demo origin accepts connections, so the first request of a
/// fresh start is never refused (Pingora reports a listening service ready before it binds).
pub(super) struct DemoOriginReady(pub(super) u16);

#[async_trait]
impl pingora::services::background::BackgroundService for DemoOriginReady {
    async fn start_with_ready_notifier(
        &self,
        _shutdown: pingora::server::ShutdownWatch,
        ready: pingora::services::ServiceReadyNotifier,
    ) {
        let limit = std::time::Duration::from_secs(5);
        super::listeners::wait_until_accepting(&addr(self.0), limit).await;
        ready.notify_ready();
    }
}
