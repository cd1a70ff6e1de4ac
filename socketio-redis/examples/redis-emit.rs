//! Drives a [`socketio_redis::Emitter`] from JSON lines on stdin, for the cluster tests.
//!
//! `cargo run -p socketio-redis --example redis-emit -- --redis redis://127.0.0.1:6379/`
//!
//! Prints `ready` once connected, then one line per command: `ok`, or `error: <why>`.
//! Commands (every field but `op` optional; `nsp` defaults to `/`):
//!
//! ```text
//! {"op":"emit","nsp":"/chat","to":["r"],"except":["x"],"volatile":true,"event":"ev","args":[1]}
//! {"op":"socketsJoin","to":["r"],"rooms":["a"]}     also "socketsLeave"
//! {"op":"disconnectSockets","close":true}
//! {"op":"serverSideEmit","event":"ev","args":[1]}
//! ```
//!
//! In `args`, `{"$binary":[1,2]}` stands for binary data.

use bytes::Bytes;
use serde_json::Value;
use socketio::{Args, Data};
use socketio_redis::{Emitter, EmitterOperator};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn strings(v: &Value, key: &str) -> Vec<String> {
    match v.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn arg(v: Value) -> Data {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("$binary") => {
            let bytes: Vec<u8> = match m.get("$binary") {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect(),
                _ => Vec::new(),
            };
            Data::Binary(Bytes::from(bytes))
        }
        other => Data::Json(other),
    }
}

async fn run(emitter: &Emitter, cmd: &Value) -> Result<(), String> {
    let nsp = cmd.get("nsp").and_then(Value::as_str).unwrap_or("/");
    let ns = emitter.of(nsp);
    let mut op: EmitterOperator = ns.to(strings(cmd, "to")).except(strings(cmd, "except"));
    if cmd.get("volatile") == Some(&Value::Bool(true)) {
        op = op.volatile();
    }
    let event = cmd.get("event").and_then(Value::as_str).unwrap_or("");
    let args = match cmd.get("args") {
        Some(Value::Array(items)) => Args(items.iter().cloned().map(arg).collect()),
        _ => Args(Vec::new()),
    };
    let close = cmd.get("close") == Some(&Value::Bool(true));
    let result = match cmd.get("op").and_then(Value::as_str) {
        Some("emit") => op.emit(event, args).await,
        Some("socketsJoin") => op.sockets_join(strings(cmd, "rooms")).await,
        Some("socketsLeave") => op.sockets_leave(strings(cmd, "rooms")).await,
        Some("disconnectSockets") => op.disconnect_sockets(close).await,
        Some("serverSideEmit") => ns.server_side_emit(event, args).await,
        other => return Err(format!("unknown op {other:?}")),
    };
    result.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut argv = std::env::args().skip(1);
    let mut url = None;
    while let Some(a) = argv.next() {
        match a.as_str() {
            "--redis" => url = argv.next(),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let url = url.ok_or("--redis URL is required")?;
    let emitter = Emitter::connect(&url).await?;
    let mut out = tokio::io::stdout();
    out.write_all(b"ready\n").await?;
    out.flush().await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(cmd) => match run(&emitter, &cmd).await {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("error: {e}"),
            },
            Err(e) => format!("error: bad JSON: {e}"),
        };
        out.write_all(reply.as_bytes()).await?;
        out.write_all(b"\n").await?;
        out.flush().await?;
    }
    Ok(())
}
