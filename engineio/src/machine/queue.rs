//! The outgoing queue: what the application and the machine queue, and what each transport's
//! writer takes (a polling GET all at once, the WebSocket task in batches).

use std::collections::VecDeque;

use super::{Closed, Delivery, Machine, Push, Upgrade};
use crate::config::{SlowConsumerPolicy, TransportKind};
use crate::packet::Frame;

/// Bytes counted per queued frame besides its payload (the queue entry and framing).
const FRAME_OVERHEAD: usize = 16;

impl Machine {
    /// Queues frames as one unit: all of them or none, so a packet and its attachments are
    /// never split or interleaved with another sender's frames. Over `limit`, `on_full` says
    /// whether the slow consumer is disconnected (closed now with `transport error`).
    pub(crate) fn push<I>(&mut self, frames: I, limit: usize, on_full: SlowConsumerPolicy) -> Push
    where
        I: IntoIterator<Item = Frame>,
        I::IntoIter: Clone,
    {
        if self.closed.is_some() {
            return Push::Closed;
        }
        let frames = frames.into_iter();
        let size: usize = frames.clone().map(|f| f.len() + FRAME_OVERHEAD).sum();
        if !self.has_room(size, limit) {
            return self.full(on_full);
        }
        let wake = self.frames.is_empty();
        self.queued_bytes += size;
        self.frames.extend(frames);
        Push::Queued { wake }
    }

    /// A push that did not fit. Kept out of line: the send path stays as small as it was.
    #[cold]
    #[inline(never)]
    fn full(&mut self, on_full: SlowConsumerPolicy) -> Push {
        match on_full {
            SlowConsumerPolicy::Disconnect => {
                self.mark_closed(Closed::SLOW_CONSUMER.reason);
                Push::Disconnected
            }
            SlowConsumerPolicy::DropMessage => Push::Full,
        }
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
        self.push(frames, usize::MAX, SlowConsumerPolicy::DropMessage)
    }

    /// A control frame (ping, pong) that bypasses the queue limit.
    pub(super) fn push_control(&mut self, frame: Frame) {
        if self.closed.is_none() {
            self.queued_bytes += frame.len() + FRAME_OVERHEAD;
            self.frames.push_back(frame);
        }
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

    /// Moves every queued frame into `out` (WebSocket writer), where they count as in flight
    /// until [`Machine::written`]; true once the session is closed.
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

    /// Whether `bytes` more fit under `limit` now. One unit larger than the limit still goes
    /// out, alone: anything fits when nothing is pending.
    pub(crate) fn has_room(&self, bytes: usize, limit: usize) -> bool {
        let pending = self.pending();
        pending == 0 || pending + bytes <= limit
    }

    /// The WebSocket writer wrote everything it took.
    pub(crate) fn written(&mut self) {
        self.in_flight = 0;
    }
}
