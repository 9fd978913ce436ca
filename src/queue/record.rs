//! The journal's record format: framed, checksummed and self-synchronising, so a torn or
//! corrupt stretch is detected and skipped without losing the records around it.
//!
//! ```text
//! record  = magic "QG" | kind u8 | payload length u32 LE | crc32(kind, payload) u32 LE | payload
//! put     = id [32] | enqueued ms u64 | client ip (tag u8: 0, 4, 6 + octets) | tls u8 | framed u8
//!           | method str16 | uri str32 | header count u16 | (name str16 | value bytes32)*
//!           | body (0 | bytes32) or (1 | spool file name str16 | length u64)
//! done    = id [32]
//! ```

use super::request_id::RequestId;
use super::{QueuedBody, QueuedRequest};
use crate::front_end::ClientFacts;
use bytes::Bytes;
use pingora::http::RequestHeader;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

const MAGIC: [u8; 2] = *b"QG";
const HEADER_LEN: usize = 11;
const KIND_PUT: u8 = 1;
const KIND_DONE: u8 = 2;
/// No record is larger (inline bodies are far smaller; see `queue_spool_bytes`).
const MAX_PAYLOAD: u32 = 1 << 30;

/// One decoded record.
pub(super) enum Record {
    Put(Box<QueuedRequest>),
    Done(RequestId),
}

/// What a scan of a journal found.
pub(super) struct Scan {
    /// Records in file order, with their raw bytes (for copying forward unchanged).
    pub(crate) records: Vec<(Record, std::ops::Range<usize>)>,
    /// Stretches that were not valid records: `(offset, length)`.
    pub(crate) damaged: Vec<(usize, usize)>,
}

/// A whole `put` record for `req`.
pub(super) fn put(req: &QueuedRequest) -> Vec<u8> {
    let mut p = Vec::with_capacity(256 + req.body.inline_len());
    p.extend_from_slice(&req.id.0);
    p.extend_from_slice(&req.enqueued_ms.to_le_bytes());
    // The socket peer: what the back end's `X-Forwarded-For` gets after a restart.
    match req.client.peer {
        None => p.push(0),
        Some(IpAddr::V4(ip)) => {
            p.push(4);
            p.extend_from_slice(&ip.octets());
        }
        Some(IpAddr::V6(ip)) => {
            p.push(6);
            p.extend_from_slice(&ip.octets());
        }
    }
    p.push(u8::from(req.client.tls));
    p.push(u8::from(req.framed));
    put_str16(&mut p, req.header.method.as_str().as_bytes());
    put_bytes32(&mut p, req.header.raw_path());
    let headers = &req.header.headers;
    p.extend_from_slice(&(headers.len().min(u16::MAX as usize) as u16).to_le_bytes());
    for (name, value) in headers.iter().take(u16::MAX as usize) {
        put_str16(&mut p, name.as_str().as_bytes());
        put_bytes32(&mut p, value.as_bytes());
    }
    match &req.body {
        QueuedBody::Inline(bytes) => {
            p.push(0);
            put_bytes32(&mut p, bytes);
        }
        QueuedBody::Spooled { path, len } => {
            p.push(1);
            let name = path.file_name().map_or(&b""[..], |n| n.as_encoded_bytes());
            put_str16(&mut p, name);
            p.extend_from_slice(&len.to_le_bytes());
        }
    }
    frame(KIND_PUT, &p)
}

/// A whole `done` record.
pub(super) fn done(id: &RequestId) -> Vec<u8> {
    frame(KIND_DONE, &id.0)
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(kind, payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn put_str16(p: &mut Vec<u8>, s: &[u8]) {
    let s = &s[..s.len().min(u16::MAX as usize)];
    p.extend_from_slice(&(s.len() as u16).to_le_bytes());
    p.extend_from_slice(s);
}

fn put_bytes32(p: &mut Vec<u8>, s: &[u8]) {
    p.extend_from_slice(&(s.len() as u32).to_le_bytes());
    p.extend_from_slice(s);
}

/// Decode every record of a journal. Spooled bodies are looked up in `spool_dir`.
pub(super) fn scan(data: &[u8], spool_dir: &Path) -> Scan {
    let mut scan = Scan {
        records: Vec::new(),
        damaged: Vec::new(),
    };
    let mut at = 0;
    let mut bad_from: Option<usize> = None;
    while at < data.len() {
        match decode_at(data, at, spool_dir) {
            Some((record, end)) => {
                if let Some(from) = bad_from.take() {
                    scan.damaged.push((from, at - from));
                }
                scan.records.push((record, at..end));
                at = end;
            }
            None => {
                bad_from.get_or_insert(at);
                at += 1;
            }
        }
    }
    if let Some(from) = bad_from {
        scan.damaged.push((from, data.len() - from));
    }
    scan
}

/// The record starting at `at` and where it ends, if it is whole and its checksum matches.
fn decode_at(data: &[u8], at: usize, spool_dir: &Path) -> Option<(Record, usize)> {
    let head = data.get(at..at + HEADER_LEN)?;
    if head[..2] != MAGIC {
        return None;
    }
    let kind = head[2];
    let len = u32::from_le_bytes(head[3..7].try_into().ok()?);
    if len > MAX_PAYLOAD {
        return None;
    }
    let crc = u32::from_le_bytes(head[7..11].try_into().ok()?);
    let end = at + HEADER_LEN + len as usize;
    let payload = data.get(at + HEADER_LEN..end)?;
    if crc32(kind, payload) != crc {
        return None;
    }
    let record = match kind {
        KIND_PUT => Record::Put(Box::new(decode_put(payload, spool_dir)?)),
        KIND_DONE => Record::Done(RequestId(payload.try_into().ok()?)),
        _ => return None,
    };
    Some((record, end))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<usize> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize)
    }
    fn u32(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
    fn bytes32(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(n)
    }
}

fn decode_put(payload: &[u8], spool_dir: &Path) -> Option<QueuedRequest> {
    let mut r = Reader(payload);
    let id = RequestId(r.take(32)?.try_into().ok()?);
    let enqueued_ms = r.u64()?;
    let ip = match r.u8()? {
        0 => None,
        4 => Some(IpAddr::V4(Ipv4Addr::from(
            <[u8; 4]>::try_from(r.take(4)?).ok()?,
        ))),
        6 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(r.take(16)?).ok()?,
        ))),
        _ => return None,
    };
    let tls = r.u8()? != 0;
    let framed = r.u8()? != 0;
    let method = std::str::from_utf8(r.str16()?).ok()?;
    let path = r.bytes32()?;
    let count = r.u16()?;
    let mut header = RequestHeader::build_no_case(method, path, Some(count)).ok()?;
    for _ in 0..count {
        let name = std::str::from_utf8(r.str16()?).ok()?.to_string();
        let value = http::HeaderValue::from_bytes(r.bytes32()?).ok()?;
        header.append_header(name, value).ok()?;
    }
    let body = match r.u8()? {
        0 => QueuedBody::Inline(Bytes::copy_from_slice(r.bytes32()?)),
        1 => {
            let name = std::str::from_utf8(r.str16()?).ok()?;
            QueuedBody::Spooled {
                path: spool_dir.join(name),
                len: r.u64()?,
            }
        }
        _ => return None,
    };
    Some(QueuedRequest {
        id,
        enqueued_ms,
        client: ClientFacts::direct(ip, tls),
        header,
        framed,
        body,
    })
}

/// CRC-32 (IEEE) over the kind byte and the payload.
fn crc32(kind: u8, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &'static [u8]) -> QueuedRequest {
        let mut header = RequestHeader::build("POST", b"/a?b=1", None).unwrap();
        header.append_header("x-one", "1").unwrap();
        header.append_header("x-one", "2").unwrap();
        QueuedRequest {
            id: RequestId::new(),
            enqueued_ms: 42,
            client: ClientFacts::direct(Some("10.1.2.3".parse().unwrap()), true),
            header,
            framed: true,
            body: QueuedBody::Inline(Bytes::from_static(body)),
        }
    }

    #[test]
    fn crc_matches_the_ieee_check_value() {
        // CRC-32 of "123456789" is 0xCBF43926; here the first byte is the kind.
        assert_eq!(crc32(b'1', b"23456789"), 0xCBF4_3926);
    }

    #[test]
    fn put_and_done_round_trip() {
        let req = request(b"\x00body\xff");
        let mut data = put(&req);
        data.extend(done(&req.id));
        let scan = scan(&data, Path::new("/spool"));
        assert!(scan.damaged.is_empty());
        assert_eq!(scan.records.len(), 2);
        let Record::Put(back) = &scan.records[0].0 else {
            panic!("not a put")
        };
        assert_eq!(back.id, req.id);
        assert_eq!(back.header.method, "POST");
        assert_eq!(back.header.raw_path(), b"/a?b=1");
        let values: Vec<_> = back.header.headers.get_all("x-one").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(back.client.ip, req.client.ip);
        assert!(back.client.tls && back.framed);
        assert!(matches!(&back.body, QueuedBody::Inline(b) if &b[..] == b"\x00body\xff"));
        assert!(matches!(scan.records[1].0, Record::Done(id) if id == req.id));
    }

    #[test]
    fn a_torn_tail_is_reported_and_earlier_records_kept() {
        let (a, b) = (request(b"a"), request(b"b"));
        let mut data = put(&a);
        let whole = data.len();
        data.extend(&put(&b)[..20]);
        let scan = scan(&data, Path::new("/"));
        assert_eq!(scan.records.len(), 1);
        assert_eq!(scan.damaged, vec![(whole, 20)]);
    }

    #[test]
    fn a_corrupt_record_in_the_middle_is_skipped() {
        let (a, b, c) = (request(b"a"), request(b"b"), request(b"c"));
        let mut data = put(&a);
        let bad_at = data.len();
        let mut bad = put(&b);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        data.extend(&bad);
        data.extend(put(&c));
        let scan = scan(&data, Path::new("/"));
        let ids: Vec<_> = scan
            .records
            .iter()
            .filter_map(|(r, _)| match r {
                Record::Put(p) => Some(p.id),
                Record::Done(_) => None,
            })
            .collect();
        assert_eq!(ids, vec![a.id, c.id]);
        assert_eq!(scan.damaged, vec![(bad_at, bad.len())]);
    }
}
