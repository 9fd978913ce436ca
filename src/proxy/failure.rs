//! What the client is told when a request cannot be proxied.
//!
//! Pingora's default maps every upstream error to 502, timeouts included; poolgate answers 504
//! when the back end was too slow (connect or time to first byte) and 502 when it refused,
//! reset or sent garbage.

use pingora::{Error, ErrorSource, ErrorType};

/// The status for a failed request; 0 means the client is gone and nothing should be sent.
pub(super) fn status_for(e: &Error) -> u16 {
    use ErrorType::*;
    match (&e.etype, &e.esource) {
        (HTTPStatus(code), _) => *code,
        (
            ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout,
            ErrorSource::Upstream,
        ) => 504,
        (_, ErrorSource::Upstream) => 502,
        (ReadError | WriteError | ConnectionClosed, ErrorSource::Downstream) => 0,
        (ReadTimedout, ErrorSource::Downstream) => 408,
        (_, ErrorSource::Downstream) => 400,
        _ => 500,
    }
}

/// The short text body sent with a failure status.
pub(super) fn body_for(status: u16) -> &'static str {
    match status {
        400 => "400 Bad Request: the request could not be read.\n",
        404 => "404 Not Found: no pool matches this request.\n",
        408 => "408 Request Timeout: the request was not complete in time.\n",
        413 => "413 Payload Too Large: the request body is larger than http_max_upload_size.\n",
        502 => "502 Bad Gateway: the back end refused, reset or failed the request.\n",
        504 => "504 Gateway Timeout: the back end did not answer in time.\n",
        _ => "The proxy could not complete the request.\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(t: ErrorType) -> Box<Error> {
        Error::new(t).into_up()
    }

    #[test]
    fn upstream_timeouts_are_504_and_other_upstream_errors_502() {
        assert_eq!(status_for(&up(ErrorType::ReadTimedout)), 504);
        assert_eq!(status_for(&up(ErrorType::ConnectTimedout)), 504);
        assert_eq!(status_for(&up(ErrorType::ConnectRefused)), 502);
        assert_eq!(status_for(&up(ErrorType::ConnectionClosed)), 502);
    }

    #[test]
    fn client_side_errors() {
        assert_eq!(
            status_for(&Error::new(ErrorType::ConnectionClosed).into_down()),
            0
        );
        assert_eq!(
            status_for(&Error::new(ErrorType::InvalidHTTPHeader).into_down()),
            400
        );
        assert_eq!(status_for(&Error::new(ErrorType::HTTPStatus(413))), 413);
        assert_eq!(status_for(&Error::new(ErrorType::InternalError)), 500);
    }
}
