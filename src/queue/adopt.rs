//! Adopting journal segments no process holds any more (a crashed or stopped process, an
//! upgrade's old process): their unfinished requests are copied into the live segment, flushed,
//! and the old segment removed. A segment still locked by a live process is left alone.

use super::journal::{sync_dir, Writer};
use super::record::{self, Record};
use super::request_id::RequestId;
use super::QueuedRequest;
use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

impl Writer {
    pub(super) fn adopt_orphans(&mut self) -> Vec<QueuedRequest> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if !name.starts_with(&self.prefix) || !name.ends_with(".journal") || path == self.path {
                continue;
            }
            match self.adopt(&path) {
                Ok(Some(reqs)) => found.extend(reqs),
                Ok(None) => {}
                Err(e) => log::error!("queue journal {}: cannot adopt: {e}", path.display()),
            }
        }
        found
    }

    /// Take over one segment, unless a live process holds it.
    fn adopt(&mut self, path: &Path) -> io::Result<Option<Vec<QueuedRequest>>> {
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        if fs::metadata(path)?.ino() != file.metadata()?.ino() {
            return Ok(None); // compacted (replaced) meanwhile; the new file is held
        }
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let scan = record::scan(&data, &self.spool_dir);
        for (offset, len) in &scan.damaged {
            log::error!(
                "queue journal {}: {len} bytes at offset {offset} are not a valid record \
                 (torn or corrupt write); skipped",
                path.display()
            );
        }
        let done: HashSet<RequestId> = scan
            .records
            .iter()
            .filter_map(|(r, _)| match r {
                Record::Done(id) => Some(*id),
                Record::Put(_) => None,
            })
            .collect();
        let (mut raw, mut reqs, mut sizes) = (Vec::new(), Vec::new(), HashMap::new());
        for (rec, range) in scan.records {
            let Record::Put(req) = rec else { continue };
            if done.contains(&req.id)
                || self.live.contains_key(&req.id)
                || sizes.contains_key(&req.id)
            {
                continue;
            }
            if let Some(spool) = req.body.spool_file().filter(|p| !p.exists()) {
                log::error!(
                    "queue journal {}: body file {} of request {} is missing; request skipped",
                    path.display(),
                    spool.display(),
                    req.id
                );
                continue;
            }
            raw.extend_from_slice(&data[range.clone()]);
            sizes.insert(req.id, range.len() as u64);
            reqs.push(*req);
        }
        // Only once the copy is on the disk do the requests belong to this segment.
        self.append(&raw, true)?;
        self.live_bytes += sizes.values().sum::<u64>();
        self.live.extend(sizes);
        fs::remove_file(path)?;
        sync_dir(&self.dir)?;
        log::info!(
            "queue journal {}: adopted {} unfinished requests",
            path.display(),
            reqs.len()
        );
        Ok(Some(reqs))
    }
}
