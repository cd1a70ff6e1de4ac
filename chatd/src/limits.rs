//! Rate and connection limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Open connections per client address.
#[derive(Clone, Default)]
pub struct PerIp {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    held: Arc<Mutex<HashMap<engineio::Sid, IpSlot>>>,
}

/// A counted connection; dropping it releases the slot.
pub struct IpSlot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    /// Takes a slot for `ip` unless it already has `max`.
    pub fn acquire(&self, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            counts: self.counts.clone(),
        })
    }
}

impl PerIp {
    /// Takes a slot for a connection, kept until [`PerIp::release`]; false when `ip` is at `max`.
    pub fn hold(&self, socket: engineio::Sid, ip: IpAddr, max: usize) -> bool {
        let Some(slot) = self.acquire(ip, max) else {
            return false;
        };
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(socket, slot);
        true
    }

    /// Gives back the slot of a connection.
    pub fn release(&self, socket: &engineio::Sid) {
        let slot = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(socket);
        drop(slot);
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// How long a full bucket lasts at the burst rate; for documentation and tests.
pub fn refill_time(rate: f64) -> Duration {
    Duration::from_secs_f64(1.0 / rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 20.0);
        assert!((0..20).all(|_| b.try_take(t0)));
        assert!(!b.try_take(t0));
        assert!(b.try_take(t0 + refill_time(10.0)));
        assert!(!b.try_take(t0 + refill_time(10.0)));
    }

    #[test]
    fn per_ip_slots() {
        let limits = PerIp::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let a = limits.acquire(ip, 2).unwrap();
        let _b = limits.acquire(ip, 2).unwrap();
        assert!(limits.acquire(ip, 2).is_none());
        drop(a);
        assert!(limits.acquire(ip, 2).is_some());
    }
}
