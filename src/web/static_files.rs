//! The stylesheet, favicon and vendored scripts, read once at startup and served from memory.
//!
//! `tower_http`'s `ServeDir` opened, stat-ed and read the file on the blocking pool for every
//! request: 0.28 of `/healthz`'s throughput for a 13 KB stylesheet (BENCHMARKS.md, issue 15
//! §3). The directory holds a handful of small files, so they are read once; a changed file
//! is served after a restart. The answers keep `ServeDir`'s headers (`Content-Type` by
//! extension, `Last-Modified`, `Content-Length`; `Cache-Control` is set by the router) and add
//! an `ETag`; `If-None-Match` and `If-Modified-Since` get a 304. Ranges are not served (the
//! files are small): a `Range` header is ignored and the whole file sent, as RFC 9110 allows.
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use sha2::{Digest, Sha256};

/// Every file under the static directory, by its path below it (`/vendor/htmx.min.js`).
#[derive(Clone, Default)]
pub struct StaticFiles {
    files: Arc<HashMap<String, File>>,
}

struct File {
    body: Bytes,
    content_type: HeaderValue,
    etag: HeaderValue,
    last_modified: Option<HeaderValue>,
    /// `last_modified` in whole seconds, for `If-Modified-Since`.
    modified: Option<jiff::Timestamp>,
}

impl StaticFiles {
    /// Reads every file under `dir` (following subdirectories). A missing directory serves
    /// nothing, as `ServeDir` did; an unreadable file is an error.
    pub fn load(dir: &Path) -> io::Result<Self> {
        let mut files = HashMap::new();
        if dir.is_dir() {
            read_dir(dir, String::new(), &mut files)?;
        }
        Ok(Self { files: Arc::new(files) })
    }

    fn answer(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            return Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header(header::ALLOW, "GET,HEAD")
                .body(Body::empty())
                .unwrap();
        }
        let Some(file) = self.files.get(path) else {
            return Response::builder().status(StatusCode::NOT_FOUND).body(Body::empty()).unwrap();
        };
        if file.not_modified(headers) {
            let mut response = Response::builder().status(StatusCode::NOT_MODIFIED).body(Body::empty()).unwrap();
            response.headers_mut().insert(header::ETAG, file.etag.clone());
            if let Some(last_modified) = &file.last_modified {
                response.headers_mut().insert(header::LAST_MODIFIED, last_modified.clone());
            }
            return response;
        }
        let body = if method == Method::HEAD { Body::empty() } else { Body::from(file.body.clone()) };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, file.content_type.clone());
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.body.len()));
        headers.insert(header::ETAG, file.etag.clone());
        if let Some(last_modified) = &file.last_modified {
            headers.insert(header::LAST_MODIFIED, last_modified.clone());
        }
        response
    }
}

impl File {
    /// RFC 9110 §13.2.2: `If-None-Match` decides when present, else `If-Modified-Since`.
    fn not_modified(&self, headers: &HeaderMap) -> bool {
        if let Some(tags) = headers.get(header::IF_NONE_MATCH) {
            let tags = tags.as_bytes();
            return tags == b"*"
                || tags
                    .split(|byte| *byte == b',')
                    .map(|tag| tag.trim_ascii())
                    .map(|tag| tag.strip_prefix(b"W/").unwrap_or(tag))
                    .any(|tag| tag == self.etag.as_bytes());
        }
        let since = headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok());
        matches!((since, self.modified), (Some(since), Some(modified)) if modified <= since)
    }
}

fn read_dir(dir: &Path, prefix: String, files: &mut HashMap<String, File>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not reachable by a URL path anyway
        };
        let path = entry.path();
        let url_path = format!("{prefix}/{name}");
        // Follows symbolic links, as ServeDir did.
        let metadata = std::fs::metadata(&path)?;
        if metadata.is_dir() {
            read_dir(&path, url_path, files)?;
            continue;
        }
        let body = Bytes::from(std::fs::read(&path)?);
        let modified = metadata
            .modified()
            .ok()
            .and_then(|time| jiff::Timestamp::try_from(time).ok())
            .and_then(|time| jiff::Timestamp::from_second(time.as_second()).ok());
        let last_modified = modified.and_then(|time| {
            let text = jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&time).ok()?;
            HeaderValue::from_str(&text).ok()
        });
        let digest = Sha256::digest(&body);
        let etag =
            HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12]))).expect("hex is a valid header");
        let content_type = HeaderValue::from_static(content_type(&name));
        files.insert(url_path, File { body, content_type, etag, last_modified, modified });
    }
    Ok(())
}

/// The types `mime_guess` gave `ServeDir` for the kinds of file a console ships.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension.to_ascii_lowercase()).as_deref() {
        Some("css") => "text/css",
        Some("js" | "mjs") => "text/javascript",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("json") => "application/json",
        Some("map" | "txt") => "text/plain",
        Some("html" | "htm") => "text/html",
        _ => "application/octet-stream",
    }
}

impl<B> tower::Service<Request<B>> for StaticFiles {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.answer(request.method(), request.uri().path(), request.headers())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> (tempfile::TempDir, StaticFiles) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.css"), "body{}").unwrap();
        std::fs::create_dir(dir.path().join("vendor")).unwrap();
        std::fs::write(dir.path().join("vendor/x.min.js"), "x()").unwrap();
        let files = StaticFiles::load(dir.path()).unwrap();
        (dir, files)
    }

    #[test]
    fn serves_each_file_with_its_type_length_and_validators() {
        let (_dir, files) = files();
        let response = files.answer(&Method::GET, "/app.css", &HeaderMap::new());
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/css");
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "6");
        assert!(response.headers().contains_key(header::ETAG));
        assert!(response.headers()[header::LAST_MODIFIED].to_str().unwrap().ends_with(" GMT"));
        let script = files.answer(&Method::GET, "/vendor/x.min.js", &HeaderMap::new());
        assert_eq!(script.headers()[header::CONTENT_TYPE], "text/javascript");
        assert_eq!(files.answer(&Method::GET, "/missing.css", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
        assert_eq!(files.answer(&Method::GET, "/vendor", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
        assert_eq!(files.answer(&Method::POST, "/app.css", &HeaderMap::new()).status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn a_fresh_copy_gets_not_modified() {
        let (_dir, files) = files();
        let first = files.answer(&Method::GET, "/app.css", &HeaderMap::new());
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, first.headers()[header::ETAG].clone());
        assert_eq!(files.answer(&Method::GET, "/app.css", &headers).status(), StatusCode::NOT_MODIFIED);
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(files.answer(&Method::GET, "/app.css", &headers).status(), StatusCode::OK);
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_MODIFIED_SINCE, first.headers()[header::LAST_MODIFIED].clone());
        assert_eq!(files.answer(&Method::GET, "/app.css", &headers).status(), StatusCode::NOT_MODIFIED);
        headers.insert(header::IF_MODIFIED_SINCE, HeaderValue::from_static("Mon, 01 Jan 2001 00:00:00 GMT"));
        assert_eq!(files.answer(&Method::GET, "/app.css", &headers).status(), StatusCode::OK);
    }
}
