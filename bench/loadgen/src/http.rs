//! Just enough HTTP/1.1 for Engine.IO long-polling: sequential requests on one keep-alive
//! connection (reopened when the server closes it), Content-Length or chunked bodies.

use std::net::Ipv4Addr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::client::{tcp_connect, Target};
use crate::Result;

/// A polling client for one Engine.IO session.
pub struct Polling {
    src: Ipv4Addr,
    target: Target,
    conn: Option<BufReader<TcpStream>>,
}

impl Polling {
    /// A client that will connect from `src`.
    pub fn new(src: Ipv4Addr, target: &Target) -> Self {
        Polling {
            src,
            target: target.clone(),
            conn: None,
        }
    }

    /// One request to the Engine.IO path with `query`; returns the status and the body.
    pub async fn request(
        &mut self,
        method: &str,
        query: &str,
        body: &str,
    ) -> Result<(u16, String)> {
        let target = format!("{}?{query}", self.target.path);
        self.request_to(method, &target, body).await
    }

    /// One request to `target` (path and query); returns the status and the body.
    pub async fn request_to(
        &mut self,
        method: &str,
        target: &str,
        body: &str,
    ) -> Result<(u16, String)> {
        if self.conn.is_none() {
            self.conn = Some(BufReader::new(
                tcp_connect(self.src, self.target.addr).await?,
            ));
        }
        let conn = self.conn.as_mut().expect("connected");
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n\
             Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n",
            self.target.addr,
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body.as_bytes());
        conn.get_mut().write_all(&req).await?;

        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 {
            self.conn = None;
            return Err("connection closed before the response".into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        loop {
            line.clear();
            if conn.read_line(&mut line).await? == 0 {
                return Err("connection closed in the headers".into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let v = v.trim();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => length = v.parse::<usize>().ok(),
                    "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                    "connection" => close = v.eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                line.clear();
                conn.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| format!("bad chunk size {line:?}"))?;
                let mut chunk = vec![0; size + 2];
                conn.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(n) = length {
            out.resize(n, 0);
            conn.read_exact(&mut out).await?;
        } else {
            conn.read_to_end(&mut out).await?;
            close = true;
        }
        if close {
            self.conn = None;
        }
        Ok((status, String::from_utf8_lossy(&out).into_owned()))
    }
}
