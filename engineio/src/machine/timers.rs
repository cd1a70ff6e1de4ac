//! Time as an input: the one live timer entry of a session (heartbeat, pong deadline, the
//! grace period of a closed polling session) and the deadline checks made on every read.

use tokio::time::Instant;

use super::heartbeat::Beat;
use super::{Machine, Tick};
use crate::packet::Frame;
use crate::reason::CloseReason;

impl Machine {
    /// The timer entry scheduled for `at` fired at `now`. Only the live entry counts: each
    /// rearm makes earlier entries stale, so a session never needs to cancel one.
    pub(crate) fn on_timer(&mut self, at: Instant, now: Instant) -> Tick {
        if self.timer != Some(at) {
            return Tick::Stale;
        }
        if self.closed.is_some() {
            // The grace period of a closed polling session is over.
            self.timer = None;
            return Tick::Forget;
        }
        match self.heartbeat.poll(now) {
            Beat::WaitUntil(next) => {
                self.timer = Some(next);
                Tick::Wait(next)
            }
            Beat::Ping { deadline } => {
                self.push_control(Frame::PING);
                self.timer = Some(deadline);
                Tick::Ping(deadline)
            }
            Beat::TimedOut => {
                self.timer = None;
                match self.fail(now, CloseReason::PingTimeout) {
                    Some(closed) => Tick::Closed(closed),
                    None => Tick::Forget,
                }
            }
        }
    }

    /// Whether the session is open and past its pong deadline (or, v3, its client's ping
    /// deadline).
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.closed.is_none() && self.heartbeat.expired(now)
    }
}
