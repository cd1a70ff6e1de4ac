//! Test harness: an in-process server on a free port, raw WebSocket and long-polling clients
//! that show every Engine.IO frame, and channels to record what happens on the server.
//!
//! Nothing here sleeps to synchronize: every wait is on a frame or a recorded event, under a
//! timeout guard ([`TIMEOUT`]) that fails the test.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use socketio::{Config, ConfigBuilder, SocketIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Awaits `fut`, failing the test with `what` if it takes longer than [`TIMEOUT`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The configuration builder every test starts from: defaults (long heartbeat).
pub fn config() -> ConfigBuilder {
    Config::builder()
}

/// A builder with a short heartbeat (`interval`) and a generous ping timeout.
pub fn config_with_ping(interval: Duration, timeout: Duration) -> ConfigBuilder {
    Config::builder().engine_with(|e| e.ping_interval(interval).ping_timeout(timeout))
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// A server serving `io` on `127.0.0.1:<free port>` until [`TestServer::stop`].
pub struct TestServer {
    pub io: SocketIo,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Binds a free port and serves `io` with `socketio::serve`.
    pub async fn start(io: SocketIo) -> TestServer {
        init_tracing();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(socketio::serve(
            listener,
            io.clone(),
            engineio::not_found(),
            shutdown,
        ));
        TestServer {
            io,
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Triggers the shutdown future and waits for `serve` to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            within("the serve task to end", task)
                .await
                .expect("serve task panicked")
                .expect("serve returned an error");
        }
    }

    /// A new WebSocket client, after the open packet.
    pub async fn ws(&self) -> Ws {
        Ws::connect(self.addr).await
    }

    /// A new long-polling session, after the handshake.
    pub async fn polling(&self) -> Polling {
        Polling::open(self.addr).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Recording server-side events
// ---------------------------------------------------------------------------------------------

/// The receiving end of a recorder; the sending end is a plain `mpsc::UnboundedSender`.
pub struct Rec<T> {
    rx: mpsc::UnboundedReceiver<T>,
}

/// A recorder: clone the sender into handlers, await what they send.
pub fn recorder<T>() -> (mpsc::UnboundedSender<T>, Rec<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Rec { rx })
}

impl<T: std::fmt::Debug> Rec<T> {
    /// The next recorded item; fails the test after [`TIMEOUT`].
    pub async fn next(&mut self) -> T {
        within("a server-side event", self.rx.recv())
            .await
            .expect("recorder closed")
    }

    /// Asserts nothing has been recorded (yet). Only meaningful after a synchronization point.
    pub fn assert_empty(&mut self) {
        if let Ok(item) = self.rx.try_recv() {
            panic!("unexpected server-side event: {item:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw WebSocket client
// ---------------------------------------------------------------------------------------------

/// One frame as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame: a whole Engine.IO packet (`2`, `40{…}`, `42[…]`, …).
    Text(String),
    /// A binary frame: an attachment.
    Binary(Vec<u8>),
    /// The connection ended (close frame, EOF or error).
    Closed,
}

impl Frame {
    pub fn text(&self) -> &str {
        match self {
            Frame::Text(t) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// A raw Engine.IO WebSocket client.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The Engine.IO session id of the open packet.
    pub sid: String,
    /// The open packet's JSON.
    pub open: Value,
    closed: bool,
}

/// The endpoint URL of a direct WebSocket session.
pub fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")
}

impl Ws {
    /// Connects and reads the open packet.
    pub async fn connect(addr: SocketAddr) -> Ws {
        let (stream, _) = within(
            "the WebSocket handshake",
            tokio_tungstenite::connect_async(ws_url(addr)),
        )
        .await
        .expect("WebSocket handshake");
        let mut ws = Ws {
            stream,
            sid: String::new(),
            open: Value::Null,
            closed: false,
        };
        let first = ws.recv_raw().await;
        let open = first
            .text()
            .strip_prefix('0')
            .unwrap_or_else(|| panic!("expected the open packet, got {first:?}"))
            .to_owned();
        ws.open = serde_json::from_str(&open).expect("open packet JSON");
        ws.sid = ws.open["sid"]
            .as_str()
            .expect("sid in open packet")
            .to_owned();
        ws
    }

    /// Sends a text frame as is (include the Engine.IO `4`).
    pub async fn send(&mut self, text: &str) {
        self.stream
            .send(WsMessage::text(text.to_owned()))
            .await
            .unwrap_or_else(|e| panic!("sending {text:?}: {e}"));
    }

    /// Sends a binary frame (an attachment).
    pub async fn send_binary(&mut self, data: &[u8]) {
        self.stream
            .send(WsMessage::binary(data.to_vec()))
            .await
            .unwrap_or_else(|e| panic!("sending a binary frame: {e}"));
    }

    /// The next frame, Engine.IO pings included; WebSocket-level pings are skipped.
    pub async fn recv_raw(&mut self) -> Frame {
        if self.closed {
            return Frame::Closed;
        }
        loop {
            let next = within("a WebSocket frame", self.stream.next()).await;
            let frame = match next {
                Some(Ok(WsMessage::Text(t))) => Frame::Text(t.as_str().to_owned()),
                Some(Ok(WsMessage::Binary(b))) => Frame::Binary(b.to_vec()),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => continue,
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => Frame::Closed,
            };
            if frame == Frame::Closed {
                self.closed = true;
            }
            return frame;
        }
    }

    /// The next frame other than an Engine.IO ping (pings are answered with `3`).
    pub async fn recv(&mut self) -> Frame {
        loop {
            let frame = self.recv_raw().await;
            if frame == Frame::Text("2".into()) {
                let _ = self.stream.send(WsMessage::text("3")).await;
                continue;
            }
            return frame;
        }
    }

    /// The next text frame (pings answered); fails on anything else.
    pub async fn text(&mut self) -> String {
        match self.recv().await {
            Frame::Text(t) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next binary frame; fails on anything else.
    pub async fn binary(&mut self) -> Vec<u8> {
        match self.recv().await {
            Frame::Binary(b) => b,
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }

    /// Asserts the next frame is exactly `expected`.
    pub async fn expect(&mut self, expected: &str) {
        let got = self.recv().await;
        assert_eq!(
            got,
            Frame::Text(expected.to_owned()),
            "expected {expected:?}"
        );
    }

    /// Asserts the connection closes with no other frame before.
    pub async fn expect_closed(&mut self) {
        let got = self.recv().await;
        assert_eq!(got, Frame::Closed, "expected the connection to close");
    }

    /// Collects the frames that arrive before the connection closes.
    pub async fn frames_until_closed(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        loop {
            match self.recv().await {
                Frame::Closed => return out,
                frame => out.push(frame),
            }
        }
    }

    /// Sends `40[<nsp>,][auth]` and expects the CONNECT reply; returns its JSON.
    pub async fn connect_with(&mut self, nsp: &str, auth: Option<&str>) -> Value {
        let prefix = if nsp == "/" {
            String::from("40")
        } else {
            format!("40{nsp},")
        };
        self.send(&format!("{prefix}{}", auth.unwrap_or(""))).await;
        let reply = self.text().await;
        let json = reply
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("expected a CONNECT reply for {nsp}, got {reply:?}"));
        serde_json::from_str(json).expect("CONNECT reply JSON")
    }

    /// Joins a namespace without auth; returns the socket id.
    pub async fn join(&mut self, nsp: &str) -> String {
        let reply = self.connect_with(nsp, None).await;
        reply["sid"].as_str().expect("sid").to_owned()
    }

    /// A synchronization point: a CONNECT to an unknown namespace, answered at once in order
    /// with the packets before it. Fails if any other frame arrives first, so it also proves
    /// that nothing else was sent in between and that the connection is still open.
    pub async fn barrier(&mut self) {
        self.send("40/__barrier__").await;
        self.expect(r#"44/__barrier__,{"message":"Invalid namespace"}"#)
            .await;
    }

    /// Closes the WebSocket from the client side (close handshake).
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        // Drain until the server's close frame or EOF.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(TIMEOUT, self.stream.next()).await {}
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP
// ---------------------------------------------------------------------------------------------

/// A raw HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = find(body, b"\r\n").expect("chunk size line");
        let size_line = std::str::from_utf8(&body[..line_end]).expect("chunk size");
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).expect("chunk size hex");
        body = &body[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// One request on a fresh connection (`Connection: close`), hand-written HTTP/1.1.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    within("an HTTP response", async {
        let mut stream = TcpStream::connect(addr).await.expect("TCP connect");
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes).await.expect("write request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read response");
        let head_end = find(&raw, b"\r\n\r\n").expect("end of response head");
        let head = std::str::from_utf8(&raw[..head_end]).expect("response head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut body = raw[head_end + 4..].to_vec();
        let chunked = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        });
        if chunked {
            body = dechunk(&body);
        } else if let Some(len) = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
        {
            body.truncate(len);
        }
        HttpResponse {
            status,
            headers,
            body,
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Raw long-polling client
// ---------------------------------------------------------------------------------------------

/// One Engine.IO packet of a polling payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollPacket {
    Text(String),
    Binary(Vec<u8>),
}

/// A raw Engine.IO long-polling session.
pub struct Polling {
    pub addr: SocketAddr,
    pub sid: String,
    pub open: Value,
}

impl Polling {
    /// The polling handshake.
    pub async fn open(addr: SocketAddr) -> Polling {
        let res = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"").await;
        assert_eq!(res.status, 200, "handshake: {res:?}");
        let body = res.text();
        let open: Value =
            serde_json::from_str(body.strip_prefix('0').expect("open packet")).expect("JSON");
        let sid = open["sid"].as_str().expect("sid").to_owned();
        Polling { addr, sid, open }
    }

    fn path(&self) -> String {
        format!("/socket.io/?EIO=4&transport=polling&sid={}", self.sid)
    }

    /// A GET: the packets of the payload it returns.
    pub async fn get(&self) -> Vec<PollPacket> {
        let res = http(self.addr, "GET", &self.path(), &[], b"").await;
        assert_eq!(res.status, 200, "GET: {res:?}");
        res.text()
            .split('\x1e')
            .map(|p| match p.strip_prefix('b') {
                Some(b64) => PollPacket::Binary(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .expect("base64"),
                ),
                None => PollPacket::Text(p.to_owned()),
            })
            .collect()
    }

    /// A GET that answers pings with a POST of `3` until something else arrives.
    pub async fn get_skipping_pings(&self) -> Vec<PollPacket> {
        loop {
            let packets = self.get().await;
            let pings = packets
                .iter()
                .filter(|p| **p == PollPacket::Text("2".into()))
                .count();
            for _ in 0..pings {
                self.post("3").await;
            }
            let rest: Vec<PollPacket> = packets
                .into_iter()
                .filter(|p| *p != PollPacket::Text("2".into()))
                .collect();
            if !rest.is_empty() {
                return rest;
            }
        }
    }

    /// A POST of `body` (packets joined with `\x1e`); asserts `200 ok`.
    pub async fn post(&self, body: &str) {
        let res = self.post_raw(body).await;
        assert_eq!(res.status, 200, "POST {body:?}: {res:?}");
    }

    pub async fn post_raw(&self, body: &str) -> HttpResponse {
        http(
            self.addr,
            "POST",
            &self.path(),
            &[("Content-Type", "text/plain;charset=UTF-8")],
            body.as_bytes(),
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// Parses a frame `<prefix><json>`.
pub fn json_after(frame: &str, prefix: &str) -> Value {
    let json = frame
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{frame:?} does not start with {prefix:?}"));
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{frame:?}: {e}"))
}

/// Whether `s` looks like a socket/session id: 20 URL-safe characters.
pub fn is_id(s: &str) -> bool {
    s.len() == 20
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
