//! The client-facing side of a request (pixl-server-web's `WebServer` behaviour): who the
//! client is and whether it counts as HTTPS (`client.rs`, the one place that decides it),
//! the keep-alive policy (`keep_alive.rs`), `https_force` and `https_header_detect`
//! (`https.rs`), the secure headers (`secure_headers.rs`), the headers every response gets
//! (`headers.rs`), the upload limit (`upload.rs`), content encoding (`compression/`), static
//! files (`static_files/`) and the strict reading of HTTP/1 request heads with their limits
//! (`request_head/`).
//!
//! Uses nothing else of poolgate's. The proxy, the pools, the upstream attempt and the queue use
//! its client facts and policies.

mod client;
pub(crate) mod compression;
mod headers;
mod https;
mod keep_alive;
pub(crate) mod request_head;
mod request_queue;
mod secure_headers;
pub(crate) mod static_files;
mod upload;

pub(crate) use client::{canonical_ip, Chain, ClientFacts};
pub(crate) use compression::{CompressionPolicy, ResponseEncoder};
pub(crate) use headers::{GlobalResponseHeaders, HeaderPair};
pub(crate) use https::HttpsPolicy;
pub(crate) use keep_alive::{ClientTimeouts, KeepAliveMode};
pub(crate) use request_head::{HeadFault, HeadLimits};
pub(crate) use request_queue::{QueueFull, RequestQueue, RequestQueueSettings, RunningRequest};
pub(crate) use secure_headers::{SecureHeaders, CSP_DIRECTIVES};
pub(crate) use static_files::{StaticFiles, StaticFilesSettings};
pub(crate) use upload::{declared_len, UploadLimit};

use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// The front end as configured: validated values, shared by every request.
#[derive(Debug, Clone)]
pub(crate) struct FrontEndSettings {
    pub(crate) keep_alive: KeepAliveMode,
    /// `http_timeout` in seconds: also the idle timeout of HTTP/2 connections (0 = none).
    pub(crate) idle_timeout_sec: u64,
    pub(crate) response_headers: GlobalResponseHeaders,
    /// `https_force` and `https_header_detect`.
    pub(crate) https_policy: HttpsPolicy,
    /// `secure_headers` (with `csp_allowed`).
    pub(crate) secure_headers: Option<SecureHeaders>,
    /// Active content encoding.
    pub(crate) compression: CompressionPolicy,
    /// `http_max_upload_size`.
    pub(crate) upload_limit: UploadLimit,
    /// `serve_static_files` with `http_htdocs_dir` and its keys; `None` = unrouted get 404.
    pub(crate) static_files: Option<StaticFilesSettings>,
    /// The bounds of a request head.
    pub(crate) head_limits: HeadLimits,
    pub(crate) timeouts: ClientTimeouts,
    /// `http_max_concurrent_requests` and its queue.
    pub(crate) request_queue: RequestQueueSettings,
    /// `http_public_ip_offset`: which address of the chain is the client's (see `client.rs`).
    pub(crate) public_ip_offset: i32,
}

/// The front end at run time.
#[derive(Debug)]
pub(crate) struct FrontEnd {
    pub(crate) keep_alive: KeepAliveMode,
    response_headers: GlobalResponseHeaders,
    pub(crate) https_policy: HttpsPolicy,
    secure_headers: Option<SecureHeaders>,
    pub(crate) compression: CompressionPolicy,
    pub(crate) upload_limit: UploadLimit,
    /// Where requests no pool takes are answered from; `None` = 404.
    pub(crate) static_files: Option<StaticFiles>,
    pub(crate) head_limits: HeadLimits,
    pub(crate) timeouts: ClientTimeouts,
    /// Shared with the stats (`web.queue`).
    pub(crate) request_queue: std::sync::Arc<RequestQueue>,
    public_ip_offset: i32,
}

impl FrontEnd {
    pub(crate) fn new(s: FrontEndSettings) -> Self {
        FrontEnd {
            keep_alive: s.keep_alive,
            response_headers: s.response_headers,
            https_policy: s.https_policy,
            secure_headers: s.secure_headers,
            compression: s.compression,
            upload_limit: s.upload_limit,
            static_files: s.static_files.map(StaticFiles::new),
            head_limits: s.head_limits,
            timeouts: s.timeouts,
            request_queue: std::sync::Arc::new(RequestQueue::new(s.request_queue)),
            public_ip_offset: s.public_ip_offset,
        }
    }

    /// The headers every response gets: `http_response_headers`, the signature, and the secure
    /// headers when they are on (`tls`: the client came over HTTPS).
    pub(crate) fn finish_response(
        &self,
        resp: &mut ResponseHeader,
        tls: bool,
    ) -> pingora::Result<()> {
        self.response_headers.apply(resp)?;
        match &self.secure_headers {
            Some(secure) => secure.apply(resp, tls),
            None => Ok(()),
        }
    }

    /// The whole HTTP/1.1 answer to a refused request head: the fault's status and short
    /// `text/plain` body (none for HEAD), `Connection: close`, and the headers every response
    /// gets. Written straight to the socket: Pingora has not read the request.
    pub(crate) fn head_refusal(&self, fault: HeadFault, tls: bool, with_body: bool) -> Vec<u8> {
        let status = fault.status();
        let body = fault.body();
        let mut resp = match ResponseHeader::build(status, Some(6)) {
            Ok(resp) => resp,
            Err(_) => return Vec::new(),
        };
        let headers = [
            ("Content-Type", "text/plain; charset=utf-8".to_string()),
            ("Content-Length", body.len().to_string()),
            ("Connection", "close".to_string()),
        ];
        for (name, value) in headers {
            let _ = resp.insert_header(name, value);
        }
        // A configured header that cannot be added is left out, not the answer.
        let _ = self.finish_response(&mut resp, tls);
        let phrase = resp.status.canonical_reason().unwrap_or("");
        let mut out = Vec::with_capacity(256 + body.len());
        out.extend_from_slice(format!("HTTP/1.1 {status} {phrase}\r\n").as_bytes());
        resp.header_to_h1_wire(&mut out);
        out.extend_from_slice(b"\r\n");
        if with_body {
            out.extend_from_slice(body.as_bytes());
        }
        out
    }

    /// Who the client is and whether it counts as HTTPS (see `client.rs`).
    pub(crate) fn client_facts(&self, session: &Session) -> ClientFacts {
        ClientFacts::of(session, &self.https_policy, self.public_ip_offset)
    }

    /// Apply the keep-alive policy and read timeout to a new request's client connection.
    pub(crate) fn apply_keep_alive(&self, session: &mut Session, tls: bool) {
        self.keep_alive.apply(session, &self.timeouts, tls);
    }

    /// Whether `http_request_timeout` has passed for a request that arrived at `arrived`.
    pub(crate) fn request_timed_out(&self, arrived: Option<std::time::Instant>) -> bool {
        match (self.timeouts.request, arrived) {
            (Some(limit), Some(at)) => at.elapsed() >= limit,
            _ => false,
        }
    }

    /// What is left of `http_request_timeout` for a request that arrived at `arrived`.
    pub(crate) fn request_time_left(
        &self,
        arrived: Option<std::time::Instant>,
    ) -> Option<std::time::Duration> {
        let (limit, at) = (self.timeouts.request?, arrived?);
        Some(limit.saturating_sub(at.elapsed()))
    }
}
