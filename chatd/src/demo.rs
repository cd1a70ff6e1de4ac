//! Compatibility with the two classic Socket.IO chat demos on the default namespace `/`, both
//! bridged into the room `lobby` (see `docs/protocol.md`):
//!
//! - the `examples/chat` demo (`add user`, `new message`, `typing`, `stop typing`), whose texts
//!   are stored and relayed opaquely;
//! - the tutorial chat (`chat message` with a client offset and an ack, catch-up by
//!   `auth.serverOffset`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use socketio::{Namespace, Socket};
use tokio::time::Instant;

use crate::app::App;
use crate::deliver::{DEMO_GROUP, LOBBY};
use crate::limits::{Budget, Charge, TypingGate};
use crate::protocol::{self, ChatError, Code};

/// Name shown for tutorial-chat messages, which carry no user name.
const TUTORIAL_USER: &str = "guest";
/// Longest accepted demo user name, in bytes (the client escapes HTML, so allow for entities).
const MAX_DEMO_NAME: usize = 200;

/// State shared by all demo sockets: the participant count of the classic demo.
#[derive(Default)]
pub struct DemoState {
    num_users: AtomicUsize,
}

struct DemoSocket {
    username: Mutex<Option<String>>,
    counter: AtomicU64,
    attached: AtomicBool,
    budget: Mutex<Budget>,
    typing: Mutex<TypingGate>,
    /// A deferred typing relay is scheduled.
    typing_flush: AtomicBool,
}

impl DemoSocket {
    fn name(&self) -> Option<String> {
        self.username
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Charges an event to the connection's budget (costs as on `/chat`); false when it is
    /// over, and an abusive connection is disconnected.
    fn allowed(&self, socket: &Socket, cost: f64) -> bool {
        let charge = self
            .budget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .charge(cost, Instant::now());
        match charge {
            Charge::Allowed => true,
            Charge::Limited => false,
            Charge::Abusive => {
                if socket.connected() {
                    let err = ChatError::new(
                        Code::TooManyViolations,
                        "too many refused events: disconnected",
                    );
                    let _ = socket.emit("error", json!({"code": err.code, "message": err.message}));
                    socket.disconnect();
                }
                false
            }
        }
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, TypingGate> {
        self.typing.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Cost of a typing event, as on `/chat`.
const TYPING_COST: f64 = 0.2;

/// Relays a typing state to the other demo clients. Not volatile: a polling client between
/// two requests would miss it, and a lost `stop typing` leaves the indicator on; the gate
/// already bounds how many go out.
fn relay_typing(socket: &Socket, name: &str, typing: bool) {
    let out = if typing { "typing" } else { "stop typing" };
    let _ = socket.to(DEMO_GROUP).emit(out, json!({"username": name}));
}

/// Relays the typing state once its interval ends, if it still differs from the one shown.
fn schedule_typing_flush(me: Arc<DemoSocket>, socket: Socket, interval: Duration) {
    let Some(due) = me.gate().due(interval) else {
        return;
    };
    if me.typing_flush.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep_until(due).await;
        me.typing_flush.store(false, Ordering::Release);
        let relay = me.gate().poll(Instant::now(), interval);
        if let (Some(typing), Some(name)) = (relay, me.name()) {
            if socket.connected() {
                relay_typing(&socket, &name, typing);
            }
        }
    });
}

/// Installs the demo handlers on `/`.
pub fn install(app: Arc<App>, ns: &Namespace) {
    // The demo servers run without connection state recovery: their clients (and ports of them
    // to other languages) take exactly the demo's arguments, with no trailing offset. The
    // tutorial catches up through `auth.serverOffset` instead.
    ns.recovery(false);
    ns.on_connection(move |socket| {
        let app = app.clone();
        async move { connected(app, socket).await }
    });
}

async fn connected(app: Arc<App>, socket: Socket) {
    let me = Arc::new(DemoSocket {
        username: Mutex::new(None),
        counter: AtomicU64::new(0),
        attached: AtomicBool::new(false),
        budget: Mutex::new(Budget::new(
            app.settings.message_rate,
            app.settings.message_burst,
            app.settings.max_violations,
            app.settings.violation_window(),
        )),
        typing: Mutex::new(TypingGate::default()),
        typing_flush: AtomicBool::new(false),
    });
    let typing_interval = app.settings.typing_interval();
    // The tutorial client announces itself with `auth.serverOffset`.
    if let Some(offset) = socket.auth().get("serverOffset") {
        attach(&app, &socket, &me, offset.as_u64().unwrap_or(0)).await;
    }

    let (a, m) = (app.clone(), me.clone());
    socket.on("add user", move |socket, event| {
        let (app, me) = (a.clone(), m.clone());
        async move {
            if !me.allowed(&socket, 1.0) {
                return;
            }
            // A refused name gets no `login`: the demo has no way to show an error.
            let Some(name) = event
                .args
                .json(0)
                .and_then(Value::as_str)
                .and_then(|name| protocol::demo_name(name, MAX_DEMO_NAME))
            else {
                return;
            };
            {
                let mut username = me.username.lock().unwrap_or_else(|e| e.into_inner());
                if username.is_some() {
                    return;
                }
                *username = Some(name.clone());
            }
            let n = app.demo.num_users.fetch_add(1, Ordering::AcqRel) + 1;
            socket.join(DEMO_GROUP);
            let _ = socket.emit("login", json!({"numUsers": n}));
            let _ = socket
                .to(DEMO_GROUP)
                .emit("user joined", json!({"username": name, "numUsers": n}));
        }
    });

    let (a, m) = (app.clone(), me.clone());
    socket.on("new message", move |socket, event| {
        let (app, me) = (a.clone(), m.clone());
        async move {
            if !me.allowed(&socket, 1.0) {
                return;
            }
            let (Some(name), Some(text)) = (me.name(), event.args.json(0).and_then(Value::as_str))
            else {
                return;
            };
            let Ok(text) = protocol::text(text, app.settings.max_message_bytes) else {
                return;
            };
            let n = me.counter.fetch_add(1, Ordering::Relaxed);
            let id = format!("demo:{}:{n}", socket.id());
            post(&app, &name, id, text, &socket).await;
        }
    });

    // Typing is relayed at most once per `--typing-interval-ms` and change, as on `/chat`.
    for (event, typing) in [("typing", true), ("stop typing", false)] {
        let m = me.clone();
        socket.on(event, move |socket, _event| {
            let me = m.clone();
            async move {
                if !me.allowed(&socket, TYPING_COST) {
                    return;
                }
                let Some(name) = me.name() else { return };
                let relay = me.gate().set(typing, Instant::now(), typing_interval);
                match relay {
                    Some(state) => relay_typing(&socket, &name, state),
                    None => schedule_typing_flush(me, socket, typing_interval),
                }
            }
        });
    }

    let (a, m) = (app.clone(), me.clone());
    socket.on("chat message", move |socket, event| {
        let (app, me) = (a.clone(), m.clone());
        async move {
            if !me.allowed(&socket, 1.0) {
                return;
            }
            let Some(text) = event.args.json(0).and_then(Value::as_str) else {
                return;
            };
            let Ok(text) = protocol::text(text, app.settings.max_message_bytes) else {
                // Refused for good (empty, control characters, too long): acknowledged, so that
                // the client's retry queue moves on, but neither stored nor broadcast.
                if let Some(ack) = event.ack {
                    ack.send(());
                }
                return;
            };
            if !me.attached.load(Ordering::Acquire) {
                attach(&app, &socket, &me, u64::MAX).await;
            }
            let id = match event.args.json(1).and_then(Value::as_str) {
                Some(offset) if protocol::client_id(offset).is_ok() => offset.to_owned(),
                _ => format!(
                    "tutorial:{}:{}",
                    socket.id(),
                    me.counter.fetch_add(1, Ordering::Relaxed)
                ),
            };
            // Stored (or already stored): acknowledge; a storage failure gets no ack, so the
            // client retries.
            if post(&app, TUTORIAL_USER, id, text, &socket).await {
                if let Some(ack) = event.ack {
                    ack.send(());
                }
            }
        }
    });

    let (a, m) = (app.clone(), me.clone());
    socket.on_disconnect(move |socket, _reason| {
        let (app, me) = (a.clone(), m.clone());
        async move {
            if let Some(name) = me.name() {
                let n = app
                    .demo
                    .num_users
                    .fetch_sub(1, Ordering::AcqRel)
                    .saturating_sub(1);
                let _ = socket
                    .ns()
                    .to(DEMO_GROUP)
                    .emit("user left", json!({"username": name, "numUsers": n}));
            }
            if me.attached.load(Ordering::Acquire) {
                if let Ok(lobby) = app.registry.get(LOBBY).await {
                    let _ = lobby.socket_gone(socket.id()).await;
                }
            }
        }
    });
}

async fn attach(app: &App, socket: &Socket, me: &DemoSocket, since: u64) {
    for _ in 0..3 {
        let Ok(lobby) = app.registry.get(LOBBY).await else {
            return;
        };
        if lobby.attach(socket.id(), since).await.is_ok() {
            me.attached.store(true, Ordering::Release);
            return;
        }
    }
}

/// Posts to the lobby; true once stored (or already stored).
async fn post(app: &App, user: &str, id: String, text: String, socket: &Socket) -> bool {
    for _ in 0..3 {
        let Ok(lobby) = app.registry.get(LOBBY).await else {
            return false;
        };
        match lobby
            .post(user, id.clone(), text.clone(), Some(socket.id()))
            .await
        {
            Ok(result) => return result.is_ok(),
            Err(_) => continue,
        }
    }
    false
}
