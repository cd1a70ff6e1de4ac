//! Extractors: the typed arguments of handlers registered with
//! [`Socket::on_typed`](crate::Socket::on_typed) and
//! [`Namespace::on_connection_typed`](crate::Namespace::on_connection_typed).
//!
//! Each argument of such a handler is taken from the event (or, for a connection handler, from
//! the CONNECT) by its type:
//!
//! | extractor | event handler | connection handler |
//! | --- | --- | --- |
//! | [`Socket`] | the socket | the socket |
//! | [`Data<T>`] | the first argument, deserialised | the auth object, deserialised |
//! | [`Bin<T>`] | the binary attachments | — |
//! | [`AckSender`] | the acknowledgement, if the client asked for one | — |
//! | [`State<T>`] | a value given to [`Builder::state`](crate::Builder::state) | the same |
//! | [`Extension<T>`] | a value of the socket's [`Extensions`](crate::Extensions) | the same (set by a middleware) |
//! | [`Args`] | every argument, as they came | — |
//! | `Option<E>` | `E`, or `None` where `E` fails | the same |
//! | `Result<E, ExtractError>` | `E`, or why it failed | the same |
//!
//! **When an argument cannot be extracted, the handler is not called**, and:
//!
//! - for an event, an acknowledgement the client asked for is answered with one object,
//!   `{"error": message}` (the shape [`Socket::use_event`](crate::Socket::use_event) refusals
//!   have), where `message` is [`ExtractError::client_message`]: `"invalid payload: …"` for
//!   the payload ([`Data`], [`Bin`]), `"internal error"` for a state or extension the server
//!   lacks; the socket stays connected;
//! - for a connection, the client is refused with CONNECT_ERROR
//!   `{"message": message}` (a string for an old Socket.IO v4 client), as a middleware's
//!   refusal;
//! - a `tracing` event is logged: `debug` for a payload (the client's doing, so it cannot fill
//!   the logs), `warn` for a missing state or extension (the server's).
//!
//! Nothing panics. To handle a bad payload yourself (to count it, or to answer in your own
//! error format), take `Result<Data<T>, ExtractError>`.
//!
//! [`Data`] here is the extractor; the crate root's [`crate::Data`] is a decoded packet
//! value.
//!
//! ```no_run
//! use serde::Deserialize;
//! use socketio::extract::{AckSender, Bin, Data, Extension, State};
//! use socketio::{Config, Socket, SocketIo};
//!
//! #[derive(Deserialize)]
//! struct Auth { name: String }
//! #[derive(Deserialize)]
//! struct Msg { room: String, text: String }
//! struct Motd(String);
//! struct User(String);
//!
//! let io = SocketIo::builder(Config::default())
//!     .state(Motd("welcome".into()))
//!     .build();
//! // A CONNECT whose auth is not `{"name": "…"}` is refused with CONNECT_ERROR.
//! io.of("/").on_connection_typed(
//!     |socket: Socket, Data(auth): Data<Auth>, State(motd): State<Motd>| {
//!         socket.extensions().insert(User(auth.name));
//!         let _ = socket.emit("motd", motd.0.as_str());
//!         // Synchronous: nothing is awaited.
//!         socket.on_typed("message", |socket: Socket, Data(msg): Data<Msg>, Extension(user): Extension<User>| {
//!             let _ = socket.to(msg.room.as_str()).emit("message", (user.0.as_str(), msg.text.as_str()));
//!         });
//!         // Asynchronous: returns a future.
//!         socket.on_typed("upload", |Bin(files): Bin, ack: AckSender| async move {
//!             let total: usize = files.iter().map(|f| f.len()).sum();
//!             ack.send(serde_json::json!(total));
//!         });
//!     },
//! );
//! ```

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::ack::Ack;
use crate::args::Args;
use crate::packet::Data as Payload;
use crate::socket::{Event, Socket};

/// Why a handler's argument could not be extracted; see the [module](self) for what follows.
///
/// ```
/// use socketio::extract::ExtractError;
/// let err = ExtractError::MissingArgument;
/// assert_eq!(err.to_string(), "invalid payload: missing argument");
/// assert!(err.is_payload());
/// assert_eq!(err.client_message(), "invalid payload: missing argument");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// [`Data<T>`]: the event has no argument, and `T` does not accept `null` (an `Option`
    /// does).
    #[error("invalid payload: missing argument")]
    MissingArgument,
    /// [`Data<T>`]: the argument (or the auth object) does not deserialise into `T`.
    #[error("invalid payload: {0}")]
    InvalidPayload(serde_json::Error),
    /// [`Bin<T>`]: not as many binary attachments as `T` takes.
    #[error("invalid payload: {0}")]
    BinaryCount(BinaryCount),
    /// [`State<T>`]: no state of this type was given to the server's builder.
    #[error("no state of type {0}")]
    MissingState(&'static str),
    /// [`Extension<T>`]: the socket holds no extension of this type.
    #[error("no extension of type {0}")]
    MissingExtension(&'static str),
}

impl ExtractError {
    /// Whether the client's payload is at fault ([`Data`], [`Bin`]); otherwise the server
    /// lacks a state or an extension.
    ///
    /// ```
    /// use socketio::extract::ExtractError;
    /// assert!(!ExtractError::MissingState("app::Db").is_payload());
    /// ```
    pub fn is_payload(&self) -> bool {
        matches!(
            self,
            ExtractError::MissingArgument
                | ExtractError::InvalidPayload(_)
                | ExtractError::BinaryCount(_)
        )
    }

    /// What the client is told: the error itself for a payload, `"internal error"` otherwise
    /// (type names stay in the server's log).
    ///
    /// ```
    /// use socketio::extract::ExtractError;
    /// assert_eq!(ExtractError::MissingExtension("app::User").client_message(), "internal error");
    /// ```
    pub fn client_message(&self) -> String {
        if self.is_payload() {
            self.to_string()
        } else {
            String::from("internal error")
        }
    }
}

/// How many binary attachments a [`Bin<T>`] takes, and how many came.
///
/// ```
/// use socketio::extract::BinaryCount;
/// let count = BinaryCount { min: 1, max: 1, got: 0 };
/// assert_eq!(count.to_string(), "expected 1 binary attachment, got 0");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinaryCount {
    /// Fewest taken.
    pub min: usize,
    /// Most taken.
    pub max: usize,
    /// How many came.
    pub got: usize,
}

impl std::fmt::Display for BinaryCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (min, max) = (self.min, self.max);
        let s = |n: usize| if n == 1 { "" } else { "s" };
        if min == max {
            write!(f, "expected {min} binary attachment{}", s(min))?;
        } else if min == 0 {
            write!(f, "expected at most {max} binary attachment{}", s(max))?;
        } else {
            write!(f, "expected {min} to {max} binary attachments")?;
        }
        write!(f, ", got {}", self.got)
    }
}

/// An event being handled, as extractors see it: the socket, the event name, its arguments
/// and its acknowledgement.
///
/// Implement [`FromEvent`] on a type of your own to take it as a handler argument:
///
/// ```
/// use socketio::extract::{EventParts, ExtractError, FromEvent};
///
/// /// How many arguments the event had.
/// struct ArgCount(usize);
///
/// impl FromEvent for ArgCount {
///     fn from_event(parts: &mut EventParts) -> Result<Self, ExtractError> {
///         Ok(ArgCount(parts.args().len()))
///     }
/// }
/// ```
#[derive(Debug)]
pub struct EventParts {
    socket: Socket,
    name: String,
    args: Args,
    ack: Option<Ack>,
    ack_id: Option<u64>,
}

impl EventParts {
    pub(crate) fn new(socket: Socket, event: Event) -> Self {
        EventParts {
            socket,
            name: event.name,
            args: event.args,
            ack_id: event.ack.as_ref().map(Ack::id),
            ack: event.ack,
        }
    }

    /// The socket the event came from.
    ///
    /// ```
    /// # use socketio::extract::EventParts;
    /// # fn f(parts: &EventParts) { let _ = parts.socket().id(); }
    /// ```
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// The event name.
    ///
    /// ```
    /// # use socketio::extract::EventParts;
    /// # fn f(parts: &EventParts) { let _: &str = parts.event(); }
    /// ```
    pub fn event(&self) -> &str {
        &self.name
    }

    /// The arguments after the name.
    ///
    /// ```
    /// # use socketio::extract::EventParts;
    /// # fn f(parts: &EventParts) { let _ = parts.args().len(); }
    /// ```
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// Takes the acknowledgement the client asked for (`None` if it did not, or if an earlier
    /// argument took it). Should extraction fail later, the client still gets its error
    /// answer: the handler, which would have answered, is not called.
    ///
    /// ```
    /// # use socketio::extract::EventParts;
    /// # fn f(parts: &mut EventParts) { if let Some(ack) = parts.take_ack() { ack.send("ok"); } }
    /// ```
    pub fn take_ack(&mut self) -> Option<Ack> {
        self.ack.take()
    }

    /// The event is not handled: logs why and answers the ack the client asked for.
    pub(crate) fn reject(self, err: ExtractError) {
        if err.is_payload() {
            tracing::debug!(socket = %self.socket.id(), event = %self.name, error = %err, "event not handled: invalid payload");
        } else {
            tracing::warn!(socket = %self.socket.id(), event = %self.name, error = %err, "event not handled");
        }
        if let Some(id) = self.ack_id {
            let ack = Ack {
                socket: self.socket,
                id,
            };
            ack.send(serde_json::json!({ "error": err.client_message() }));
        }
    }
}

/// A handler argument taken from an event; see the [module](self) for the ones provided.
pub trait FromEvent: Sized {
    /// Takes the argument from the event, or says why it cannot.
    ///
    /// ```
    /// use socketio::extract::{EventParts, ExtractError, FromEvent};
    /// struct Name(String);
    /// impl FromEvent for Name {
    ///     fn from_event(parts: &mut EventParts) -> Result<Self, ExtractError> {
    ///         Ok(Name(parts.event().to_owned()))
    ///     }
    /// }
    /// ```
    fn from_event(parts: &mut EventParts) -> Result<Self, ExtractError>;
}

/// A connection handler argument taken from a socket about to be connected (its auth object,
/// the server's state, the extensions its middlewares set).
pub trait FromConnect: Sized {
    /// Takes the argument, or says why it cannot (the client is then refused).
    ///
    /// ```
    /// use socketio::extract::{ExtractError, FromConnect};
    /// use socketio::Socket;
    /// struct Secure(bool);
    /// impl FromConnect for Secure {
    ///     fn from_connect(socket: &Socket) -> Result<Self, ExtractError> {
    ///         Ok(Secure(socket.handshake().secure))
    ///     }
    /// }
    /// ```
    fn from_connect(socket: &Socket) -> Result<Self, ExtractError>;
}

impl FromEvent for Socket {
    fn from_event(parts: &mut EventParts) -> Result<Self, ExtractError> {
        Ok(parts.socket.clone())
    }
}

impl FromConnect for Socket {
    fn from_connect(socket: &Socket) -> Result<Self, ExtractError> {
        Ok(socket.clone())
    }
}

impl FromEvent for Args {
    fn from_event(parts: &mut EventParts) -> Result<Self, ExtractError> {
        Ok(parts.args.clone())
    }
}

impl<E: FromEvent> FromEvent for Option<E> {
    fn from_event(parts: &mut EventParts) -> Result<Self, ExtractError> {
        Ok(E::from_event(parts).ok())
    }
}

impl<E: FromConnect> FromConnect for Option<E> {
    fn from_connect(socket: &Socket) -> Result<Self, ExtractError> {
        Ok(E::from_connect(socket).ok())
    }
}

impl<E: FromEvent> FromEvent for Result<E, ExtractError> {
    fn from_event(parts: &mut EventParts) -> Result<Self, ExtractError> {
        Ok(E::from_event(parts))
    }
}

impl<E: FromConnect> FromConnect for Result<E, ExtractError> {
    fn from_connect(socket: &Socket) -> Result<Self, ExtractError> {
        Ok(E::from_connect(socket))
    }
}

/// Typed data: an event's first argument, or a connection's auth object, deserialised with
/// serde.
///
/// - An event with no argument gives `T` from `null`: `Data<Option<T>>` takes it as `None`,
///   other types fail with [`ExtractError::MissingArgument`]. Further arguments are left to
///   [`Args`].
/// - Binary attachments inside the argument appear as their wire placeholder,
///   `{"_placeholder": true, "num": n}`, where `n` is their index in [`Bin`].
/// - The auth object is `{}` when the client sent none.
///
/// ```no_run
/// use serde::Deserialize;
/// use socketio::extract::Data;
/// use socketio::Socket;
///
/// #[derive(Deserialize)]
/// struct Join { room: String }
///
/// # fn f(socket: Socket) {
/// socket.on_typed("join", |socket: Socket, Data(join): Data<Join>| socket.join(join.room));
/// // No argument, or `null`: `None`.
/// socket.on_typed("list", |Data(filter): Data<Option<String>>| println!("{filter:?}"));
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Data<T>(pub T);

impl<T: DeserializeOwned> FromEvent for Data<T> {
    fn from_event(parts: &mut EventParts) -> Result<Self, ExtractError> {
        match parts.args.data(0) {
            None => T::deserialize(&Value::Null)
                .map(Data)
                .map_err(|_| ExtractError::MissingArgument),
            Some(Payload::Json(v)) => T::deserialize(v)
                .map(Data)
                .map_err(ExtractError::InvalidPayload),
            Some(with_binary) => T::deserialize(with_placeholders(with_binary, &mut 0))
                .map(Data)
                .map_err(ExtractError::InvalidPayload),
        }
    }
}

impl<T: DeserializeOwned> FromConnect for Data<T> {
    fn from_connect(socket: &Socket) -> Result<Self, ExtractError> {
        T::deserialize(socket.auth())
            .map(Data)
            .map_err(ExtractError::InvalidPayload)
    }
}

/// A value as it was on the wire: binary attachments as their numbered placeholders.
fn with_placeholders(data: &Payload, next: &mut usize) -> Value {
    match data {
        Payload::Json(v) => v.clone(),
        Payload::Binary(_) => {
            let mut placeholder = Map::with_capacity(2);
            placeholder.insert("_placeholder".into(), Value::Bool(true));
            placeholder.insert("num".into(), Value::from(*next));
            *next += 1;
            Value::Object(placeholder)
        }
        Payload::Array(items) => {
            Value::Array(items.iter().map(|d| with_placeholders(d, next)).collect())
        }
        Payload::Object(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), with_placeholders(v, next)))
                .collect(),
        ),
    }
}

fn collect_binaries(data: &Payload, out: &mut Vec<Bytes>) {
    match data {
        Payload::Json(_) => {}
        Payload::Binary(b) => out.push(b.clone()),
        Payload::Array(items) => items.iter().for_each(|d| collect_binaries(d, out)),
        Payload::Object(entries) => entries.iter().for_each(|(_, d)| collect_binaries(d, out)),
    }
}

/// The binary attachments of an event (JS `Buffer`, `ArrayBuffer`, typed arrays), in the
/// order they appear in its arguments, depth first: `Bin` (every one, possibly none),
/// `Bin<Bytes>` (exactly one), `Bin<Option<Bytes>>` (at most one), `Bin<[Bytes; N]>`
/// (exactly `N`). Another count fails with [`ExtractError::BinaryCount`].
///
/// ```no_run
/// use bytes::Bytes;
/// use socketio::extract::{AckSender, Bin};
/// # fn f(socket: socketio::Socket) {
/// // socket.emit("avatar", new Uint8Array([1, 2, 3]), (n) => …) on the client.
/// socket.on_typed("avatar", |Bin(image): Bin<Bytes>, ack: AckSender| ack.send(serde_json::json!(image.len())));
/// socket.on_typed("files", |Bin(files): Bin| println!("{} files", files.len()));
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bin<T = Vec<Bytes>>(pub T);

/// What [`Bin<T>`] can hold: the attachments, counted.
pub trait FromBinaries: Sized {
    /// Takes the attachments, or says that there are not as many as it takes.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use socketio::extract::FromBinaries;
    /// let two = vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")];
    /// assert!(<[Bytes; 2]>::from_binaries(two.clone()).is_ok());
    /// assert!(Bytes::from_binaries(two).is_err());
    /// ```
    fn from_binaries(binaries: Vec<Bytes>) -> Result<Self, ExtractError>;
}

fn count_error(min: usize, max: usize, got: usize) -> ExtractError {
    ExtractError::BinaryCount(BinaryCount { min, max, got })
}

impl FromBinaries for Vec<Bytes> {
    fn from_binaries(binaries: Vec<Bytes>) -> Result<Self, ExtractError> {
        Ok(binaries)
    }
}

impl FromBinaries for Bytes {
    fn from_binaries(binaries: Vec<Bytes>) -> Result<Self, ExtractError> {
        let got = binaries.len();
        match <[Bytes; 1]>::try_from(binaries) {
            Ok([one]) => Ok(one),
            Err(_) => Err(count_error(1, 1, got)),
        }
    }
}

impl FromBinaries for Option<Bytes> {
    fn from_binaries(mut binaries: Vec<Bytes>) -> Result<Self, ExtractError> {
        if binaries.len() > 1 {
            return Err(count_error(0, 1, binaries.len()));
        }
        Ok(binaries.pop())
    }
}

impl<const N: usize> FromBinaries for [Bytes; N] {
    fn from_binaries(binaries: Vec<Bytes>) -> Result<Self, ExtractError> {
        let got = binaries.len();
        <[Bytes; N]>::try_from(binaries).map_err(|_| count_error(N, N, got))
    }
}

impl<T: FromBinaries> FromEvent for Bin<T> {
    fn from_event(parts: &mut EventParts) -> Result<Self, ExtractError> {
        let mut binaries = Vec::new();
        for arg in &parts.args.0 {
            collect_binaries(arg, &mut binaries);
        }
        T::from_binaries(binaries).map(Bin)
    }
}

/// The acknowledgement of an event: [`AckSender::send`] answers the client's callback, and
/// does nothing when the client asked for none. Dropping it unsent leaves the callback
/// uncalled (the client's own timeout applies).
///
/// ```no_run
/// use socketio::extract::AckSender;
/// # fn f(socket: socketio::Socket) {
/// socket.on_typed("ping", |ack: AckSender| ack.send("pong"));
/// # }
/// ```
#[derive(Debug)]
pub struct AckSender(Option<Ack>);

impl AckSender {
    /// Answers the callback with these arguments, if the client asked for an answer.
    ///
    /// ```
    /// # fn f(ack: socketio::extract::AckSender) {
    /// ack.send((serde_json::json!({"ok": true}), "second argument"));
    /// # }
    /// ```
    pub fn send(self, args: impl Into<Args>) {
        if let Some(ack) = self.0 {
            ack.send(args);
        }
    }

    /// Whether the client asked for an answer.
    ///
    /// ```
    /// # fn f(ack: socketio::extract::AckSender) {
    /// if !ack.requested() { return; }
    /// # }
    /// ```
    pub fn requested(&self) -> bool {
        self.0.is_some()
    }

    /// The acknowledgement itself.
    ///
    /// ```
    /// # fn f(ack: socketio::extract::AckSender) {
    /// let _id: Option<u64> = ack.into_inner().map(|a| a.id());
    /// # }
    /// ```
    pub fn into_inner(self) -> Option<Ack> {
        self.0
    }
}

impl FromEvent for AckSender {
    fn from_event(parts: &mut EventParts) -> Result<Self, ExtractError> {
        Ok(AckSender(parts.take_ack()))
    }
}

/// Application state given to the server's [`Builder::state`](crate::Builder::state), shared
/// by every handler: a handle on the one value (register `T`, not `Arc<T>`).
///
/// ```no_run
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use socketio::extract::State;
/// use socketio::{Config, Socket, SocketIo};
///
/// #[derive(Default)]
/// struct Stats { messages: AtomicU64 }
///
/// let io = SocketIo::builder(Config::default()).state(Stats::default()).build();
/// io.of("/").on_connection_typed(|socket: Socket| {
///     socket.on_typed("message", |State(stats): State<Stats>| {
///         stats.messages.fetch_add(1, Ordering::Relaxed);
///     });
/// });
/// ```
#[derive(Debug)]
pub struct State<T>(pub std::sync::Arc<T>);

impl<T> Clone for State<T> {
    fn clone(&self) -> Self {
        State(self.0.clone())
    }
}

impl<T> std::ops::Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

fn state<T: Send + Sync + 'static>(socket: &Socket) -> Result<State<T>, ExtractError> {
    socket
        .inner
        .ns
        .server
        .upgrade()
        .and_then(|server| server.state.get::<T>())
        .map(State)
        .ok_or(ExtractError::MissingState(std::any::type_name::<T>()))
}

impl<T: Send + Sync + 'static> FromEvent for State<T> {
    fn from_event(parts: &mut EventParts) -> Result<Self, ExtractError> {
        state(&parts.socket)
    }
}

impl<T: Send + Sync + 'static> FromConnect for State<T> {
    fn from_connect(socket: &Socket) -> Result<Self, ExtractError> {
        state(socket)
    }
}

/// A value of the socket's [`Extensions`](crate::Extensions) (per-socket typed state), by
/// type. Take `Option<Extension<T>>` where it may be absent: in a connection handler, a socket
/// restored by connection state recovery skipped the middlewares and has no extensions.
///
/// ```no_run
/// use socketio::extract::{Extension, State};
/// use socketio::{Namespace, Socket};
///
/// struct User { name: String }
///
/// # fn f(ns: Namespace) {
/// ns.middleware(|socket: Socket| async move {
///     socket.extensions().insert(User { name: "ann".into() });
///     Ok(())
/// });
/// ns.on_connection_typed(|socket: Socket, Extension(user): Extension<User>| {
///     println!("{} is here", user.name);
///     socket.on_typed("whoami", |socket: Socket, Extension(user): Extension<User>| {
///         let _ = socket.emit("you", user.name.as_str());
///     });
/// });
/// # }
/// ```
#[derive(Debug)]
pub struct Extension<T>(pub std::sync::Arc<T>);

impl<T> Clone for Extension<T> {
    fn clone(&self) -> Self {
        Extension(self.0.clone())
    }
}

impl<T> std::ops::Deref for Extension<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

fn extension<T: Send + Sync + 'static>(socket: &Socket) -> Result<Extension<T>, ExtractError> {
    socket
        .extensions()
        .get::<T>()
        .map(Extension)
        .ok_or(ExtractError::MissingExtension(std::any::type_name::<T>()))
}

impl<T: Send + Sync + 'static> FromEvent for Extension<T> {
    fn from_event(parts: &mut EventParts) -> Result<Self, ExtractError> {
        extension(&parts.socket)
    }
}

impl<T: Send + Sync + 'static> FromConnect for Extension<T> {
    fn from_connect(socket: &Socket) -> Result<Self, ExtractError> {
        extension(socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bin(b: &'static [u8]) -> Payload {
        Payload::Binary(Bytes::from_static(b))
    }

    #[test]
    fn placeholders_are_numbered_depth_first() {
        let arg = Payload::Object(vec![
            ("a".into(), bin(b"1")),
            (
                "b".into(),
                Payload::Array(vec![Payload::Json(json!(1)), bin(b"2")]),
            ),
        ]);
        assert_eq!(
            with_placeholders(&arg, &mut 0),
            json!({
                "a": {"_placeholder": true, "num": 0},
                "b": [1, {"_placeholder": true, "num": 1}],
            })
        );
        let mut out = Vec::new();
        collect_binaries(&arg, &mut out);
        assert_eq!(
            out,
            vec![Bytes::from_static(b"1"), Bytes::from_static(b"2")]
        );
    }

    #[test]
    fn binary_counts() {
        let one = || vec![Bytes::from_static(b"x")];
        assert!(Bytes::from_binaries(one()).is_ok());
        assert_eq!(
            Bytes::from_binaries(Vec::new()).map_err(|e| e.to_string()),
            Err("invalid payload: expected 1 binary attachment, got 0".into())
        );
        assert_eq!(Option::<Bytes>::from_binaries(Vec::new()).ok(), Some(None));
        assert_eq!(
            Option::<Bytes>::from_binaries([one(), one()].concat()).map_err(|e| e.to_string()),
            Err("invalid payload: expected at most 1 binary attachment, got 2".into())
        );
        assert_eq!(
            <[Bytes; 2]>::from_binaries(one()).map_err(|e| e.to_string()),
            Err("invalid payload: expected 2 binary attachments, got 1".into())
        );
        assert_eq!(
            BinaryCount {
                min: 1,
                max: 3,
                got: 0
            }
            .to_string(),
            "expected 1 to 3 binary attachments, got 0"
        );
    }

    #[test]
    fn client_messages_hide_type_names() {
        let err = ExtractError::MissingState("app::Db");
        assert_eq!(err.to_string(), "no state of type app::Db");
        assert_eq!(err.client_message(), "internal error");
        let bad = serde_json::from_value::<u8>(json!("x")).map_err(ExtractError::InvalidPayload);
        let msg = bad
            .map_err(|e| e.client_message())
            .err()
            .unwrap_or_default();
        assert!(
            msg.starts_with("invalid payload: invalid type: string"),
            "{msg}"
        );
    }
}
