//! Rate limits.

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
        self.try_take_n(1.0, now)
    }

    /// The tokens there are at `now`.
    pub fn available(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        (self.tokens + elapsed * self.rate).min(self.burst)
    }

    /// Whether the bucket is full at `now` (as good as a new one).
    pub fn is_full(&self, now: Instant) -> bool {
        self.available(now) >= self.burst
    }

    /// Takes `cost` tokens if there are that many.
    pub fn try_take_n(&mut self, cost: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// The outcome of charging a command to a [`Budget`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charge {
    /// Within the budget: run the command.
    Allowed,
    /// Over the budget: refuse it (`rate_limited`).
    Limited,
    /// Over the budget too often within the window: disconnect the connection.
    Abusive,
}

/// A connection's command budget: a token bucket that commands are charged a cost against,
/// and a count of refusals. `max_violations` refusals within `window` (counted from the first
/// of them) mark the connection as abusive; a client that backs off on `rate_limited` never
/// gets there.
#[derive(Debug)]
pub struct Budget {
    bucket: TokenBucket,
    max_violations: u32,
    window: Duration,
    violations: u32,
    since: Instant,
}

impl Budget {
    /// A full budget of `rate` tokens a second, `burst` at most.
    pub fn new(rate: f64, burst: f64, max_violations: u32, window: Duration) -> Self {
        Budget {
            bucket: TokenBucket::new(rate, burst),
            max_violations: max_violations.max(1),
            window,
            violations: 0,
            since: Instant::now(),
        }
    }

    /// Charges a command costing `cost` tokens.
    pub fn charge(&mut self, cost: f64, now: Instant) -> Charge {
        if self.bucket.try_take_n(cost, now) {
            return Charge::Allowed;
        }
        if self.violations == 0 || now >= self.since + self.window {
            self.violations = 0;
            self.since = now;
        }
        self.violations += 1;
        if self.violations >= self.max_violations {
            Charge::Abusive
        } else {
            Charge::Limited
        }
    }
}

/// The typing state one user shows in one room: each change is relayed at once if the last
/// relay was at least `interval` ago, else once when the interval ends (only the latest state,
/// and only if it differs from what was relayed last). However fast a client toggles, members
/// get at most one relay per interval.
#[derive(Debug, Default, Clone)]
pub struct TypingGate {
    shown: bool,
    wanted: bool,
    last: Option<Instant>,
}

impl TypingGate {
    /// The client typed (`true`) or stopped; returns the state to relay now, if any.
    pub fn set(&mut self, typing: bool, now: Instant, interval: Duration) -> Option<bool> {
        self.wanted = typing;
        self.poll(now, interval)
    }

    /// The state to relay at `now`: the wanted one, if it differs from the shown one and the
    /// interval since the last relay has passed.
    pub fn poll(&mut self, now: Instant, interval: Duration) -> Option<bool> {
        if self.wanted == self.shown || self.last.is_some_and(|t| now < t + interval) {
            return None;
        }
        self.shown = self.wanted;
        self.last = Some(now);
        Some(self.shown)
    }

    /// When a deferred change is due, if one is.
    pub fn due(&self, interval: Duration) -> Option<Instant> {
        if self.wanted == self.shown {
            return None;
        }
        Some(self.last.map_or_else(Instant::now, |t| t + interval))
    }

    /// Re-announces a typing state that is still refreshed, at most every `every`.
    pub fn refresh(&mut self, now: Instant, every: Duration) -> bool {
        if !(self.wanted && self.shown) || self.last.is_some_and(|t| now < t + every) {
            return false;
        }
        self.last = Some(now);
        true
    }

    /// Ends typing without a relay (members clear it themselves, on a message); the next start
    /// is relayed at once. (Messages have a budget of their own.)
    pub fn silence(&mut self) {
        self.wanted = false;
        self.shown = false;
        self.last = None;
    }

    /// Whether members were last told the user is typing.
    pub fn shown(&self) -> bool {
        self.shown
    }

    /// Whether the client last said it is typing.
    pub fn wanted(&self) -> bool {
        self.wanted
    }

    /// Idle: nothing shown, nothing pending, and the last relay at least `interval` ago (so
    /// forgetting the gate cannot let the next change through early).
    pub fn idle(&self, now: Instant, interval: Duration) -> bool {
        !self.wanted && !self.shown && self.last.is_none_or(|t| now >= t + interval)
    }

    /// When [`TypingGate::idle`] becomes true, if nothing changes.
    pub fn idle_at(&self, interval: Duration) -> Option<Instant> {
        if self.wanted || self.shown {
            return None;
        }
        self.last.map(|t| t + interval)
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
    fn costs_and_violations() {
        let t0 = Instant::now();
        let window = Duration::from_secs(10);
        let mut b = Budget::new(1.0, 2.0, 3, window);
        assert_eq!(b.charge(0.5, t0), Charge::Allowed);
        assert_eq!(b.charge(1.0, t0), Charge::Allowed);
        assert_eq!(b.charge(1.0, t0), Charge::Limited);
        assert_eq!(b.charge(0.5, t0), Charge::Allowed);
        assert_eq!(b.charge(0.5, t0), Charge::Limited);
        // Violations past the window start a new count.
        let t1 = t0 + window;
        assert_eq!(b.charge(5.0, t1), Charge::Limited);
        assert_eq!(b.charge(5.0, t1), Charge::Limited);
        assert_eq!(b.charge(5.0, t1), Charge::Abusive);
    }

    #[test]
    fn typing_gate_relays_each_change_at_most_once_per_interval() {
        let t0 = Instant::now();
        let i = Duration::from_secs(1);
        let mut g = TypingGate::default();
        assert_eq!(g.set(true, t0, i), Some(true));
        // A storm of toggles within the interval: nothing relayed, the latest state pending.
        let mut relayed = 0;
        for n in 0..1000 {
            relayed += usize::from(g.set(n % 2 == 1, t0, i).is_some());
        }
        assert_eq!(relayed, 0);
        assert_eq!(g.due(i), None, "ended on true, as shown");
        assert_eq!(g.set(false, t0, i), None);
        assert_eq!(g.due(i), Some(t0 + i));
        assert_eq!(g.poll(t0 + i, i), Some(false));
        assert!(!g.idle(t0 + i, i));
        assert!(g.idle(t0 + i * 2, i));
        // Refreshes re-announce at most every `every`.
        assert_eq!(g.set(true, t0 + i * 2, i), Some(true));
        assert!(!g.refresh(t0 + i * 3, i * 2));
        assert!(g.refresh(t0 + i * 4, i * 2));
        g.silence();
        assert!(!g.shown() && !g.wanted());
        assert_eq!(g.set(true, t0 + i * 4, i), Some(true));
    }
}
