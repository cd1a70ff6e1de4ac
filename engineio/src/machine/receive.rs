//! Inputs from the client: its packets (the same rules on both transports and revisions) and
//! the polling requests that carry them.

use tokio::time::Instant;

use super::{Closed, GetEnd, Machine, Received, Refusal};
use crate::config::{Protocol, TransportKind};
use crate::packet::{DecodeError, Frame, Packet};
use crate::reason::CloseReason;

impl Machine {
    /// A packet from the client, or one that failed to decode. Past the pong deadline the
    /// session closes with `ping timeout` first, and after the close nothing is delivered.
    pub(crate) fn on_packet(
        &mut self,
        now: Instant,
        packet: Result<Packet, DecodeError>,
    ) -> Received {
        match self.alive(now) {
            Ok(()) => {}
            Err(Some(closed)) => return Received::Closed(closed),
            Err(None) => return Received::Nothing,
        }
        let reason = match packet {
            Ok(Packet::Message(message)) => return Received::Deliver(message),
            Ok(Packet::Pong) => {
                return match self.heartbeat.on_pong(now) {
                    Some(next_ping) => {
                        self.timer = Some(next_ping);
                        Received::Rearm(next_ping)
                    }
                    None => Received::Nothing,
                };
            }
            Ok(Packet::Ping { probe }) if self.protocol == Protocol::V3 => {
                // v3: the client keeps the session alive; the answer goes out like any packet.
                self.heartbeat.on_client_ping(now);
                self.push_control(if probe {
                    Frame::PONG_PROBE
                } else {
                    Frame::PONG
                });
                return Received::Wake;
            }
            Ok(Packet::Open | Packet::Upgrade | Packet::Noop) => return Received::Nothing,
            Ok(Packet::Close) => CloseReason::TransportClose,
            // v4: only the server pings.
            Ok(Packet::Ping { .. }) => CloseReason::TransportError,
            Err(_) => CloseReason::ParseError,
        };
        match self.fail(now, reason) {
            Some(closed) => Received::Closed(closed),
            None => Received::Nothing,
        }
    }

    fn check_request(&mut self, now: Instant) -> Result<(), Refusal> {
        match self.alive(now) {
            Ok(()) => {}
            Err(Some(closed)) => return Err(Refusal::Expired(closed)),
            Err(None) => return Err(Refusal::Unknown),
        }
        if self.transport != TransportKind::Polling {
            return Err(Refusal::Mismatch);
        }
        Ok(())
    }

    /// An overlapping polling request: a client bug or an attack; the session closes.
    fn overlap(&mut self, now: Instant) -> Refusal {
        match self.fail(now, CloseReason::TransportError) {
            Some(closed) => Refusal::Overlap(closed),
            None => Refusal::Unknown,
        }
    }

    /// A polling GET arrives. A closed session that still owes the client its last packets or
    /// `1` takes one more GET.
    pub(crate) fn begin_get(&mut self, now: Instant) -> Result<(), Refusal> {
        if self.closed.is_some() && self.delivery != super::Delivery::Nothing && !self.get_pending {
            self.get_pending = true;
            return Ok(());
        }
        self.check_request(now)?;
        if self.get_pending {
            return Err(self.overlap(now));
        }
        self.get_pending = true;
        Ok(())
    }

    /// The pending GET ends, `answered` or dropped before (the client went away: the session
    /// closes at once, as with the reference server, instead of lingering until the ping
    /// timeout).
    pub(crate) fn end_get(&mut self, now: Instant, answered: bool) -> GetEnd {
        self.get_pending = false;
        if !answered {
            return match self.fail(now, CloseReason::TransportClose) {
                Some(closed) => GetEnd::Closed(closed),
                None => GetEnd::Done,
            };
        }
        if self.finished() {
            GetEnd::Forget
        } else {
            GetEnd::Done
        }
    }

    /// A polling POST arrives; `binary` when its body is `application/octet-stream`, which only
    /// v3 clients send (XHR2 payloads).
    pub(crate) fn begin_post(&mut self, now: Instant, binary: bool) -> Result<(), Refusal> {
        self.check_request(now)?;
        if self.post_in_flight {
            return Err(self.overlap(now));
        }
        if binary && self.protocol == Protocol::V4 {
            return match self.fail(now, CloseReason::TransportError) {
                Some(closed) => Err(Refusal::Binary(closed)),
                None => Err(Refusal::Unknown),
            };
        }
        self.post_in_flight = true;
        Ok(())
    }

    /// The POST was answered.
    pub(crate) fn end_post(&mut self) {
        self.post_in_flight = false;
    }

    /// A POST body without a single packet: a parse error, answered `ok` as by the reference
    /// server.
    pub(crate) fn empty_post(&mut self, now: Instant) -> Option<Closed> {
        self.fail(now, CloseReason::ParseError)
    }
}
