//! One Engine.IO session: its state behind a per-session lock, and the wake-up for its writer.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::{Protocol, SlowConsumerPolicy, TransportKind};
use crate::heartbeat::{Beat, Heartbeat};
use crate::packet::{Frame, Message};
use crate::reason::CloseReason;
use crate::shared::{IpSlot, Shared};
use crate::sid::Sid;
use crate::socket::{Handshake, Hooks, SendError};
use crate::state::{Delivery, Push, SessionState};

pub(crate) struct Session {
    pub(crate) sid: Sid,
    /// The protocol revision, fixed at the handshake (also kept in the state).
    pub(crate) protocol: Protocol,
    pub(crate) handshake: Handshake,
    state: Mutex<SessionState>,
    /// Wakes whoever writes to the client: the pending GET or the WebSocket task.
    pub(crate) wake: Notify,
    /// Wakes senders waiting for room in the queue ([`Session::reserve`]).
    pub(crate) room: Notify,
    /// The handler's per-connection state. Taken out when the close is reported: it usually
    /// holds a [`Socket`](crate::Socket) of this session, and keeping it would be a cycle.
    hooks: Mutex<Option<Arc<dyn Hooks>>>,
    /// Copied from the config so that a send never touches the shared state.
    queue_limit: usize,
    slow_consumer: SlowConsumerPolicy,
    shared: Weak<Shared>,
    /// The session's place in the per-address count, given back when it closes.
    ip_slot: Mutex<Option<IpSlot>>,
}

impl Session {
    pub(crate) fn new(
        shared: &Arc<Shared>,
        sid: Sid,
        handshake: Handshake,
        transport: TransportKind,
        protocol: Protocol,
        ip_slot: Option<IpSlot>,
        now: Instant,
    ) -> Arc<Self> {
        let config = &shared.config;
        let heartbeat = match protocol {
            Protocol::V4 => Heartbeat::new(now, config.ping_interval, config.ping_timeout),
            Protocol::V3 => Heartbeat::client_pings(now, config.ping_interval, config.ping_timeout),
        };
        shared.live_sessions.fetch_add(1, Ordering::Relaxed);
        Arc::new(Session {
            sid,
            protocol,
            handshake,
            state: Mutex::new(SessionState::with_protocol(protocol, transport, heartbeat)),
            wake: Notify::new(),
            room: Notify::new(),
            hooks: Mutex::new(None),
            queue_limit: config.max_buffered_bytes,
            slow_consumer: config.slow_consumer,
            shared: Arc::downgrade(shared),
            ip_slot: Mutex::new(ip_slot),
        })
    }

    /// The session's state. A panic elsewhere never leaves it unusable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Links the handler's per-connection state; reports a close that happened during `on_open`.
    pub(crate) fn bind(&self, hooks: Arc<dyn Hooks>) {
        *self.hooks.lock().unwrap_or_else(|e| e.into_inner()) = Some(hooks);
        if let Some(reason) = self.close_reason() {
            self.report_close(reason);
        }
    }

    pub(crate) fn transport(&self) -> TransportKind {
        self.lock().transport()
    }

    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.lock().closed()
    }

    /// Queues frames and wakes the writer. Never calls back into the handler, so callers may
    /// hold locks (a broadcast walking a room): a slow consumer's close is reported from a task.
    pub(crate) fn send<I>(self: &Arc<Self>, frames: I, volatile: bool) -> Result<(), SendError>
    where
        I: IntoIterator<Item = Frame>,
        I::IntoIter: Clone,
    {
        let pushed = {
            let mut state = self.lock();
            if volatile {
                state.push_volatile(frames)
            } else {
                state.push(frames, self.queue_limit)
            }
        };
        match pushed {
            Push::Queued { wake } => {
                if wake {
                    self.wake.notify_one();
                }
                Ok(())
            }
            Push::Dropped => Err(SendError::Dropped),
            Push::Closed => Err(SendError::Closed),
            Push::Full => {
                if self.slow_consumer == SlowConsumerPolicy::Disconnect {
                    self.close_slow_consumer();
                }
                Err(SendError::Full)
            }
        }
    }

    /// Resolves once `bytes` more fit in the queue (or nothing is pending, for a unit larger
    /// than the limit); `Err(Closed)` once the session is closed.
    pub(crate) async fn reserve(&self, bytes: usize) -> Result<(), SendError> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let state = self.lock();
                if state.closed().is_some() {
                    return Err(SendError::Closed);
                }
                let pending = state.pending();
                if pending == 0 || pending + bytes <= self.queue_limit {
                    return Ok(());
                }
            }
            room.await;
        }
    }

    fn close_slow_consumer(self: &Arc<Self>) {
        let reason = CloseReason::TransportError;
        let Some(lingers) = self.mark_closed(reason) else {
            return;
        };
        tracing::warn!(sid = %self.sid, "slow consumer: outgoing queue full, closing");
        if let Some(shared) = self.shared.upgrade() {
            shared
                .slow_consumers
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let session = self.clone();
                runtime.spawn(async move { session.after_close(reason, lingers) });
            }
            Err(_) => self.after_close(reason, lingers),
        }
    }

    /// The hooks, while the session is open and bound.
    fn hooks(&self) -> Option<Arc<dyn Hooks>> {
        self.hooks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn dispatch(&self, message: Message) {
        if let Some(hooks) = self.hooks() {
            hooks.message(message);
        }
    }

    pub(crate) fn upgraded(&self) {
        if let Some(hooks) = self.hooks() {
            hooks.upgraded();
        }
    }

    /// Closes the session. Server-side reasons deliver `1` to a polling client; a client-side
    /// close (`TransportClose`) answers a pending GET with `6`.
    pub(crate) fn close(self: &Arc<Self>, reason: CloseReason) {
        if let Some(lingers) = self.mark_closed(reason) {
            self.after_close(reason, lingers);
        }
    }

    /// Marks the state closed; the first time, whether the session lingers for a polling GET.
    fn mark_closed(&self, reason: CloseReason) -> Option<bool> {
        let delivery = match reason {
            CloseReason::TransportClose => Delivery::Noop,
            _ => Delivery::CloseFrame,
        };
        let mut state = self.lock();
        state.close(reason, delivery).then(|| state.lingers())
    }

    /// Wakes the writer, forgets or lingers, and tells the handler.
    fn after_close(self: &Arc<Self>, reason: CloseReason, lingers: bool) {
        self.wake.notify_one();
        self.room.notify_waiters();
        drop(
            self.ip_slot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        if let Some(shared) = self.shared.upgrade() {
            if lingers {
                self.arm_timer(&shared, Instant::now() + shared.config.polling_close_grace);
            } else {
                shared.sessions.remove(&self.sid);
            }
        }
        tracing::debug!(sid = %self.sid, %reason, "session closed");
        self.report_close(reason);
    }

    /// Tells the handler, once, and lets go of its per-connection state.
    fn report_close(&self, reason: CloseReason) {
        let hooks = self.hooks.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(hooks) = hooks {
            hooks.closed(reason);
        }
    }

    /// Forgets a closed session once its close packet went out or its grace period ended.
    pub(crate) fn forget(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.sessions.remove(&self.sid);
        }
    }

    /// Schedules the session's timer at `at`, replacing the entry scheduled before.
    pub(crate) fn arm_timer(self: &Arc<Self>, shared: &Shared, at: Instant) {
        self.lock().arm(at);
        shared.schedule(self, at);
    }

    /// A pong arrived: the next ping is due one interval from now, which can be earlier than
    /// the pong deadline the timer waits for.
    pub(crate) fn on_pong(self: &Arc<Self>) {
        let next_ping = self.lock().on_pong(Instant::now());
        if let (Some(at), Some(shared)) = (next_ping, self.shared.upgrade()) {
            self.arm_timer(&shared, at);
        }
    }

    /// A client ping arrived: v3 answers it (true); in v4 it is an error (false).
    pub(crate) fn on_client_ping(&self, probe: bool) -> bool {
        let answered = self.lock().on_client_ping(Instant::now(), probe);
        if answered {
            self.wake.notify_one();
        }
        answered
    }

    /// Lazy deadline check made on every request and WebSocket read: closes an expired session.
    pub(crate) fn check_expired(self: &Arc<Self>) -> bool {
        let expired = self.lock().expired(Instant::now());
        if expired {
            self.close(CloseReason::PingTimeout);
        }
        expired
    }

    /// Runs the timer entry scheduled for `at`: returns when to look again, or `None` when
    /// done with this session or when the entry is stale (replaced by a later `arm_timer`).
    pub(crate) fn on_timer(self: &Arc<Self>, at: Instant, now: Instant) -> Option<Instant> {
        let beat = {
            let mut state = self.lock();
            if !state.armed_for(at) {
                return None;
            }
            let beat = state.beat(now);
            if let Beat::WaitUntil(next) | Beat::Ping { deadline: next } = beat {
                state.arm(next);
            }
            beat
        };
        match beat {
            Beat::WaitUntil(at) => Some(at),
            Beat::Ping { deadline } => {
                self.wake.notify_one();
                Some(deadline)
            }
            Beat::TimedOut if self.close_reason().is_some() => {
                // The grace period of a closed polling session is over.
                self.forget();
                None
            }
            Beat::TimedOut => {
                self.close(CloseReason::PingTimeout);
                None
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.live_sessions.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
