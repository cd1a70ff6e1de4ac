//! Response helpers shared by the transports: CORS, cookies, content types, compression.

use std::io::Write;

use bytes::Bytes;
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::config::{AllowOrigin, Config};

pub(crate) type Body = Full<Bytes>;

pub(crate) fn text(body: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(Full::new(body.into()));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub(crate) fn ok() -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Adds CORS headers when the request's origin is allowed.
pub(crate) fn cors(config: &Config, req: &Parts, headers: &mut HeaderMap) {
    let Some(cors) = &config.cors else { return };
    let Some(origin) = req.headers.get(header::ORIGIN) else {
        return;
    };
    let allowed = match &cors.origin {
        AllowOrigin::Any => true,
        AllowOrigin::List(list) => list.iter().any(|o| o.as_bytes() == origin.as_bytes()),
    };
    if !allowed {
        return;
    }
    let value = if cors.origin == AllowOrigin::Any && !cors.credentials {
        HeaderValue::from_static("*")
    } else {
        origin.clone()
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if cors.credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if req.method == Method::OPTIONS {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET,POST"),
        );
        if let Some(h) = req.headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        }
        if let Some(age) = cors.max_age {
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, age.as_secs().into());
        }
    }
}

/// The answer to a CORS preflight request.
pub(crate) fn preflight(config: &Config, req: &Parts) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    cors(config, req, res.headers_mut());
    res
}

/// `Set-Cookie` for the sticky-session cookie, when configured.
pub(crate) fn cookie(config: &Config, sid: &str, headers: &mut HeaderMap) {
    let Some(c) = &config.cookie else { return };
    let mut value = format!("{}={}; Path={}", c.name, sid, c.path);
    if c.http_only {
        value.push_str("; HttpOnly");
    }
    if !c.same_site.is_empty() {
        value.push_str("; SameSite=");
        value.push_str(&c.same_site);
    }
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.append(header::SET_COOKIE, v);
    }
}

/// Whether an `Accept-Encoding` value accepts the content coding `name` (listed, not `q=0`).
pub(crate) fn accepts_coding(accept: &str, name: &str) -> bool {
    accept.split(',').any(|part| {
        let mut it = part.trim().split(';');
        let coding = it.next().unwrap_or("").trim();
        let refused = it.any(|p| {
            let p = p.trim().replace(' ', "");
            p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
        });
        coding.eq_ignore_ascii_case(name) && !refused
    })
}

/// Compresses a polling body with gzip or deflate when the client accepts it and it is large.
pub(crate) fn compress(config: &Config, req: &Parts, res: &mut Response<Body>, body: Vec<u8>) {
    let Some(threshold) = config.http_compression_threshold else {
        *res.body_mut() = Full::new(Bytes::from(body));
        return;
    };
    let accept = req
        .headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let accepts = |name: &str| accepts_coding(accept, name);
    let encoded = if body.len() < threshold {
        None
    } else if accepts("gzip") {
        let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 2), Compression::fast());
        enc.write_all(&body)
            .ok()
            .and_then(|_| enc.finish().ok())
            .map(|b| ("gzip", b))
    } else if accepts("deflate") {
        // The HTTP `deflate` coding is the zlib format (RFC 9110, 8.4.1.2), not raw deflate.
        let mut enc = ZlibEncoder::new(Vec::with_capacity(body.len() / 2), Compression::fast());
        enc.write_all(&body)
            .ok()
            .and_then(|_| enc.finish().ok())
            .map(|b| ("deflate", b))
    } else {
        None
    };
    match encoded {
        Some((coding, bytes)) => {
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
            *res.body_mut() = Full::new(Bytes::from(bytes));
        }
        None => *res.body_mut() = Full::new(Bytes::from(body)),
    }
    res.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
}
