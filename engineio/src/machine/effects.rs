//! What the machine asks of the IO layer after an input.

use tokio::time::Instant;

use crate::packet::Message;
use crate::reason::CloseReason;

/// The session has just closed; the IO layer still has to wake its writer and waiting
/// senders, give back its per-address place, tell the application, and either forget the
/// session or schedule its timer at `linger_until` (a polling client fetches `1` meanwhile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Closed {
    pub(crate) reason: CloseReason,
    pub(crate) linger_until: Option<Instant>,
}

impl Closed {
    /// The close of a slow consumer ([`Push::Disconnected`]).
    pub(crate) const SLOW_CONSUMER: Closed = Closed {
        reason: CloseReason::TransportError,
        linger_until: None,
    };
}

/// The effect of a packet received from the client, on either transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// Nothing to do: a noop, a stray `5` or `0`, an unsolicited pong, anything after the close.
    Nothing,
    /// Hand the message to the application.
    Deliver(Message),
    /// A pong answered the ping: schedule the timer at this instant (the next ping).
    Rearm(Instant),
    /// An answer was queued (v3 pong): wake the writer.
    Wake,
    /// The session closed on this packet (the client's `1`, a parse error, a ping from a v4
    /// client, or the pong deadline passed before it arrived).
    Closed(Closed),
}

/// Result of queueing frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// Queued; `wake` when the queue was empty, so the writer needs a wake-up (a writer that
    /// has not yet drained the earlier frames was woken for those and takes these too).
    Queued {
        wake: bool,
    },
    /// Over the queue limit: not queued.
    Full,
    /// Over the queue limit under [`crate::SlowConsumerPolicy::Disconnect`]: not queued, and
    /// the session closed now ([`Closed::SLOW_CONSUMER`]). A variant of its own keeps `Push` a
    /// byte wide on the send path.
    Disconnected,
    /// A volatile message dropped because the transport is not writable.
    Dropped,
    Closed,
}

/// Why a polling request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Closed or never known: 400 code 1.
    Unknown,
    /// Past the pong deadline: closed now with `ping timeout`; 400 code 1.
    Expired(Closed),
    /// The session uses the other transport: 400 code 3.
    Mismatch,
    /// A second GET or POST while one is pending: closed now with `transport error`; 400 code 3.
    Overlap(Closed),
    /// A binary POST body on protocol v4: closed now with `transport error`; 400 code 3.
    Binary(Closed),
}

/// How a polling GET ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GetEnd {
    /// Answered; the session goes on (or still owes something to a later GET).
    Done,
    /// Answered with the last thing owed to the client: forget the session.
    Forget,
    /// Dropped before it was answered: the client went away, and the session closed.
    Closed(Closed),
}

/// What the shared timer does with the entry that fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Not the live entry (a later one replaced it): drop it.
    Stale,
    /// Nothing due: look again at this instant (armed).
    Wait(Instant),
    /// A ping was queued: wake the writer, and look again at the pong deadline (armed).
    Ping(Instant),
    /// A closed session's grace period ended: forget it.
    Forget,
    /// No pong in time: closed with `ping timeout`.
    Closed(Closed),
}

/// Why a probing WebSocket is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProbeRefusal {
    /// The session is closed or expired: refuse the upgrade request.
    Unknown,
    /// Already on WebSocket, or another probe is running: accept then close the new one.
    Busy,
}

/// The next step of the probe exchange, after a text frame on the probing WebSocket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProbeStep {
    /// Send this text on the probing WebSocket, then report [`Machine::probe_answered`].
    ///
    /// [`Machine::probe_answered`]: super::Machine::probe_answered
    Answer(&'static str),
    /// The session is on WebSocket now: release a pending GET (wake), tell the application,
    /// and drive the WebSocket.
    Upgraded,
    /// Not the exchange: polling goes on; close the probing WebSocket.
    Failed,
}
