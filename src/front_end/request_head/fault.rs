//! Why poolgate refuses a request head: each fault has its status, a short reason for the
//! client and the logs, and a label for the stats API and Prometheus.

/// A request head poolgate refuses before any pool sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadFault {
    /// An HTTP/1.1 request without `Host` (RFC 9112 §3.2).
    MissingHost,
    /// More than one `Host` field.
    MultipleHost,
    /// A `Host` (or absolute-form authority) that is not `host[:port]`.
    InvalidHost,
    /// The request line is not `METHOD SP target SP HTTP/x.y`.
    MalformedRequestLine,
    /// The request target holds a space or a control character.
    InvalidTarget,
    /// An absolute-form target whose scheme is not `http` or `https`, or `*` on a method
    /// other than OPTIONS.
    UnsupportedTarget,
    /// `HTTP/` with a version other than 1.0 and 1.1.
    UnsupportedVersion,
    /// CONNECT: poolgate is not a forward proxy.
    ConnectMethod,
    /// A header line httparse cannot read (bad name, control character in a value, a bare CR,
    /// obsolete line folding).
    MalformedHeader,
    /// A `Content-Length` that is not one decimal number.
    InvalidContentLength,
    /// More than one `Content-Length` field.
    DuplicateContentLength,
    /// `Transfer-Encoding` whose last coding is not `chunked`, or on an HTTP/1.0 request.
    InvalidTransferEncoding,
    /// A transfer coding other than `chunked`.
    UnsupportedTransferEncoding,
    /// Both `Content-Length` and `Transfer-Encoding` (unless `http_allow_te_and_cl`).
    LengthWithTransferEncoding,
    /// The request line is longer than `http_max_request_line`.
    RequestLineTooLong,
    /// The head is larger than `http_max_header_size`.
    HeadTooLarge,
    /// More header fields than `http_max_header_count`.
    TooManyHeaders,
    /// The head did not arrive within `http_header_timeout` of its first byte.
    HeadTimeout,
}

impl HeadFault {
    /// Every fault, in the order of their counters.
    pub(crate) const ALL: [HeadFault; 18] = [
        HeadFault::MissingHost,
        HeadFault::MultipleHost,
        HeadFault::InvalidHost,
        HeadFault::MalformedRequestLine,
        HeadFault::InvalidTarget,
        HeadFault::UnsupportedTarget,
        HeadFault::UnsupportedVersion,
        HeadFault::ConnectMethod,
        HeadFault::MalformedHeader,
        HeadFault::InvalidContentLength,
        HeadFault::DuplicateContentLength,
        HeadFault::InvalidTransferEncoding,
        HeadFault::UnsupportedTransferEncoding,
        HeadFault::LengthWithTransferEncoding,
        HeadFault::RequestLineTooLong,
        HeadFault::HeadTooLarge,
        HeadFault::TooManyHeaders,
        HeadFault::HeadTimeout,
    ];

    /// Its place in `ALL`.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The status poolgate answers with.
    pub(crate) fn status(self) -> u16 {
        match self {
            HeadFault::ConnectMethod => 405,
            HeadFault::HeadTimeout => 408,
            HeadFault::RequestLineTooLong => 414,
            HeadFault::HeadTooLarge | HeadFault::TooManyHeaders => 431,
            HeadFault::UnsupportedTransferEncoding => 501,
            HeadFault::UnsupportedVersion => 505,
            _ => 400,
        }
    }

    /// The label of its counter (stats API `web.refused`, Prometheus `reason`).
    pub(crate) fn label(self) -> &'static str {
        match self {
            HeadFault::MissingHost => "missing_host",
            HeadFault::MultipleHost => "multiple_host",
            HeadFault::InvalidHost => "invalid_host",
            HeadFault::MalformedRequestLine => "malformed_request_line",
            HeadFault::InvalidTarget => "invalid_target",
            HeadFault::UnsupportedTarget => "unsupported_target",
            HeadFault::UnsupportedVersion => "unsupported_version",
            HeadFault::ConnectMethod => "connect_method",
            HeadFault::MalformedHeader => "malformed_header",
            HeadFault::InvalidContentLength => "invalid_content_length",
            HeadFault::DuplicateContentLength => "duplicate_content_length",
            HeadFault::InvalidTransferEncoding => "invalid_transfer_encoding",
            HeadFault::UnsupportedTransferEncoding => "unsupported_transfer_encoding",
            HeadFault::LengthWithTransferEncoding => "content_length_with_transfer_encoding",
            HeadFault::RequestLineTooLong => "request_line_too_long",
            HeadFault::HeadTooLarge => "header_too_large",
            HeadFault::TooManyHeaders => "too_many_headers",
            HeadFault::HeadTimeout => "header_timeout",
        }
    }

    /// What was wrong, as the client and the log read it.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            HeadFault::MissingHost => "the request has no Host header",
            HeadFault::MultipleHost => "the request has more than one Host header",
            HeadFault::InvalidHost => "the Host header is not a valid host[:port]",
            HeadFault::MalformedRequestLine => "the request line is malformed",
            HeadFault::InvalidTarget => {
                "the request target contains a space or a control character"
            }
            HeadFault::UnsupportedTarget => "the request target's form or scheme is not served",
            HeadFault::UnsupportedVersion => "only HTTP/1.0 and HTTP/1.1 are served over HTTP/1",
            HeadFault::ConnectMethod => "CONNECT is not served: poolgate is a reverse proxy",
            HeadFault::MalformedHeader => "a header line is malformed",
            HeadFault::InvalidContentLength => "the Content-Length header is not a number",
            HeadFault::DuplicateContentLength => {
                "the request has more than one Content-Length header"
            }
            HeadFault::InvalidTransferEncoding => {
                "the Transfer-Encoding header does not end with chunked (or is on HTTP/1.0)"
            }
            HeadFault::UnsupportedTransferEncoding => {
                "transfer codings other than chunked are not supported"
            }
            HeadFault::LengthWithTransferEncoding => {
                "the request has both Content-Length and Transfer-Encoding"
            }
            HeadFault::RequestLineTooLong => {
                "the request line is longer than http_max_request_line"
            }
            HeadFault::HeadTooLarge => "the request head is larger than http_max_header_size",
            HeadFault::TooManyHeaders => {
                "the request has more header fields than http_max_header_count"
            }
            HeadFault::HeadTimeout => "the request head did not arrive within http_header_timeout",
        }
    }

    /// The short `text/plain` body of the answer: `400 Bad Request: <reason>.`
    pub(crate) fn body(self) -> String {
        let status = http::StatusCode::from_u16(self.status()).ok();
        let phrase = status.and_then(|s| s.canonical_reason()).unwrap_or("Error");
        format!("{} {phrase}: {}.\n", self.status(), self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_sits_at_its_own_index() {
        for (i, fault) in HeadFault::ALL.iter().enumerate() {
            assert_eq!(fault.index(), i);
        }
    }

    #[test]
    fn labels_are_unique() {
        let mut labels: Vec<_> = HeadFault::ALL.iter().map(|f| f.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), HeadFault::ALL.len());
    }

    #[test]
    fn the_body_names_the_status_and_the_reason() {
        assert_eq!(
            HeadFault::MissingHost.body(),
            "400 Bad Request: the request has no Host header.\n"
        );
        assert!(HeadFault::TooManyHeaders
            .body()
            .starts_with("431 Request Header Fields Too Large: "));
    }
}
