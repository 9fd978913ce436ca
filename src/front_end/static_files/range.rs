//! `Range: bytes=...` for one range. Several ranges would need a `multipart/byteranges` body;
//! RFC 9110 (14.2) lets a server ignore `Range` instead, so those (and anything malformed, or
//! in another unit) get the whole file. Browsers and download tools ask for one range.
//!
//! Pingora's `range_header_filter` is not used here, for what it answers differently: `bytes=5-1`
//! (an invalid range-spec, which RFC 9110 14.1.1 says makes the field ignored) gets 416 instead
//! of the whole file, `bytes=-0` gets a 206 with an empty body instead of 416, and HEAD gets
//! ranges although RFC 9110 14.2 defines them for GET only.

/// What to send for a `Range` header, given the file's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RangeAnswer {
    /// 200 with the whole file (no usable range).
    Whole,
    /// 206 with bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// 416: a well-formed range that lies wholly past the end of the file.
    Unsatisfiable,
}

pub(super) fn answer(header: &str, len: u64) -> RangeAnswer {
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return RangeAnswer::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    match (number(first), number(last)) {
        // `-n`: the last n bytes.
        (None, Some(n)) if first.is_empty() => match n {
            0 => RangeAnswer::Unsatisfiable,
            _ if len == 0 => RangeAnswer::Unsatisfiable,
            n => RangeAnswer::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        },
        // `a-`: from a to the end.
        (Some(start), None) if last.is_empty() => from(start, len.saturating_sub(1), len),
        // `a-b`: an end past the file is cut to its last byte.
        (Some(start), Some(end)) if start <= end => {
            from(start, end.min(len.saturating_sub(1)), len)
        }
        _ => RangeAnswer::Whole,
    }
}

fn from(start: u64, end: u64, len: u64) -> RangeAnswer {
    if start >= len {
        RangeAnswer::Unsatisfiable
    } else {
        RangeAnswer::Part { start, end }
    }
}

/// A run of ASCII digits (no sign, no spaces inside) that fits in a u64.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::RangeAnswer::{Part, Unsatisfiable, Whole};
    use super::*;

    #[test]
    fn single_ranges_of_each_form() {
        assert_eq!(answer("bytes=0-9", 100), Part { start: 0, end: 9 });
        assert_eq!(answer("bytes=10-", 100), Part { start: 10, end: 99 });
        assert_eq!(answer("bytes=-10", 100), Part { start: 90, end: 99 });
        assert_eq!(answer("bytes=5-5", 100), Part { start: 5, end: 5 });
        assert_eq!(answer(" Bytes = 1 - 2 ", 100), Part { start: 1, end: 2 });
    }

    #[test]
    fn ranges_past_the_end_are_cut_or_unsatisfiable() {
        assert_eq!(answer("bytes=90-500", 100), Part { start: 90, end: 99 });
        assert_eq!(answer("bytes=-500", 100), Part { start: 0, end: 99 });
        assert_eq!(answer("bytes=100-", 100), Unsatisfiable);
        assert_eq!(answer("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(answer("bytes=-0", 100), Unsatisfiable);
        assert_eq!(answer("bytes=0-", 0), Unsatisfiable);
        assert_eq!(answer("bytes=-5", 0), Unsatisfiable);
    }

    #[test]
    fn several_or_malformed_ranges_mean_the_whole_file() {
        for header in [
            "bytes=0-1,5-6",
            "bytes=9-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1",
            "items=0-1",
            "bytes",
            "",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(answer(header, 100), Whole, "{header:?}");
        }
    }
}
