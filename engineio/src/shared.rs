//! State shared by all sessions of one server: options, the session registry, the timer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::Config;
use crate::session::Session;
use crate::sid::Sid;
use crate::timer::Timer;

const SHARDS: usize = 64;

type Shard = Mutex<HashMap<Sid, Arc<Session>>>;

/// Sessions by id, sharded so that concurrent polling requests rarely share a lock.
pub(crate) struct Registry {
    shards: Box<[Shard]>,
    len: AtomicUsize,
    emptied: Notify,
}

impl Registry {
    fn new() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            len: AtomicUsize::new(0),
            emptied: Notify::new(),
        }
    }

    fn shard(&self, sid: &Sid) -> std::sync::MutexGuard<'_, HashMap<Sid, Arc<Session>>> {
        let b = sid.as_str().as_bytes();
        let i = (usize::from(b[0]) * 31 + usize::from(b[1]) * 7 + usize::from(b[19])) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, session: Arc<Session>) {
        if self
            .shard(&session.sid)
            .insert(session.sid, session)
            .is_none()
        {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self, sid: &Sid) -> Option<Arc<Session>> {
        self.shard(sid).get(sid).cloned()
    }

    pub(crate) fn remove(&self, sid: &Sid) {
        if self.shard(sid).remove(sid).is_some() && self.len.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.emptied.notify_waiters();
        }
    }

    /// Resolves once no session is left.
    pub(crate) async fn wait_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.len.load(Ordering::Acquire) == 0 {
                return;
            }
            emptied.await;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        let mut out = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(shard.values().cloned());
        }
        out
    }
}

/// Counts running WebSocket tasks so that shutdown can wait for them.
#[derive(Default)]
pub(crate) struct TaskCount {
    running: AtomicUsize,
    idle: Notify,
}

impl TaskCount {
    pub(crate) fn enter(self: &Arc<Self>) -> TaskGuard {
        self.running.fetch_add(1, Ordering::AcqRel);
        TaskGuard(self.clone())
    }

    pub(crate) fn count(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    pub(crate) async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

pub(crate) struct TaskGuard(Arc<TaskCount>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Open sessions per client address, for [`Config::max_sessions_per_ip`].
#[derive(Default)]
pub(crate) struct IpSlots(Arc<Mutex<HashMap<std::net::IpAddr, usize>>>);

impl IpSlots {
    /// Takes a place for `ip` unless it has `max` already.
    pub(crate) fn acquire(&self, ip: std::net::IpAddr, max: usize) -> Option<IpSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            slots: self.0.clone(),
        })
    }
}

/// A session's place in its address's count; dropping it gives the place back.
pub(crate) struct IpSlot {
    ip: std::net::IpAddr,
    slots: Arc<Mutex<HashMap<std::net::IpAddr, usize>>>,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) sessions: Registry,
    timer: OnceLock<Timer>,
    pub(crate) ws_tasks: Arc<TaskCount>,
    pub(crate) shutting_down: AtomicBool,
    /// New handshakes are refused with 503; open sessions go on.
    pub(crate) draining: AtomicBool,
    /// Connections closed by the slow-consumer policy.
    pub(crate) slow_consumers: std::sync::atomic::AtomicU64,
    /// Sessions still in memory, open or closed: the registry's count plus those that
    /// something still holds after they left it.
    pub(crate) live_sessions: AtomicUsize,
    /// Open sessions per client address.
    pub(crate) per_ip: IpSlots,
    /// Handshakes refused by the per-address cap.
    pub(crate) refused_per_ip: std::sync::atomic::AtomicU64,
    /// Traffic counts, once turned on: sessions opened from then on are metered.
    pub(crate) meter: OnceLock<Arc<crate::meter::Meter>>,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Arc<Self> {
        Arc::new(Shared {
            config,
            sessions: Registry::new(),
            timer: OnceLock::new(),
            ws_tasks: Arc::default(),
            shutting_down: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            slow_consumers: Default::default(),
            live_sessions: AtomicUsize::new(0),
            per_ip: IpSlots::default(),
            refused_per_ip: Default::default(),
            meter: OnceLock::new(),
        })
    }

    /// Asks the shared timer to run `session.on_timer` at `at`. Needs a tokio runtime.
    pub(crate) fn schedule(&self, session: &Arc<Session>, at: Instant) {
        self.timer
            .get_or_init(Timer::start)
            .schedule(at, Arc::downgrade(session));
    }
}
