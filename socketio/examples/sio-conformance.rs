//! Socket.IO fixture server for the conformance tests with the official `socket.io-client`
//! (`tests/socketio/*.test.mjs`).
//!
//! Every capability is an event with an ack, registered on every namespace (`/`, `/chat`,
//! `/auth`, `/dyn-<word>`):
//!
//! | event | arguments | does |
//! | --- | --- | --- |
//! | `whoami` | | acks `{id, nsp, recovered, auth, rooms, data, transport}` |
//! | `echo` | any | acks the same arguments (binary kept) |
//! | `echo-emit` | any | emits `echo-back` with the same arguments, then acks |
//! | `join` / `leave` | room(s) | joins / leaves, acks the socket's rooms |
//! | `io-emit` | `{to?, except?, volatile?, event}`, args… | `nsp.to(..).except(..)[.volatile()].emit(event, args…)` (sender included) |
//! | `socket-emit` | same | `socket.broadcast().to(..).except(..)…` (sender excluded) |
//! | `self-emit` | `{event, volatile?}`, args… | `socket.emit` / `socket.emit_volatile` |
//! | `server-ack` | `{event, timeoutMs}`, args… | emits to this client with an ack, acks `{ok:true,args}` or `{error}` |
//! | `disconnect-me` | | `socket.disconnect()` |
//! | `close-me` | | `socket.disconnect_and_close()` |
//! | `close-transport` | | closes the Engine.IO connection (no DISCONNECT packet) |
//! | `fetch-sockets` | `{room?}` | acks `[{id, rooms, data}]` sorted by id |
//! | `sockets-join` / `sockets-leave` | `{room?, rooms}` | on the sockets of `room` |
//! | `disconnect-sockets` | `{room?, close?}` | on the sockets of `room` |
//! | `set-data` | value | `socket.set_data(value)` |
//! | `reasons` | | acks the last disconnect records `[{id, nsp, reason}]`, oldest first |
//! | `wait-reason` | `{id, timeoutMs}` | acks the record of socket `id` once there is one (or `null`) |
//!
//! `/auth` refuses unless `auth.token == "secret"` (message `not authorized`, data
//! `{"content":"x"}`); `/plain` refuses every connection with the message `nope`; a connection to
//! `/dyn-<word>` creates that namespace and is greeted with `ns` carrying its name.
//!
//! With `--allow-eio3`, old clients (socket.io-client 2.x) are served too; for them `whoami`
//! also carries `clientId` (`/nsp#<sid>` outside `/`) and `protocol` (4).
//!
//! `cargo run -p socketio --example sio-conformance -- --port 0`; once bound it prints
//! `listening on http://127.0.0.1:<port>/socket.io/`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use serde_json::{json, Value};
use socketio::{
    Args, BroadcastOperator, ConnectError, Data, DisconnectReason, Event, Recovery, Socket,
    SocketIo,
};
use tokio::sync::watch;

#[derive(Parser)]
#[command(about = "Socket.IO v5 conformance fixture server")]
struct Cli {
    /// Port to listen on, 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Ping interval in milliseconds.
    #[arg(long, default_value_t = 25_000)]
    ping_interval: u64,
    /// Ping timeout in milliseconds.
    #[arg(long, default_value_t = 20_000)]
    ping_timeout: u64,
    /// Time allowed to join a namespace, in milliseconds.
    #[arg(long, default_value_t = 45_000)]
    connect_timeout: u64,
    /// Largest accepted message in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    max_payload: u64,
    /// Turn connection state recovery on.
    #[arg(long)]
    recovery: bool,
    /// How long a disconnected session can be recovered, in milliseconds.
    #[arg(long, default_value_t = 120_000)]
    max_disconnection_ms: u64,
    /// Accept old clients too (Engine.IO v3 / Socket.IO v4: socket.io-client 1.x/2.x).
    #[arg(long)]
    allow_eio3: bool,
}

/// How many disconnect records are kept.
const KEEP_REASONS: usize = 512;

/// The disconnect reasons the server saw, newest last; `changed` ticks on every new one.
#[derive(Clone)]
struct Reasons {
    list: Arc<Mutex<VecDeque<Value>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Reasons {
    fn new() -> Self {
        Reasons {
            list: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }

    fn record(&self, socket: &Socket, reason: DisconnectReason) {
        {
            let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
            if list.len() == KEEP_REASONS {
                list.pop_front();
            }
            list.push_back(json!({
                // The id the client knows (`/nsp#<sid>` for an old client outside `/`).
                "id": socket.client_id(),
                "nsp": socket.ns().name(),
                "reason": reason.as_str(),
            }));
        }
        self.changed.send_modify(|n| *n += 1);
    }

    fn all(&self) -> Vec<Value> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().cloned().collect()
    }

    fn find(&self, id: &str) -> Option<Value> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().rev().find(|r| r["id"] == id).cloned()
    }

    /// The record of socket `id`, waiting for it at most `timeout`.
    async fn wait(&self, id: &str, timeout: Duration) -> Option<Value> {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self.find(id) {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }
}

/// The first argument as JSON (an options object), and the arguments after it.
fn split_opts(args: Args) -> (Value, Args) {
    let mut items = args.0.into_iter();
    let opts = match items.next() {
        Some(Data::Json(v)) => v,
        _ => Value::Null,
    };
    (opts, Args(items.collect()))
}

/// `opts[key]` as a list of room names: a string or an array of strings.
fn rooms(opts: &Value, key: &str) -> Vec<String> {
    match &opts[key] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn str_opt<'a>(opts: &'a Value, key: &str) -> &'a str {
    opts[key].as_str().unwrap_or_default()
}

fn ms_opt(opts: &Value, key: &str, default: u64) -> Duration {
    Duration::from_millis(opts[key].as_u64().unwrap_or(default))
}

fn sorted_rooms(socket: &Socket) -> Value {
    let mut rooms = socket.rooms();
    rooms.sort();
    json!(rooms)
}

fn reply(event: Event, args: impl Into<Args>) {
    if let Some(ack) = event.ack {
        ack.send(args);
    }
}

/// Adds the targets, exclusions and flags of the options: `to`, `except`, `volatile`.
fn select(op: BroadcastOperator, opts: &Value) -> BroadcastOperator {
    let op = op.to(rooms(opts, "to")).except(rooms(opts, "except"));
    if opts["volatile"] == true {
        op.volatile()
    } else {
        op
    }
}

/// The operator of the socket's namespace selected by `opts.room` (every socket when absent).
fn in_room(socket: &Socket, opts: &Value) -> BroadcastOperator {
    socket.ns().to(rooms(opts, "room"))
}

fn whoami(socket: Socket, event: Event) {
    let mut me = json!({
        "id": socket.id().as_str(),
        "nsp": socket.ns().name(),
        "recovered": socket.recovered(),
        "auth": socket.auth(),
        "rooms": sorted_rooms(&socket),
        "data": socket.data(),
        "transport": socket.transport().as_str(),
    });
    if socket.protocol() == 4 {
        me["clientId"] = json!(socket.client_id());
        me["protocol"] = json!(4);
    }
    reply(event, me);
}

fn join(socket: Socket, event: Event) {
    let wanted = match event.args.json(0) {
        Some(Value::String(room)) => vec![room.clone()],
        Some(v @ Value::Array(_)) => rooms(&json!({ "r": v }), "r"),
        _ => Vec::new(),
    };
    socket.join(wanted);
    reply(event, sorted_rooms(&socket));
}

fn leave(socket: Socket, event: Event) {
    if let Some(Value::String(room)) = event.args.json(0) {
        socket.leave(room);
    }
    reply(event, sorted_rooms(&socket));
}

fn io_emit(socket: Socket, event: Event) {
    let (opts, args) = split_opts(event.args.clone());
    // Every socket of the namespace (the sender too) unless `to` narrows it down.
    let everyone = socket.ns().except(Vec::<String>::new());
    let sent = select(everyone, &opts).emit(str_opt(&opts, "event"), args);
    reply(event, json!({ "ok": sent.is_ok() }));
}

fn socket_emit(socket: Socket, event: Event) {
    let (opts, args) = split_opts(event.args.clone());
    // Like io-emit, without the sender.
    let sent = select(socket.broadcast(), &opts).emit(str_opt(&opts, "event"), args);
    reply(event, json!({ "ok": sent.is_ok() }));
}

fn self_emit(socket: Socket, event: Event) {
    let (opts, args) = split_opts(event.args.clone());
    let name = str_opt(&opts, "event");
    let sent = if opts["volatile"] == true {
        socket.emit_volatile(name, args)
    } else {
        socket.emit(name, args)
    };
    reply(event, json!({ "ok": sent.is_ok() }));
}

/// Emits to the client with an ack and reports what came back, or the error.
async fn server_ack(socket: Socket, event: Event) {
    let (opts, args) = split_opts(event.args.clone());
    let timeout = ms_opt(&opts, "timeoutMs", 5_000);
    let result = socket
        .emit_with_ack_timeout(str_opt(&opts, "event"), args, timeout)
        .await;
    let report = match result {
        Ok(args) => Data::Object(vec![
            ("ok".into(), Data::Json(Value::Bool(true))),
            ("args".into(), Data::Array(args.0)),
        ]),
        Err(e) => Data::Json(json!({ "error": e.to_string() })),
    };
    reply(event, report);
}

async fn fetch_sockets(socket: Socket, event: Event) {
    let opts = event.args.json(0).cloned().unwrap_or(Value::Null);
    let found = match in_room(&socket, &opts).fetch_sockets().await {
        Ok(mut found) => {
            found.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
            found
                .into_iter()
                .map(|s| {
                    let mut rooms = s.rooms;
                    rooms.sort();
                    json!({ "id": s.id.as_str(), "rooms": rooms, "data": s.data })
                })
                .collect()
        }
        Err(e) => vec![json!({ "error": e.to_string() })],
    };
    reply(event, Value::Array(found));
}

fn sockets_join(socket: Socket, event: Event) {
    let opts = event.args.json(0).cloned().unwrap_or(Value::Null);
    in_room(&socket, &opts).sockets_join(rooms(&opts, "rooms"));
    reply(event, ());
}

fn sockets_leave(socket: Socket, event: Event) {
    let opts = event.args.json(0).cloned().unwrap_or(Value::Null);
    in_room(&socket, &opts).sockets_leave(rooms(&opts, "rooms"));
    reply(event, ());
}

fn disconnect_sockets(socket: Socket, event: Event) {
    let opts = event.args.json(0).cloned().unwrap_or(Value::Null);
    // Ack first: the caller may be one of the sockets disconnected.
    reply(event, ());
    in_room(&socket, &opts).disconnect_sockets(opts["close"] == true);
}

fn set_data(socket: Socket, event: Event) {
    socket.set_data(event.args.json(0).cloned().unwrap_or(Value::Null));
    reply(event, ());
}

/// Registers every capability on a freshly connected socket.
fn setup(socket: &Socket, reasons: &Reasons) {
    socket.on("whoami", |s, e| async move { whoami(s, e) });
    socket.on("echo", |_s, e| async move {
        let args = e.args.clone();
        reply(e, args);
    });
    socket.on("echo-emit", |s, e| async move {
        let _ = s.emit("echo-back", e.args.clone());
        reply(e, ());
    });
    socket.on("join", |s, e| async move { join(s, e) });
    socket.on("leave", |s, e| async move { leave(s, e) });
    socket.on("io-emit", |s, e| async move { io_emit(s, e) });
    socket.on("socket-emit", |s, e| async move { socket_emit(s, e) });
    socket.on("self-emit", |s, e| async move { self_emit(s, e) });
    socket.on("server-ack", server_ack);
    socket.on("disconnect-me", |s, _e| async move { s.disconnect() });
    socket.on("close-me", |s, _e| async move { s.disconnect_and_close() });
    socket.on("close-transport", |s, _e| async move { s.engine().close() });
    socket.on("fetch-sockets", fetch_sockets);
    socket.on("sockets-join", |s, e| async move { sockets_join(s, e) });
    socket.on("sockets-leave", |s, e| async move { sockets_leave(s, e) });
    socket.on("disconnect-sockets", |s, e| async move {
        disconnect_sockets(s, e)
    });
    socket.on("set-data", |s, e| async move { set_data(s, e) });
    let r = reasons.clone();
    socket.on("reasons", move |_s, e| {
        let all = Value::Array(r.all());
        async move { reply(e, all) }
    });
    let r = reasons.clone();
    socket.on("wait-reason", move |_s, e| {
        let r = r.clone();
        async move {
            let opts = e.args.json(0).cloned().unwrap_or(Value::Null);
            let found = r
                .wait(str_opt(&opts, "id"), ms_opt(&opts, "timeoutMs", 5_000))
                .await;
            reply(e, found.unwrap_or(Value::Null));
        }
    });
    let r = reasons.clone();
    socket.on_disconnect(move |s, reason| {
        r.record(&s, reason);
        async {}
    });
}

fn register(io: &SocketIo, reasons: &Reasons) {
    for name in ["/", "/chat"] {
        let r = reasons.clone();
        io.of(name).on_connection(move |socket| {
            setup(&socket, &r);
            async {}
        });
    }

    let r = reasons.clone();
    io.of("/auth")
        .middleware(|socket| async move {
            if socket.auth()["token"] == "secret" {
                Ok(())
            } else {
                Err(ConnectError::with_data(
                    "not authorized",
                    json!({"content": "x"}),
                ))
            }
        })
        .on_connection(move |socket| {
            setup(&socket, &r);
            async {}
        });

    io.of("/plain")
        .middleware(|_socket| async { Err(ConnectError::new("nope")) });

    let r = reasons.clone();
    io.dynamic(|name, _auth| {
        name.strip_prefix("/dyn-").is_some_and(|w| {
            !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    })
    .on_connection(move |socket| {
        setup(&socket, &r);
        let _ = socket.emit("ns", socket.ns().name());
        async {}
    });
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut config = socketio::Config::builder()
        .engine_with(|e| {
            e.ping_interval(Duration::from_millis(cli.ping_interval))
                .ping_timeout(Duration::from_millis(cli.ping_timeout))
                .max_payload(cli.max_payload)
                .allow_eio3(cli.allow_eio3)
        })
        .connect_timeout(Duration::from_millis(cli.connect_timeout));
    if cli.recovery {
        config = config.recovery(Recovery {
            max_disconnection_duration: Duration::from_millis(cli.max_disconnection_ms),
            ..Recovery::default()
        });
    }
    let io = SocketIo::new(config.build());
    register(&io, &Reasons::new());

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", cli.port)).await?;
    println!("listening on http://{}/socket.io/", listener.local_addr()?);
    socketio::serve(
        listener,
        io,
        engineio::not_found(),
        engineio::shutdown_signal(),
    )
    .await
}
