//! Heartbeat deadlines (sans-IO): when to ping, and when a missing pong ends the session.

use std::time::Duration;

use tokio::time::Instant;

/// What the heartbeat wants done now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Nothing until this instant.
    WaitUntil(Instant),
    /// Send a ping now, then look again at the instant given (the pong deadline).
    Ping { deadline: Instant },
    /// No pong came in time: close with `ping timeout`.
    TimedOut,
}

/// Server-side ping/pong timing of one session (Engine.IO v4: the server pings).
///
/// Deadlines are computed from the scheduled ping time, not from when a timer happened to
/// fire, so a late timer never gives a dead client extra time: without a pong the session is
/// expired at `t0 + interval + timeout` exactly.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    next_ping: Instant,
    /// The scheduled time of the ping that still waits for its pong.
    awaiting_since: Option<Instant>,
    /// Engine.IO v3: the client pings. Holds the time of its last ping (or of the handshake);
    /// the session expires `interval + timeout` later, and the server never pings.
    client_pinged_at: Option<Instant>,
}

impl Heartbeat {
    /// Starts the clock at the handshake: the first ping is due one interval later.
    pub(crate) fn new(now: Instant, interval: Duration, timeout: Duration) -> Self {
        Heartbeat {
            interval,
            timeout,
            next_ping: now + interval,
            awaiting_since: None,
            client_pinged_at: None,
        }
    }

    /// The Engine.IO v3 heartbeat: the client pings, and must do so within
    /// `interval + timeout` of the handshake and of its previous ping.
    pub(crate) fn client_pings(now: Instant, interval: Duration, timeout: Duration) -> Self {
        Heartbeat {
            client_pinged_at: Some(now),
            ..Heartbeat::new(now, interval, timeout)
        }
    }

    /// A client ping arrived (v3): the deadline moves to `interval + timeout` from now. The
    /// timer entry waiting for the old deadline finds the new one then.
    pub(crate) fn on_client_ping(&mut self, now: Instant) {
        if self.client_pinged_at.is_some() {
            self.client_pinged_at = Some(now);
        }
    }

    /// Advances the heartbeat to `now`.
    pub(crate) fn poll(&mut self, now: Instant) -> Beat {
        if self.expired(now) {
            return Beat::TimedOut;
        }
        if let Some(at) = self.client_pinged_at {
            return Beat::WaitUntil(at + self.interval + self.timeout);
        }
        match self.awaiting_since {
            Some(sent) => Beat::WaitUntil(sent + self.timeout),
            None if now >= self.next_ping => {
                self.awaiting_since = Some(self.next_ping);
                Beat::Ping {
                    deadline: self.next_ping + self.timeout,
                }
            }
            None => Beat::WaitUntil(self.next_ping),
        }
    }

    /// A pong arrived; the next ping is due one interval from now, which is returned. An
    /// unsolicited pong is ignored (`None`).
    pub(crate) fn on_pong(&mut self, now: Instant) -> Option<Instant> {
        self.awaiting_since.take()?;
        self.next_ping = now + self.interval;
        Some(self.next_ping)
    }

    /// Whether the session is past its pong deadline, also when the ping itself is overdue.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        if let Some(at) = self.client_pinged_at {
            return now >= at + self.interval + self.timeout;
        }
        let ping_at = self.awaiting_since.unwrap_or(self.next_ping);
        now >= ping_at + self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_millis(300);
    const T: Duration = Duration::from_millis(200);

    #[test]
    fn first_ping_one_interval_after_handshake() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, I, T);
        assert_eq!(hb.poll(t0), Beat::WaitUntil(t0 + I));
        assert_eq!(
            hb.poll(t0 + I - Duration::from_millis(1)),
            Beat::WaitUntil(t0 + I)
        );
        assert_eq!(
            hb.poll(t0 + I),
            Beat::Ping {
                deadline: t0 + I + T
            }
        );
        assert_eq!(hb.poll(t0 + I), Beat::WaitUntil(t0 + I + T));
    }

    #[test]
    fn pong_reschedules_from_pong_time() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, I, T);
        hb.poll(t0 + I);
        let pong_at = t0 + I + Duration::from_millis(50);
        assert_eq!(hb.on_pong(pong_at), Some(pong_at + I));
        assert_eq!(hb.poll(pong_at), Beat::WaitUntil(pong_at + I));
        assert!(!hb.expired(pong_at + I + T - Duration::from_millis(1)));
    }

    #[test]
    fn missing_pong_expires_exactly_at_deadline() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, I, T);
        // The timer fires late: the deadline still counts from the scheduled ping.
        assert_eq!(
            hb.poll(t0 + I + Duration::from_millis(150)),
            Beat::Ping {
                deadline: t0 + I + T
            }
        );
        assert!(!hb.expired(t0 + I + T - Duration::from_millis(1)));
        assert!(hb.expired(t0 + I + T));
        assert_eq!(hb.poll(t0 + I + T), Beat::TimedOut);
    }

    #[test]
    fn overdue_ping_counts_as_expired() {
        let t0 = Instant::now();
        let hb = Heartbeat::new(t0, I, T);
        assert!(hb.expired(t0 + I + T));
    }

    #[test]
    fn v3_client_pings_and_the_server_never_does() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::client_pings(t0, I, T);
        assert_eq!(hb.poll(t0 + I), Beat::WaitUntil(t0 + I + T));
        assert!(!hb.expired(t0 + I + T - Duration::from_millis(1)));
        let ping = t0 + I;
        hb.on_client_ping(ping);
        // The old deadline passes: the timer looks again at the new one.
        assert_eq!(hb.poll(t0 + I + T), Beat::WaitUntil(ping + I + T));
        assert!(!hb.expired(ping + I + T - Duration::from_millis(1)));
        assert!(hb.expired(ping + I + T));
        assert_eq!(hb.poll(ping + I + T), Beat::TimedOut);
        // A pong from a v3 client changes nothing.
        assert_eq!(hb.on_pong(ping), None);
    }

    #[test]
    fn v4_ignores_client_pings() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, I, T);
        hb.on_client_ping(t0 + I);
        assert!(hb.expired(t0 + I + T));
    }

    #[test]
    fn unsolicited_pong_is_ignored() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, I, T);
        assert_eq!(hb.on_pong(t0 + Duration::from_millis(10)), None);
        assert_eq!(hb.poll(t0), Beat::WaitUntil(t0 + I));
    }
}
