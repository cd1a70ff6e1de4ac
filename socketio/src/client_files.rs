//! Serves the stock JavaScript client (`socket.io.min.js` and friends) from the npm package
//! `socket.io-client` that the set-up command installs. Files are read once, on first request,
//! and each encoding (gzip, brotli) is made the first time a client asks for it and then kept.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::config::Config;

/// The files served, as named in the package's `dist` folder.
pub const CLIENT_FILES: [&str; 8] = [
    "socket.io.js",
    "socket.io.js.map",
    "socket.io.min.js",
    "socket.io.min.js.map",
    "socket.io.esm.min.js",
    "socket.io.esm.min.js.map",
    "socket.io.msgpack.min.js",
    "socket.io.msgpack.min.js.map",
];

struct File {
    plain: Bytes,
    // Compressed on first use: compressing every file up front (brotli at quality 11) took
    // seconds of a runtime thread on the first request.
    gzip: OnceLock<Option<Bytes>>,
    brotli: OnceLock<Option<Bytes>>,
    etag: HeaderValue,
    content_type: &'static str,
}

pub(crate) struct ClientFiles {
    enabled: bool,
    prefix: String,
    dir: Option<PathBuf>,
    files: OnceLock<HashMap<&'static str, File>>,
}

/// Where the `dist` folder of `socket.io-client` is looked for when not configured.
fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(dir) = std::env::var("SOCKETIO_CLIENT_DIR") {
        out.push(PathBuf::from(dir));
    }
    for base in [
        PathBuf::from("."),
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
    ] {
        for sub in ["", "web", "tests"] {
            out.push(base.join(sub).join("node_modules/socket.io-client/dist"));
        }
    }
    out
}

fn gzip(data: &[u8]) -> Option<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).ok()?;
    enc.finish().ok().map(Bytes::from)
}

fn brotli(data: &[u8]) -> Option<Bytes> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params).ok()?;
    Some(Bytes::from(out))
}

fn load(dir: &Path) -> HashMap<&'static str, File> {
    let mut files = HashMap::new();
    for name in CLIENT_FILES {
        let Ok(data) = std::fs::read(dir.join(name)) else {
            continue;
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        data.hash(&mut hasher);
        let etag = HeaderValue::from_str(&format!("\"{:016x}-{:x}\"", hasher.finish(), data.len()))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        let content_type = if name.ends_with(".map") {
            "application/json; charset=utf-8"
        } else {
            "application/javascript; charset=utf-8"
        };
        files.insert(
            name,
            File {
                gzip: OnceLock::new(),
                brotli: OnceLock::new(),
                plain: Bytes::from(data),
                etag,
                content_type,
            },
        );
    }
    files
}

impl ClientFiles {
    pub(crate) fn new(config: &Config) -> Self {
        ClientFiles {
            enabled: config.serve_client,
            prefix: config.engine.path.clone(),
            dir: config.client_dir.clone(),
            files: OnceLock::new(),
        }
    }

    fn files(&self) -> &HashMap<&'static str, File> {
        self.files.get_or_init(|| {
            let dir = self
                .dir
                .clone()
                .or_else(|| candidates().into_iter().find(|d| d.join("socket.io.min.js").is_file()));
            match dir {
                Some(dir) => {
                    let files = load(&dir);
                    tracing::info!(dir = %dir.display(), files = files.len(), "serving the Socket.IO client");
                    files
                }
                None => {
                    tracing::warn!("socket.io-client not found (run the set-up command); client files answer 404");
                    HashMap::new()
                }
            }
        })
    }

    /// The response for a client-file request, or `None` when the request is not one.
    pub(crate) fn serve<B>(&self, req: &Request<B>) -> Option<Response<Full<Bytes>>> {
        if !self.enabled || !(req.method() == Method::GET || req.method() == Method::HEAD) {
            return None;
        }
        let name = req.uri().path().strip_prefix(self.prefix.as_str())?;
        let name = *CLIENT_FILES.iter().find(|f| **f == name)?;
        let Some(file) = self.files().get(name) else {
            let mut res =
                Response::new(Full::new(Bytes::from_static(b"client file not installed")));
            *res.status_mut() = StatusCode::NOT_FOUND;
            return Some(res);
        };
        let mut res = Response::new(Full::new(Bytes::new()));
        let h = res.headers_mut();
        h.insert(header::ETAG, file.etag.clone());
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=0"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        let fresh = req
            .headers()
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/").as_bytes() == file.etag.as_bytes()
            });
        if fresh {
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            return Some(res);
        }
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(file.content_type),
        );
        let accept = req
            .headers()
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let accepts = |coding: &str| {
            accept.split(',').any(|part| {
                let mut it = part.split(';');
                let name = it.next().unwrap_or("").trim();
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q=")?.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                name.eq_ignore_ascii_case(coding) && q > 0.0
            })
        };
        let encoded = accepts("br")
            .then(|| file.brotli.get_or_init(|| brotli(&file.plain)).clone())
            .flatten()
            .map(|br| (br, "br"))
            .or_else(|| {
                accepts("gzip")
                    .then(|| file.gzip.get_or_init(|| gzip(&file.plain)).clone())
                    .flatten()
                    .map(|gz| (gz, "gzip"))
            });
        let (body, coding) = match encoded {
            Some((body, coding)) => (body, Some(coding)),
            None => (file.plain.clone(), None),
        };
        if let Some(coding) = coding {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        if req.method() == Method::GET {
            *res.body_mut() = Full::new(body);
        } else if let Ok(len) = HeaderValue::from_str(&body.len().to_string()) {
            res.headers_mut().insert(header::CONTENT_LENGTH, len);
        }
        Some(res)
    }
}
