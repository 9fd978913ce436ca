//! Where a queue keeps its accepted requests until they are sent: in memory only, or in its
//! durable journal (`queue_dir`, see `journal.rs`). The intake and the sender ask this one
//! interface; a store shared by several instances would be another variant.

use super::journal::QueueJournal;
use super::request_id::RequestId;
use super::QueuedRequest;
use std::io;
use std::path::PathBuf;

pub(crate) enum QueueStore {
    /// Lost when the process stops (`queue_dir` not set).
    Memory,
    /// Every accepted request is on the disk before the client hears of it.
    Journal(QueueJournal),
}

impl QueueStore {
    /// Keep `req` (per `queue_fsync`, on the disk) before the client is answered.
    pub(crate) async fn put(&self, req: &QueuedRequest) -> io::Result<()> {
        match self {
            QueueStore::Memory => Ok(()),
            QueueStore::Journal(journal) => journal.put(req).await,
        }
    }

    /// `id` is finished (sent, or its retries ran out); its spool file goes with it.
    pub(crate) async fn done(&self, id: RequestId, spool: Option<PathBuf>) {
        match self {
            QueueStore::Memory => {
                if let Some(path) = spool {
                    let _ = tokio::fs::remove_file(path).await;
                }
            }
            QueueStore::Journal(journal) => journal.done(id, spool),
        }
    }

    /// Unfinished requests that stopped processes left behind.
    pub(crate) async fn adopt(&self) -> Vec<QueuedRequest> {
        match self {
            QueueStore::Memory => Vec::new(),
            QueueStore::Journal(journal) => journal.adopt().await,
        }
    }

    /// Stop writing (shutdown); how many requests stay unfinished in the store.
    pub(crate) async fn close(&self) -> u64 {
        match self {
            QueueStore::Memory => 0,
            QueueStore::Journal(journal) => journal.close().await,
        }
    }

    /// Bytes on the disk.
    pub(crate) fn size(&self) -> u64 {
        match self {
            QueueStore::Memory => 0,
            QueueStore::Journal(journal) => journal.size(),
        }
    }
}
