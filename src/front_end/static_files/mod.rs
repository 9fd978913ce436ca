//! Static files (`PixlProxy.serve_static_files`): requests no pool takes are answered from
//! `WebServer.http_htdocs_dir`, as PixlProxy does through pixl-server-web.
//!
//! - `path.rs`: the request path, decoded, with traversal refused before the disk is touched;
//! - `lookup.rs`: the file it names, with symlinks out of the root refused;
//! - `conditional.rs`: ETag, dates, 304; `range.rs`: single byte ranges (206 / 416);
//! - `mime.rs`: `Content-Type`; `response.rs`: writing headers and streaming the body.
//!
//! Only GET and HEAD are served; the answers never list directories.
//!
//! Uses the front end's global headers and compression (`super`), Pingora's conditional
//! helpers, and nothing else of poolgate's.

mod conditional;
mod lookup;
mod mime;
mod path;
mod range;
mod response;

use super::FrontEnd;
use conditional::Validators;
use lookup::Found;
use pingora::http::ResponseHeader;
use pingora::protocols::http::conditional_filter::{not_modified_filter, to_304};
use pingora::proxy::Session;
use range::RangeAnswer;
use response::{header, set_header, Ended, Responder};
use std::path::{Path, PathBuf};

const BAD_PATH: &str = "400 Bad Request: this path is not allowed.\n";
const FORBIDDEN: &str = "403 Forbidden: this file may not be served.\n";
const NOT_FOUND: &str = "404 Not Found: no such file.\n";
const NOT_ALLOWED: &str = "405 Method Not Allowed: static files answer GET and HEAD.\n";
const NOT_SATISFIABLE: &str = "416 Range Not Satisfiable: the range starts past the end.\n";

/// Why the static files could not be set up, for the config check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SetupError {
    /// `http_htdocs_dir` is missing or not a directory.
    #[error("{0}")]
    Root(String),
    /// `http_static_index` is not a plain file name.
    #[error("{0}")]
    Index(String),
}

/// `http_htdocs_dir`, `http_static_index` and `http_static_ttl`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaticFilesSettings {
    /// `http_htdocs_dir`, absolute and canonical (what resolved paths must stay inside).
    root: PathBuf,
    /// `http_static_index`: the file served for a directory.
    index: String,
    ttl_sec: u64,
}

impl StaticFilesSettings {
    /// `root` is resolved against the working directory and canonicalized now, so a later
    /// change of directory or a symlink swapped for the root itself changes nothing.
    pub(crate) fn new(root: &Path, index: &str, ttl_sec: u64) -> Result<Self, SetupError> {
        let shown = root.display();
        let root = std::fs::canonicalize(root)
            .map_err(|e| SetupError::Root(format!("directory `{shown}`: {e}")))?;
        if !root.is_dir() {
            return Err(SetupError::Root(format!("`{shown}` is not a directory")));
        }
        // The index is joined to directories: a separator or `..` in it would be a path.
        let plain_name = !index.is_empty() && !index.contains(['/', '\\', '\0']);
        if !plain_name || index == "." || index == ".." {
            let why = format!("`{index}` must be a file name (no `/`)");
            return Err(SetupError::Index(why));
        }
        Ok(StaticFilesSettings {
            root,
            index: index.to_string(),
            ttl_sec,
        })
    }

    /// The canonical htdocs directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
}

/// The htdocs directory and how its files are answered.
#[derive(Debug)]
pub(crate) struct StaticFiles {
    root: PathBuf,
    index: String,
    /// `Cache-Control` from `http_static_ttl`.
    cache_control: String,
}

impl StaticFiles {
    pub(crate) fn new(s: StaticFilesSettings) -> Self {
        StaticFiles {
            cache_control: format!("public, max-age={}", s.ttl_sec),
            root: s.root,
            index: s.index,
        }
    }

    /// Answer the request from the htdocs directory (`tls`: the client is on HTTPS, directly
    /// or behind a load balancer, for the secure headers). Never fails: a client that went
    /// away or a file that could not be read has been logged and just ends the request.
    pub(crate) async fn serve(&self, session: &mut Session, front: &FrontEnd, tls: bool) {
        let mut out = Responder::new(front, tls);
        let _ended: Result<(), Ended> = self.answer(session, &mut out).await;
        if session.response_written().is_none() {
            // Nothing could be sent (already logged): the client must not wait on this socket.
            session.set_keepalive(None);
        }
    }

    async fn answer(&self, session: &mut Session, out: &mut Responder<'_>) -> Result<(), Ended> {
        let req = session.req_header();
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            let allow = [("Allow", "GET, HEAD".to_string())];
            return out.text(session, 405, NOT_ALLOWED, &allow).await;
        }
        let raw_path = req.uri.path().to_string();
        let query = req.uri.query().map(str::to_string);
        let request = match path::decode(&raw_path) {
            Ok(request) => request,
            Err(why) => {
                log::debug!("static file path {raw_path:?} refused: {why}");
                return out.text(session, 400, BAD_PATH, &[]).await;
            }
        };
        match lookup::find(&self.root, &request, &self.index).await {
            Found::File {
                mut file,
                len,
                modified,
                path,
            } => {
                let validators = Validators::new(len, modified);
                self.send_file(session, out, &mut file, &path, &validators)
                    .await
            }
            Found::AddSlash => {
                let location = [("Location", path::with_slash(&raw_path, query.as_deref()))];
                out.text(session, 301, "", &location).await
            }
            Found::Missing => out.text(session, 404, NOT_FOUND, &[]).await,
            Found::Forbidden => out.text(session, 403, FORBIDDEN, &[]).await,
        }
    }

    /// 304, 416, 206 or 200 for an open regular file. The 304 is Pingora's decision
    /// (`not_modified_filter`: `If-None-Match` by weak comparison over a list, else
    /// `If-Modified-Since`) on the 200 header this file would get.
    async fn send_file(
        &self,
        session: &mut Session,
        out: &mut Responder<'_>,
        file: &mut tokio::fs::File,
        path: &Path,
        validators: &Validators,
    ) -> Result<(), Ended> {
        let len = validators.len;
        let mut resp = header(200).ok_or(Ended)?;
        set_header(&mut resp, "Content-Type", &mime::content_type(path));
        set_header(&mut resp, "Content-Length", &len.to_string());
        self.add_validators(&mut resp, validators);
        set_header(&mut resp, "Accept-Ranges", "bytes");
        let req = session.req_header();
        if not_modified_filter(req, &resp) {
            to_304(&mut resp);
            out.write_head(session, resp, true).await?;
            return out.write_chunk(session, None, true).await;
        }
        let head_only = req.method == http::Method::HEAD;
        let part = self.range(session, validators);
        let (start, count) = match part {
            RangeAnswer::Whole => (0, len),
            RangeAnswer::Part { start, end } => (start, end - start + 1),
            RangeAnswer::Unsatisfiable => {
                let unsatisfied = [("Content-Range", format!("bytes */{len}"))];
                return out.text(session, 416, NOT_SATISFIABLE, &unsatisfied).await;
            }
        };
        if let RangeAnswer::Part { start, end } = part {
            resp.set_status(206).map_err(|_| Ended)?;
            set_header(&mut resp, "Content-Length", &count.to_string());
            let range = format!("bytes {start}-{end}/{len}");
            set_header(&mut resp, "Content-Range", &range);
        }
        let bodiless = head_only || count == 0;
        out.write_head(session, resp, bodiless).await?;
        if head_only {
            return out.write_chunk(session, None, true).await;
        }
        out.stream(session, file, path, start, count).await
    }

    /// Which part of the file to send: ranges apply to GET only (RFC 9110 14.2), and only
    /// while `If-Range` still names this version of the file.
    fn range(&self, session: &Session, validators: &Validators) -> RangeAnswer {
        let req = session.req_header();
        let asked = req.headers.get(http::header::RANGE);
        match asked.and_then(|v| v.to_str().ok()) {
            Some(range) if req.method == http::Method::GET => {
                match validators.range_allowed(&req.headers) {
                    true => range::answer(range, validators.len),
                    false => RangeAnswer::Whole,
                }
            }
            _ => RangeAnswer::Whole,
        }
    }

    /// The validators and `Cache-Control`: what a 304 carries too.
    fn add_validators(&self, resp: &mut ResponseHeader, validators: &Validators) {
        set_header(resp, "Last-Modified", &validators.last_modified);
        set_header(resp, "ETag", &validators.etag);
        set_header(resp, "Cache-Control", &self.cache_control);
    }
}
