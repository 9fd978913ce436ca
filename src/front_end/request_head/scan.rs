//! Finding the end of a request head as its bytes arrive (`http_max_request_line`,
//! `http_max_header_size`). Each byte is looked at once however the head is split across
//! reads, so a client dripping its head byte by byte costs no more than one sending it whole.

use super::{HeadFault, HeadLimits};
use memchr::memchr;

/// How far the bytes received so far go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// The head is not complete yet and no limit is passed.
    More,
    /// The head ends here: the first `len` bytes (its blank line included).
    Complete { len: usize },
    /// A limit is passed.
    Fault(HeadFault),
}

/// The state of one head's search.
#[derive(Debug, Default, Clone)]
pub(crate) struct HeadScan {
    /// Where the next search for a line feed starts.
    next: usize,
    /// Where the request line starts (after the empty lines RFC 9112 §2.2 lets a server skip).
    start: Option<usize>,
    /// Whether the request line's end has been seen.
    line_seen: bool,
}

impl HeadScan {
    /// Look at `buf`: the bytes of this head received so far (the same buffer, grown, on
    /// every call).
    pub(crate) fn advance(&mut self, buf: &[u8], limits: &HeadLimits) -> Progress {
        let start = match self.start {
            Some(s) => s,
            None => {
                let Some(s) = buf.iter().position(|&b| b != b'\r' && b != b'\n') else {
                    // Only empty lines so far: keep a bound on them too.
                    return self.over_size(buf.len(), limits);
                };
                self.start = Some(s);
                self.next = s;
                s
            }
        };
        while let Some(offset) = memchr(b'\n', &buf[self.next..]) {
            let lf = self.next + offset;
            if !self.line_seen {
                self.line_seen = true;
                if lf - start > limits.max_line {
                    return Progress::Fault(HeadFault::RequestLineTooLong);
                }
            }
            match (buf.get(lf + 1), buf.get(lf + 2)) {
                (Some(b'\n'), _) => return self.complete(lf + 2, limits),
                (Some(b'\r'), Some(b'\n')) => return self.complete(lf + 3, limits),
                // Not enough bytes yet to tell whether a blank line follows.
                (None, _) | (Some(b'\r'), None) => {
                    self.next = lf;
                    return self.over_size(buf.len() - start, limits);
                }
                _ => self.next = lf + 1,
            }
        }
        self.next = buf.len();
        if !self.line_seen && buf.len() - start > limits.max_line {
            return Progress::Fault(HeadFault::RequestLineTooLong);
        }
        self.over_size(buf.len() - start, limits)
    }

    fn complete(&self, len: usize, limits: &HeadLimits) -> Progress {
        match len - self.start.unwrap_or(0) > limits.max_size {
            true => Progress::Fault(HeadFault::HeadTooLarge),
            false => Progress::Complete { len },
        }
    }

    fn over_size(&self, received: usize, limits: &HeadLimits) -> Progress {
        match received > limits.max_size {
            true => Progress::Fault(HeadFault::HeadTooLarge),
            false => Progress::More,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HeadLimits {
        HeadLimits {
            max_size: 64,
            max_line: 24,
            ..HeadLimits::default()
        }
    }

    fn scan_in_pieces(head: &[u8], piece: usize) -> Progress {
        let mut scan = HeadScan::default();
        let mut got = Vec::new();
        for chunk in head.chunks(piece) {
            got.extend_from_slice(chunk);
            match scan.advance(&got, &limits()) {
                Progress::More => {}
                done => return done,
            }
        }
        Progress::More
    }

    #[test]
    fn the_end_is_found_however_the_head_is_split() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        for piece in 1..head.len() {
            assert_eq!(
                scan_in_pieces(head, piece),
                Progress::Complete {
                    len: head.len() - 4
                },
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn bare_line_feeds_and_leading_empty_lines_are_understood() {
        let head = b"\r\n\nGET / HTTP/1.1\nHost: a\n\n";
        for piece in 1..head.len() {
            assert_eq!(
                scan_in_pieces(head, piece),
                Progress::Complete { len: head.len() }
            );
        }
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert_eq!(
            scan_in_pieces(b"GET / HTTP/1.1\r\nHost: a\r\n", 3),
            Progress::More
        );
    }

    #[test]
    fn a_long_request_line_is_414_even_before_its_end() {
        let line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(30));
        assert_eq!(
            scan_in_pieces(line.as_bytes(), 100),
            Progress::Fault(HeadFault::RequestLineTooLong)
        );
        assert_eq!(
            scan_in_pieces(&line.as_bytes()[..28], 1),
            Progress::Fault(HeadFault::RequestLineTooLong)
        );
    }

    #[test]
    fn a_large_head_is_431_whether_complete_or_not() {
        let head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(60));
        assert_eq!(
            scan_in_pieces(head.as_bytes(), 1000),
            Progress::Fault(HeadFault::HeadTooLarge)
        );
        assert_eq!(
            scan_in_pieces(&head.as_bytes()[..70], 1),
            Progress::Fault(HeadFault::HeadTooLarge)
        );
        assert_eq!(
            scan_in_pieces(&[b'\n'; 100], 7),
            Progress::Fault(HeadFault::HeadTooLarge)
        );
    }
}
