//! Namespaces: their middlewares, connection handler, sockets and adapter.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};

use serde_json::Value;

use crate::adapter::{Adapter, BroadcastOptions, LocalNamespace};
use crate::args::Args;
use crate::broadcast::BroadcastOperator;
use crate::handler::{boxed_connect, BoxedConnectHandler, ConnectHandler};
use crate::observer::{Observer, ObserverSlot};
use crate::recovery::SessionStore;
use crate::server::ServerInner;
use crate::socket::{EmitError, Socket};
use engineio::Sid;

pub(crate) type BoxFut = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
type MiddlewareFut = Pin<Box<dyn Future<Output = Result<(), ConnectError>> + Send + 'static>>;
pub(crate) type Middleware = Arc<dyn Fn(Socket) -> MiddlewareFut + Send + Sync>;
pub(crate) type ConnectionHandler = Arc<dyn Fn(Socket) -> BoxFut + Send + Sync>;

/// The connection handler of a namespace, untyped or typed.
#[derive(Clone)]
pub(crate) enum OnConnection {
    Plain(ConnectionHandler),
    Typed(BoxedConnectHandler),
}
type ServerSideFut = Pin<Box<dyn Future<Output = Option<Args>> + Send + 'static>>;
pub(crate) type ServerSideHandler = Arc<dyn Fn(Args) -> ServerSideFut + Send + Sync>;

/// A refusal from a connect middleware, sent to the client as CONNECT_ERROR
/// `{"message":…,"data":…}`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ConnectError {
    /// Shown to the client as `err.message`.
    pub message: String,
    /// Shown to the client as `err.data`; omitted when `None`.
    pub data: Option<Value>,
}

impl ConnectError {
    /// A refusal with a message.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    /// A refusal with a message and data.
    pub fn with_data(message: impl Into<String>, data: Value) -> Self {
        ConnectError {
            message: message.into(),
            data: Some(data),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("message".into(), Value::String(self.message.clone()));
        if let Some(data) = &self.data {
            obj.insert("data".into(), data.clone());
        }
        Value::Object(obj)
    }
}

/// Middlewares and connection handler; shared by a dynamic namespace and its children.
#[derive(Default)]
pub(crate) struct NsSetup {
    pub(crate) middlewares: RwLock<Vec<Middleware>>,
    pub(crate) on_connection: RwLock<Option<OnConnection>>,
    pub(crate) on_server_side: RwLock<Option<ServerSideHandler>>,
    /// Connection state recovery turned off for this namespace (see [`Namespace::recovery`]).
    pub(crate) no_recovery: AtomicBool,
}

impl NsSetup {
    pub(crate) fn middlewares(&self) -> Vec<Middleware> {
        self.middlewares
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn server_side_handler(&self) -> Option<ServerSideHandler> {
        self.on_server_side
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn connection_handler(&self) -> Option<OnConnection> {
        self.on_connection
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub(crate) struct NsInner {
    pub(crate) name: String,
    pub(crate) setup: Arc<NsSetup>,
    sockets: RwLock<HashMap<Sid, Socket>>,
    adapter: Arc<dyn Adapter>,
    pub(crate) server: Weak<ServerInner>,
    /// A child of a dynamic namespace, which may be removed once empty.
    pub(crate) dynamic_child: bool,
    /// CONNECTs under way (between the lookup and the socket's insertion or refusal).
    joining: AtomicUsize,
    /// The server's instrumentation, once installed.
    pub(crate) observer: ObserverSlot,
}

impl NsInner {
    pub(crate) fn new(
        name: String,
        setup: Arc<NsSetup>,
        server: &Arc<ServerInner>,
        dynamic_child: bool,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| NsInner {
            adapter: server.adapter_factory.create(LocalNamespace::new(
                me.clone(),
                &name,
                server.observer.clone(),
            )),
            name,
            setup,
            sockets: RwLock::new(HashMap::new()),
            server: Arc::downgrade(server),
            dynamic_child,
            joining: AtomicUsize::new(0),
            observer: server.observer.clone(),
        })
    }

    /// The instrumentation, when installed.
    pub(crate) fn observer(&self) -> Option<&Arc<dyn Observer>> {
        self.observer.get()
    }

    pub(crate) fn adapter(&self) -> &dyn Adapter {
        self.adapter.as_ref()
    }

    pub(crate) fn socket(&self, id: &Sid) -> Option<Socket> {
        self.sockets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// The connected socket holding a recovery pid (a scan: only for failed restores).
    pub(crate) fn socket_with_pid(&self, pid: &Sid) -> Option<Socket> {
        self.sockets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|s| s.inner.pid.as_ref() == Some(pid))
            .cloned()
    }

    pub(crate) fn socket_count(&self) -> usize {
        self.sockets.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub(crate) fn socket_ids(&self) -> Vec<Sid> {
        self.sockets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    pub(crate) fn insert(&self, socket: Socket) {
        self.sockets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(socket.id(), socket);
    }

    /// Removes this very socket; false if its id now belongs to another one (a recovered
    /// socket that took over a stale connection's id), which is then left alone.
    pub(crate) fn remove(self: &Arc<Self>, socket: &Socket) -> bool {
        let (removed, emptied) = {
            let mut sockets = self.sockets.write().unwrap_or_else(|e| e.into_inner());
            let same = sockets
                .get(&socket.id())
                .is_some_and(|current| current == socket);
            if same {
                sockets.remove(&socket.id());
            }
            (same, same && sockets.is_empty())
        };
        if emptied {
            self.cleanup_if_unused();
        }
        removed
    }

    /// No socket, and no CONNECT under way.
    pub(crate) fn is_unused(&self) -> bool {
        self.joining.load(Ordering::Acquire) == 0
            && self
                .sockets
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
    }

    fn cleanup_if_unused(self: &Arc<Self>) {
        if self.dynamic_child && self.is_unused() {
            if let Some(server) = self.server.upgrade() {
                server.cleanup_child(self);
            }
        }
    }

    /// The recovery store, unless recovery is off server-wide or for this namespace.
    pub(crate) fn recovery_store(&self) -> Option<Arc<dyn SessionStore>> {
        if self.setup.no_recovery.load(Ordering::Acquire) {
            return None;
        }
        self.server.upgrade().and_then(|s| s.store.clone())
    }
}

/// A namespace being joined: counted as under way until dropped, so that an empty child
/// namespace is not removed while a CONNECT is still in its middlewares.
pub(crate) struct Joining(Arc<NsInner>);

impl Joining {
    pub(crate) fn new(ns: Arc<NsInner>) -> Self {
        ns.joining.fetch_add(1, Ordering::AcqRel);
        Joining(ns)
    }
}

impl std::ops::Deref for Joining {
    type Target = Arc<NsInner>;
    fn deref(&self) -> &Arc<NsInner> {
        &self.0
    }
}

impl Drop for Joining {
    fn drop(&mut self) {
        if self.0.joining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.cleanup_if_unused();
        }
    }
}

/// A namespace: the entry point for its middlewares, its connection handler and broadcasts to
/// its sockets. Cheap to clone.
#[derive(Clone)]
pub struct Namespace(pub(crate) Arc<NsInner>);

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Namespace").field(&self.0.name).finish()
    }
}

impl Namespace {
    /// The name, such as `/` or `/chat`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Adds a connect middleware. Middlewares run in order before the socket is connected; an
    /// `Err` refuses the connection with CONNECT_ERROR and skips the rest.
    pub fn middleware<F, Fut>(&self, f: F) -> &Self
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.0
            .setup
            .middlewares
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(move |s| Box::pin(f(s))));
        self
    }

    /// Sets the connection handler, run after the CONNECT reply went out. Events from the
    /// socket are handled only after it finishes, so it can register handlers first.
    pub fn on_connection<F, Fut>(&self, f: F) -> &Self
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.set_on_connection(OnConnection::Plain(Arc::new(move |s| Box::pin(f(s)))))
    }

    /// Sets a typed connection handler (replacing any connection handler): its arguments are
    /// [extractors](crate::extract) — the [`Socket`], the auth object as
    /// [`Data<T>`](crate::extract::Data), [`State<T>`](crate::extract::State),
    /// [`Extension<T>`](crate::extract::Extension)s the middlewares set. They are extracted
    /// after the middlewares (also for a recovered socket, which may skip them), before the
    /// socket is connected: when one cannot be, the client is refused with CONNECT_ERROR
    /// `{"message": "invalid payload: …"}` (`"internal error"` for a missing state or
    /// extension) and the handler is not called. Otherwise it runs after the CONNECT reply,
    /// as [`Namespace::on_connection`]'s; synchronous (returning `()`) or `async`. A socket
    /// restored by connection state recovery has its `data` but no extensions, and skips the
    /// middlewares by default ([`Recovery::skip_middlewares`](crate::Recovery)): take
    /// `Option<Extension<T>>` for what a middleware sets, or every recovered client is refused.
    ///
    /// ```no_run
    /// use serde::Deserialize;
    /// use socketio::extract::Data;
    /// use socketio::{Config, Socket, SocketIo};
    ///
    /// #[derive(Deserialize)]
    /// struct Auth { token: String }
    ///
    /// let io = SocketIo::new(Config::default());
    /// // `io("/", { auth: { token: "…" } })`; without a string token: CONNECT_ERROR.
    /// io.of("/").on_connection_typed(|socket: Socket, Data(auth): Data<Auth>| {
    ///     let _ = socket.emit("hello", serde_json::json!(auth.token.len()));
    /// });
    /// ```
    pub fn on_connection_typed<H, M>(&self, handler: H) -> &Self
    where
        H: ConnectHandler<M>,
    {
        self.set_on_connection(OnConnection::Typed(boxed_connect(handler)))
    }

    fn set_on_connection(&self, handler: OnConnection) -> &Self {
        *self
            .0
            .setup
            .on_connection
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(handler);
        self
    }

    /// Turns connection state recovery off (`false`) or back on (`true`, the default) for this
    /// namespace, when [`Config::recovery`](crate::Config::recovery) turned it on for the
    /// server. Off, the namespace's events carry no recovery offset, its sockets get no `pid`
    /// and are never restored, as on a server without recovery. Set it before clients connect;
    /// on a [`SocketIo::dynamic`](crate::SocketIo::dynamic) parent it applies to every child.
    ///
    /// ```
    /// use socketio::{Config, Recovery, SocketIo};
    ///
    /// let io = SocketIo::new(Config::builder().recovery(Recovery::default()).build());
    /// // `/chat` keeps recovery; `/` emits plain events, as a server without recovery.
    /// io.of("/").recovery(false);
    /// assert!(io.of("/chat").has_recovery());
    /// assert!(!io.of("/").has_recovery());
    /// ```
    pub fn recovery(&self, on: bool) -> &Self {
        self.0.setup.no_recovery.store(!on, Ordering::Release);
        self
    }

    /// Whether connection state recovery applies to this namespace: on for the server and not
    /// turned off with [`Namespace::recovery`].
    pub fn has_recovery(&self) -> bool {
        self.0.recovery_store().is_some()
    }

    /// Handles events that other nodes of a cluster send with
    /// [`Namespace::server_side_emit`]; the returned value, if any, is this node's answer.
    /// Clients never see these events.
    pub fn on_server_side_emit<F, Fut>(&self, f: F) -> &Self
    where
        F: Fn(Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Args>> + Send + 'static,
    {
        *self
            .0
            .setup
            .on_server_side
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(move |a| Box::pin(f(a))));
        self
    }

    /// Sends an event to the server-side listeners of the other nodes and collects their
    /// answers (none on a single node).
    pub async fn server_side_emit(
        &self,
        event: &str,
        args: impl Into<Args>,
    ) -> Result<Vec<Args>, crate::adapter::AdapterError> {
        let mut all = Args::from(event);
        all.0.extend(args.into());
        self.0.adapter().server_side_emit(all).await
    }

    /// A connected socket of this node, by id.
    pub fn socket(&self, id: &Sid) -> Option<Socket> {
        self.0.socket(id)
    }

    /// Every connected socket of this node.
    pub fn sockets(&self) -> Vec<Socket> {
        self.0
            .sockets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The adapter.
    pub fn adapter(&self) -> &dyn Adapter {
        self.0.adapter()
    }

    fn operator(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.0.clone(), BroadcastOptions::default())
    }

    /// Targets the sockets in these rooms.
    pub fn to(&self, rooms: impl crate::IntoRooms) -> BroadcastOperator {
        self.operator().to(rooms)
    }

    /// Same as [`Namespace::to`].
    pub fn within(&self, rooms: impl crate::IntoRooms) -> BroadcastOperator {
        self.to(rooms)
    }

    /// Targets every socket except those in these rooms.
    pub fn except(&self, rooms: impl crate::IntoRooms) -> BroadcastOperator {
        self.operator().except(rooms)
    }

    /// A volatile broadcast: dropped for clients that cannot take it at once.
    pub fn volatile(&self) -> BroadcastOperator {
        self.operator().volatile()
    }

    /// Only this node's sockets.
    pub fn local(&self) -> BroadcastOperator {
        self.operator().local()
    }

    /// A broadcast that waits for acknowledgements this long.
    pub fn timeout(&self, d: std::time::Duration) -> BroadcastOperator {
        self.operator().timeout(d)
    }

    /// Emits an event to every socket of the namespace.
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> Result<(), EmitError> {
        self.operator().emit(event, args)
    }

    /// Makes every socket of the namespace join rooms.
    pub fn sockets_join(&self, rooms: impl crate::IntoRooms) {
        self.operator().sockets_join(rooms)
    }

    /// Makes every socket of the namespace leave rooms.
    pub fn sockets_leave(&self, rooms: impl crate::IntoRooms) {
        self.operator().sockets_leave(rooms)
    }

    /// Disconnects every socket of the namespace.
    pub fn disconnect_sockets(&self, close: bool) {
        self.operator().disconnect_sockets(close)
    }

    /// Describes every socket of the namespace, on every node.
    pub async fn fetch_sockets(
        &self,
    ) -> Result<Vec<crate::adapter::SocketInfo>, crate::adapter::AdapterError> {
        self.operator().fetch_sockets().await
    }
}
