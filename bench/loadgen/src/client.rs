//! A lean Socket.IO v5 client over Engine.IO v4 WebSocket, written for load: one task per
//! client, a 4 KiB read buffer, pings answered inline, packets handed over as text.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::Result;

/// The server under test.
#[derive(Clone, Debug)]
pub struct Target {
    /// Address (loopback).
    pub addr: SocketAddr,
    /// Engine.IO path with trailing slash (`/socket.io/`).
    pub path: String,
    /// How many source addresses (127.0.0.1, 127.0.0.2, …) to spread clients over.
    pub src_ips: u8,
    /// Send the request headers a browser behind nginx sends ([`BROWSER_HEADERS`]) with every
    /// WebSocket handshake, not only the handful a WebSocket needs.
    pub browser_headers: bool,
}

/// What Chromium sends with a WebSocket handshake (less the compression offer, which the
/// generator does not speak) plus what `docs/deploy/nginx.conf` adds: with the five headers of
/// the handshake itself, 16 headers of about 700 bytes, as a server sees a real user.
pub const BROWSER_HEADERS: [(&str, &str); 11] = [
    ("origin", "http://127.0.0.1:3000"),
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("accept-language", "en-US,en;q=0.9,de;q=0.8"),
    ("cache-control", "no-cache"),
    ("pragma", "no-cache"),
    ("cookie", "session=eyJ1c2VyIjoiYWxpY2UiLCJ0cyI6MTczMzE2MDAwMH0.Zm9vYmFyYmF6cXV4; theme=dark; _pk_id.1.1fff=4a3b2c1d0e9f8a7b.1733160000."),
    ("x-real-ip", "127.0.0.1"),
    ("x-forwarded-for", "127.0.0.1"),
    ("x-forwarded-proto", "http"),
    ("x-forwarded-host", "127.0.0.1:3000"),
];

impl Target {
    /// A target on `addr` at `/socket.io/`, spread over 16 source addresses.
    pub fn new(addr: SocketAddr) -> Self {
        Target {
            addr,
            path: "/socket.io/".into(),
            src_ips: 16,
            browser_headers: false,
        }
    }

    /// The source address of client `i`.
    pub fn src(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, 1 + (i % self.src_ips.max(1) as usize) as u8)
    }
}

/// Refuses anything but loopback: this tool sends traffic nowhere else.
pub fn check_loopback(addr: &SocketAddr) -> Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!("{addr} is not a loopback address: loadgen only targets 127.0.0.0/8").into())
    }
}

/// A TCP connection from `src` (port chosen by the kernel) to `addr`, Nagle off.
pub async fn tcp_connect(src: Ipv4Addr, addr: SocketAddr) -> Result<TcpStream> {
    check_loopback(&addr)?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(src.into(), 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096)
}

/// One Socket.IO connection (one namespace) over a WebSocket.
pub struct SioConn {
    ws: WebSocketStream<TcpStream>,
    /// The namespace socket id from the CONNECT reply.
    pub sid: String,
    /// The private recovery id, when the server has recovery on.
    pub pid: Option<String>,
    /// The namespace prefix of packets (`""` for `/`, `"/chat,"` otherwise).
    nsp_prefix: String,
    pong_due: bool,
}

/// The value of `"key":"…"` in a JSON text (no escapes expected: ids and offsets).
pub fn json_str<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let at = text.find(&pat)? + pat.len();
    let end = text[at..].find('"')? + at;
    Some(&text[at..end])
}

/// The number after `"key":` in a JSON text.
pub fn json_num(text: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let at = text.find(&pat)? + pat.len();
    let rest = &text[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl SioConn {
    /// Opens a WebSocket (joining session `sid` when upgrading), without any Socket.IO step.
    pub async fn websocket(
        src: Ipv4Addr,
        target: &Target,
        sid: Option<&str>,
    ) -> Result<WebSocketStream<TcpStream>> {
        let stream = tcp_connect(src, target.addr).await?;
        let url = format!(
            "ws://{}{}?EIO=4&transport=websocket{}",
            target.addr,
            target.path,
            sid.map(|s| format!("&sid={s}")).unwrap_or_default()
        );
        let mut request = url.into_client_request()?;
        if target.browser_headers {
            let headers = request.headers_mut();
            for (name, value) in BROWSER_HEADERS {
                headers.insert(name, HeaderValue::from_static(value));
            }
        }
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config())).await?;
        Ok(ws)
    }

    /// Connects over WebSocket and joins namespace `nsp` with `auth`. Events that arrive before
    /// the CONNECT reply (recovery replays them first) go to `early`, as Socket.IO packet text.
    pub async fn connect(
        src: Ipv4Addr,
        target: &Target,
        nsp: &str,
        auth: Option<&Value>,
        early: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Self> {
        let mut ws = Self::websocket(src, target, None).await?;
        // The open packet.
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.starts_with('0') => break,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Err("closed before the open packet".into()),
            }
        }
        Self::join(ws, nsp, auth, early).await
    }

    /// A connection upgraded from polling that already joined `/` (socket id `sid`).
    pub fn upgraded(ws: WebSocketStream<TcpStream>, sid: &str) -> Self {
        SioConn {
            ws,
            sid: sid.to_owned(),
            pid: None,
            nsp_prefix: String::new(),
            pong_due: false,
        }
    }

    /// Sends CONNECT for `nsp` on an open Engine.IO WebSocket and waits for the reply.
    pub async fn join(
        ws: WebSocketStream<TcpStream>,
        nsp: &str,
        auth: Option<&Value>,
        early: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Self> {
        let nsp_prefix = if nsp == "/" {
            String::new()
        } else {
            format!("{nsp},")
        };
        let mut conn = SioConn {
            ws,
            sid: String::new(),
            pid: None,
            nsp_prefix,
            pong_due: false,
        };
        let connect = match auth {
            Some(a) => format!("0{}{a}", conn.nsp_prefix),
            None => format!("0{}", conn.nsp_prefix),
        };
        conn.send_sio(&connect).await?;
        let reply_head = format!("0{}", conn.nsp_prefix);
        let error_head = format!("4{}", conn.nsp_prefix);
        loop {
            let Some(text) = conn.next_sio().await? else {
                return Err("closed before the CONNECT reply".into());
            };
            if let Some(body) = text.strip_prefix(reply_head.as_str()) {
                conn.sid = json_str(body, "sid").unwrap_or_default().to_owned();
                conn.pid = json_str(body, "pid").map(str::to_owned);
                return Ok(conn);
            }
            if text.starts_with(error_head.as_str()) {
                return Err(format!("connect_error: {text}").into());
            }
            early(&text);
        }
    }

    /// The next Socket.IO packet (the text after the Engine.IO `4`); pings are answered on the
    /// way. `None` once the connection closed. Cancel-safe enough for `select!`: a pong that
    /// was interrupted is sent again.
    pub async fn next_sio(&mut self) -> Result<Option<Utf8Bytes>> {
        loop {
            if self.pong_due {
                self.ws.send(Message::text("3")).await?;
                self.pong_due = false;
            }
            match self.ws.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(t))) => {
                    if t.as_str() == "2" {
                        self.pong_due = true;
                    } else if t.starts_with('4') {
                        return Ok(Some(Utf8Bytes::from(&t.as_str()[1..])));
                    } else if t.starts_with('1') {
                        return Ok(None);
                    }
                }
                Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Sends one Socket.IO packet (`text` without the Engine.IO `4`; namespace included).
    pub async fn send_sio(&mut self, text: &str) -> Result<()> {
        self.ws.send(Message::text(format!("4{text}"))).await?;
        Ok(())
    }

    /// Emits `event` with one JSON argument (and an ack id) in this connection's namespace.
    pub async fn emit(&mut self, event: &str, arg: &Value, ack: Option<u64>) -> Result<()> {
        let ack = ack.map(|a| a.to_string()).unwrap_or_default();
        let text = format!("2{}{ack}[\"{event}\",{arg}]", self.nsp_prefix);
        self.send_sio(&text).await
    }

    /// Drops the TCP connection abruptly (RST, as a network failure would), no close frame.
    pub fn abort(self) {
        let _ = socket2_linger_zero(self.ws.get_ref());
        drop(self);
    }

    /// Closes politely (close frame), bounded in time.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

fn socket2_linger_zero(stream: &TcpStream) -> std::io::Result<()> {
    #[allow(deprecated)] // set_linger is deprecated for blocking drops; we want exactly the RST
    stream.set_linger(Some(Duration::ZERO))
}

/// A `tick {ts, i, b}` event as the loadgen reads it.
#[derive(Clone, Copy, Debug)]
pub struct Tick<'a> {
    /// Server time when it was broadcast, ms since the epoch.
    pub ts: f64,
    /// Index within its trigger.
    pub i: u64,
    /// The trigger's burst id.
    pub b: u64,
    /// The recovery offset (last argument) when the server appended one.
    pub offset: Option<&'a str>,
}

/// Parses `2["tick",{"ts":…,"i":…,"b":…}(,"offset")?]` (namespace `/`).
pub fn parse_tick(text: &str) -> Option<Tick<'_>> {
    let body = text.strip_prefix("2[\"tick\",")?;
    let ts = json_num(body, "ts")?;
    let i = json_num(body, "i")? as u64;
    let b = json_num(body, "b").unwrap_or(0.0) as u64;
    let offset = body
        .strip_suffix("\"]")
        .and_then(|s| s.rfind(",\"").map(|at| &s[at + 2..]))
        .filter(|o| !o.contains(['{', '}', ':']));
    Some(Tick { ts, i, b, offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks() {
        let t = parse_tick(r#"2["tick",{"ts":1763782345123.25,"i":3,"b":7}]"#).unwrap();
        assert_eq!((t.ts, t.i, t.b, t.offset), (1763782345123.25, 3, 7, None));
        let t = parse_tick(r#"2["tick",{"ts":1.5,"i":0,"b":2},"MTc2Mzc4.1"]"#).unwrap();
        assert_eq!(t.offset, Some("MTc2Mzc4.1"));
        let t = parse_tick(r#"2["tick",{"b":2,"i":0,"ts":1.5}]"#).unwrap();
        assert_eq!((t.ts, t.b), (1.5, 2));
        assert!(parse_tick(r#"2["echo",1]"#).is_none());
        assert_eq!(json_str(r#"{"sid":"abc","pid":"x-y"}"#, "pid"), Some("x-y"));
    }
}
