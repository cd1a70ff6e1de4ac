//! The session state machine (sans-IO): transport, upgrade, outgoing queue, heartbeat, close.
//!
//! The IO layer keeps one [`SessionState`] per session behind a lock and turns the results of
//! these transitions into HTTP responses and WebSocket frames.

use std::collections::VecDeque;

use tokio::time::Instant;

use crate::config::{Protocol, TransportKind};
use crate::heartbeat::{Beat, Heartbeat};
use crate::packet::Frame;
use crate::reason::CloseReason;

/// What a polling GET receives once the session is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Nothing more: later requests get `Session ID unknown`.
    Nothing,
    /// The close packet `1` (server-side close).
    CloseFrame,
    /// A noop `6` (the client closed the session itself).
    Noop,
}

/// Progress of a polling → WebSocket upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upgrade {
    Idle,
    /// A probing WebSocket is open, `2probe` not yet seen.
    Probing,
    /// `3probe` sent: polling GETs are answered with a noop until `5` arrives.
    Probed,
}

/// Why a polling request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Closed or never known: 400 code 1.
    Unknown,
    /// Past the pong deadline: close with `ping timeout`, then 400 code 1.
    Expired,
    /// The session uses the other transport: 400 code 3.
    Mismatch,
    /// A second GET or POST while one is pending: close the session, 400 code 3.
    Overlap,
}

/// Why a probing WebSocket is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProbeRefusal {
    /// The session is closed or expired: refuse the upgrade request.
    Unknown,
    /// Already on WebSocket, or another probe is running: accept then close the new one.
    Busy,
}

/// Result of queueing frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// Queued; `wake` when the queue was empty, so the writer needs a wake-up (a writer that
    /// has not yet drained the earlier frames was woken for those and takes these too).
    Queued {
        wake: bool,
    },
    /// Over the queue limit; under [`crate::SlowConsumerPolicy::Disconnect`] the caller closes the session.
    Full,
    /// A volatile message dropped because the transport is not writable.
    Dropped,
    Closed,
}

/// All mutable state of one session.
#[derive(Debug)]
pub(crate) struct SessionState {
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

impl SessionState {
    #[cfg(test)]
    pub(crate) fn new(transport: TransportKind, heartbeat: Heartbeat) -> Self {
        Self::with_protocol(Protocol::V4, transport, heartbeat)
    }

    /// A session of this protocol revision; a v3 session needs a client-ping heartbeat
    /// ([`Heartbeat::client_pings`]).
    pub(crate) fn with_protocol(
        protocol: Protocol,
        transport: TransportKind,
        heartbeat: Heartbeat,
    ) -> Self {
        SessionState {
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
            timer: None,
        }
    }

    pub(crate) fn transport(&self) -> TransportKind {
        self.transport
    }

    #[cfg(test)]
    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// A client ping arrived. v3: the deadline moves, the pong (`3`, or `3probe` for `2probe`)
    /// is queued, and true is returned. v4: a client ping is an error; false.
    pub(crate) fn on_client_ping(&mut self, now: Instant, probe: bool) -> bool {
        if self.protocol != Protocol::V3 {
            return false;
        }
        self.heartbeat.on_client_ping(now);
        self.push_control(if probe {
            Frame::PONG_PROBE
        } else {
            Frame::PONG
        });
        true
    }

    pub(crate) fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// Queues frames as one unit: all of them or none, so a packet and its attachments are
    /// never split or interleaved with another sender's frames.
    pub(crate) fn push<I>(&mut self, frames: I, limit: usize) -> Push
    where
        I: IntoIterator<Item = Frame>,
        I::IntoIter: Clone,
    {
        if self.closed.is_some() {
            return Push::Closed;
        }
        let frames = frames.into_iter();
        let size: usize = frames.clone().map(|f| f.len() + 16).sum();
        let pending = self.queued_bytes + self.in_flight;
        // One unit larger than the limit still goes out, alone.
        if pending + size > limit && pending > 0 {
            return Push::Full;
        }
        let wake = self.frames.is_empty();
        self.queued_bytes += size;
        self.frames.extend(frames);
        Push::Queued { wake }
    }

    /// Queues frames only if they can go out at once; otherwise drops them.
    pub(crate) fn push_volatile<I>(&mut self, frames: I) -> Push
    where
        I: IntoIterator<Item = Frame>,
        I::IntoIter: Clone,
    {
        if self.closed.is_some() {
            return Push::Closed;
        }
        let writable = self.frames.is_empty()
            && self.in_flight == 0
            && self.upgrade == Upgrade::Idle
            && (self.transport == TransportKind::Websocket || self.get_pending);
        if !writable {
            return Push::Dropped;
        }
        self.push(frames, usize::MAX)
    }

    /// A control frame (ping) that bypasses the queue limit.
    pub(crate) fn push_control(&mut self, frame: Frame) {
        if self.closed.is_none() {
            self.queued_bytes += frame.len() + 16;
            self.frames.push_back(frame);
        }
    }

    fn check_request(&self, now: Instant) -> Result<(), Refusal> {
        if self.closed.is_some() {
            return Err(Refusal::Unknown);
        }
        if self.heartbeat.expired(now) {
            return Err(Refusal::Expired);
        }
        if self.transport != TransportKind::Polling {
            return Err(Refusal::Mismatch);
        }
        Ok(())
    }

    /// A polling GET arrives.
    pub(crate) fn begin_get(&mut self, now: Instant) -> Result<(), Refusal> {
        if self.closed.is_some() && self.delivery != Delivery::Nothing && !self.get_pending {
            self.get_pending = true;
            return Ok(());
        }
        self.check_request(now)?;
        if self.get_pending {
            return Err(Refusal::Overlap);
        }
        self.get_pending = true;
        Ok(())
    }

    /// What the pending GET answers now, if anything: fills `out` and returns true.
    pub(crate) fn poll_get(&mut self, out: &mut Vec<Frame>) -> bool {
        if self.closed.is_some() {
            if self.delivery == Delivery::CloseFrame
                && self.orderly_close
                && !self.frames.is_empty()
            {
                // The last packets first, `1` in the next response: the client handles `1` at
                // once but packets a tick later, so together it would drop them.
                self.drain_into(out);
                return true;
            }
            match std::mem::replace(&mut self.delivery, Delivery::Nothing) {
                Delivery::Noop => out.push(Frame::NOOP),
                Delivery::CloseFrame => {
                    self.drain_into(out);
                    out.push(Frame::CLOSE);
                }
                // Delivered to an earlier GET already: end this one with a noop.
                Delivery::Nothing => out.push(Frame::NOOP),
            }
            return true;
        }
        if self.upgrade == Upgrade::Probed || self.transport != TransportKind::Polling {
            out.push(Frame::NOOP);
            return true;
        }
        if self.frames.is_empty() {
            return false;
        }
        self.drain_into(out);
        true
    }

    fn drain_into(&mut self, out: &mut Vec<Frame>) {
        out.extend(self.frames.drain(..));
        self.queued_bytes = 0;
    }

    pub(crate) fn end_get(&mut self) {
        self.get_pending = false;
    }

    /// A polling POST arrives.
    pub(crate) fn begin_post(&mut self, now: Instant) -> Result<(), Refusal> {
        self.check_request(now)?;
        if self.post_in_flight {
            return Err(Refusal::Overlap);
        }
        self.post_in_flight = true;
        Ok(())
    }

    pub(crate) fn end_post(&mut self) {
        self.post_in_flight = false;
    }

    /// Moves every queued frame into `out` (WebSocket writer), where they count as in flight
    /// until [`SessionState::written`]; true once the session is closed.
    pub(crate) fn take_frames(&mut self, out: &mut VecDeque<Frame>) -> bool {
        if out.is_empty() {
            std::mem::swap(out, &mut self.frames);
        } else {
            out.extend(self.frames.drain(..));
        }
        self.in_flight += std::mem::take(&mut self.queued_bytes);
        self.closed.is_some()
    }

    /// Bytes queued or being written.
    pub(crate) fn pending(&self) -> usize {
        self.queued_bytes + self.in_flight
    }

    /// The WebSocket writer wrote everything it took.
    pub(crate) fn written(&mut self) {
        self.in_flight = 0;
    }

    /// Closes the session; true the first time. `delivery` is what a polling GET receives.
    pub(crate) fn close(&mut self, reason: CloseReason, delivery: Delivery) -> bool {
        if self.closed.is_some() {
            return false;
        }
        self.closed = Some(reason);
        self.orderly_close = matches!(
            reason,
            CloseReason::ForcedClose | CloseReason::ServerShuttingDown
        );
        self.delivery = if self.transport == TransportKind::Polling {
            delivery
        } else {
            Delivery::Nothing
        };
        // What is queued still goes out on an orderly close: to the GET that fetches `1` on
        // polling, before the close frame on WebSocket. A failure drops it.
        let flush = match self.transport {
            TransportKind::Polling => self.delivery == Delivery::CloseFrame,
            TransportKind::Websocket => matches!(
                reason,
                CloseReason::ForcedClose | CloseReason::ServerShuttingDown
            ),
        };
        if !flush {
            self.frames.clear();
            self.queued_bytes = 0;
            self.in_flight = 0;
        }
        true
    }

    /// Whether a server-closed session must stay findable until a GET fetches `1`.
    pub(crate) fn lingers(&self) -> bool {
        self.orderly_close && self.delivery == Delivery::CloseFrame
    }

    /// Closed, and everything owed to the client went out.
    pub(crate) fn finished(&self) -> bool {
        self.closed.is_some() && self.delivery == Delivery::Nothing
    }

    /// The heartbeat at `now`; a ping is queued when due.
    pub(crate) fn beat(&mut self, now: Instant) -> Beat {
        if self.closed.is_some() {
            return Beat::TimedOut;
        }
        let beat = self.heartbeat.poll(now);
        if let Beat::Ping { .. } = beat {
            self.push_control(Frame::PING);
        }
        beat
    }

    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.closed.is_none() && self.heartbeat.expired(now)
    }

    /// A pong arrived: returns when the next ping is due, if this pong answered a ping.
    pub(crate) fn on_pong(&mut self, now: Instant) -> Option<Instant> {
        self.heartbeat.on_pong(now)
    }

    /// Makes a timer entry for `at` the live one: any entry scheduled earlier becomes stale.
    pub(crate) fn arm(&mut self, at: Instant) {
        self.timer = Some(at);
    }

    /// Whether a timer entry for `at` is the live one.
    pub(crate) fn armed_for(&self, at: Instant) -> bool {
        self.timer == Some(at)
    }

    /// A probing WebSocket opened for this session.
    pub(crate) fn begin_probe(&mut self, now: Instant) -> Result<(), ProbeRefusal> {
        if self.closed.is_some() || self.heartbeat.expired(now) {
            return Err(ProbeRefusal::Unknown);
        }
        if self.transport != TransportKind::Polling || self.upgrade != Upgrade::Idle {
            return Err(ProbeRefusal::Busy);
        }
        self.upgrade = Upgrade::Probing;
        Ok(())
    }

    /// `3probe` was sent: pending and new GETs get a noop.
    pub(crate) fn probed(&mut self) {
        if self.upgrade == Upgrade::Probing {
            self.upgrade = Upgrade::Probed;
        }
    }

    /// `5` arrived (normally after the probe): the session moves to WebSocket. False if it
    /// closed meanwhile.
    pub(crate) fn complete_upgrade(&mut self) -> bool {
        if self.closed.is_some() || self.upgrade == Upgrade::Idle {
            return false;
        }
        self.transport = TransportKind::Websocket;
        self.upgrade = Upgrade::Idle;
        true
    }

    /// The probe failed or timed out: polling goes on.
    pub(crate) fn abort_upgrade(&mut self) {
        if self.transport == TransportKind::Polling {
            self.upgrade = Upgrade::Idle;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Message;
    use std::time::Duration;

    const LIMIT: usize = 1 << 20;

    fn polling(now: Instant) -> SessionState {
        SessionState::new(
            TransportKind::Polling,
            Heartbeat::new(now, Duration::from_secs(25), Duration::from_secs(20)),
        )
    }

    fn text(s: &str) -> Frame {
        Frame::from(Message::text(s))
    }

    fn push(s: &mut SessionState, f: Frame) -> Push {
        s.push([f], LIMIT)
    }

    #[test]
    fn get_returns_everything_buffered() {
        let now = Instant::now();
        let mut s = polling(now);
        push(&mut s, text("a"));
        push(&mut s, text("b"));
        s.begin_get(now).unwrap();
        let mut out = Vec::new();
        assert!(s.poll_get(&mut out));
        assert_eq!(out, vec![text("a"), text("b")]);
        s.end_get();
        s.begin_get(now).unwrap();
        out.clear();
        assert!(!s.poll_get(&mut out));
    }

    #[test]
    fn overlapping_get_and_post_are_refused() {
        let now = Instant::now();
        let mut s = polling(now);
        s.begin_get(now).unwrap();
        assert_eq!(s.begin_get(now), Err(Refusal::Overlap));
        s.begin_post(now).unwrap();
        assert_eq!(s.begin_post(now), Err(Refusal::Overlap));
    }

    #[test]
    fn server_close_delivers_queued_then_close_packet() {
        let now = Instant::now();
        let mut s = polling(now);
        push(&mut s, text("bye"));
        assert!(s.close(CloseReason::ForcedClose, Delivery::CloseFrame));
        assert!(!s.close(CloseReason::ForcedClose, Delivery::CloseFrame));
        assert!(s.lingers());
        s.begin_get(now).unwrap();
        let mut out = Vec::new();
        assert!(s.poll_get(&mut out));
        assert_eq!(out, vec![text("bye")]);
        s.end_get();
        assert!(s.lingers() && !s.finished());
        s.begin_get(now).unwrap();
        out.clear();
        assert!(s.poll_get(&mut out));
        assert_eq!(out, vec![Frame::CLOSE]);
        s.end_get();
        assert!(!s.lingers() && s.finished());
        assert_eq!(s.begin_get(now), Err(Refusal::Unknown));
    }

    #[test]
    fn a_failed_session_delivers_queued_and_close_together() {
        let now = Instant::now();
        let mut s = polling(now);
        push(&mut s, text("late"));
        s.close(CloseReason::PingTimeout, Delivery::CloseFrame);
        assert!(!s.lingers());
        s.begin_get(now).unwrap();
        let mut out = Vec::new();
        assert!(s.poll_get(&mut out));
        assert_eq!(out, vec![text("late"), Frame::CLOSE]);
    }

    #[test]
    fn websocket_close_flushes_only_on_an_orderly_close() {
        let now = Instant::now();
        for (reason, kept) in [
            (CloseReason::ForcedClose, true),
            (CloseReason::ServerShuttingDown, true),
            (CloseReason::PingTimeout, false),
            (CloseReason::TransportError, false),
        ] {
            let mut s = SessionState::new(
                TransportKind::Websocket,
                Heartbeat::new(now, Duration::from_secs(25), Duration::from_secs(20)),
            );
            push(&mut s, text("bye"));
            s.close(reason, Delivery::CloseFrame);
            let mut batch = VecDeque::new();
            assert!(s.take_frames(&mut batch));
            assert_eq!(batch.len(), usize::from(kept), "{reason}");
        }
    }

    #[test]
    fn client_close_answers_pending_get_with_noop() {
        let now = Instant::now();
        let mut s = polling(now);
        s.begin_get(now).unwrap();
        push(&mut s, text("lost"));
        // A pending GET would already have taken "lost"; here it was not woken yet.
        s.close(CloseReason::TransportClose, Delivery::Noop);
        let mut out = Vec::new();
        assert!(s.poll_get(&mut out));
        assert_eq!(out, vec![Frame::NOOP]);
    }

    #[test]
    fn upgrade_sequence() {
        let now = Instant::now();
        let mut s = polling(now);
        s.begin_probe(now).unwrap();
        assert_eq!(s.begin_probe(now), Err(ProbeRefusal::Busy));
        s.begin_get(now).unwrap();
        push(&mut s, text("kept"));
        s.probed();
        let mut out = Vec::new();
        assert!(s.poll_get(&mut out));
        assert_eq!(out, vec![Frame::NOOP]);
        s.end_get();
        assert!(s.complete_upgrade());
        assert_eq!(s.transport(), TransportKind::Websocket);
        assert_eq!(s.begin_get(now), Err(Refusal::Mismatch));
        assert_eq!(s.begin_post(now), Err(Refusal::Mismatch));
        let mut batch = VecDeque::new();
        assert!(!s.take_frames(&mut batch));
        assert_eq!(batch, VecDeque::from(vec![text("kept")]));
        assert_eq!(s.begin_probe(now), Err(ProbeRefusal::Busy));
    }

    #[test]
    fn aborted_upgrade_returns_to_polling() {
        let now = Instant::now();
        let mut s = polling(now);
        s.begin_probe(now).unwrap();
        s.probed();
        s.abort_upgrade();
        push(&mut s, text("x"));
        s.begin_get(now).unwrap();
        let mut out = Vec::new();
        assert!(s.poll_get(&mut out));
        assert_eq!(out, vec![text("x")]);
    }

    #[test]
    fn expired_session_refuses_requests() {
        let now = Instant::now();
        let mut s = polling(now);
        let later = now + Duration::from_secs(45);
        assert_eq!(s.begin_get(later), Err(Refusal::Expired));
        assert_eq!(s.begin_post(later), Err(Refusal::Expired));
        assert_eq!(s.begin_probe(later), Err(ProbeRefusal::Unknown));
        assert_eq!(s.beat(later), Beat::TimedOut);
    }

    #[test]
    fn heartbeat_queues_ping() {
        let now = Instant::now();
        let mut s = polling(now);
        let due = now + Duration::from_secs(25);
        assert!(matches!(s.beat(due), Beat::Ping { .. }));
        s.begin_get(due).unwrap();
        let mut out = Vec::new();
        assert!(s.poll_get(&mut out));
        assert_eq!(out, vec![Frame::PING]);
    }

    #[test]
    fn v3_client_ping_gets_a_pong_and_moves_the_deadline() {
        let now = Instant::now();
        let (i, t) = (Duration::from_secs(25), Duration::from_secs(20));
        let mut s = SessionState::with_protocol(
            Protocol::V3,
            TransportKind::Polling,
            Heartbeat::client_pings(now, i, t),
        );
        assert_eq!(s.protocol(), Protocol::V3);
        // The server never pings a v3 client.
        assert_eq!(s.beat(now + i), Beat::WaitUntil(now + i + t));
        let ping = now + i;
        assert!(s.on_client_ping(ping, false));
        assert!(s.on_client_ping(ping, true));
        s.begin_get(ping).unwrap();
        let mut out = Vec::new();
        assert!(s.poll_get(&mut out));
        assert_eq!(out, vec![Frame::PONG, Frame::PONG_PROBE]);
        s.end_get();
        assert!(!s.expired(now + i + t));
        assert!(s.expired(ping + i + t));
        // v4: a client ping is refused.
        let mut v4 = polling(now);
        assert!(!v4.on_client_ping(now, false));
    }

    #[test]
    fn queue_limit_and_volatile() {
        let now = Instant::now();
        let mut s = polling(now);
        assert_eq!(s.push_volatile([text("v")]), Push::Dropped);
        assert_eq!(s.push([text("a")], 30), Push::Queued { wake: true });
        assert_eq!(s.push([text("b")], 30), Push::Full);
        let mut out = Vec::new();
        s.begin_get(now).unwrap();
        s.poll_get(&mut out);
        assert_eq!(s.push_volatile([text("v")]), Push::Queued { wake: true });
        s.close(CloseReason::ForcedClose, Delivery::CloseFrame);
        assert_eq!(push(&mut s, text("late")), Push::Closed);
    }

    #[test]
    fn frames_being_written_count_against_the_limit() {
        let now = Instant::now();
        let beat = Heartbeat::new(now, Duration::from_secs(25), Duration::from_secs(20));
        let mut s = SessionState::new(TransportKind::Websocket, beat);
        assert_eq!(s.push([text("a")], 30), Push::Queued { wake: true });
        let mut batch = VecDeque::new();
        s.take_frames(&mut batch);
        // The writer holds "a" (18 bytes counted): the queue is empty, the limit is not.
        assert_eq!(s.push([text("bbbb")], 30), Push::Full);
        assert_eq!(s.push_volatile([text("v")]), Push::Dropped);
        s.written();
        assert_eq!(s.push([text("bbbb")], 30), Push::Queued { wake: true });
        // An oversized unit goes out alone, never next to anything pending.
        s.take_frames(&mut batch);
        let big = Frame::from(Message::binary(vec![0u8; 100]));
        assert_eq!(s.push([big.clone()], 30), Push::Full);
        s.written();
        assert_eq!(s.push([big], 30), Push::Queued { wake: true });
    }

    #[test]
    fn a_single_oversized_message_still_fits_an_empty_queue() {
        let now = Instant::now();
        let mut s = polling(now);
        let big = Frame::from(Message::binary(vec![0u8; 100]));
        assert_eq!(s.push([big], 10), Push::Queued { wake: true });
    }

    #[test]
    fn only_the_first_frame_into_an_empty_queue_asks_for_a_wake_up() {
        let now = Instant::now();
        let beat = Heartbeat::new(now, Duration::from_secs(25), Duration::from_secs(20));
        let mut s = SessionState::new(TransportKind::Websocket, beat);
        assert_eq!(push(&mut s, text("a")), Push::Queued { wake: true });
        assert_eq!(push(&mut s, text("b")), Push::Queued { wake: false });
        let mut batch = VecDeque::new();
        s.take_frames(&mut batch);
        assert_eq!(batch.len(), 2);
        assert_eq!(push(&mut s, text("c")), Push::Queued { wake: true });
    }
}
