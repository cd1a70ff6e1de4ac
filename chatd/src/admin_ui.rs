//! The Socket.IO Admin UI's static build (`ui/dist` of the npm package `@socket.io/admin-ui`,
//! installed by `scripts/setup.sh`, never committed), served at `/admin-ui/`.
//!
//! The files are read once at start-up into memory and served by their exact relative path
//! (no file system access per request). The UI keeps its server address only in
//! `localStorage`: chatd adds a small script to its `index.html` that fills in this server's
//! own address and admin namespace the first time, so the login form comes pre-filled.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

/// Where the UI is served.
pub const PREFIX: &str = "/admin-ui/";
/// The version of `@socket.io/admin-ui` chatd is tested with (tests/package.json).
pub const TESTED_VERSION: &str = "0.5.1";
/// Where the package's build is looked for, below the working directory and the source tree.
const PACKAGE_DIST: &str = "node_modules/@socket.io/admin-ui/ui/dist";
/// The script chatd adds to the UI's page, and its name there.
const PREFILL_NAME: &str = "chatd-admin-ui.js";
const PREFILL: &str = include_str!("admin_ui_prefill.js");
/// Bounds on what is read (the 0.5.1 build: 10 files, 4.8 MB with source maps).
const MAX_FILES: usize = 500;
const MAX_BYTES: u64 = 64 * 1024 * 1024;
const MAX_DEPTH: usize = 6;

/// The UI's page may load its fonts and icons (Google Fonts, jsDelivr); nothing else leaves
/// the origin, and the page cannot be framed (its buttons disconnect clients).
const CSP: &str = "default-src 'self'; script-src 'self'; connect-src 'self'; \
    img-src 'self' data:; style-src 'self' 'unsafe-inline' https://fonts.googleapis.com \
    https://cdn.jsdelivr.net; font-src 'self' data: https://fonts.gstatic.com \
    https://cdn.jsdelivr.net; frame-ancestors 'none'";

struct File {
    body: Bytes,
    content_type: &'static str,
    etag: HeaderValue,
}

/// The UI's files, by path below [`PREFIX`] (`index.html`, `js/app.0d7d7845.js`, …).
pub struct AdminUi {
    files: HashMap<String, File>,
    /// Where they were read from.
    pub dir: PathBuf,
}

/// The directories searched when `--admin-ui-dir` is not given.
pub fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for base in [
        PathBuf::from("."),
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
    ] {
        for sub in ["", "web", "tests"] {
            out.push(base.join(sub).join(PACKAGE_DIST));
        }
    }
    out
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" => "application/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "map" | "json" => "application/json; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn etag(data: &[u8]) -> HeaderValue {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    HeaderValue::from_str(&format!("\"{:016x}-{:x}\"", hasher.finish(), data.len()))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// Every regular file below `dir`, as (path relative to it with `/`, absolute path).
fn walk(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new(), 0)];
    while let Some((path, rel, depth)) = pending.pop() {
        let entries =
            std::fs::read_dir(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let kind = entry
                .file_type()
                .map_err(|e| format!("cannot read {}: {e}", entry.path().display()))?;
            if kind.is_dir() && depth < MAX_DEPTH {
                pending.push((entry.path(), rel, depth + 1));
            } else if kind.is_file() {
                out.push((rel, entry.path()));
                if out.len() > MAX_FILES {
                    return Err(format!("{}: more than {MAX_FILES} files", dir.display()));
                }
            }
        }
    }
    Ok(out)
}

/// `index.html` with chatd's script first in `<head>`, before the UI's own scripts.
fn with_prefill(index: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(index).map_err(|_| "index.html is not UTF-8".to_owned())?;
    let at = text
        .find("<head>")
        .map(|i| i + "<head>".len())
        .ok_or_else(|| "index.html has no <head>".to_owned())?;
    let tag = format!("<script src=\"{PREFILL_NAME}\"></script>");
    Ok([&text[..at], &tag, &text[at..]].concat().into_bytes())
}

/// The version in the package's `package.json` (two levels above `ui/dist`), if readable.
fn package_version(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("../../package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("version")?.as_str().map(str::to_owned)
}

impl AdminUi {
    /// Reads the UI from `dir`, or when it is empty from the first of [`candidates`] that
    /// holds an `index.html`. Fails when there is none: `--admin-ui` without its files is
    /// a set-up mistake to report at start-up, not a 404 later.
    pub fn load(dir: &Path) -> Result<AdminUi, String> {
        let dir = if dir.as_os_str().is_empty() {
            candidates()
                .into_iter()
                .find(|d| d.join("index.html").is_file())
                .ok_or_else(|| {
                    format!(
                        "--admin-ui: the Admin UI's files are not installed (run scripts/setup.sh, \
                         or give --admin-ui-dir); looked for {PACKAGE_DIST} in ., web/ and tests/"
                    )
                })?
        } else {
            dir.to_path_buf()
        };
        let mut files = HashMap::new();
        let mut total = 0u64;
        for (rel, path) in walk(&dir)? {
            let data =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            total += data.len() as u64;
            if total > MAX_BYTES {
                return Err(format!("{}: more than {MAX_BYTES} bytes", dir.display()));
            }
            let data = if rel == "index.html" {
                with_prefill(&data).map_err(|e| format!("{}: {e}", dir.display()))?
            } else {
                data
            };
            files.insert(
                rel.clone(),
                File {
                    etag: etag(&data),
                    content_type: content_type(&rel),
                    body: Bytes::from(data),
                },
            );
        }
        if !files.contains_key("index.html") {
            return Err(format!(
                "--admin-ui-dir {}: no index.html (expected the ui/dist folder of @socket.io/admin-ui)",
                dir.display()
            ));
        }
        files.insert(
            PREFILL_NAME.to_owned(),
            File {
                etag: etag(PREFILL.as_bytes()),
                content_type: content_type(PREFILL_NAME),
                body: Bytes::from_static(PREFILL.as_bytes()),
            },
        );
        match package_version(&dir) {
            Some(v) if v == TESTED_VERSION => {
                tracing::info!(dir = %dir.display(), version = %v, files = files.len(), "serving the Admin UI")
            }
            other => tracing::warn!(
                dir = %dir.display(),
                version = other.as_deref().unwrap_or("unknown"),
                tested = TESTED_VERSION,
                "serving an Admin UI of another version than the tested one"
            ),
        }
        Ok(AdminUi { files, dir })
    }

    /// Whether `path` is the UI's (`/admin-ui` or below `/admin-ui/`).
    pub fn is_ui_path(path: &str) -> bool {
        path == "/admin-ui" || path.starts_with(PREFIX)
    }

    /// The response to a GET or HEAD of a UI path.
    pub fn serve<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        if path == "/admin-ui" {
            // Relative links in the page need the trailing slash.
            let mut res = plain(StatusCode::PERMANENT_REDIRECT, "see /admin-ui/");
            res.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static(PREFIX));
            return res;
        }
        let rel = match path.strip_prefix(PREFIX) {
            Some("") => "index.html",
            Some(rel) => rel,
            None => return plain(StatusCode::NOT_FOUND, "not found"),
        };
        let Some(file) = self.files.get(rel) else {
            return plain(StatusCode::NOT_FOUND, "not found");
        };
        let fresh = req
            .headers()
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| tag.trim().trim_start_matches("W/").as_bytes() == file.etag.as_bytes());
        let mut res = if fresh {
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            res
        } else {
            // hyper leaves the body out of a HEAD response, keeping its length.
            let mut res = Response::new(Full::new(file.body.clone()));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(file.content_type),
            );
            res
        };
        let h = res.headers_mut();
        h.insert(header::ETAG, file.etag.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        res
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "chatd-admin-ui-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(dir.join("js")).unwrap();
        std::fs::write(
            dir.join("index.html"),
            "<!DOCTYPE html><html><head><title>UI</title></head><body><script src=\"js/app.js\"></script></body></html>",
        )
        .unwrap();
        std::fs::write(dir.join("js/app.js"), "console.log(1)").unwrap();
        dir
    }

    fn get(ui: &AdminUi, path: &str) -> Response<Full<Bytes>> {
        ui.serve(&Request::get(path).body(()).unwrap())
    }

    async fn text(res: Response<Full<Bytes>>) -> String {
        use http_body_util::BodyExt;
        let body = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn serves_the_files_with_the_prefill_script_first() {
        let dir = dist();
        let ui = AdminUi::load(&dir).unwrap();
        let res = get(&ui, "/admin-ui/");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::X_FRAME_OPTIONS], "DENY");
        let page = text(res).await;
        assert!(
            page.starts_with(
                "<!DOCTYPE html><html><head><script src=\"chatd-admin-ui.js\"></script><title>"
            ),
            "{page}"
        );
        let res = get(&ui, "/admin-ui/js/app.js");
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/javascript; charset=utf-8"
        );
        let tag = res.headers()[header::ETAG].clone();
        assert_eq!(text(res).await, "console.log(1)");
        let again = Request::get("/admin-ui/js/app.js")
            .header(header::IF_NONE_MATCH, tag)
            .body(())
            .unwrap();
        assert_eq!(ui.serve(&again).status(), StatusCode::NOT_MODIFIED);
        assert!(text(get(&ui, "/admin-ui/chatd-admin-ui.js"))
            .await
            .contains("server_url"));
        let res = get(&ui, "/admin-ui");
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(res.headers()[header::LOCATION], "/admin-ui/");
        for missing in [
            "/admin-ui/nope.js",
            "/admin-ui/../index.html",
            "/admin-ui//index.html",
            "/admin-ui/js",
        ] {
            assert_eq!(
                get(&ui, missing).status(),
                StatusCode::NOT_FOUND,
                "{missing}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_folder_without_the_ui_is_refused() {
        let dir = dist();
        std::fs::remove_file(dir.join("index.html")).unwrap();
        let err = AdminUi::load(&dir).err().unwrap();
        assert!(err.contains("no index.html"), "{err}");
        std::fs::write(dir.join("index.html"), "<html><body></body></html>").unwrap();
        let err = AdminUi::load(&dir).err().unwrap();
        assert!(err.contains("no <head>"), "{err}");
        let err = AdminUi::load(&dir.join("absent")).err().unwrap();
        assert!(err.contains("cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paths_and_types() {
        assert!(AdminUi::is_ui_path("/admin-ui"));
        assert!(AdminUi::is_ui_path("/admin-ui/js/a.js"));
        assert!(!AdminUi::is_ui_path("/admin-uix"));
        assert_eq!(content_type("css/app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("favicon.png"), "image/png");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}
