//! Raw WebSocket fan-out floor. `PORT` (default 0) on 127.0.0.1; prints `listening on <addr>`.
//!
//! Every WebSocket gets `0{…}` (an Engine.IO open packet) at once; a `40…` CONNECT is answered
//! `40{"sid":…}` and puts the connection in the one room; `42["trigger",{"k":K,"b":B}]` makes the
//! server send K frames `42["tick",{"ts":…,"i":i,"b":B}]` to every connection, each encoded once
//! and shared by reference. Everything else is ignored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Room = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Utf8Bytes>>>>;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// `"k":<n>` / `"b":<n>` out of the trigger text (no JSON parser: this is the floor).
fn field(text: &str, key: &str) -> u64 {
    text.find(key)
        .map(|at| {
            text[at + key.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

fn broadcast(room: &Room, text: &str) {
    let k = field(text, "\"k\":").max(1);
    let b = field(text, "\"b\":");
    let members: Vec<_> = room.lock().unwrap().values().cloned().collect();
    for i in 0..k {
        let frame: Utf8Bytes = format!(
            "42[\"tick\",{{\"ts\":{},\"i\":{i},\"b\":{b}}}]",
            now_ms()
        )
        .into();
        for tx in &members {
            let _ = tx.send(frame.clone());
        }
    }
}

async fn connection(stream: tokio::net::TcpStream, id: u64, room: Room) {
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let sid = format!("{id:020}");
    let open = format!(
        "0{{\"sid\":\"{sid}\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}}"
    );
    if ws.send(Message::text(open)).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    let mut joined = false;
    loop {
        tokio::select! {
            Some(frame) = rx.recv() => {
                if ws.feed(Message::Text(frame)).await.is_err() { break; }
                let mut failed = false;
                while let Ok(more) = rx.try_recv() {
                    if ws.feed(Message::Text(more)).await.is_err() { failed = true; break; }
                }
                if failed || ws.flush().await.is_err() { break; }
            }
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else { break };
                let Message::Text(text) = msg else { continue };
                if text.starts_with("40") && !joined {
                    joined = true;
                    room.lock().unwrap().insert(id, tx.clone());
                    let reply = format!("40{{\"sid\":\"{sid}\"}}");
                    if ws.send(Message::text(reply)).await.is_err() { break; }
                } else if text.starts_with("42[\"trigger\"") {
                    broadcast(&room, &text);
                } else if let Some(rest) = text.strip_prefix("42[\"echo\"") {
                    let reply = format!("42[\"echo\"{rest}");
                    if ws.send(Message::text(reply)).await.is_err() { break; }
                }
            }
        }
    }
    room.lock().unwrap().remove(&id);
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // listen backlog 4096 for every peer (Node and uvicorn get the same), so a connect storm
    // measures the server rather than SYN retransmits
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    let listener = socket.listen(4096)?;
    println!("listening on {}", listener.local_addr()?);
    let room: Room = Arc::default();
    let next = AtomicU64::new(1);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let id = next.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(connection(stream, id, room.clone()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}
