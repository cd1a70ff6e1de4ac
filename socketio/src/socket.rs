//! A socket: one client's membership of one namespace.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engineio::{Message, Sid, Text};
use serde_json::{json, Value};

use crate::ack::{self, Ack, AckError, PendingAcks};
use crate::adapter::{BroadcastOptions, Room, SocketInfo};
use crate::args::Args;
use crate::broadcast::BroadcastOperator;
use crate::client::Client;
use crate::extensions::Extensions;
use crate::handler::{boxed_event, BoxedEventHandler, EventHandler};
use crate::namespace::{BoxFut, ConnectionHandler, Namespace, NsInner};
use crate::packet::{is_reserved_event, Data, Packet};
use crate::reason::DisconnectReason;
use crate::recovery::SavedSession;
use crate::IntoRooms;

/// An event received from the client.
#[derive(Debug)]
pub struct Event {
    /// The event name (a number sent as the name arrives as its decimal text).
    pub name: String,
    /// The arguments after the name.
    pub args: Args,
    /// The acknowledgement the client asked for, if any.
    pub ack: Option<Ack>,
}

/// The connection handler of a socket about to be connected: an untyped one, called once the
/// socket is connected; or a typed one's job, its arguments already extracted.
pub(crate) enum ConnectionJob {
    Plain(ConnectionHandler),
    Typed(BoxFut),
}

/// Why an emit did not go out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// `connect`, `disconnect` and the other reserved names cannot be emitted.
    #[error("\"{0}\" is a reserved event name")]
    ReservedEvent(String),
    /// The socket is disconnected.
    #[error("socket disconnected")]
    Disconnected,
}

type AnyHandler = Arc<dyn Fn(&Socket, &str, &Args) + Send + Sync>;
type EventMiddleware = Arc<dyn Fn(&Socket, &mut Event) -> Result<(), String> + Send + Sync>;
type DisconnectingHandler = Arc<dyn Fn(&Socket, DisconnectReason) + Send + Sync>;
type DisconnectHandler = Arc<dyn Fn(Socket, DisconnectReason) -> BoxFut + Send + Sync>;

#[derive(Default)]
struct Handlers {
    /// Handler of each event, and whether it may run concurrently with the socket's others.
    events: HashMap<String, (BoxedEventHandler, bool)>,
    any: Vec<AnyHandler>,
    any_outgoing: Vec<AnyHandler>,
    middlewares: Vec<EventMiddleware>,
    disconnecting: Vec<DisconnectingHandler>,
    disconnect: Vec<DisconnectHandler>,
}

/// Handler jobs of one socket, run one after the other.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<BoxFut>,
    running: bool,
}

pub(crate) struct SocketInner {
    pub(crate) id: Sid,
    /// Socket.IO v4 (old clients) outside `/`: the id the client knows, `/nsp#<engine sid>`.
    legacy_id: Option<String>,
    pub(crate) pid: Option<Sid>,
    pub(crate) ns: Arc<NsInner>,
    pub(crate) client: Arc<Client>,
    auth: Value,
    recovered: bool,
    connected: AtomicBool,
    pub(crate) acks: PendingAcks,
    handlers: Mutex<Handlers>,
    queue: Mutex<Queue>,
    data: Mutex<Value>,
    extensions: Extensions,
}

/// A client's socket in one namespace. Cheap to clone.
///
/// ```no_run
/// # async fn run(io: socketio::SocketIo) {
/// io.of("/").on_connection(|socket| async move {
///     socket.join("lobby");
///     socket.on("chat", |socket, event| async move {
///         let text: String = event.args.get(0).unwrap_or_default();
///         let _ = socket.to("lobby").emit("chat", text);
///         if let Some(ack) = event.ack {
///             ack.send("ok");
///         }
///     });
/// });
/// # }
/// ```
#[derive(Clone)]
pub struct Socket {
    pub(crate) inner: Arc<SocketInner>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.inner.id)
            .field("nsp", &self.inner.ns.name)
            .finish()
    }
}

impl PartialEq for Socket {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// Encodes a packet into the Engine.IO messages that carry it: the text, then attachments.
pub(crate) fn encode(packet: &Packet) -> Vec<Message> {
    let (text, attachments) = packet.encode_engine_message();
    let Some(text) = Text::from_encoded_bytes(text) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(1 + attachments.len());
    out.push(Message::Text(text));
    out.extend(attachments.into_iter().map(Message::Binary));
    out
}

/// Polls a future once; completes it inline if it is ready, otherwise hands it back.
fn poll_once(mut fut: BoxFut) -> Option<BoxFut> {
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(()) => None,
        Poll::Pending => Some(fut),
    }
}

impl Socket {
    pub(crate) fn new(
        id: Sid,
        pid: Option<Sid>,
        ns: Arc<NsInner>,
        client: Arc<Client>,
        auth: Value,
        recovered: bool,
        data: Value,
    ) -> Socket {
        let legacy_id = (client.legacy() && ns.name != "/").then(|| format!("{}#{id}", ns.name));
        Socket {
            inner: Arc::new(SocketInner {
                id,
                legacy_id,
                pid,
                ns,
                client,
                auth,
                recovered,
                connected: AtomicBool::new(false),
                acks: PendingAcks::default(),
                handlers: Mutex::default(),
                queue: Mutex::default(),
                data: Mutex::new(data),
                extensions: Extensions::new(),
            }),
        }
    }

    /// The socket id: 20 characters, distinct from the Engine.IO session id.
    ///
    /// For an old client (Engine.IO v3 / Socket.IO v4, see
    /// [`engineio::Config::allow_eio3`]) it is the Engine.IO session id in every namespace; the
    /// id such a client knows is [`Socket::client_id`].
    pub fn id(&self) -> Sid {
        self.inner.id
    }

    /// The id as the client knows it: [`Socket::id`], except for an old client (Socket.IO v4)
    /// outside `/`, where it is `/nsp#<engine sid>`. The socket is in a room of each name, so
    /// `to(socket.client_id())` and `to(socket.id())` both reach it.
    pub fn client_id(&self) -> &str {
        self.inner
            .legacy_id
            .as_deref()
            .unwrap_or_else(|| self.inner.id.as_str())
    }

    /// The Socket.IO protocol revision of the client: 5, or 4 for an old client
    /// (socket.io-client 1.x/2.x) on an Engine.IO v3 connection.
    pub fn protocol(&self) -> u8 {
        if self.inner.client.legacy() {
            4
        } else {
            5
        }
    }

    /// The namespace.
    pub fn ns(&self) -> Namespace {
        Namespace(self.inner.ns.clone())
    }

    /// The auth object of the CONNECT packet (`{}` when the client sent none).
    pub fn auth(&self) -> &Value {
        &self.inner.auth
    }

    /// Whether connection state recovery restored this socket.
    pub fn recovered(&self) -> bool {
        self.inner.recovered
    }

    /// Whether the socket is connected.
    pub fn connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// The Engine.IO handshake request (headers, query, peer address).
    pub fn handshake(&self) -> &engineio::Handshake {
        self.inner.client.engine.handshake()
    }

    /// The Engine.IO connection under this socket.
    pub fn engine(&self) -> &engineio::Socket {
        &self.inner.client.engine
    }

    /// The transport in use.
    pub fn transport(&self) -> engineio::TransportKind {
        self.inner.client.engine.transport()
    }

    /// The application data (`socket.data`), kept by recovery and shown by `fetch_sockets`.
    pub fn data(&self) -> Value {
        self.lock_data().clone()
    }

    /// Replaces the application data.
    pub fn set_data(&self, data: Value) {
        *self.lock_data() = data;
        if let Some(observer) = self.inner.ns.observer() {
            observer.data_changed(self);
        }
    }

    /// Changes the application data in place, with no other change in between (unlike
    /// [`Socket::data`] then [`Socket::set_data`]).
    ///
    /// ```no_run
    /// # fn f(socket: socketio::Socket) {
    /// socket.update_data(|data| data["seen"] = serde_json::json!(42));
    /// # }
    /// ```
    pub fn update_data<R>(&self, f: impl FnOnce(&mut Value) -> R) -> R {
        let out = f(&mut self.lock_data());
        if let Some(observer) = self.inner.ns.observer() {
            observer.data_changed(self);
        }
        out
    }

    /// Typed values of this socket, local to this node, such as who the user is or their
    /// limits: no JSON round trip, unlike [`Socket::data`]. Dropped once the socket has left
    /// (after its disconnect handlers); not restored by connection state recovery. Handlers
    /// read them with [`Extension`](crate::extract::Extension).
    ///
    /// ```no_run
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// # fn f(ns: socketio::Namespace) {
    /// #[derive(Default)]
    /// struct Sent(AtomicU32);
    ///
    /// ns.on_connection(|socket| async move {
    ///     socket.extensions().insert(Sent::default());
    ///     socket.on("message", |socket, _event| async move {
    ///         if let Some(sent) = socket.extensions().get::<Sent>() {
    ///             sent.0.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     });
    /// });
    /// # }
    /// ```
    pub fn extensions(&self) -> &Extensions {
        &self.inner.extensions
    }

    fn lock_data(&self) -> std::sync::MutexGuard<'_, Value> {
        self.inner.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handlers(&self) -> std::sync::MutexGuard<'_, Handlers> {
        self.inner
            .handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Handles an event. Handlers of one socket run one at a time in arrival order.
    pub fn on<F, Fut>(&self, event: impl Into<String>, handler: F) -> &Self
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: BoxedEventHandler = Arc::new(move |s, e| Box::pin(handler(s, e)));
        self.handlers()
            .events
            .insert(event.into(), (handler, false));
        self
    }

    /// Handles an event with a typed handler: its arguments are
    /// [extractors](crate::extract) (the socket, deserialised data, binary attachments, the
    /// ack, state, extensions), written out in the closure. A synchronous closure (returning
    /// `()`) runs to completion when the event is dispatched; an `async` one returns a future.
    /// When an argument cannot be extracted (a payload that does not deserialise, a wrong
    /// number of attachments), the handler is not called, and an ack the client asked for is
    /// answered with `{"error": "invalid payload: …"}` (see [`crate::extract`]). Handlers of one
    /// socket run one at a time in arrival order, typed or not; registering one replaces the
    /// event's handler, typed or not.
    ///
    /// ```no_run
    /// use serde::Deserialize;
    /// use socketio::extract::{AckSender, Data};
    /// use socketio::Socket;
    ///
    /// #[derive(Deserialize)]
    /// struct Msg { room: String, text: String }
    ///
    /// # fn f(socket: Socket) {
    /// socket.on_typed("message", |socket: Socket, Data(msg): Data<Msg>, ack: AckSender| {
    ///     let _ = socket.to(msg.room).emit("message", msg.text);
    ///     ack.send("ok");
    /// });
    /// socket.on_typed("slow", |socket: Socket| async move {
    ///     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    ///     let _ = socket.emit("done", ());
    /// });
    /// # }
    /// ```
    pub fn on_typed<H, M>(&self, event: impl Into<String>, handler: H) -> &Self
    where
        H: EventHandler<M>,
    {
        self.handlers()
            .events
            .insert(event.into(), (boxed_event(handler), false));
        self
    }

    /// Handles an event in its own task: the socket's next events do not wait for it (use it
    /// for slow work whose order does not matter). Middlewares and catch-all listeners still
    /// see the event in arrival order.
    pub fn on_concurrent<F, Fut>(&self, event: impl Into<String>, handler: F) -> &Self
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: BoxedEventHandler = Arc::new(move |s, e| Box::pin(handler(s, e)));
        self.handlers().events.insert(event.into(), (handler, true));
        self
    }

    /// Removes the handler of an event.
    pub fn off(&self, event: &str) -> &Self {
        self.handlers().events.remove(event);
        self
    }

    /// Sees every incoming event (name and arguments) before its handler.
    pub fn on_any(&self, f: impl Fn(&Socket, &str, &Args) + Send + Sync + 'static) -> &Self {
        self.handlers().any.push(Arc::new(f));
        self
    }

    /// Sees every event emitted to this socket.
    pub fn on_any_outgoing(
        &self,
        f: impl Fn(&Socket, &str, &Args) + Send + Sync + 'static,
    ) -> &Self {
        self.handlers().any_outgoing.push(Arc::new(f));
        self
    }

    /// Adds an event middleware: it may change the event, or refuse it with `Err`, in which case
    /// the event is dropped and an ack the client asked for is answered with
    /// `{"error":message}`.
    pub fn use_event(
        &self,
        f: impl Fn(&Socket, &mut Event) -> Result<(), String> + Send + Sync + 'static,
    ) -> &Self {
        self.handlers().middlewares.push(Arc::new(f));
        self
    }

    /// Runs when the socket is about to leave, while it is still in its rooms.
    pub fn on_disconnecting(
        &self,
        f: impl Fn(&Socket, DisconnectReason) + Send + Sync + 'static,
    ) -> &Self {
        self.handlers().disconnecting.push(Arc::new(f));
        self
    }

    /// Runs once the socket has left, after every pending event handler.
    pub fn on_disconnect<F, Fut>(&self, f: F) -> &Self
    where
        F: Fn(Socket, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.handlers()
            .disconnect
            .push(Arc::new(move |s, r| Box::pin(f(s, r))));
        self
    }

    /// Emits an event to this socket.
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> Result<(), EmitError> {
        self.emit_with(event, args.into(), false)
    }

    /// Emits an event outside connection state recovery: it gets no offset and is not kept for
    /// replay, so it does not move the client's recovery position. For a notice about the
    /// connection itself (say, that the server is about to close it for a move to another
    /// server) sent beside broadcasts: with an offset it could overtake a broadcast still on
    /// its way to this socket, and a recovery from that offset would skip the broadcast.
    ///
    /// ```no_run
    /// # fn f(socket: socketio::Socket) {
    /// let _ = socket.emit_unrecorded("moving", "reconnect now");
    /// socket.engine().close();
    /// # }
    /// ```
    pub fn emit_unrecorded(&self, event: &str, args: impl Into<Args>) -> Result<(), EmitError> {
        let packet = self.event_packet(event, args.into())?;
        self.send_encoded(&encode(&packet), false);
        Ok(())
    }

    /// Emits an event that is dropped if the connection cannot take it at once.
    pub fn emit_volatile(&self, event: &str, args: impl Into<Args>) -> Result<(), EmitError> {
        self.emit_with(event, args.into(), true)
    }

    fn emit_with(&self, event: &str, args: Args, volatile: bool) -> Result<(), EmitError> {
        let packet = self.event_packet(event, args)?;
        if self.inner.ns.recovery_store().is_some() && !volatile && !self.inner.client.legacy() {
            // Routed through the adapter so that the event gets an offset and is kept.
            let opts = BroadcastOptions {
                rooms: vec![self.inner.id.to_string()],
                ..Default::default()
            };
            self.inner.ns.adapter().broadcast(packet, &opts);
            return Ok(());
        }
        self.send_encoded(&encode(&packet), volatile);
        Ok(())
    }

    pub(crate) fn event_packet(&self, event: &str, args: Args) -> Result<Packet, EmitError> {
        if is_reserved_event(event) {
            return Err(EmitError::ReservedEvent(event.to_owned()));
        }
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        self.notify_outgoing(event, &args);
        Ok(Packet::event(
            self.inner.ns.name.as_str(),
            args.into_array(Some(Value::String(event.to_owned()))),
            None,
        ))
    }

    pub(crate) fn notify_outgoing(&self, event: &str, args: &Args) {
        let listeners = self.handlers().any_outgoing.clone();
        for f in listeners {
            f(self, event, args);
        }
    }

    /// Resolves once `bytes` more can be queued on the connection without going over its
    /// queue limit; fails once it is closed. Await it between the pages of a long stream
    /// (a catch-up, a history) so that a slowly reading client slows the stream down instead
    /// of being disconnected as a slow consumer.
    pub async fn writable(&self, bytes: usize) -> Result<(), EmitError> {
        self.inner
            .client
            .engine
            .writable(bytes)
            .await
            .map_err(|_| EmitError::Disconnected)
    }

    /// Acknowledgements this socket still waits for from its client.
    pub fn pending_acks(&self) -> usize {
        self.inner.acks.len()
    }

    /// Emits an event and waits for the client's acknowledgement, at most the configured
    /// `ack_timeout`.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: impl Into<Args>,
    ) -> Result<Args, AckError> {
        let timeout = self
            .inner
            .ns
            .server
            .upgrade()
            .map(|s| s.config.ack_timeout)
            .unwrap_or(Duration::from_secs(60));
        self.emit_with_ack_timeout(event, args, timeout).await
    }

    /// Emits an event and waits at most `timeout` for the acknowledgement.
    pub async fn emit_with_ack_timeout(
        &self,
        event: &str,
        args: impl Into<Args>,
        timeout: Duration,
    ) -> Result<Args, AckError> {
        let mut packet = self
            .event_packet(event, args.into())
            .map_err(|_| AckError::NotSent)?;
        match self.send_with_ack(&mut packet, Some(timeout)) {
            Some(wait) => wait.await,
            None => Err(AckError::NotSent),
        }
    }

    /// Sends a packet with a fresh ack id; the future resolves with the acknowledgement.
    pub(crate) fn send_with_ack(
        &self,
        packet: &mut Packet,
        timeout: Option<Duration>,
    ) -> Option<impl Future<Output = Result<Args, AckError>> + Send + 'static> {
        let (id, rx) = self.inner.acks.register()?;
        packet.id = Some(id);
        packet.nsp.clone_from(&self.inner.ns.name);
        if self.inner.client.engine.send_all(&encode(packet)).is_err() {
            self.inner.acks.forget(id);
            return None;
        }
        let waiting = ack::Waiting::new(self.clone(), id);
        let timeout = timeout.unwrap_or(Duration::from_secs(60));
        Some(ack::wait(waiting, rx, timeout))
    }

    /// Queues already encoded messages; the slow-consumer policy of the engine applies.
    pub(crate) fn send_encoded(&self, messages: &[Message], volatile: bool) {
        if messages.is_empty() {
            return;
        }
        let engine = &self.inner.client.engine;
        let _ = if volatile {
            engine.send_all_volatile(messages)
        } else {
            engine.send_all(messages)
        };
    }

    pub(crate) fn send_packet(&self, packet: Packet) {
        self.send_encoded(&encode(&packet), false);
    }

    /// Joins rooms.
    pub fn join(&self, rooms: impl IntoRooms) {
        self.inner
            .ns
            .adapter()
            .add_all(self.inner.id, &rooms.into_rooms());
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) {
        self.inner.ns.adapter().del(self.inner.id, room);
    }

    /// The rooms this socket is in, its own-id room included.
    pub fn rooms(&self) -> Vec<Room> {
        self.inner.ns.adapter().socket_rooms(self.inner.id)
    }

    /// Targets the sockets in these rooms, except this one.
    pub fn to(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.broadcast().to(rooms)
    }

    /// Same as [`Socket::to`].
    pub fn within(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.to(rooms)
    }

    /// Targets every socket of the namespace except this one and those in these rooms.
    pub fn except(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.broadcast().except(rooms)
    }

    /// Targets every socket of the namespace except this one.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(
            self.inner.ns.clone(),
            BroadcastOptions {
                except: vec![self.inner.id.to_string()],
                ..Default::default()
            },
        )
    }

    /// Disconnects the socket from its namespace (the client gets `io server disconnect` and
    /// does not reconnect by itself). The connection stays open for other namespaces.
    pub fn disconnect(&self) {
        if !self.connected() {
            return;
        }
        self.send_packet(Packet::disconnect(self.inner.ns.name.as_str()));
        self.leave_namespace(DisconnectReason::ServerNamespaceDisconnect);
    }

    /// Disconnects every socket of this client and closes the connection.
    pub fn disconnect_and_close(&self) {
        self.inner.client.disconnect_all_and_close();
    }

    /// This socket as the adapter reports it.
    pub fn info(&self) -> SocketInfo {
        let hs = self.handshake();
        let headers: serde_json::Map<String, Value> = hs
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.to_owned(),
                    Value::String(std::str::from_utf8(v).ok()?.to_owned()),
                ))
            })
            .collect();
        let issued = hs
            .issued
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let path = self
            .inner
            .ns
            .server
            .upgrade()
            .map(|s| s.config.engine.path.clone())
            .unwrap_or_default();
        let mut data = self.data();
        if let Some(observer) = self.inner.ns.observer() {
            observer.decorate_data(self, &mut data);
        }
        SocketInfo {
            id: self.inner.id,
            rooms: self.rooms(),
            data,
            // The fields of Node's `socket.handshake`.
            handshake: json!({
                "headers": headers,
                "time": crate::time::js_date_string(hs.issued),
                "address": hs.peer_addr.map(|a| a.ip().to_string()),
                "xdomain": hs.headers.get("origin").is_some(),
                "secure": hs.secure,
                "issued": issued,
                "url": format!("{path}?{}", hs.query),
                "query": hs
                    .query_pairs()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect::<serde_json::Map<String, Value>>(),
                "auth": self.inner.auth,
            }),
        }
    }

    /// Marks the socket connected (after the CONNECT reply) and runs the connection handler.
    pub(crate) fn connected_now(&self, handler: Option<ConnectionJob>) {
        self.inner.connected.store(true, Ordering::Release);
        if let Some(observer) = self.inner.ns.observer() {
            observer.socket_connected(self);
        }
        match handler {
            Some(ConnectionJob::Plain(handler)) => self.run_ordered(handler(self.clone())),
            Some(ConnectionJob::Typed(job)) => self.run_ordered(job),
            None => {}
        }
    }

    /// Queues a handler job behind the ones already running; runs it inline when idle and it
    /// completes without waiting, so most events cost no task at all.
    fn run_ordered(&self, job: BoxFut) {
        {
            let mut queue = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
            if queue.running {
                queue.jobs.push_back(job);
                return;
            }
            queue.running = true;
        }
        let mut next = Some(job);
        while let Some(job) = next.take() {
            if let Some(pending) = poll_once(job) {
                let socket = self.clone();
                tokio::spawn(async move {
                    pending.await;
                    socket.drain_queue().await;
                });
                return;
            }
            next = self.pop_job();
        }
    }

    fn pop_job(&self) -> Option<BoxFut> {
        let mut queue = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        let job = queue.jobs.pop_front();
        if job.is_none() {
            queue.running = false;
        }
        job
    }

    async fn drain_queue(&self) {
        while let Some(job) = self.pop_job() {
            job.await;
        }
    }

    /// An EVENT arrived.
    pub(crate) fn on_event(&self, mut packet: Packet) {
        let id = packet.id;
        let Ok(Some(data)) = packet.take_data() else {
            return;
        };
        let mut args = Args::from_array(data);
        if args.is_empty() {
            return;
        }
        let name = match args.0.remove(0) {
            Data::Json(Value::String(s)) => s,
            Data::Json(Value::Number(n)) => n.to_string(),
            _ => return,
        };
        let ack = id.map(|id| Ack {
            socket: self.clone(),
            id,
        });
        let socket = self.clone();
        self.run_ordered(Box::pin(async move {
            socket.dispatch(Event { name, args, ack }).await;
        }));
    }

    async fn dispatch(self, mut event: Event) {
        let (middlewares, any, handler) = {
            let h = self.handlers();
            (
                h.middlewares.clone(),
                h.any.clone(),
                h.events.get(&event.name).cloned(),
            )
        };
        for m in middlewares {
            if let Err(message) = m(&self, &mut event) {
                tracing::debug!(socket = %self.inner.id, event = %event.name, %message, "event refused");
                if let Some(ack) = event.ack.take() {
                    ack.send(json!({ "error": message }));
                }
                return;
            }
        }
        for f in any {
            f(&self, &event.name, &event.args);
        }
        match handler {
            Some((handler, true)) => {
                tokio::spawn(handler(self, event));
            }
            Some((handler, false)) => handler(self, event).await,
            None => {}
        }
    }

    /// An ACK arrived.
    pub(crate) fn on_ack(&self, mut packet: Packet) {
        let Some(id) = packet.id else { return };
        let args = match packet.take_data() {
            Ok(Some(data)) => Args::from_array(data),
            _ => Args::new(),
        };
        self.inner.acks.resolve(id, args);
    }

    /// Leaves the namespace: handlers, recovery, rooms. Runs once.
    pub(crate) fn leave_namespace(&self, reason: DisconnectReason) {
        if !self.inner.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        let (disconnecting, disconnect) = {
            let h = self.handlers();
            (h.disconnecting.clone(), h.disconnect.clone())
        };
        for f in disconnecting {
            f(self, reason);
        }
        let ns = &self.inner.ns;
        if let (Some(store), Some(pid), true) =
            (ns.recovery_store(), self.inner.pid, reason.is_recoverable())
        {
            store.save_session(SavedSession {
                sid: self.inner.id,
                pid,
                nsp: ns.name.clone(),
                rooms: self.rooms(),
                data: self.data(),
                disconnected_at: SystemTime::now(),
            });
        }
        if let Some(observer) = ns.observer() {
            observer.socket_disconnected(self, reason);
        }
        // A stale connection whose id a recovered socket took over must not take the
        // newcomer's rooms with it.
        if ns.remove(self) {
            ns.adapter().del_all(self.inner.id);
        }
        self.inner.client.forget(&ns.name, self);
        self.inner.acks.close();
        tracing::debug!(socket = %self.inner.id, nsp = %ns.name, %reason, "socket disconnected");
        for f in disconnect {
            self.run_ordered(f(self.clone(), reason));
        }
        // Last job: drop the handlers and extensions, which may hold clones of this socket (a
        // cycle), and which the application may not outlive.
        let socket = self.clone();
        self.run_ordered(Box::pin(async move {
            let handlers = std::mem::take(&mut *socket.handlers());
            drop(handlers);
            socket.inner.extensions.clear();
        }));
    }
}
