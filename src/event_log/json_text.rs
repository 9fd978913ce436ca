//! Compact JSON written straight into one buffer, for the data column of lines written on the
//! request path (transaction and error lines). Building a `serde_json::Value` first cost a map
//! and two strings per header, allocated on the request thread and freed on the writer's; this
//! writes the same text (same key order, same escaping, same number forms) in one allocation.

/// A JSON object being written; nested objects are opened and closed in place.
pub(crate) struct JsonObject {
    buf: Vec<u8>,
    /// No member written yet at the current nesting level.
    first: bool,
}

impl JsonObject {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.push(b'{');
        JsonObject { buf, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        push_str(&mut self.buf, key);
        self.buf.push(b':');
    }

    /// A header name as a key: names are tokens (RFC 9110: no quotes, backslashes or control
    /// characters), so they are copied without looking for escapes.
    fn name_key(&mut self, name: &http::HeaderName) {
        let name = name.as_str().as_bytes();
        self.buf.reserve(name.len() + 4);
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(b"\":");
    }

    pub(crate) fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        push_str(&mut self.buf, value);
    }

    /// An unsigned integer.
    pub(crate) fn count(&mut self, key: &str, value: u64) {
        self.key(key);
        push_u64(&mut self.buf, value);
    }

    /// A duration in milliseconds with up to three decimals (`0.0`, `0.4`, `1015.569`): the
    /// same text serde_json writes for the `f64` `micros / 1000`, without float formatting.
    pub(crate) fn millis(&mut self, key: &str, micros: u64) {
        self.key(key);
        push_u64(&mut self.buf, micros / 1000);
        self.buf.push(b'.');
        let (digits, keep) = thousandths((micros % 1000) as u16);
        self.buf.extend_from_slice(&digits[..keep]);
    }

    /// Start a nested object under `key`; end it with [`JsonObject::close`].
    pub(crate) fn open(&mut self, key: &str) {
        self.key(key);
        self.buf.push(b'{');
        self.first = true;
    }

    pub(crate) fn close(&mut self) {
        self.buf.push(b'}');
        self.first = false;
    }

    /// Headers as an object of lower-case names, secrets redacted (`redact.rs`). A repeated header
    /// shows its last value (as a JSON map of the same headers would).
    pub(crate) fn headers(&mut self, key: &str, headers: &http::HeaderMap) {
        self.open(key);
        let mut entries = headers.iter().peekable();
        while let Some((name, value)) = entries.next() {
            // The values of one name come one after another: only the last is shown.
            if entries.peek().is_some_and(|(next, _)| *next == name) {
                continue;
            }
            self.name_key(name);
            push_str(
                &mut self.buf,
                &super::redact::header_value(name, value.as_bytes()),
            );
        }
        self.close();
    }

    /// The finished text.
    pub(crate) fn finish(mut self) -> String {
        self.buf.push(b'}');
        // Only `str`s, ASCII digits and ASCII punctuation went in, so the bytes are UTF-8.
        String::from_utf8(self.buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// A JSON string: quotes, backslashes and control characters escaped as serde_json does
/// (`\\n`, `\\t`... or `\\u00XX`); the runs between them are copied whole.
fn push_str(buf: &mut Vec<u8>, text: &str) {
    buf.push(b'"');
    let mut rest = text.as_bytes();
    while let Some(at) = first_to_escape(rest) {
        buf.extend_from_slice(&rest[..at]);
        push_escaped(buf, rest[at]);
        rest = &rest[at + 1..];
    }
    buf.extend_from_slice(rest);
    buf.push(b'"');
}

/// The position of the first byte JSON must escape. Eight bytes are tested at a time (most
/// header values have nothing to escape), then the byte is found within its eight.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Whether any byte of `v` is below `n` (n <= 128): the classic "hasless" test.
    let below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGHS != 0;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        let suspect = below(v, 0x20)
            || below(v ^ (ONES * u64::from(b'"')), 1)
            || below(v ^ (ONES * u64::from(b'\\')), 1);
        if suspect {
            if let Some(i) = chunk.iter().position(|b| needs_escape(*b)) {
                return Some(at + i);
            }
        }
        at += 8;
    }
    let tail = chunks.remainder();
    tail.iter().position(|b| needs_escape(*b)).map(|i| at + i)
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

fn push_escaped(buf: &mut Vec<u8>, b: u8) {
    let short: &[u8] = match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0x08 => b"\\b",
        0x0c => b"\\f",
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xf)]);
            return;
        }
    };
    buf.extend_from_slice(short);
}

/// The three decimal digits of `n` (0-999 thousandths) as ASCII, and how many to write: no
/// trailing zeros, at least one digit (`400` -> `4`, `7` -> `007`, `0` -> `0`).
pub(super) fn thousandths(n: u16) -> ([u8; 3], usize) {
    let digits = [n / 100 % 10, n / 10 % 10, n % 10].map(|d| b'0' + d as u8);
    let keep = match digits {
        [_, b'0', b'0'] => 1,
        [_, _, b'0'] => 2,
        _ => 3,
    };
    (digits, keep)
}

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_what_serde_json_writes() {
        let mut h = http::HeaderMap::new();
        h.insert("x-b", "2".parse().unwrap());
        h.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
        h.append("x-b", "3".parse().unwrap());
        h.insert("x-q", "a\"b\\c\td".parse().unwrap());
        let mut o = JsonObject::with_capacity(16);
        o.string("url", "http://h/\"x\"\n\u{1}é");
        o.count("code", 200);
        o.millis("ms", 1000);
        o.millis("ms2", 1_015_569);
        o.headers("req_headers", &h);
        o.open("perf");
        o.open("inner");
        o.close();
        o.count("n", 3);
        o.close();
        o.string("id", "");
        let ours = o.finish();
        let mut map = serde_json::Map::new();
        map.insert("x-b".into(), "3".into());
        map.insert("authorization".into(), "[redacted]".into());
        map.insert("x-q".into(), "a\"b\\c\td".into());
        let expected = json!({
            "url": "http://h/\"x\"\n\u{1}é", "code": 200, "ms": 1.0, "ms2": 1015.569,
            "req_headers": map, "perf": {"inner": {}, "n": 3}, "id": "",
        });
        assert_eq!(ours, expected.to_string());
    }

    #[test]
    fn strings_escape_like_serde_json() {
        let all: String = (0u8..0x80).map(char::from).chain("é€😀".chars()).collect();
        let mut o = JsonObject::with_capacity(0);
        o.string("s", &all);
        assert_eq!(o.finish(), json!({ "s": all }).to_string());
    }

    #[test]
    fn escapes_are_found_anywhere_in_a_word() {
        for len in 0..20 {
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{1f}', '\u{0}'] {
                    let mut text: String = "a~ é".chars().cycle().take(len).collect();
                    let byte_at = text.char_indices().nth(at).map_or(text.len(), |(i, _)| i);
                    text.insert(byte_at, special);
                    let mut o = JsonObject::with_capacity(0);
                    o.string("s", &text);
                    assert_eq!(o.finish(), json!({ "s": text }).to_string());
                }
            }
        }
    }

    #[test]
    fn millis_and_counts_read_like_serde_json_numbers() {
        for micros in [
            0u64, 1, 10, 100, 400, 1000, 1001, 1010, 1100, 1_015_569, 99_999_999,
        ] {
            let mut o = JsonObject::with_capacity(0);
            o.millis("ms", micros);
            o.count("n", micros);
            let expected = json!({"ms": micros as f64 / 1000.0, "n": micros}).to_string();
            assert_eq!(o.finish(), expected, "{micros}");
        }
    }

    #[test]
    fn empty_objects() {
        let mut o = JsonObject::with_capacity(4);
        o.headers("h", &http::HeaderMap::new());
        assert_eq!(o.finish(), r#"{"h":{}}"#);
        assert_eq!(JsonObject::with_capacity(0).finish(), "{}");
    }
}
