//! A Redis adapter for the [`socketio`] crate that speaks the protocol of Node's
//! `@socket.io/redis-adapter` 8.3 (the classic `createAdapter`), so that these servers and
//! Node.js socket.io 4.x servers form one cluster, and `@socket.io/redis-emitter` 5.x reaches
//! them all.
//!
//! What goes through Redis, per namespace `N` and key prefix `P` (`socket.io` by default):
//!
//! - broadcasts, as MessagePack `[uid, {type: 2, data, nsp}, {rooms, except, flags}]` on
//!   `P#N#` (or `P#N#<room>#` when exactly one room is targeted); each node delivers them to
//!   its own sockets. `local` broadcasts stay on this node.
//! - requests on `P-request#N#` (JSON, or MessagePack for broadcasts with acks) and their
//!   replies on `P-response#N#`: `fetch_sockets`, `all_rooms`, `sockets_join`,
//!   `sockets_leave`, `disconnect_sockets`, `server_side_emit` and broadcasts with acks.
//! - the server count, `PUBSUB NUMSUB P-request#N#`.
//!
//! Requests to other nodes time out after [`RedisAdapterConfig::requests_timeout`] with an
//! [`AdapterError`](socketio::adapter::AdapterError). Publishing never waits for Redis: messages
//! go through a bounded queue to a publishing task, and are dropped (with a warning) when it is
//! full. The connections reconnect and resubscribe by themselves; what is published while Redis
//! is unreachable is lost, as with the Node adapter.
//!
//! The [`streams`] module holds the other protocol, that of `@socket.io/redis-streams-adapter`
//! 0.3: messages through a Redis stream, and connection state recovery across nodes (sessions
//! and missed packets in Redis, readable by Node nodes too).
//!
//! Differences from Node worth knowing: [`server_side_emit`](socketio::Namespace::server_side_emit)
//! always asks for answers (Node listeners receive an acknowledgement callback as their last
//! argument), and these nodes always answer such requests, with no data when the listener gives
//! none. Connection state recovery does not work across nodes with this protocol (use [`streams`]).
//!
//! ```no_run
//! use socketio::{Config, SocketIo};
//! use socketio_redis::{RedisAdapterConfig, RedisAdapterFactory};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = RedisAdapterFactory::connect("redis://127.0.0.1:6379/", RedisAdapterConfig::default())
//!     .await?;
//! let io = SocketIo::builder(Config::default()).adapter(redis.clone()).build();
//! io.of("/").on_connection(|socket| async move {
//!     socket.on("chat", |socket, event| async move {
//!         // Reaches every client of the namespace, on every node of the cluster.
//!         let _ = socket.ns().emit("chat", event.args);
//!     });
//! });
//! // Subscribed: the other nodes count this one and reach its clients.
//! redis.ready().await;
//! let count = io.of("/").adapter().server_count().await;
//! println!("{count} nodes");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod adapter;
mod emitter;
pub mod msgpack;
pub mod proto;
pub mod sharded;
pub mod streams;

pub use adapter::{RedisAdapter, RedisAdapterConfig, RedisAdapterFactory, RedisStats};
pub use emitter::{Emitter, EmitterError, EmitterOperator, EMITTER_UID};
pub use redis::RedisError;
pub use sharded::ShardedAdapter;
