//! The Socket.IO server.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use engineio::{EngineIo, EngineService};
use http_body_util::{Either, Full};
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::adapter::{AdapterFactory, MemoryAdapter};
use crate::args::Args;
use crate::broadcast::BroadcastOperator;
use crate::client::SioHandler;
use crate::client_files::ClientFiles;
use crate::config::Config;
use crate::extensions::StateMap;
use crate::namespace::{Joining, Namespace, NsInner, NsSetup};
use crate::observer::ObserverSlot;
use crate::recovery::{MemoryStore, SessionStore};
use crate::socket::EmitError;
use crate::IntoRooms;

type Matcher = Arc<dyn Fn(&str, &Value) -> bool + Send + Sync>;

struct Dynamic {
    matcher: Matcher,
    setup: Arc<NsSetup>,
}

pub(crate) struct ServerInner {
    pub(crate) config: Config,
    namespaces: RwLock<HashMap<String, Arc<NsInner>>>,
    dynamic: RwLock<Vec<Dynamic>>,
    pub(crate) adapter_factory: Box<dyn AdapterFactory>,
    pub(crate) store: Option<Arc<dyn SessionStore>>,
    /// Application state for [`State`](crate::extract::State) extractors.
    pub(crate) state: StateMap,
    /// Instrumentation (the admin UI), once installed.
    pub(crate) observer: ObserverSlot,
    /// [`SocketIo::instrument`] was called.
    pub(crate) instrumented: std::sync::atomic::AtomicBool,
}

impl ServerInner {
    /// The namespace a CONNECT asks for: a static one, or a child of a matching dynamic one.
    pub(crate) fn namespace_for(self: &Arc<Self>, name: &str, auth: &Value) -> Option<Joining> {
        if let Some(ns) = self
            .namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Some(Joining::new(ns.clone()));
        }
        let setup = self
            .dynamic
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|d| (d.matcher)(name, auth))
            .map(|d| d.setup.clone())?;
        let mut namespaces = self.namespaces.write().unwrap_or_else(|e| e.into_inner());
        let ns = namespaces
            .entry(name.to_owned())
            .or_insert_with(|| NsInner::new(name.to_owned(), setup, self, true));
        Some(Joining::new(ns.clone()))
    }

    /// Removes an empty child of a dynamic namespace, if the configuration asks for it and
    /// nobody is joining it (checked under the registry's lock, which new joins also take).
    pub(crate) fn cleanup_child(&self, ns: &Arc<NsInner>) {
        if !self.config.cleanup_empty_child_namespaces || !ns.dynamic_child {
            return;
        }
        let mut namespaces = self.namespaces.write().unwrap_or_else(|e| e.into_inner());
        let current = namespaces.get(&ns.name).is_some_and(|n| Arc::ptr_eq(n, ns));
        if current && ns.is_unused() {
            namespaces.remove(&ns.name);
            tracing::debug!(nsp = %ns.name, "empty child namespace removed");
        }
    }

    /// Every namespace that exists now (static ones and children of dynamic ones).
    pub(crate) fn all_namespaces(&self) -> Vec<Arc<NsInner>> {
        self.namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// A namespace that exists now, without creating it.
    pub(crate) fn existing_namespace(&self, name: &str) -> Option<Arc<NsInner>> {
        self.namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn namespace(self: &Arc<Self>, name: &str) -> Arc<NsInner> {
        let mut namespaces = self.namespaces.write().unwrap_or_else(|e| e.into_inner());
        namespaces
            .entry(name.to_owned())
            .or_insert_with(|| NsInner::new(name.to_owned(), Arc::default(), self, false))
            .clone()
    }
}

/// Builds a [`SocketIo`] with a custom adapter or recovery store.
pub struct Builder {
    config: Config,
    adapter_factory: Box<dyn AdapterFactory>,
    store: Option<Arc<dyn SessionStore>>,
    state: StateMap,
}

impl Builder {
    /// The adapter of every namespace (the in-memory one by default).
    pub fn adapter(mut self, factory: impl AdapterFactory) -> Self {
        self.adapter_factory = Box::new(factory);
        self
    }

    /// The connection-state-recovery store (in memory by default when recovery is on).
    pub fn recovery_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Adds application state, one value per type (a second one of a type replaces the
    /// first), which handlers take as [`State<T>`](crate::extract::State): a shared handle on
    /// it, so register `T` itself, not an `Arc<T>`. Fixed once the server is built, so read
    /// without a lock.
    ///
    /// ```
    /// use socketio::extract::State;
    /// use socketio::{Config, Socket, SocketIo};
    ///
    /// struct Greeting(&'static str);
    ///
    /// let io = SocketIo::builder(Config::default())
    ///     .state(Greeting("hello"))
    ///     .build();
    /// io.of("/").on_connection_typed(|socket: Socket, State(greeting): State<Greeting>| {
    ///     let _ = socket.emit("greeting", greeting.0);
    /// });
    /// ```
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// The server.
    pub fn build(self) -> SocketIo {
        let store = match &self.config.recovery {
            None => None,
            Some(r) => Some(self.store.unwrap_or_else(|| {
                Arc::new(MemoryStore::new(r.max_disconnection_duration)) as Arc<dyn SessionStore>
            })),
        };
        let client_files = ClientFiles::new(&self.config);
        let inner = Arc::new(ServerInner {
            config: self.config,
            namespaces: RwLock::new(HashMap::new()),
            dynamic: RwLock::new(Vec::new()),
            adapter_factory: self.adapter_factory,
            store,
            state: self.state,
            observer: ObserverSlot::default(),
            instrumented: std::sync::atomic::AtomicBool::new(false),
        });
        inner.namespace("/");
        let engine = EngineIo::new(
            inner.config.engine.clone(),
            SioHandler {
                server: inner.clone(),
            },
        );
        SocketIo {
            inner,
            engine,
            client_files: Arc::new(client_files),
        }
    }
}

/// A Socket.IO server. Cheap to clone.
///
/// ```no_run
/// use socketio::{Config, SocketIo};
///
/// #[tokio::main]
/// async fn main() -> std::io::Result<()> {
///     let io = SocketIo::new(Config::default());
///     io.of("/").on_connection(|socket| async move {
///         socket.on("ping", |socket, event| async move {
///             let _ = socket.emit("pong", event.args);
///         });
///     });
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
///     let ctrl_c = async { let _ = tokio::signal::ctrl_c().await; };
///     socketio::serve(listener, io, engineio::not_found(), ctrl_c).await
/// }
/// ```
#[derive(Clone)]
pub struct SocketIo {
    pub(crate) inner: Arc<ServerInner>,
    pub(crate) engine: EngineIo<SioHandler>,
    pub(crate) client_files: Arc<ClientFiles>,
}

impl std::fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIo")
            .field("path", &self.inner.config.engine.path)
            .finish()
    }
}

impl SocketIo {
    /// A server with these options, the in-memory adapter and, when recovery is on, the
    /// in-memory recovery store.
    pub fn new(config: Config) -> Self {
        Self::builder(config).build()
    }

    /// A builder, for a custom adapter or recovery store.
    pub fn builder(config: Config) -> Builder {
        Builder {
            config,
            adapter_factory: Box::new(MemoryAdapter::factory()),
            store: None,
            state: StateMap::default(),
        }
    }

    /// The options.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// A namespace, created on first use.
    pub fn of(&self, name: &str) -> Namespace {
        let name = if name.starts_with('/') {
            name.to_owned()
        } else {
            format!("/{name}")
        };
        Namespace(self.inner.namespace(&name))
    }

    /// A family of namespaces created on demand: a CONNECT to a name that no static namespace
    /// has and that `matcher` accepts (given the name and the auth object) creates a child
    /// namespace. The returned namespace holds the middlewares and connection handler that every
    /// child uses; it is not itself reachable.
    pub fn dynamic(
        &self,
        matcher: impl Fn(&str, &Value) -> bool + Send + Sync + 'static,
    ) -> Namespace {
        let setup: Arc<NsSetup> = Arc::default();
        self.inner
            .dynamic
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Dynamic {
                matcher: Arc::new(matcher),
                setup: setup.clone(),
            });
        Namespace(NsInner::new(
            String::from("(dynamic)"),
            setup,
            &self.inner,
            false,
        ))
    }

    /// Every namespace that exists now.
    pub fn namespaces(&self) -> Vec<Namespace> {
        self.inner
            .namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .map(Namespace)
            .collect()
    }

    /// Targets the sockets of `/` in these rooms.
    pub fn to(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.of("/").to(rooms)
    }

    /// Targets the sockets of `/` except those in these rooms.
    pub fn except(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.of("/").except(rooms)
    }

    /// Emits to every socket of `/`.
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> Result<(), EmitError> {
        self.of("/").emit(event, args)
    }

    /// The Engine.IO server underneath.
    pub fn engine(&self) -> &EngineIo<impl engineio::Handler> {
        &self.engine
    }

    /// A hyper service: the stock client files and Socket.IO at their paths, `fallback` for the
    /// rest.
    pub fn service<F>(&self, fallback: F) -> SocketIoService<F> {
        SocketIoService {
            engine: self.engine.service(fallback),
            client_files: self.client_files.clone(),
        }
    }

    /// Closes every connection with `server shutting down` and refuses new ones; resolves once
    /// the clients have been told (each WebSocket got its close frame, each polling client
    /// fetched its close packet or [`engineio::Config::shutdown_delivery`] went by).
    ///
    /// [`serve`] does this itself. An application on another HTTP server (axum, a hyper loop
    /// of its own) calls it when it shuts down, while that server still serves requests, and
    /// stops the server afterwards. With axum, await it in the future given to
    /// `with_graceful_shutdown`:
    ///
    /// ```no_run
    /// # async fn run(io: socketio::SocketIo, app: axum::Router) -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// let shutdown = {
    ///     let io = io.clone();
    ///     async move {
    ///         engineio::shutdown_signal().await;
    ///         io.shutdown().await;
    ///     }
    /// };
    /// axum::serve(listener, app).with_graceful_shutdown(shutdown).await
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        self.engine.graceful_shutdown().await;
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The hyper service of a [`SocketIo`]; see [`SocketIo::service`].
///
/// With the `tower` feature it is a tower `Service` too, around any tower service; see
/// `SocketIo::layer`.
pub struct SocketIoService<F> {
    pub(crate) engine: EngineService<SioHandler, F>,
    pub(crate) client_files: Arc<ClientFiles>,
}

impl<F: Clone> Clone for SocketIoService<F> {
    fn clone(&self) -> Self {
        SocketIoService {
            engine: self.engine.clone(),
            client_files: self.client_files.clone(),
        }
    }
}

impl<F> SocketIoService<F> {
    /// The same service, recording `peer` as the client address of its requests.
    pub fn with_peer(mut self, peer: std::net::SocketAddr) -> Self {
        self.engine = self.engine.with_peer(peer);
        self
    }
}

impl<F, B> Service<Request<Incoming>> for SocketIoService<F>
where
    F: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
    F::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Either<Full<Bytes>, B>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        if let Some(res) = self.client_files.serve(&req) {
            return Box::pin(std::future::ready(Ok(res.map(Either::Left))));
        }
        self.engine.call(req)
    }
}

/// Serves `io` (Socket.IO and the client files) and `fallback` for other requests until
/// `shutdown` resolves, then closes every connection with `server shutting down`.
pub async fn serve<F, B>(
    listener: TcpListener,
    io: SocketIo,
    fallback: F,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    F: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    F::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let files = ClientFilesService {
        files: io.client_files.clone(),
        fallback,
    };
    engineio::serve(listener, io.engine.clone(), files, shutdown).await
}

/// Client files in front of the application's fallback.
#[derive(Clone)]
struct ClientFilesService<F> {
    files: Arc<ClientFiles>,
    fallback: F,
}

impl<F, B> Service<Request<Incoming>> for ClientFilesService<F>
where
    F: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
    F::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Either<Full<Bytes>, B>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        if let Some(res) = self.files.serve(&req) {
            return Box::pin(std::future::ready(Ok(res.map(Either::Left))));
        }
        let fut = self.fallback.call(req);
        Box::pin(async move { fut.await.map(|r| r.map(Either::Right)) })
    }
}
