//! Slow and idle HTTP clients: a request head that never completes, a connection that never
//! sends anything, a kept-alive connection left idle, a POST body that never ends, and too many
//! connections waiting for their first request.

mod common;

use std::time::Duration;

use common::*;
use engineio::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config() -> Config {
    Config::builder()
        // Long enough for a loaded machine to send a whole request in time, short for a test.
        .http_header_timeout(Duration::from_millis(1000))
        .http_keep_alive_timeout(Duration::from_millis(1000))
        .max_unfinished_connections(3)
        .build()
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    within(what, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

#[tokio::test]
async fn a_request_head_that_never_completes_is_cut_off() {
    let server = TestServer::start(config()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let got = read_until_closed(&mut stream, "the slow client to be disconnected").await;
    assert!(got.is_empty(), "nothing answered: {got:?}");
    server.stop().await;
}

#[tokio::test]
async fn silent_and_idle_kept_alive_connections_are_closed() {
    let server = TestServer::start(config()).await;
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    read_until_closed(&mut silent, "a silent connection to be closed").await;

    let mut kept = TcpStream::connect(server.addr).await.expect("connect");
    let request = request_bytes("GET", "/engine.io/?EIO=4&transport=polling", &[], b"");
    kept.write_all(&request).await.expect("write");
    let answer = within("the handshake", read_response(&mut kept))
        .await
        .expect("response");
    assert_eq!(answer.status, 200);
    read_until_closed(&mut kept, "an idle kept-alive connection to be closed").await;
    server.stop().await;
}

#[tokio::test]
async fn a_post_body_that_never_ends_is_refused() {
    let mut server = TestServer::start(config()).await;
    let (open, _socket) = server.open_polling().await;
    let mut post = HeldPost::start(&server.client(), &open.sid, b"4hel").await;
    let answer = within("the slow POST's answer", &mut post.response)
        .await
        .expect("task")
        .expect("response");
    assert_eq!(answer.status, 400);
    server.stop().await;
}

#[tokio::test]
async fn connections_waiting_for_a_first_request_are_capped() {
    let server = TestServer::start(
        Config::builder()
            .max_unfinished_connections(3)
            .http_header_timeout(Duration::from_secs(30))
            .http_keep_alive_timeout(Duration::from_secs(30))
            .build(),
    )
    .await;
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    let mut over = TcpStream::connect(server.addr).await.expect("connect");
    read_until_closed(&mut over, "the fourth waiting connection to be closed").await;

    // One of them sends its request: its place is free again.
    let request = request_bytes("GET", "/engine.io/?EIO=4&transport=polling", &[], b"");
    waiting[0].write_all(&request).await.expect("write");
    let answer = within("the handshake", read_response(&mut waiting[0]))
        .await
        .expect("response");
    assert_eq!(answer.status, 200);
    let mut next = TcpStream::connect(server.addr).await.expect("connect");
    next.write_all(&request).await.expect("write");
    let answer = within("the handshake", read_response(&mut next))
        .await
        .expect("response");
    assert_eq!(answer.status, 200);
    server.stop().await;
}
