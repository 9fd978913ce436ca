//! The durable queue: an append-only journal per pool and process, in `queue_dir`.
//!
//! Every accepted request is appended as a `put` record (and flushed to the disk with
//! `queue_fsync`) before the client gets its answer; a `done` record follows once the back end
//! answered with success or the retries ran out. One thread per journal does all file work, so
//! request threads only wait, asynchronously, for their record's turn; records that arrive
//! together are written and flushed together.
//!
//! Each process writes its own segment `<pool>.<pid>-<ms>-<n>.journal` and holds an exclusive lock
//! on it. Segments nobody holds (a crashed or finished process, an upgrade's old process) are
//! adopted: their unfinished requests are copied into the live segment, flushed, and the old
//! segment removed — at start and every few seconds after. A request in flight when a process
//! dies is sent again (at least once delivery).
//!
//! A segment is compacted (rewritten with only its unfinished records) once it is both over
//! `COMPACT_MIN_BYTES` and more than twice the size of what is unfinished.

use super::record::{self, Record};
use super::request_id::RequestId;
use super::QueuedRequest;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// Segments this process opened: part of each name, so no two can collide.
static SEGMENTS: AtomicU64 = AtomicU64::new(0);

const COMPACT_MIN_BYTES: u64 = 4 * 1024 * 1024;
/// Operations written with one `write` (and one flush).
const MAX_BATCH: usize = 4096;

enum Op {
    Put {
        record: Vec<u8>,
        id: RequestId,
        ack: oneshot::Sender<io::Result<()>>,
    },
    Done {
        id: RequestId,
        spool: Option<PathBuf>,
    },
    Adopt(oneshot::Sender<Vec<QueuedRequest>>),
    /// Flush and stop; the segment is removed when nothing in it is unfinished.
    Close(oneshot::Sender<u64>),
}

/// The handle request threads and the sender use; the file belongs to the journal's thread.
pub(crate) struct QueueJournal {
    ops: mpsc::Sender<Op>,
    bytes: Arc<AtomicU64>,
}

fn closed() -> io::Error {
    io::Error::other("the queue journal has stopped")
}

impl QueueJournal {
    /// Create this process's segment for `pool` in `dir`, adopt every unheld segment, and start
    /// the journal's thread. Blocking: call it before serving, off the request path.
    pub(crate) fn open(
        dir: &Path,
        pool: &str,
        spool_dir: &Path,
        fsync: bool,
    ) -> io::Result<(QueueJournal, Vec<QueuedRequest>)> {
        fs::create_dir_all(dir)?;
        fs::create_dir_all(spool_dir)?;
        let prefix = format!("{}.", file_safe(pool));
        let (millis, seq) = (
            crate::timing::clock::unix_ms(),
            SEGMENTS.fetch_add(1, Ordering::Relaxed),
        );
        let pid = std::process::id();
        let path = dir.join(format!("{prefix}{pid}-{millis}-{seq}.journal"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        file.lock()?;
        sync_dir(dir)?;
        let bytes = Arc::new(AtomicU64::new(0));
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            prefix,
            path,
            file,
            len: 0,
            live: HashMap::new(),
            live_bytes: 0,
            fsync,
            spool_dir: spool_dir.to_path_buf(),
            bytes: bytes.clone(),
        };
        let recovered = writer.adopt_orphans();
        let (ops, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("queue-journal-{pool}"))
            .spawn(move || writer.run(rx))?;
        Ok((QueueJournal { ops, bytes }, recovered))
    }

    /// Write `req` and wait until it is on the disk (per `queue_fsync`).
    pub(crate) async fn put(&self, req: &QueuedRequest) -> io::Result<()> {
        let (ack, done) = oneshot::channel();
        let op = Op::Put {
            record: record::put(req),
            id: req.id,
            ack,
        };
        self.ops.send(op).map_err(|_| closed())?;
        done.await.map_err(|_| closed())?
    }

    /// Mark `id` finished; its spool file is removed once that is written.
    pub(crate) fn done(&self, id: RequestId, spool: Option<PathBuf>) {
        let _ = self.ops.send(Op::Done { id, spool });
    }

    /// Unfinished requests of segments no process holds any more.
    pub(crate) async fn adopt(&self) -> Vec<QueuedRequest> {
        let (ack, found) = oneshot::channel();
        if self.ops.send(Op::Adopt(ack)).is_err() {
            return Vec::new();
        }
        found.await.unwrap_or_default()
    }

    /// Flush and stop writing; returns how many requests stay unfinished in the journal.
    pub(crate) async fn close(&self) -> u64 {
        let (ack, left) = oneshot::channel();
        if self.ops.send(Op::Close(ack)).is_err() {
            return 0;
        }
        left.await.unwrap_or(0)
    }

    /// Bytes of the live segment.
    pub(crate) fn size(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// A pool id as a file-name part: letters, digits, `-` and `_` kept, anything else `%XX`.
fn file_safe(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) prefix: String,
    pub(super) path: PathBuf,
    file: File,
    len: u64,
    /// Unfinished requests of the live segment and the size of their records.
    pub(super) live: HashMap<RequestId, u64>,
    pub(super) live_bytes: u64,
    fsync: bool,
    pub(super) spool_dir: PathBuf,
    bytes: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, ops: mpsc::Receiver<Op>) {
        while let Ok(first) = ops.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            if !self.apply(batch) {
                return;
            }
            self.maybe_compact();
        }
    }

    /// Write one batch; `false` once the journal is closed.
    fn apply(&mut self, batch: Vec<Op>) -> bool {
        let mut buf = Vec::new();
        let (mut acks, mut spools, mut later) = (Vec::new(), Vec::new(), Vec::new());
        for op in batch {
            match op {
                Op::Put { record, id, ack } => {
                    self.live.insert(id, record.len() as u64);
                    self.live_bytes += record.len() as u64;
                    buf.extend_from_slice(&record);
                    acks.push((id, ack));
                }
                Op::Done { id, spool } => {
                    if let Some(n) = self.live.remove(&id) {
                        self.live_bytes -= n;
                        buf.extend(record::done(&id));
                    }
                    spools.extend(spool);
                }
                other => later.push(other),
            }
        }
        let written = self.append(&buf, !acks.is_empty() && self.fsync);
        for (id, ack) in acks {
            if written.is_err() {
                if let Some(n) = self.live.remove(&id) {
                    self.live_bytes -= n;
                }
            }
            // io::Error is not Clone: each waiting request gets its own copy.
            let copy = written
                .as_ref()
                .map(|_| ())
                .map_err(|e| io::Error::new(e.kind(), e.to_string()));
            let _ = ack.send(copy);
        }
        if let Err(e) = &written {
            log::error!("queue journal {}: write failed: {e}", self.path.display());
        }
        for path in spools {
            let _ = fs::remove_file(path);
        }
        for op in later {
            match op {
                Op::Adopt(ack) => {
                    let _ = ack.send(self.adopt_orphans());
                }
                Op::Close(ack) => {
                    let _ = self.file.sync_all();
                    if self.live.is_empty() {
                        let _ = fs::remove_file(&self.path);
                    }
                    let _ = ack.send(self.live.len() as u64);
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    pub(super) fn append(&mut self, buf: &[u8], sync: bool) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(buf)?;
        self.len += buf.len() as u64;
        self.bytes.store(self.len, Ordering::Relaxed);
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn maybe_compact(&mut self) {
        if self.len < COMPACT_MIN_BYTES || self.len < 2 * self.live_bytes {
            return;
        }
        if let Err(e) = self.compact() {
            log::error!(
                "queue journal {}: compaction failed: {e}",
                self.path.display()
            );
        }
    }

    /// Rewrite the segment with only its unfinished `put` records, then swap it in.
    fn compact(&mut self) -> io::Result<()> {
        let data = fs::read(&self.path)?;
        let tmp = self.path.with_extension("compacting");
        let mut out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)?;
        out.lock()?;
        let mut len = 0u64;
        for (rec, range) in record::scan(&data, &self.spool_dir).records {
            if matches!(&rec, Record::Put(p) if self.live.contains_key(&p.id)) {
                out.write_all(&data[range.clone()])?;
                len += range.len() as u64;
            }
        }
        out.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        sync_dir(&self.dir)?;
        // `out` (locked, positioned at its end) is the segment now; dropping the old handle
        // releases the old inode's lock.
        self.file = out;
        self.len = len;
        self.bytes.store(len, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front_end::ClientFacts;
    use crate::queue::QueuedBody;
    use bytes::Bytes;
    use pingora::http::RequestHeader;

    fn request(body_len: usize) -> QueuedRequest {
        QueuedRequest {
            id: RequestId::new(),
            enqueued_ms: 1,
            client: ClientFacts::default(),
            header: RequestHeader::build("POST", b"/x", None).unwrap(),
            framed: true,
            body: QueuedBody::Inline(Bytes::from(vec![7u8; body_len])),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn segments(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "journal"))
            .count()
    }

    #[test]
    fn unfinished_requests_are_adopted_by_the_next_journal_and_finished_ones_not() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let rt = runtime();
        let reqs: Vec<_> = (0..3).map(|_| request(10)).collect();
        let (first, none) = QueueJournal::open(dir.path(), "p", &spool, false).unwrap();
        assert!(none.is_empty());
        rt.block_on(async {
            for r in &reqs {
                first.put(r).await.unwrap();
            }
            first.done(reqs[1].id, None);
            assert_eq!(first.close().await, 2, "two stay unfinished");
        });
        let (second, adopted) = QueueJournal::open(dir.path(), "p", &spool, false).unwrap();
        let ids: Vec<_> = adopted.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![reqs[0].id, reqs[2].id]);
        assert_eq!(segments(dir.path()), 1, "the old segment is gone");
        // Another pool's segments are not touched.
        let (_other, theirs) = QueueJournal::open(dir.path(), "q", &spool, false).unwrap();
        assert!(theirs.is_empty());
        rt.block_on(async {
            ids.iter().for_each(|id| second.done(*id, None));
            assert_eq!(second.close().await, 0);
        });
        assert_eq!(
            segments(dir.path()),
            1,
            "an empty segment is removed on close"
        );
    }

    #[test]
    fn a_held_segment_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let rt = runtime();
        let (first, _) = QueueJournal::open(dir.path(), "p", &spool, true).unwrap();
        rt.block_on(first.put(&request(1))).unwrap();
        let (second, adopted) = QueueJournal::open(dir.path(), "p", &spool, true).unwrap();
        assert!(
            adopted.is_empty(),
            "the first journal still holds its segment"
        );
        rt.block_on(first.close());
        assert_eq!(
            rt.block_on(second.adopt()).len(),
            1,
            "adopted once released"
        );
    }

    #[test]
    fn compaction_keeps_disk_use_near_what_is_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let rt = runtime();
        let (journal, _) = QueueJournal::open(dir.path(), "p", &spool, false).unwrap();
        let keep = request(1000);
        rt.block_on(async {
            journal.put(&keep).await.unwrap();
            for _ in 0..3000 {
                let r = request(2000);
                journal.put(&r).await.unwrap();
                journal.done(r.id, None);
            }
            // A round trip through the journal's thread: everything before it is applied.
            assert!(journal.adopt().await.is_empty());
        });
        assert!(
            journal.size() < COMPACT_MIN_BYTES,
            "{} bytes after 6 MB of finished requests",
            journal.size()
        );
        assert_eq!(rt.block_on(journal.close()), 1);
        // The compacted segment still holds the unfinished request, byte-exact.
        let (_next, adopted) = QueueJournal::open(dir.path(), "p", &spool, false).unwrap();
        assert_eq!(adopted.len(), 1);
        assert_eq!(adopted[0].id, keep.id);
        assert_eq!(adopted[0].body.len(), 1000);
    }

    #[test]
    fn pool_ids_become_safe_file_names() {
        assert_eq!(file_safe("api_v2-x"), "api_v2-x");
        assert_eq!(file_safe("a.b/c"), "a%2Eb%2Fc");
    }
}
