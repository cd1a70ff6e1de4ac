//! Test harness for the raw-protocol integration tests: an in-process server started with
//! [`engineio::serve`] on `127.0.0.1:0`, a handler that forwards every event into a channel,
//! a hand-written HTTP/1.1 client over `TcpStream` and a `tokio-tungstenite` WebSocket client.
//!
//! Nothing here sleeps to synchronize: every wait is on an event or a response, under
//! [`within`]'s timeout, which fails the test.

#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use engineio::{CloseReason, Config, EngineIo, Handler, Message, Sid, Socket};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

/// How long any single wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request must stay unanswered to count as held by the server.
pub const HELD: Duration = Duration::from_millis(150);

/// Awaits `fut`, failing the test after [`TIMEOUT`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Handler and server
// ---------------------------------------------------------------------------------------------

/// One handler callback.
#[derive(Debug)]
pub enum Event {
    Open(Socket),
    Message(Sid, Message),
    Close(Sid, CloseReason),
    Upgrade(Sid),
}

/// Forwards every callback into a channel; echoes messages back when `echo` is set.
pub struct TestHandler {
    tx: mpsc::UnboundedSender<Event>,
    echo: bool,
}

impl Handler for TestHandler {
    type Conn = Socket;

    fn on_open(&self, socket: Socket) -> Socket {
        let _ = self.tx.send(Event::Open(socket.clone()));
        socket
    }

    fn on_message(&self, socket: &Socket, message: Message) {
        let _ = self.tx.send(Event::Message(socket.id(), message.clone()));
        if self.echo {
            let _ = socket.send(message);
        }
    }

    fn on_close(&self, socket: &Socket, reason: CloseReason) {
        let _ = self.tx.send(Event::Close(socket.id(), reason));
    }

    fn on_upgrade(&self, socket: &Socket) {
        let _ = self.tx.send(Event::Upgrade(socket.id()));
    }
}

/// A server running in-process on an ephemeral port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub path: String,
    pub engine: EngineIo<TestHandler>,
    events: mpsc::UnboundedReceiver<Event>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl TestServer {
    /// An echo server with this configuration.
    pub async fn start(config: Config) -> Self {
        Self::start_with(config, true).await
    }

    /// A server that echoes messages or not.
    pub async fn start_with(config: Config, echo: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let (tx, events) = mpsc::unbounded_channel();
        let path = config.path.clone();
        let engine = EngineIo::new(config, TestHandler { tx, echo });
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(engineio::serve(
            listener,
            engine.clone(),
            engineio::not_found(),
            async move {
                let _ = stop_rx.await;
            },
        ));
        TestServer {
            addr,
            path,
            engine,
            events,
            shutdown: Some(stop_tx),
            task: Some(task),
        }
    }

    /// An echo server with the default configuration.
    pub async fn default_echo() -> Self {
        Self::start(Config::default()).await
    }

    /// The client for this server.
    pub fn client(&self) -> Client {
        Client {
            addr: self.addr,
            path: self.path.clone(),
        }
    }

    /// Resolves the shutdown future given to `serve`.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for `serve` to return.
    pub async fn join(&mut self) {
        if let Some(task) = self.task.take() {
            within("serve to return", task)
                .await
                .expect("serve task panicked")
                .expect("serve failed");
        }
    }

    /// Shuts the server down and waits for `serve` to return.
    pub async fn stop(mut self) {
        self.trigger_shutdown();
        self.join().await;
    }

    /// The next handler event.
    pub async fn next_event(&mut self) -> Event {
        within("a handler event", self.events.recv())
            .await
            .expect("event channel closed")
    }

    /// The next event, which must be an open.
    pub async fn expect_open(&mut self) -> Socket {
        match self.next_event().await {
            Event::Open(socket) => socket,
            other => panic!("expected an open event, got {other:?}"),
        }
    }

    /// The next event, which must be a message from `sid`.
    pub async fn expect_message(&mut self, sid: Sid) -> Message {
        match self.next_event().await {
            Event::Message(s, m) if s == sid => m,
            other => panic!("expected a message from {sid}, got {other:?}"),
        }
    }

    /// The next event, which must be a text message from `sid`; returns the text.
    pub async fn expect_text(&mut self, sid: Sid) -> String {
        match self.expect_message(sid).await {
            Message::Text(t) => t.as_str().to_owned(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// The next event, which must be the close of `sid`; returns the reason.
    pub async fn expect_close(&mut self, sid: Sid) -> CloseReason {
        match self.next_event().await {
            Event::Close(s, reason) if s == sid => reason,
            other => panic!("expected the close of {sid}, got {other:?}"),
        }
    }

    /// The next event, which must be the upgrade of `sid`.
    pub async fn expect_upgrade(&mut self, sid: Sid) {
        match self.next_event().await {
            Event::Upgrade(s) if s == sid => {}
            other => panic!("expected the upgrade of {sid}, got {other:?}"),
        }
    }

    /// Asserts that no event is waiting in the channel.
    pub fn assert_no_event(&mut self) {
        if let Ok(event) = self.events.try_recv() {
            panic!("unexpected event {event:?}");
        }
    }

    /// A polling handshake; returns the open packet and the server's socket for it.
    pub async fn open_polling(&mut self) -> (Open, Socket) {
        let open = self.client().handshake().await;
        let socket = self.expect_open().await;
        assert_eq!(socket.id().as_str(), open.sid);
        (open, socket)
    }

    /// A WebSocket handshake; returns the stream, the open packet and the server's socket.
    pub async fn open_websocket(&mut self) -> (Ws, Open, Socket) {
        let client = self.client();
        let mut ws = client
            .ws("EIO=4&transport=websocket")
            .await
            .expect("WebSocket handshake");
        let open = parse_open(&ws_text(&mut ws).await);
        let socket = self.expect_open().await;
        assert_eq!(socket.id().as_str(), open.sid);
        (ws, open, socket)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A test that failed before `stop` still shuts its server down.
        self.trigger_shutdown();
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1
// ---------------------------------------------------------------------------------------------

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    /// The body split into polling records.
    pub fn records(&self) -> Vec<String> {
        self.text().split('\x1e').map(str::to_owned).collect()
    }

    /// Asserts a `200 text/plain; charset=UTF-8` polling answer and returns its body.
    pub fn polling_body(&self) -> String {
        assert_eq!(self.status, 200, "polling answer: {self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("text/plain; charset=UTF-8"),
            "{self:?}"
        );
        self.text()
    }

    /// Asserts a POST acknowledgement: `200`, `text/html`, body `ok`.
    pub fn assert_ok(&self) {
        assert_eq!(self.status, 200, "POST answer: {self:?}");
        assert_eq!(self.header("content-type"), Some("text/html"), "{self:?}");
        assert_eq!(self.text(), "ok");
    }

    /// Asserts an Engine.IO error: status, `application/json`, exact body.
    pub fn assert_error(&self, status: u16, code: u8, message: &str) {
        assert_eq!(self.status, status, "error answer: {self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let expected = serde_json::json!({ "code": code, "message": message }).to_string();
        assert_eq!(self.text(), expected);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<()> {
    let n = r.read_buf(buf).await?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Reads one HTTP response (Content-Length, chunked, or until EOF).
pub async fn read_response<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Resp> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        fill(r, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end - 4]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut rest = buf.split_off(head_end);
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if status < 200 || status == 204 || status == 304 {
        Vec::new()
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&rest, b"\r\n") {
                    break i;
                }
                fill(r, &mut rest).await?;
            };
            let size_str = String::from_utf8_lossy(&rest[..line_end]).into_owned();
            let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {size_str:?}")))?;
            rest.drain(..line_end + 2);
            if size == 0 {
                break;
            }
            while rest.len() < size + 2 {
                fill(r, &mut rest).await?;
            }
            body.extend_from_slice(&rest[..size]);
            rest.drain(..size + 2);
        }
        body
    } else if let Some(len) = get("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| io::Error::other("bad content-length"))?;
        while rest.len() < len {
            fill(r, &mut rest).await?;
        }
        rest.truncate(len);
        rest
    } else {
        r.read_to_end(&mut rest).await?;
        rest
    };
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// Reads the head of a `101 Switching Protocols` answer byte by byte, so that nothing the
/// server sends after it (the first WebSocket frame) is consumed.
pub async fn read_upgrade_head<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Resp> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = r.read_u8().await?;
        head.push(byte);
    }
    read_response(&mut &head[..]).await
}

/// Builds the bytes of a request.
pub fn request_bytes(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    let chunked = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"));
    if !chunked && (method != "GET" || !body.is_empty()) {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Sends raw request bytes on a new connection and reads the response.
pub async fn raw_request(addr: SocketAddr, bytes: Vec<u8>) -> io::Result<Resp> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(&bytes).await?;
    read_response(&mut stream).await
}

/// A polling client: one TCP connection per request.
#[derive(Clone, Debug)]
pub struct Client {
    pub addr: SocketAddr,
    pub path: String,
}

impl Client {
    /// `<path>?<query>`.
    pub fn target(&self, query: &str) -> String {
        format!("{}?{}", self.path, query)
    }

    /// Any request; fails the test after [`TIMEOUT`].
    pub async fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let bytes = request_bytes(method, target, headers, body);
        within(
            &format!("the answer to {method} {target}"),
            raw_request(self.addr, bytes),
        )
        .await
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
    }

    /// `GET <path>?<query>`.
    pub async fn get(&self, query: &str) -> Resp {
        self.request("GET", &self.target(query), &[], b"").await
    }

    /// `POST <path>?<query>` with this body.
    pub async fn post(&self, query: &str, body: &[u8]) -> Resp {
        self.request("POST", &self.target(query), &[], body).await
    }

    /// Polling GET for a session.
    pub async fn poll(&self, sid: &str) -> Resp {
        self.get(&poll_query(sid)).await
    }

    /// Polling POST for a session.
    pub async fn send(&self, sid: &str, body: &[u8]) -> Resp {
        self.post(&poll_query(sid), body).await
    }

    /// A polling GET running in the background (no timeout of its own: await it with
    /// [`within`]).
    pub fn spawn_poll(&self, sid: &str) -> JoinHandle<io::Result<Resp>> {
        let addr = self.addr;
        let bytes = request_bytes("GET", &self.target(&poll_query(sid)), &[], b"");
        tokio::spawn(raw_request(addr, bytes))
    }

    /// A polling handshake, checked against A.2; returns the open packet.
    pub async fn handshake(&self) -> Open {
        let res = self.get("EIO=4&transport=polling").await;
        parse_open(&res.polling_body())
    }

    /// A WebSocket connection to `<path>?<query>`.
    pub async fn ws(&self, query: &str) -> Result<Ws, tungstenite::Error> {
        let url = format!("ws://{}{}", self.addr, self.target(query));
        within(&format!("WebSocket connect {url}"), async {
            let stream = TcpStream::connect(self.addr).await?;
            let (ws, res) = tokio_tungstenite::client_async(url.as_str(), stream).await?;
            assert_eq!(res.status().as_u16(), 101);
            Ok(ws)
        })
        .await
    }

    /// A WebSocket upgrade request that must be refused with this HTTP status.
    pub async fn ws_refused(&self, query: &str) -> u16 {
        match self.ws(query).await {
            Err(tungstenite::Error::Http(res)) => res.status().as_u16(),
            Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
            Ok(_) => panic!("WebSocket for {query:?} was accepted"),
        }
    }
}

/// A POST whose chunked body is still being sent: the server has its headers, not its end.
pub struct HeldPost {
    writer: tokio::net::tcp::OwnedWriteHalf,
    pub response: JoinHandle<io::Result<Resp>>,
}

impl HeldPost {
    /// Sends the headers and `first` as a first chunk (none when empty), and reads the answer
    /// in the background.
    pub async fn start(client: &Client, sid: &str, first: &[u8]) -> HeldPost {
        let stream = within("connect", TcpStream::connect(client.addr))
            .await
            .expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        let mut bytes = request_bytes(
            "POST",
            &client.target(&poll_query(sid)),
            &[("Transfer-Encoding", "chunked")],
            b"",
        );
        if !first.is_empty() {
            bytes.extend_from_slice(&chunk(first));
        }
        within("the POST headers to go out", writer.write_all(&bytes))
            .await
            .expect("write");
        let response = tokio::spawn(async move { read_response(&mut reader).await });
        HeldPost { writer, response }
    }

    /// Sends `last` as a final chunk and ends the body.
    pub async fn finish(&mut self, last: &[u8]) {
        let mut bytes = Vec::new();
        if !last.is_empty() {
            bytes.extend_from_slice(&chunk(last));
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
        // The server may have answered and closed already; that is for the caller to check.
        let _ = within("the POST body to go out", self.writer.write_all(&bytes)).await;
    }
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The query of a polling request for a session.
pub fn poll_query(sid: &str) -> String {
    format!("EIO=4&transport=polling&sid={sid}")
}

/// The query of a WebSocket upgrade for a session.
pub fn ws_query(sid: &str) -> String {
    format!("EIO=4&transport=websocket&sid={sid}")
}

/// Awaits a background request.
pub async fn join_resp(what: &str, handle: JoinHandle<io::Result<Resp>>) -> Resp {
    within(what, handle)
        .await
        .expect("request task panicked")
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Asserts that a background request is still unanswered after [`HELD`]: the server holds it.
pub async fn assert_held<T: std::fmt::Debug>(handle: &mut JoinHandle<T>) {
    if let Ok(done) = tokio::time::timeout(HELD, handle).await {
        panic!("request answered while it should be held: {done:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Open packet
// ---------------------------------------------------------------------------------------------

/// A decoded open packet.
#[derive(Debug, Clone)]
pub struct Open {
    pub sid: String,
    pub json: Value,
}

impl Open {
    pub fn sid(&self) -> Sid {
        Sid::parse(&self.sid).expect("valid sid")
    }
}

/// Checks an open packet against A.2 (exactly five keys, 20 URL-safe characters in `sid`).
pub fn parse_open(packet: &str) -> Open {
    let json = packet
        .strip_prefix('0')
        .unwrap_or_else(|| panic!("not an open packet: {packet:?}"));
    let json: Value = serde_json::from_str(json).expect("open packet JSON");
    let obj = json.as_object().expect("open packet object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ],
        "open packet keys: {packet}"
    );
    let sid = json["sid"].as_str().expect("sid string").to_owned();
    assert_eq!(sid.len(), 20, "sid length: {sid}");
    assert!(
        sid.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "sid not URL-safe: {sid}"
    );
    assert!(json["upgrades"].is_array());
    assert!(json["pingInterval"].is_u64());
    assert!(json["pingTimeout"].is_u64());
    assert!(json["maxPayload"].is_u64());
    Open { sid, json }
}

// ---------------------------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------------------------

pub type Ws = WebSocketStream<TcpStream>;

/// The next data or close message, skipping WebSocket-level pings and pongs. `None` when the
/// stream ended without a close frame.
pub async fn ws_next(ws: &mut Ws) -> Option<Result<WsMessage, tungstenite::Error>> {
    within("a WebSocket message", async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                other => return other,
            }
        }
    })
    .await
}

/// The next message, which must be a text frame.
pub async fn ws_text(ws: &mut Ws) -> String {
    match ws_next(ws).await {
        Some(Ok(WsMessage::Text(t))) => t.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The next message, which must be a binary frame.
pub async fn ws_binary(ws: &mut Ws) -> Vec<u8> {
    match ws_next(ws).await {
        Some(Ok(WsMessage::Binary(b))) => b.to_vec(),
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

/// Sends a text frame.
pub async fn ws_send(ws: &mut Ws, text: &str) {
    within("a WebSocket send", ws.send(WsMessage::text(text)))
        .await
        .expect("WebSocket send");
}

/// Waits for the server to close the WebSocket with a close frame; returns the frame.
pub async fn ws_expect_close(ws: &mut Ws) -> Option<CloseFrame> {
    match ws_next(ws).await {
        Some(Ok(WsMessage::Close(frame))) => frame,
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// A polling → WebSocket upgrade up to `3probe` (the `5` is the caller's).
pub async fn probe(client: &Client, sid: &str) -> Ws {
    let mut ws = client.ws(&ws_query(sid)).await.expect("probe WebSocket");
    ws_send(&mut ws, "2probe").await;
    assert_eq!(ws_text(&mut ws).await, "3probe");
    ws
}
