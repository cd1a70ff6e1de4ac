//! Traffic counts for telemetry (such as the Socket.IO admin UI): off until
//! [`EngineIo::meter`](crate::EngineIo::meter) turns them on.
//!
//! Off, nothing is counted and nothing is checked per message: a metered session gets other
//! hooks (the dynamic call that delivers each message exists anyway) and its writers check
//! for the meter once per write, not per message. On, counts are atomics that a reader takes
//! and resets ([`Meter::take`]), never a lock.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::packet::{Frame, Message};
use crate::reason::CloseReason;
use crate::socket::Hooks;

/// Every close reason, in the order of [`Meter`]'s counters.
const REASONS: [CloseReason; 6] = [
    CloseReason::TransportClose,
    CloseReason::TransportError,
    CloseReason::PingTimeout,
    CloseReason::ParseError,
    CloseReason::ForcedClose,
    CloseReason::ServerShuttingDown,
];

fn reason_index(reason: CloseReason) -> usize {
    match reason {
        CloseReason::TransportClose => 0,
        CloseReason::TransportError => 1,
        CloseReason::PingTimeout => 2,
        CloseReason::ParseError => 3,
        CloseReason::ForcedClose => 4,
        CloseReason::ServerShuttingDown => 5,
    }
}

/// Counts of the sessions opened since the meter was turned on: message packets and their
/// bytes both ways, sessions opened and closed (by reason), sessions on polling now.
///
/// As Node's engine.io reports them to `@socket.io/admin-ui`: a packet is an Engine.IO
/// message with data (a Socket.IO packet and each of its binary attachments count as one
/// each), its bytes are those of the data (UTF-8 text without the type digit, or the binary
/// payload); pings, pongs, noops, the open and close packets are not counted.
///
/// ```
/// use engineio::{CloseReason, Config, EngineIo, Handler, Message, Socket};
///
/// struct Quiet;
/// impl Handler for Quiet {
///     type Conn = ();
///     fn on_open(&self, _: Socket) {}
///     fn on_message(&self, _: &(), _: Message) {}
///     fn on_close(&self, _: &(), _: CloseReason) {}
/// }
///
/// let engine = EngineIo::new(Config::default(), Quiet);
/// let meter = engine.meter();
/// let reading = meter.take();
/// assert_eq!(reading.packets_in, 0);
/// assert_eq!(meter.polling_sessions(), 0);
/// ```
#[derive(Debug, Default)]
pub struct Meter {
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    connections: AtomicU64,
    disconnections: [AtomicU64; REASONS.len()],
    polling: AtomicUsize,
}

/// What a [`Meter`] counted since the previous [`Meter::take`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeterReading {
    /// Message packets received.
    pub packets_in: u64,
    /// Bytes of their data.
    pub bytes_in: u64,
    /// Message packets sent.
    pub packets_out: u64,
    /// Bytes of their data.
    pub bytes_out: u64,
    /// Sessions opened.
    pub connections: u64,
    /// Sessions closed, by reason; reasons with no close are left out.
    pub disconnections: Vec<(CloseReason, u64)>,
}

impl Meter {
    /// The counts since the previous call, which start again from zero.
    pub fn take(&self) -> MeterReading {
        let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        MeterReading {
            packets_in: take(&self.packets_in),
            bytes_in: take(&self.bytes_in),
            packets_out: take(&self.packets_out),
            bytes_out: take(&self.bytes_out),
            connections: take(&self.connections),
            disconnections: REASONS
                .iter()
                .zip(&self.disconnections)
                .map(|(reason, count)| (*reason, take(count)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }

    /// Metered sessions open on HTTP long-polling now (opened on polling and not upgraded).
    pub fn polling_sessions(&self) -> usize {
        self.polling.load(Ordering::Relaxed)
    }

    fn received(&self, message: &Message) {
        let bytes = match message {
            // Node counts a message only when its data is truthy: not an empty string.
            Message::Text(t) if t.as_str().is_empty() => return,
            Message::Text(t) => t.as_str().len(),
            Message::Binary(b) => b.len(),
        };
        self.packets_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Frames taken by a writer: the message packets among them are counted.
    pub(crate) fn sent<'a>(&self, frames: impl IntoIterator<Item = &'a Frame>) {
        let (mut packets, mut bytes) = (0u64, 0u64);
        for frame in frames {
            match frame {
                Frame::Text(t) if t.len() > 1 && t.as_bytes().first() == Some(&b'4') => {
                    packets += 1;
                    bytes += (t.len() - 1) as u64;
                }
                Frame::Text(_) => {}
                Frame::Binary(b) => {
                    packets += 1;
                    bytes += b.len() as u64;
                }
            }
        }
        if packets > 0 {
            self.packets_out.fetch_add(packets, Ordering::Relaxed);
            self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// A session opened; the returned flag says whether it is counted as polling.
    fn opened(&self, polling: bool) -> AtomicBool {
        self.connections.fetch_add(1, Ordering::Relaxed);
        if polling {
            self.polling.fetch_add(1, Ordering::Relaxed);
        }
        AtomicBool::new(polling)
    }

    fn left_polling(&self, polling: &AtomicBool) {
        if polling.swap(false, Ordering::AcqRel) {
            self.polling.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A session's hooks with the meter in front.
pub(crate) struct Metered {
    inner: Arc<dyn Hooks>,
    meter: Arc<Meter>,
    polling: AtomicBool,
}

impl Metered {
    pub(crate) fn new(inner: Arc<dyn Hooks>, meter: Arc<Meter>, polling: bool) -> Self {
        let polling = meter.opened(polling);
        Metered {
            inner,
            meter,
            polling,
        }
    }
}

impl Hooks for Metered {
    fn message(&self, message: Message) {
        self.meter.received(&message);
        self.inner.message(message);
    }
    fn closed(&self, reason: CloseReason) {
        self.meter.disconnections[reason_index(reason)].fetch_add(1, Ordering::Relaxed);
        self.meter.left_polling(&self.polling);
        self.inner.closed(reason);
    }
    fn upgraded(&self) {
        self.meter.left_polling(&self.polling);
        self.inner.upgraded();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    #[test]
    fn counts_message_frames_only() {
        let meter = Meter::default();
        meter.sent(&[
            Frame::PING,
            Frame::NOOP,
            Frame::PONG_PROBE,
            Frame::Text(Utf8Bytes::from_static("0{\"sid\":\"x\"}")),
            Frame::Text(Utf8Bytes::from_static("42[\"é\"]")),
            Frame::Binary(Bytes::from_static(&[1, 2, 3])),
        ]);
        let r = meter.take();
        assert_eq!((r.packets_out, r.bytes_out), (2, 7 + 3));
        assert_eq!(meter.take(), MeterReading::default());
    }

    #[test]
    fn counts_received_data() {
        let meter = Meter::default();
        meter.received(&Message::text("2[\"a\"]"));
        meter.received(&Message::text(""));
        meter.received(&Message::Binary(Bytes::new()));
        let r = meter.take();
        assert_eq!((r.packets_in, r.bytes_in), (2, 6));
    }

    #[test]
    fn polling_gauge_and_reasons() {
        let meter = Arc::new(Meter::default());
        let a = meter.opened(true);
        let _b = meter.opened(false);
        assert_eq!(meter.polling_sessions(), 1);
        meter.left_polling(&a);
        meter.left_polling(&a);
        assert_eq!(meter.polling_sessions(), 0);
        meter.disconnections[reason_index(CloseReason::PingTimeout)]
            .fetch_add(2, Ordering::Relaxed);
        let r = meter.take();
        assert_eq!(r.connections, 2);
        assert_eq!(r.disconnections, vec![(CloseReason::PingTimeout, 2)]);
    }
}
