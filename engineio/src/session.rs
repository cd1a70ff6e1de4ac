//! One Engine.IO session as the IO layer keeps it: its [`Machine`] behind a per-session lock,
//! the wake-ups for its writer and its waiting senders, the application's hooks. Every method
//! feeds the machine an input stamped with the time and carries out the effect it returns.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::{Protocol, SlowConsumerPolicy, TransportKind};
use crate::machine::{Closed, GetEnd, Machine, ProbeStep, Push, Received, Tick};
use crate::meter::Meter;
use crate::packet::{DecodeError, Frame, Message, Packet};
use crate::reason::CloseReason;
use crate::shared::{IpSlot, Shared};
use crate::sid::Sid;
use crate::socket::{Handshake, Hooks, SendError};

/// One session (a [`Socket`](crate::Socket) is a handle to it): the machine, and what the IO
/// layer needs around it.
pub(crate) struct Session {
    pub(crate) sid: Sid,
    /// The protocol revision, fixed at the handshake (also kept in the machine).
    pub(crate) protocol: Protocol,
    pub(crate) handshake: Handshake,
    machine: Mutex<Machine>,
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
    /// Counts what the writers send, when the server meters traffic.
    pub(crate) meter: Option<Arc<Meter>>,
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
        let machine = Machine::new(
            protocol,
            transport,
            now,
            config.ping_interval,
            config.ping_timeout,
        );
        shared.live_sessions.fetch_add(1, Ordering::Relaxed);
        Arc::new(Session {
            sid,
            protocol,
            handshake,
            machine: Mutex::new(machine),
            wake: Notify::new(),
            room: Notify::new(),
            hooks: Mutex::new(None),
            queue_limit: config.max_buffered_bytes,
            slow_consumer: config.slow_consumer,
            shared: Arc::downgrade(shared),
            ip_slot: Mutex::new(ip_slot),
            meter: shared.meter.get().cloned(),
        })
    }

    /// The session's machine. A panic elsewhere never leaves it unusable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Links the handler's per-connection state (behind the meter, when there is one);
    /// reports a close that happened during `on_open`.
    pub(crate) fn bind(&self, hooks: Arc<dyn Hooks>) {
        let hooks = match &self.meter {
            Some(meter) => {
                let polling = self.transport() == TransportKind::Polling;
                Arc::new(crate::meter::Metered::new(hooks, meter.clone(), polling))
            }
            None => hooks,
        };
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
            let mut machine = self.lock();
            if volatile {
                machine.push_volatile(frames)
            } else {
                machine.push(frames, self.queue_limit, self.slow_consumer)
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
            Push::Full => Err(SendError::Full),
            Push::Disconnected => {
                self.slow_consumer_closed(Closed::SLOW_CONSUMER);
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
                let machine = self.lock();
                if machine.closed().is_some() {
                    return Err(SendError::Closed);
                }
                if machine.has_room(bytes, self.queue_limit) {
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// A send closed the session (slow consumer): the close is carried out from a task, as the
    /// sender may hold locks the handler's `on_close` takes.
    fn slow_consumer_closed(self: &Arc<Self>, closed: Closed) {
        tracing::warn!(sid = %self.sid, "slow consumer: outgoing queue full, closing");
        if let Some(shared) = self.shared.upgrade() {
            shared.slow_consumers.fetch_add(1, Ordering::Relaxed);
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let session = self.clone();
                runtime.spawn(async move { session.finish_close(closed) });
            }
            Err(_) => self.finish_close(closed),
        }
    }

    /// The hooks, while the session is open and bound.
    fn hooks(&self) -> Option<Arc<dyn Hooks>> {
        self.hooks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn dispatch(&self, message: Message) {
        if let Some(hooks) = self.hooks() {
            hooks.message(message);
        }
    }

    /// A packet from the client (or one that did not decode), on either transport: returns
    /// the reason when the session closed on it.
    pub(crate) fn receive(
        self: &Arc<Self>,
        packet: Result<Packet, DecodeError>,
    ) -> Option<CloseReason> {
        if let Err(err) = &packet {
            tracing::debug!(sid = %self.sid, %err, "undecodable packet");
        }
        let received = self.lock().on_packet(Instant::now(), packet);
        match received {
            Received::Nothing => None,
            Received::Deliver(message) => {
                self.dispatch(message);
                None
            }
            Received::Rearm(at) => {
                self.schedule(at);
                None
            }
            Received::Wake => {
                self.wake.notify_one();
                None
            }
            Received::Closed(closed) => {
                if closed.reason == CloseReason::TransportError {
                    tracing::debug!(sid = %self.sid, "invalid heartbeat direction");
                }
                self.finish_close(closed);
                Some(closed.reason)
            }
        }
    }

    /// Closes the session. Server-side reasons deliver `1` to a polling client; a client-side
    /// close (`TransportClose`) answers a pending GET with `6`.
    pub(crate) fn close(self: &Arc<Self>, reason: CloseReason) {
        let linger = self
            .shared
            .upgrade()
            .map_or(Duration::ZERO, |s| s.config.polling_close_grace);
        let closed = self.lock().close(Instant::now(), reason, linger);
        if let Some(closed) = closed {
            self.finish_close(closed);
        }
    }

    /// The transport went away for `reason` (`ping timeout` instead, past the deadline);
    /// returns why the session closed, if it was open.
    pub(crate) fn transport_ended(self: &Arc<Self>, reason: CloseReason) -> Option<CloseReason> {
        let closed = self.lock().transport_ended(Instant::now(), reason)?;
        self.finish_close(closed);
        Some(closed.reason)
    }

    /// The lazy deadline check made on every request and WebSocket read: false once the
    /// session is closed (now, past the deadline, or before).
    pub(crate) fn alive(self: &Arc<Self>) -> bool {
        let alive = self.lock().alive(Instant::now());
        match alive {
            Ok(()) => true,
            Err(closed) => {
                if let Some(closed) = closed {
                    self.finish_close(closed);
                }
                false
            }
        }
    }

    /// Carries out a close the machine made: wakes the writer and waiting senders, gives back
    /// the per-address place, forgets the session or schedules the end of its grace period,
    /// and tells the handler.
    pub(crate) fn finish_close(self: &Arc<Self>, closed: Closed) {
        self.wake.notify_one();
        self.room.notify_waiters();
        drop(
            self.ip_slot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        match closed.linger_until {
            Some(at) => self.schedule(at),
            None => self.forget(),
        }
        tracing::debug!(sid = %self.sid, reason = %closed.reason, "session closed");
        self.report_close(closed.reason);
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

    /// Asks the shared timer for the entry the machine armed for `at`.
    pub(crate) fn schedule(self: &Arc<Self>, at: Instant) {
        if let Some(shared) = self.shared.upgrade() {
            shared.schedule(self, at);
        }
    }

    /// Schedules the timer entry the machine armed when it was made.
    pub(crate) fn start_timer(self: &Arc<Self>) {
        if let Some(at) = self.lock().armed() {
            self.schedule(at);
        }
    }

    /// The pending polling GET ended, `answered` or dropped before.
    pub(crate) fn end_get(self: &Arc<Self>, answered: bool) {
        let ended = self.lock().end_get(Instant::now(), answered);
        match ended {
            GetEnd::Done => {}
            GetEnd::Forget => self.forget(),
            GetEnd::Closed(closed) => {
                tracing::debug!(sid = %self.sid, "poll closed prematurely");
                self.finish_close(closed);
            }
        }
    }

    /// A text frame on this session's probing WebSocket.
    pub(crate) fn on_probe_text(&self, text: &str) -> ProbeStep {
        self.lock().on_probe_text(text)
    }

    /// `3probe` went out: a pending GET is released with a noop.
    pub(crate) fn probe_answered(&self) {
        self.lock().probe_answered();
        self.wake.notify_one();
    }

    /// The probe failed: polling goes on (a GET held by the probe is woken).
    pub(crate) fn abort_upgrade(&self) {
        self.lock().abort_upgrade();
        self.wake.notify_one();
    }

    /// The session is on WebSocket now: a pending GET is released with a noop, and the
    /// application is told.
    pub(crate) fn upgraded(&self) {
        self.wake.notify_one();
        if let Some(hooks) = self.hooks() {
            hooks.upgraded();
        }
    }

    /// Runs the timer entry scheduled for `at`: returns when to look again, or `None` when
    /// done with this session or when the entry is stale (replaced by a later one).
    pub(crate) fn on_timer(self: &Arc<Self>, at: Instant, now: Instant) -> Option<Instant> {
        let tick = self.lock().on_timer(at, now);
        match tick {
            Tick::Stale => None,
            Tick::Wait(next) => Some(next),
            Tick::Ping(deadline) => {
                self.wake.notify_one();
                Some(deadline)
            }
            Tick::Forget => {
                self.forget();
                None
            }
            Tick::Closed(closed) => {
                self.finish_close(closed);
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
