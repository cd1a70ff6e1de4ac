//! The stock JavaScript client served under the Socket.IO path.

mod common;

use std::io::Read;
use std::path::PathBuf;

use common::*;
use socketio::{SocketIo, CLIENT_FILES};

fn dist() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/node_modules/socket.io-client/dist"
    ))
}

/// The installed file, or `None` (with a note) when `npm ci` has not been run in `tests/`.
fn installed(name: &str) -> Option<Vec<u8>> {
    match std::fs::read(dist().join(name)) {
        Ok(data) => Some(data),
        Err(_) => {
            eprintln!("skipped: {name} not installed (run `cd tests && npm ci`)");
            None
        }
    }
}

fn io(serve: bool) -> SocketIo {
    SocketIo::new(config().serve_client(serve).client_dir(dist()).build())
}

#[tokio::test]
async fn serves_every_client_file_with_an_etag() {
    let server = TestServer::start(io(true)).await;
    for name in CLIENT_FILES {
        let Some(expected) = installed(name) else {
            continue;
        };
        let res = http(server.addr, "GET", &format!("/socket.io/{name}"), &[], b"").await;
        assert_eq!(res.status, 200, "{name}");
        assert_eq!(res.body, expected, "{name}");
        assert!(res.header("content-encoding").is_none(), "{name}");
        let etag = res.header("etag").expect("ETag");
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let content_type = res.header("content-type").unwrap();
        if name.ends_with(".map") {
            assert!(
                content_type.starts_with("application/json"),
                "{content_type}"
            );
        } else {
            assert!(
                content_type.starts_with("application/javascript"),
                "{content_type}"
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn if_none_match_gives_304() {
    let server = TestServer::start(io(true)).await;
    if installed("socket.io.min.js").is_none() {
        return;
    }
    let path = "/socket.io/socket.io.min.js";
    let res = http(server.addr, "GET", path, &[], b"").await;
    let etag = res.header("etag").unwrap().to_owned();
    let res = http(server.addr, "GET", path, &[("If-None-Match", &etag)], b"").await;
    assert_eq!(res.status, 304);
    assert!(res.body.is_empty());
    assert_eq!(res.header("etag"), Some(etag.as_str()));
    // Weak comparison and lists are honoured too.
    let weak = format!("\"other\", W/{etag}");
    let res = http(server.addr, "GET", path, &[("If-None-Match", &weak)], b"").await;
    assert_eq!(res.status, 304);
    // A stale tag gets the file.
    let res = http(
        server.addr,
        "GET",
        path,
        &[("If-None-Match", "\"stale\"")],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn gzip_and_brotli_encodings() {
    let server = TestServer::start(io(true)).await;
    // The smallest file: compressing takes a while in debug builds.
    let Some(expected) = installed("socket.io.esm.min.js") else {
        return;
    };
    let path = "/socket.io/socket.io.esm.min.js";

    let res = http(
        server.addr,
        "GET",
        path,
        &[("Accept-Encoding", "gzip")],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-encoding"), Some("gzip"));
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&res.body[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, expected);
    assert!(res.body.len() < expected.len());

    let res = http(
        server.addr,
        "GET",
        path,
        &[("Accept-Encoding", "gzip, deflate, br")],
        b"",
    )
    .await;
    assert_eq!(res.header("content-encoding"), Some("br"));
    let mut plain = Vec::new();
    brotli::Decompressor::new(&res.body[..], 4096)
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, expected);

    // q=0 refuses an encoding.
    let res = http(
        server.addr,
        "GET",
        path,
        &[("Accept-Encoding", "br;q=0, gzip")],
        b"",
    )
    .await;
    assert_eq!(res.header("content-encoding"), Some("gzip"));
    let res = http(
        server.addr,
        "GET",
        path,
        &[("Accept-Encoding", "identity")],
        b"",
    )
    .await;
    assert!(res.header("content-encoding").is_none());
    assert_eq!(res.body, expected);
    server.stop().await;
}

#[tokio::test]
async fn not_served_when_disabled() {
    let server = TestServer::start(io(false)).await;
    let res = http(server.addr, "GET", "/socket.io/socket.io.min.js", &[], b"").await;
    assert_ne!(res.status, 200);
    assert!(!res.body.starts_with(b"/*!"));
    // Socket.IO itself still works.
    let mut ws = server.ws().await;
    ws.join("/").await;
    server.stop().await;
}

#[tokio::test]
async fn other_paths_are_not_client_files() {
    let server = TestServer::start(io(true)).await;
    let res = http(server.addr, "GET", "/socket.io/other.js", &[], b"").await;
    assert_ne!(res.status, 200);
    let res = http(server.addr, "GET", "/socket.io.min.js", &[], b"").await;
    assert_eq!(res.status, 404);
    server.stop().await;
}
