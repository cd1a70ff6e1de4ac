//! The Engine.IO session as one state machine (sans-IO): every rule of the protocol that does
//! not touch a socket, for both transports and both protocol revisions.
//!
//! A [`Machine`] is driven like quinn-proto's `Connection` by quinn: the IO layer (`session`,
//! `polling`, `websocket`, the shared `timer`) feeds it inputs stamped with `now` and carries
//! out the effect each input returns. It never reads a clock, touches a socket, spawns or
//! calls the application. Inputs and their effects, one file each:
//!
//! | input | file | effect |
//! | --- | --- | --- |
//! | a packet from the client, on either transport ([`Machine::on_packet`]) | `receive` | [`Received`]: deliver, reschedule, wake, or closed |
//! | a polling GET / POST begins or ends | `receive` | [`Refusal`], [`GetEnd`] |
//! | the application queues frames; a writer takes them | `queue` | [`Push`]; frames for a GET or a WebSocket write |
//! | the timer entry scheduled for an instant fires ([`Machine::on_timer`]) | `timers` | [`Tick`]: ping, wait, forget, or closed |
//! | a probing WebSocket opens, sends text, fails | `upgrade` | [`ProbeRefusal`], [`ProbeStep`] |
//! | a close, from anyone ([`Machine::close`]) | `close` | [`Closed`]: what the IO layer still owes |
//!
//! Protocol revisions differ only in the heartbeat's direction (v3: the client pings and gets
//! `3`; v4: a client ping is an error) and in the bytes on the wire (`wire`, `v3`).

mod close;
mod effects;
mod heartbeat;
mod queue;
mod receive;
mod timers;
mod upgrade;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use tokio::time::Instant;

use crate::config::{Protocol, TransportKind};
use crate::packet::Frame;
use crate::reason::CloseReason;

pub(crate) use effects::{Closed, GetEnd, ProbeRefusal, ProbeStep, Push, Received, Refusal, Tick};
use heartbeat::Heartbeat;

/// What a polling GET receives once the session is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// Nothing more: later requests get `Session ID unknown`.
    Nothing,
    /// The close packet `1` (server-side close).
    CloseFrame,
    /// A noop `6` (the client closed the session itself).
    Noop,
}

/// Progress of a polling → WebSocket upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upgrade {
    Idle,
    /// A probing WebSocket is open, `2probe` not yet answered.
    Probing,
    /// `3probe` sent: polling GETs are answered with a noop until `5` arrives.
    Probed,
}

/// All state of one session. The IO layer keeps it behind the session's lock.
#[derive(Debug)]
pub(crate) struct Machine {
    protocol: Protocol,
    transport: TransportKind,
    upgrade: Upgrade,
    get_pending: bool,
    post_in_flight: bool,
    heartbeat: Heartbeat,
    frames: VecDeque<Frame>,
    queued_bytes: usize,
    /// Bytes the WebSocket writer took and has not finished writing: they still count against
    /// the queue limit, or a client that stopped reading would hold one full queue in the
    /// writer and another in the queue.
    in_flight: usize,
    closed: Option<CloseReason>,
    /// Closed by the server on purpose (not a failure): queued packets still go out.
    orderly_close: bool,
    delivery: Delivery,
    /// When the session's one live timer entry fires; entries for other instants are stale.
    timer: Option<Instant>,
}

impl Machine {
    /// A session opened at `now` on `transport`: v4 pings `interval` after the handshake and
    /// wants the pong within `timeout`; a v3 client must ping within `interval + timeout`. The
    /// first timer entry is armed: [`Machine::armed`].
    pub(crate) fn new(
        protocol: Protocol,
        transport: TransportKind,
        now: Instant,
        interval: std::time::Duration,
        timeout: std::time::Duration,
    ) -> Self {
        let heartbeat = match protocol {
            Protocol::V4 => Heartbeat::new(now, interval, timeout),
            Protocol::V3 => Heartbeat::client_pings(now, interval, timeout),
        };
        Machine {
            protocol,
            transport,
            upgrade: Upgrade::Idle,
            get_pending: false,
            post_in_flight: false,
            heartbeat,
            frames: VecDeque::new(),
            queued_bytes: 0,
            in_flight: 0,
            closed: None,
            orderly_close: false,
            delivery: Delivery::Nothing,
            timer: Some(now + interval),
        }
    }

    pub(crate) fn transport(&self) -> TransportKind {
        self.transport
    }

    #[cfg(test)]
    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Why the session closed, once it has.
    pub(crate) fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// The instant the live timer entry is for: the IO layer schedules it.
    pub(crate) fn armed(&self) -> Option<Instant> {
        self.timer
    }
}
