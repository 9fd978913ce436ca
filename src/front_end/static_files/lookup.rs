//! Finding the file a request path names under the htdocs root.
//!
//! `path.rs` has already refused `..` and hidden separators; this step follows the file
//! system: the joined path is canonicalized (symlinks resolved) and must still lie inside the
//! canonical root, so a symlink in htdocs cannot expose the rest of the disk. The file is then
//! opened without following a last symlink and without blocking on special files, and its
//! metadata is read from the open handle, so length and date describe what will be sent.

use super::path::RequestPath;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio::fs::File;

/// What a request path leads to.
#[derive(Debug)]
pub(super) enum Found {
    /// A regular file, open, with its length, modification time and (canonical) path.
    File {
        file: File,
        len: u64,
        modified: Option<SystemTime>,
        path: PathBuf,
    },
    /// A directory asked for without its trailing slash: redirect to `path/`.
    AddSlash,
    /// Nothing to serve (absent, not a regular file, a directory without its index).
    Missing,
    /// Resolves outside the root, or the file system refused access.
    Forbidden,
}

/// Look `request` up under `root` (canonical), serving `index` for directories.
pub(super) async fn find(root: &Path, request: &RequestPath, index: &str) -> Found {
    let target = match inside(root, &root.join(&request.relative)).await {
        Ok(target) => target,
        Err(found) => return found,
    };
    let is_dir = match tokio::fs::metadata(&target).await {
        Ok(meta) => meta.is_dir(),
        Err(e) => return not_found_or_forbidden(&e),
    };
    match (is_dir, request.trailing_slash) {
        (true, false) => Found::AddSlash,
        (true, true) => match inside(root, &target.join(index)).await {
            Ok(index) => open(index).await,
            Err(found) => found,
        },
        // `/file.txt/` names a directory that is not there.
        (false, true) => Found::Missing,
        (false, false) => open(target).await,
    }
}

/// The canonical form of `path` if it exists and lies inside `root`.
async fn inside(root: &Path, path: &Path) -> Result<PathBuf, Found> {
    let real = tokio::fs::canonicalize(path)
        .await
        .map_err(|e| not_found_or_forbidden(&e))?;
    if real.starts_with(root) {
        Ok(real)
    } else {
        log::debug!(
            "static file {} resolves outside the htdocs dir ({}): refused",
            path.display(),
            real.display()
        );
        Err(Found::Forbidden)
    }
}

async fn open(path: PathBuf) -> Found {
    // O_NONBLOCK: opening a FIFO placed in htdocs must not hang the request (regular files
    // ignore the flag). O_NOFOLLOW: the path is canonical, so a symlink here appeared since.
    let opened = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&path)
        .await;
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Found::Forbidden,
        Err(e) => return not_found_or_forbidden(&e),
    };
    match file.metadata().await {
        Ok(meta) if meta.is_file() => Found::File {
            file,
            len: meta.len(),
            modified: meta.modified().ok(),
            path,
        },
        Ok(_) => Found::Missing,
        Err(e) => {
            log::warn!("static file {}: {e}", path.display());
            Found::Missing
        }
    }
}

fn not_found_or_forbidden(e: &std::io::Error) -> Found {
    match e.kind() {
        ErrorKind::PermissionDenied => Found::Forbidden,
        // Absent, a file used as a directory (ENOTDIR), a symlink loop, a name too long...:
        // there is nothing to serve.
        _ => Found::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> RequestPath {
        super::super::path::decode(raw).unwrap()
    }

    async fn kind(root: &Path, raw: &str) -> &'static str {
        match find(root, &request(raw), "index.html").await {
            Found::File { .. } => "file",
            Found::AddSlash => "add-slash",
            Found::Missing => "missing",
            Found::Forbidden => "forbidden",
        }
    }

    #[tokio::test]
    async fn files_directories_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("htdocs");
        std::fs::create_dir_all(root.join("sub/empty")).unwrap();
        std::fs::write(root.join("index.html"), "home").unwrap();
        std::fs::write(root.join("sub/index.html"), "sub").unwrap();
        std::fs::write(dir.path().join("secret"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink(root.join("index.html"), root.join("alias.html")).unwrap();
        let root = root.canonicalize().unwrap();
        assert_eq!(kind(&root, "/").await, "file");
        assert_eq!(kind(&root, "/sub/").await, "file");
        assert_eq!(kind(&root, "/sub").await, "add-slash");
        assert_eq!(kind(&root, "/sub/empty/").await, "missing");
        assert_eq!(kind(&root, "/index.html/").await, "missing");
        assert_eq!(kind(&root, "/index.html/x").await, "missing");
        assert_eq!(kind(&root, "/nope").await, "missing");
        assert_eq!(kind(&root, "/out").await, "forbidden");
        assert_eq!(kind(&root, "/alias.html").await, "file");
        let Found::File { path, len, .. } = find(&root, &request("/"), "index.html").await else {
            panic!("index not found");
        };
        assert_eq!(path, root.join("index.html"));
        assert_eq!(len, 4);
    }
}
