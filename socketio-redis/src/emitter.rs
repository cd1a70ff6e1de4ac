//! An emitter for programs without a Socket.IO server, as `@socket.io/redis-emitter` 5.1.

use redis::aio::ConnectionManager;
use redis::RedisError;
use serde_json::{json, Map, Value};
use socketio::{Args, Data, IntoRooms, Room};

use crate::msgpack;
use crate::proto::{self, kind};

/// The uid the emitter's messages carry.
pub const EMITTER_UID: &str = "emitter";

/// Event names the clients reserve (as the Node emitter refuses them).
const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Why an emitter call failed.
#[derive(Debug, thiserror::Error)]
pub enum EmitterError {
    /// `connect`, `disconnect` and the other reserved names cannot be emitted.
    #[error("\"{0}\" is a reserved event name")]
    ReservedEvent(String),
    /// The arguments cannot be encoded.
    #[error("cannot encode: {0}")]
    Encode(#[from] msgpack::CodecError),
    /// Redis did not take the message.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
}

/// Emits into a cluster of Socket.IO servers on the classic Redis adapter (these servers with
/// [`RedisAdapterFactory`](crate::RedisAdapterFactory), Node servers with
/// `@socket.io/redis-adapter`) without being a server: what it publishes is byte for byte what
/// `@socket.io/redis-emitter` 5.1 publishes. It does not subscribe, so the servers do not
/// count it; acknowledgements are not supported. Cheap to clone.
///
/// ```no_run
/// use serde_json::json;
/// use socketio_redis::Emitter;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let emitter = Emitter::connect("redis://127.0.0.1:6379/").await?;
/// // Every client of "/" in room "news", on every node.
/// emitter.to("news").emit("headline", json!({"title": "hello"})).await?;
/// // Namespace "/admin", everyone but room "muted", may be dropped.
/// emitter.of("/admin").except("muted").volatile().emit("tick", json!(1)).await?;
/// // Make the sockets of room "news" join "archive", and disconnect room "banned".
/// emitter.to("news").sockets_join("archive").await?;
/// emitter.to("banned").disconnect_sockets(true).await?;
/// // An event for the servers' `on_server_side_emit` listeners.
/// emitter.server_side_emit("reload", "config").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Emitter {
    conn: ConnectionManager,
    key: String,
    nsp: String,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("key", &self.key)
            .field("nsp", &self.nsp)
            .finish()
    }
}

impl Emitter {
    /// Connects to Redis (`redis://host:port/db`) with the default key prefix `socket.io`,
    /// namespace `/`. The connection reconnects by itself.
    pub async fn connect(url: &str) -> Result<Self, RedisError> {
        let conn = redis::Client::open(url)?.get_connection_manager().await?;
        Ok(Emitter::new(conn))
    }

    /// An emitter on an existing connection, key prefix `socket.io`, namespace `/`.
    pub fn new(conn: ConnectionManager) -> Self {
        Emitter {
            conn,
            key: "socket.io".to_owned(),
            nsp: "/".to_owned(),
        }
    }

    /// The same emitter with another key prefix (the servers' `key`).
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// The namespace this emitter targets.
    pub fn namespace(&self) -> &str {
        &self.nsp
    }

    /// An emitter for namespace `nsp` (a leading `/` is added when missing).
    pub fn of(&self, nsp: &str) -> Emitter {
        let nsp = if nsp.starts_with('/') {
            nsp.to_owned()
        } else {
            format!("/{nsp}")
        };
        Emitter {
            conn: self.conn.clone(),
            key: self.key.clone(),
            nsp,
        }
    }

    fn operator(&self) -> EmitterOperator {
        EmitterOperator {
            emitter: self.clone(),
            rooms: Vec::new(),
            except: Vec::new(),
            flags: Vec::new(),
        }
    }

    /// Targets the sockets in these rooms (Node's `to` and `in`).
    pub fn to(&self, rooms: impl IntoRooms) -> EmitterOperator {
        self.operator().to(rooms)
    }

    /// Targets every socket but those in these rooms.
    pub fn except(&self, rooms: impl IntoRooms) -> EmitterOperator {
        self.operator().except(rooms)
    }

    /// The event may be dropped for clients that cannot take it now.
    pub fn volatile(&self) -> EmitterOperator {
        self.operator().volatile()
    }

    /// Sets the `compress` flag (Node servers honour it; these servers ignore it).
    pub fn compress(&self, compress: bool) -> EmitterOperator {
        self.operator().compress(compress)
    }

    /// Emits an event to every socket of the namespace.
    pub async fn emit(&self, event: &str, args: impl Into<Args>) -> Result<(), EmitterError> {
        self.operator().emit(event, args).await
    }

    /// Makes every socket of the namespace join rooms.
    pub async fn sockets_join(&self, rooms: impl IntoRooms) -> Result<(), EmitterError> {
        self.operator().sockets_join(rooms).await
    }

    /// Makes every socket of the namespace leave rooms.
    pub async fn sockets_leave(&self, rooms: impl IntoRooms) -> Result<(), EmitterError> {
        self.operator().sockets_leave(rooms).await
    }

    /// Disconnects every socket of the namespace (`close`: also close their connections).
    pub async fn disconnect_sockets(&self, close: bool) -> Result<(), EmitterError> {
        self.operator().disconnect_sockets(close).await
    }

    /// Sends an event to the server-side listeners of every server (never to clients); no
    /// answers.
    pub async fn server_side_emit(
        &self,
        event: &str,
        args: impl Into<Args>,
    ) -> Result<(), EmitterError> {
        let mut data = vec![Value::String(event.to_owned())];
        data.extend(args.into().0.into_iter().map(proto::to_json));
        let request = json!({"uid": EMITTER_UID, "type": kind::SERVER_SIDE_EMIT, "data": data});
        self.publish(self.request_channel(), request.to_string().into_bytes())
            .await
    }

    fn broadcast_channel(&self) -> String {
        format!("{}#{}#", self.key, self.nsp)
    }

    fn request_channel(&self) -> String {
        format!("{}-request#{}#", self.key, self.nsp)
    }

    async fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), EmitterError> {
        let mut conn = self.conn.clone();
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }
}

/// Rooms, exceptions and flags chosen on an [`Emitter`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct EmitterOperator {
    emitter: Emitter,
    rooms: Vec<Room>,
    except: Vec<Room>,
    /// In the order first set, as a JavaScript object keeps them.
    flags: Vec<(&'static str, bool)>,
}

fn add_unique(set: &mut Vec<Room>, rooms: impl IntoRooms) {
    for room in rooms.into_rooms() {
        if !set.contains(&room) {
            set.push(room);
        }
    }
}

impl EmitterOperator {
    /// Also targets the sockets in these rooms.
    pub fn to(mut self, rooms: impl IntoRooms) -> Self {
        add_unique(&mut self.rooms, rooms);
        self
    }

    /// Leaves out the sockets in these rooms.
    pub fn except(mut self, rooms: impl IntoRooms) -> Self {
        add_unique(&mut self.except, rooms);
        self
    }

    fn flag(mut self, name: &'static str, value: bool) -> Self {
        match self.flags.iter_mut().find(|(n, _)| *n == name) {
            Some(f) => f.1 = value,
            None => self.flags.push((name, value)),
        }
        self
    }

    /// The event may be dropped for clients that cannot take it now.
    pub fn volatile(self) -> Self {
        self.flag("volatile", true)
    }

    /// Sets the `compress` flag (Node servers honour it; these servers ignore it).
    pub fn compress(self, compress: bool) -> Self {
        self.flag("compress", compress)
    }

    /// The bytes and channel of the broadcast `emit` publishes.
    pub fn encode_emit(
        &self,
        event: &str,
        args: impl Into<Args>,
    ) -> Result<(String, Vec<u8>), EmitterError> {
        if RESERVED_EVENTS.contains(&event) {
            return Err(EmitterError::ReservedEvent(event.to_owned()));
        }
        let mut data = vec![Data::from(event)];
        data.extend(args.into().0);
        let packet = Data::Object(vec![
            ("type".to_owned(), Data::Json(json!(2))),
            ("data".to_owned(), Data::Array(data)),
            ("nsp".to_owned(), Data::from(self.emitter.nsp.as_str())),
        ]);
        let flags: Map<String, Value> = self
            .flags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::Bool(*v)))
            .collect();
        let opts = json!({"rooms": self.rooms, "flags": flags, "except": self.except});
        let msg = Data::Array(vec![Data::from(EMITTER_UID), packet, Data::Json(opts)]);
        let mut channel = self.emitter.broadcast_channel();
        if let [room] = self.rooms.as_slice() {
            channel.push_str(room);
            channel.push('#');
        }
        Ok((channel, msgpack::encode(&msg)?))
    }

    /// Emits an event to the selected sockets of every server.
    pub async fn emit(&self, event: &str, args: impl Into<Args>) -> Result<(), EmitterError> {
        let (channel, bytes) = self.encode_emit(event, args)?;
        self.emitter.publish(channel, bytes).await
    }

    fn selector(&self) -> Value {
        json!({"rooms": self.rooms, "except": self.except})
    }

    /// The JSON request `sockets_join` (`leave` false) or `sockets_leave` publishes.
    pub fn encode_rooms_request(&self, leave: bool, rooms: impl IntoRooms) -> Vec<u8> {
        let kind = if leave {
            kind::REMOTE_LEAVE
        } else {
            kind::REMOTE_JOIN
        };
        json!({"type": kind, "opts": self.selector(), "rooms": rooms.into_rooms()})
            .to_string()
            .into_bytes()
    }

    /// The JSON request `disconnect_sockets` publishes.
    pub fn encode_disconnect(&self, close: bool) -> Vec<u8> {
        json!({"type": kind::REMOTE_DISCONNECT, "opts": self.selector(), "close": close})
            .to_string()
            .into_bytes()
    }

    /// Makes the selected sockets join rooms.
    pub async fn sockets_join(&self, rooms: impl IntoRooms) -> Result<(), EmitterError> {
        let bytes = self.encode_rooms_request(false, rooms);
        self.emitter
            .publish(self.emitter.request_channel(), bytes)
            .await
    }

    /// Makes the selected sockets leave rooms.
    pub async fn sockets_leave(&self, rooms: impl IntoRooms) -> Result<(), EmitterError> {
        let bytes = self.encode_rooms_request(true, rooms);
        self.emitter
            .publish(self.emitter.request_channel(), bytes)
            .await
    }

    /// Disconnects the selected sockets (`close`: also close their connections).
    pub async fn disconnect_sockets(&self, close: bool) -> Result<(), EmitterError> {
        let bytes = self.encode_disconnect(close);
        self.emitter
            .publish(self.emitter.request_channel(), bytes)
            .await
    }
}
