//! Socket.IO echo server.
//!
//! Namespaces `/` and `/custom`. On connection each emits `auth` with the handshake's auth
//! object (`{}` when none). On `/`, `message` is answered with `message-back` carrying the same
//! arguments (binary kept), and `message-with-ack` is acknowledged with the same arguments.
//!
//! With `--redis URL` the node joins a cluster through Redis (`socketio-redis`, the protocol of
//! Node's `@socket.io/redis-adapter`; `--redis-sharded URL` for that of its
//! `createShardedAdapter`, over Redis 7 sharded pub/sub), and `/` also understands,
//! cluster-wide:
//!
//! | event | does |
//! | --- | --- |
//! | `broadcast`, args… | emits `broadcast` with the same args to every socket of the cluster |
//! | `count` (ack) | acks the number of sockets `fetch_sockets` finds |
//! | `to-room`, room, args… | emits `broadcast` with the args to the room |
//! | `join-all`, room (ack) | makes every socket join the room (`sockets_join`) |
//! | `rooms` (ack) | acks this socket's rooms |
//! | `server-side-emit`, args… (ack) | `server_side_emit("ping", args…)`; acks the answers |
//! | `server-count` (ack) | acks the number of nodes |
//! | `all-rooms` (ack) | acks every room of the cluster |
//! | `broadcast-with-ack`, args… (ack) | emits `question` with the args to every socket with a 2 s timeout; acks `{responses, missing}` |
//! | `redis-stats` (ack) | acks the adapter's `{connected, outages, reconnects, dropped_publishes}` |
//!
//! `--redis-streams URL` joins a cluster through a Redis stream instead (`socketio_redis::streams`,
//! the protocol of Node's `@socket.io/redis-streams-adapter` 0.3), with the same events; with
//! `--recovery` too, sessions and missed packets are kept in Redis, so a client recovers its
//! session on any node.
//!
//! On `/` too, on every node: `join`, room (ack) and `leave`, room (ack) make this socket
//! join or leave the room; `set-data`, value (ack) sets its `data`.
//!
//! With `--admin` the server serves the Socket.IO Admin UI on `/admin` (`SocketIo::instrument`):
//! `--admin-user NAME --admin-password-hash BCRYPT` for basic authentication (none
//! otherwise), `--admin-production`, `--admin-read-only`, `--admin-server-id ID`.
//! `--cors-origin ORIGIN` (repeatable) allows that origin with credentials, as the hosted UI
//! (`https://admin.socket.io`) needs.
//!
//! A failed cluster operation acks `{"error": message}`. Server-side `ping` is answered with
//! `{"node": "rust", "got": [args…]}`; server-side `notify`, args… makes this node emit
//! `notified` with the args to its own sockets of `/`.
//!
//! `cargo run -p socketio --example sio-echo -- --port 3000`; once bound (and, with `--redis`,
//! subscribed) it prints `listening on http://127.0.0.1:<port>/socket.io/` (`--port 0` picks a
//! free port).

use std::time::Duration;

use clap::Parser;
use serde_json::{json, Value};
use socketio::admin::{AdminAuth, AdminOptions, Mode};
use socketio::{Args as SioArgs, Config, Data, Recovery, Socket, SocketIo};
use socketio_redis::streams::{RedisStreamsConfig, RedisStreamsFactory};
use socketio_redis::{RedisAdapterConfig, RedisAdapterFactory};

#[derive(Parser)]
#[command(about = "Socket.IO v5 echo server")]
struct Args {
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
    /// Join a cluster through this Redis server (`redis://127.0.0.1:6379/`).
    #[arg(long)]
    redis: Option<String>,
    /// Join a cluster through a Redis stream on this server (the Streams adapter).
    #[arg(long, conflicts_with_all = ["redis", "redis_sharded"])]
    redis_streams: Option<String>,
    /// Join a sharded cluster (Redis 7 `SPUBLISH`/`SSUBSCRIBE`) through this Redis server.
    #[arg(long, conflicts_with = "redis")]
    redis_sharded: Option<String>,
    /// How long cluster requests wait for the other nodes, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    redis_requests_timeout: u64,
    /// Serve the Socket.IO Admin UI on `/admin`.
    #[arg(long)]
    admin: bool,
    /// The admin UI's username (with --admin-password-hash): basic authentication.
    #[arg(long, requires_all = ["admin", "admin_password_hash"])]
    admin_user: Option<String>,
    /// The bcrypt hash of the admin UI's password.
    #[arg(long, requires = "admin_user")]
    admin_password_hash: Option<String>,
    /// Only statistics for the admin UI (production mode).
    #[arg(long, requires = "admin")]
    admin_production: bool,
    /// The admin UI may only look (no emit, join, leave, disconnect).
    #[arg(long, requires = "admin")]
    admin_read_only: bool,
    /// This server's id in the admin UI (default hostname#pid).
    #[arg(long, requires = "admin")]
    admin_server_id: Option<String>,
    /// Allow this origin, with credentials (CORS for polling).
    #[arg(long)]
    cors_origin: Vec<String>,
}

/// Turns the admin UI on as the flags say.
fn instrument(io: &SocketIo, args: &Args) -> std::io::Result<()> {
    let auth = match (&args.admin_user, &args.admin_password_hash) {
        (Some(user), Some(hash)) => AdminAuth::basic(user, hash),
        _ => AdminAuth::Disabled,
    };
    let mut options = AdminOptions::new(auth)
        .read_only(args.admin_read_only)
        .mode(if args.admin_production {
            Mode::Production
        } else {
            Mode::Development
        });
    if let Some(id) = &args.admin_server_id {
        options = options.server_id(id);
    }
    io.instrument(options).map_err(std::io::Error::other)
}

/// `join`, `leave` and `set-data` (see the top).
fn room_events(socket: &Socket) {
    socket.on("join", |socket, event| async move {
        if let Some(Value::String(room)) = event.args.json(0) {
            socket.join(room.as_str());
        }
        if let Some(ack) = event.ack {
            ack.send(());
        }
    });
    socket.on("leave", |socket, event| async move {
        if let Some(Value::String(room)) = event.args.json(0) {
            socket.leave(room);
        }
        if let Some(ack) = event.ack {
            ack.send(());
        }
    });
    socket.on("set-data", |socket, event| async move {
        socket.set_data(event.args.json(0).cloned().unwrap_or(Value::Null));
        if let Some(ack) = event.ack {
            ack.send(());
        }
    });
}

async fn greet(socket: Socket) {
    let _ = socket.emit("auth", socket.auth().clone());
}

fn data_json(d: Data) -> Value {
    match d.normalized() {
        Data::Json(v) => v,
        _ => Value::String("<binary>".into()),
    }
}

fn error(e: impl std::fmt::Display) -> Value {
    json!({"error": e.to_string()})
}

/// The cluster-wide events (see the table at the top).
fn cluster_events(socket: &Socket) {
    socket.on("broadcast", |socket, event| async move {
        let _ = socket.ns().emit("broadcast", event.args);
    });
    socket.on("to-room", |socket, event| async move {
        let mut args = event.args;
        let Some(Value::String(room)) = args.json(0).cloned() else {
            return;
        };
        args.0.remove(0);
        let _ = socket.ns().to(room).emit("broadcast", args);
    });
    socket.on("count", |socket, event| async move {
        let reply = match socket.ns().fetch_sockets().await {
            Ok(sockets) => json!(sockets.len()),
            Err(e) => error(e),
        };
        if let Some(ack) = event.ack {
            ack.send(reply);
        }
    });
    socket.on("join-all", |socket, event| async move {
        if let Some(Value::String(room)) = event.args.json(0) {
            socket.ns().sockets_join(room.as_str());
        }
        if let Some(ack) = event.ack {
            ack.send(());
        }
    });
    socket.on("rooms", |socket, event| async move {
        let mut rooms = socket.rooms();
        rooms.sort();
        if let Some(ack) = event.ack {
            ack.send(json!(rooms));
        }
    });
    socket.on("server-side-emit", |socket, event| async move {
        let reply = match socket.ns().server_side_emit("ping", event.args).await {
            Ok(answers) => json!(answers
                .into_iter()
                .map(|a| a.0.into_iter().next().map(data_json).unwrap_or(Value::Null))
                .collect::<Vec<_>>()),
            Err(e) => error(e),
        };
        if let Some(ack) = event.ack {
            ack.send(reply);
        }
    });
    socket.on("server-count", |socket, event| async move {
        let n = socket.ns().adapter().server_count().await;
        if let Some(ack) = event.ack {
            ack.send(json!(n));
        }
    });
    socket.on("all-rooms", |socket, event| async move {
        let reply = match socket.ns().adapter().all_rooms().await {
            Ok(mut rooms) => {
                rooms.sort();
                json!(rooms)
            }
            Err(e) => error(e),
        };
        if let Some(ack) = event.ack {
            ack.send(reply);
        }
    });
    socket.on("broadcast-with-ack", |socket, event| async move {
        let acks = socket
            .ns()
            .timeout(Duration::from_secs(2))
            .emit_with_ack("question", event.args)
            .await;
        let reply = match acks {
            Ok(acks) => {
                let mut responses: Vec<Value> = acks
                    .responses
                    .into_iter()
                    .map(|a| a.0.into_iter().next().map(data_json).unwrap_or(Value::Null))
                    .collect();
                responses.sort_by_key(|v| v.to_string());
                json!({"responses": responses, "missing": acks.missing})
            }
            Err(e) => error(e),
        };
        if let Some(ack) = event.ack {
            ack.send(reply);
        }
    });
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = Config::builder()
        .engine_with(|e| {
            e.ping_interval(Duration::from_millis(args.ping_interval))
                .ping_timeout(Duration::from_millis(args.ping_timeout))
                .max_payload(args.max_payload)
        })
        .connect_timeout(Duration::from_millis(args.connect_timeout));
    if !args.cors_origin.is_empty() {
        let origins = args.cors_origin.clone();
        config = config.engine_with(|e| {
            e.cors(engineio::Cors {
                origin: engineio::AllowOrigin::List(origins),
                credentials: true,
                max_age: None,
            })
        });
    }
    if args.recovery {
        config = config.recovery(Recovery::default());
    }
    let timeout = Duration::from_millis(args.redis_requests_timeout);
    let mut builder = SocketIo::builder(config.build());
    let mut ready: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> = None;
    let mut redis = None;
    if let Some(url) = args.redis.as_ref().or(args.redis_sharded.as_ref()) {
        let options = RedisAdapterConfig {
            requests_timeout: timeout,
            sharded: args.redis_sharded.is_some(),
            ..Default::default()
        };
        let factory = RedisAdapterFactory::connect(url, options)
            .await
            .map_err(std::io::Error::other)?;
        builder = builder.adapter(factory.clone());
        let subscribed = factory.clone();
        ready = Some(Box::pin(async move { subscribed.ready().await }));
        redis = Some(factory);
    }
    if let Some(url) = &args.redis_streams {
        let options = RedisStreamsConfig {
            requests_timeout: timeout,
            max_disconnection_duration: Recovery::default().max_disconnection_duration,
            ..Default::default()
        };
        let factory = RedisStreamsFactory::connect(url, options)
            .await
            .map_err(std::io::Error::other)?;
        builder = builder
            .adapter(factory.clone())
            .recovery_store(factory.session_store());
        ready = Some(Box::pin(async move { factory.ready().await }));
    }
    let io = builder.build();
    if args.admin {
        instrument(&io, &args)?;
    }

    let factory = redis.clone();
    io.of("/").on_connection(move |socket| {
        let factory = factory.clone();
        async move {
            greet(socket.clone()).await;
            if let Some(factory) = factory {
                socket.on("redis-stats", move |_socket, event| {
                    let s = factory.stats();
                    async move {
                        if let Some(ack) = event.ack {
                            ack.send(json!({
                                "connected": s.connected,
                                "outages": s.outages,
                                "reconnects": s.reconnects,
                                "dropped_publishes": s.dropped_publishes,
                            }));
                        }
                    }
                });
            }
            socket.on("message", |socket, event| async move {
                let _ = socket.emit("message-back", event.args);
            });
            socket.on("message-with-ack", |_socket, event| async move {
                if let Some(ack) = event.ack {
                    ack.send(event.args);
                }
            });
            cluster_events(&socket);
            room_events(&socket);
        }
    });
    let local = io.clone();
    io.of("/").on_server_side_emit(move |args: SioArgs| {
        let notify = args.json(0) == Some(&json!("notify"));
        let local = local.clone();
        async move {
            if notify {
                let rest = SioArgs(args.0.into_iter().skip(1).collect());
                let _ = local.of("/").local().emit("notified", rest);
                return None;
            }
            let got: Vec<Value> = args.0.into_iter().skip(1).map(data_json).collect();
            Some(SioArgs::from(json!({"node": "rust", "got": got})))
        }
    });
    io.of("/custom").on_connection(greet);
    if let Some(ready) = ready {
        ready.await;
    }

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{}/socket.io/", listener.local_addr()?);
    socketio::serve(
        listener,
        io,
        engineio::not_found(),
        engineio::shutdown_signal(),
    )
    .await
}
