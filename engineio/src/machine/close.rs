//! The close sequence: who gets what once a session closes, and how long it stays findable.

use std::time::Duration;

use tokio::time::Instant;

use super::{Closed, Delivery, Machine};
use crate::config::TransportKind;
use crate::reason::CloseReason;

impl Machine {
    /// Closes the session for `reason`; the first time, what the IO layer still owes
    /// ([`Closed`]). A client-side close (`transport close`) ends a pending polling GET with a
    /// noop `6`; any other gives polling the close packet `1`. An orderly server-side close
    /// (`forced close`, `server shutting down`) still sends what is queued, and a polling
    /// session then stays findable for `linger` so that the client can fetch it (the timer is
    /// armed for that); a failure drops the queue.
    pub(crate) fn close(
        &mut self,
        now: Instant,
        reason: CloseReason,
        linger: Duration,
    ) -> Option<Closed> {
        let mut closed = self.mark_closed(reason)?;
        if self.lingers() {
            let until = now + linger;
            self.timer = Some(until);
            closed.linger_until = Some(until);
        }
        Some(closed)
    }

    /// The close itself; it needs no time, as only [`Machine::close`] lingers.
    pub(super) fn mark_closed(&mut self, reason: CloseReason) -> Option<Closed> {
        if self.closed.is_some() {
            return None;
        }
        self.closed = Some(reason);
        self.orderly_close = matches!(
            reason,
            CloseReason::ForcedClose | CloseReason::ServerShuttingDown
        );
        self.delivery = match (self.transport, reason) {
            (TransportKind::Websocket, _) => Delivery::Nothing,
            (TransportKind::Polling, CloseReason::TransportClose) => Delivery::Noop,
            (TransportKind::Polling, _) => Delivery::CloseFrame,
        };
        // What is queued still goes out on an orderly close: to the GET that fetches `1` on
        // polling, before the close frame on WebSocket. A failure drops it.
        let flush = match self.transport {
            TransportKind::Polling => self.delivery == Delivery::CloseFrame,
            TransportKind::Websocket => self.orderly_close,
        };
        if !flush {
            self.frames.clear();
            self.queued_bytes = 0;
            self.in_flight = 0;
        }
        Some(Closed {
            reason,
            linger_until: None,
        })
    }

    /// The transport ended for `reason` (the WebSocket closed or failed): closes the session,
    /// with `ping timeout` instead when the pong deadline passed before.
    pub(crate) fn transport_ended(&mut self, now: Instant, reason: CloseReason) -> Option<Closed> {
        let reason = if self.expired(now) {
            CloseReason::PingTimeout
        } else {
            reason
        };
        self.fail(now, reason)
    }

    /// Closes the session for a failure or a client-side close, which never lingers.
    pub(super) fn fail(&mut self, now: Instant, reason: CloseReason) -> Option<Closed> {
        self.close(now, reason, Duration::ZERO)
    }

    /// The lazy deadline check made on every request and WebSocket read: `Ok` while the
    /// session is open; closes it with `ping timeout` past the pong deadline (`Err(Some)`);
    /// `Err(None)` when it was closed already.
    pub(crate) fn alive(&mut self, now: Instant) -> Result<(), Option<Closed>> {
        if self.closed.is_some() {
            return Err(None);
        }
        if self.heartbeat.expired(now) {
            return Err(self.fail(now, CloseReason::PingTimeout));
        }
        Ok(())
    }

    /// Whether a server-closed session must stay findable until a GET fetches `1`.
    fn lingers(&self) -> bool {
        self.orderly_close && self.delivery == Delivery::CloseFrame
    }

    /// Closed, and everything owed to the client went out.
    pub(super) fn finished(&self) -> bool {
        self.closed.is_some() && self.delivery == Delivery::Nothing
    }
}
