//! The polling → WebSocket upgrade: the probe exchange on the new WebSocket (`2probe` →
//! `3probe` → `5`) while polling goes on, and the switch of transport.

use std::time::Duration;

use tokio::time::Instant;

use super::{Machine, ProbeRefusal, ProbeStep, Upgrade};
use crate::config::TransportKind;

impl Machine {
    /// A probing WebSocket opened at `now`; on success, the instant by which the exchange
    /// must be over (`timeout` later), after which the IO layer reports
    /// [`Machine::abort_upgrade`].
    pub(crate) fn begin_probe(
        &mut self,
        now: Instant,
        timeout: Duration,
    ) -> Result<Instant, ProbeRefusal> {
        if self.closed.is_some() || self.heartbeat.expired(now) {
            return Err(ProbeRefusal::Unknown);
        }
        if self.transport != TransportKind::Polling || self.upgrade != Upgrade::Idle {
            return Err(ProbeRefusal::Busy);
        }
        self.upgrade = Upgrade::Probing;
        Ok(now + timeout)
    }

    /// A text frame on the probing WebSocket. Clients probe first; a `5` straight away
    /// upgrades too, as with the reference server. Anything else ends the attempt.
    pub(crate) fn on_probe_text(&mut self, text: &str) -> ProbeStep {
        match (self.upgrade, text) {
            (Upgrade::Probing, "2probe") => ProbeStep::Answer("3probe"),
            (Upgrade::Probing | Upgrade::Probed, "5") if self.closed.is_none() => {
                self.transport = TransportKind::Websocket;
                self.upgrade = Upgrade::Idle;
                ProbeStep::Upgraded
            }
            _ => {
                self.abort_upgrade();
                ProbeStep::Failed
            }
        }
    }

    /// `3probe` went out: from now on polling GETs are answered with a noop (the client pauses
    /// polling before it sends `5`).
    pub(crate) fn probe_answered(&mut self) {
        if self.upgrade == Upgrade::Probing {
            self.upgrade = Upgrade::Probed;
        }
    }

    /// The probe failed, timed out or its WebSocket went away: polling goes on.
    pub(crate) fn abort_upgrade(&mut self) {
        if self.transport == TransportKind::Polling {
            self.upgrade = Upgrade::Idle;
        }
    }
}
