//! Timeouts of one HTTP connection before it upgrades: how long a request head may take to
//! arrive (slow clients holding connections open) and how long a kept-alive connection may sit
//! idle between requests.
//!
//! [`Watched`] wraps the connection's stream and notes when the bytes of a new request start
//! arriving; the service notes when requests begin and end ([`HttpClock::begin`],
//! [`HttpClock::end`]); [`HttpClock::deadline`] says when the connection is due to close.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// No instant recorded.
const NONE: u64 = u64::MAX;

/// What one HTTP connection is doing, in milliseconds since it was accepted.
pub(crate) struct HttpClock {
    start: Instant,
    in_flight: AtomicU32,
    /// When the first byte of the next request arrived, while no request is being served.
    head_started: AtomicU64,
    /// When the last request ended (or the connection was accepted).
    idle_since: AtomicU64,
}

/// Why a connection is due to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// A request head started but did not complete in time.
    Head,
    /// No request for the keep-alive time.
    Idle,
}

impl HttpClock {
    pub(crate) fn new(now: Instant) -> Arc<Self> {
        Arc::new(HttpClock {
            start: now,
            in_flight: AtomicU32::new(0),
            head_started: AtomicU64::new(NONE),
            idle_since: AtomicU64::new(0),
        })
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.start).as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// A request head was read and the request is being served.
    pub(crate) fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NONE, Ordering::Release);
    }

    /// A request was answered.
    pub(crate) fn end(&self, now: Instant) {
        self.idle_since.store(self.ms(now), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    fn on_bytes(&self, now: Instant) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == NONE
        {
            let _ = self.head_started.compare_exchange(
                NONE,
                self.ms(now),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// When the connection is due to close and why; `None` while a request is being served
    /// (look again `head` later).
    pub(crate) fn deadline(&self, head: Duration, idle: Duration) -> Option<(Instant, Expiry)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let started = self.head_started.load(Ordering::Acquire);
        if started != NONE {
            return Some((self.at(started) + head, Expiry::Head));
        }
        let idle_since = self.idle_since.load(Ordering::Acquire);
        Some((self.at(idle_since) + idle, Expiry::Idle))
    }
}

/// A stream that tells its [`HttpClock`] when request bytes arrive.
pub(crate) struct Watched<S> {
    inner: S,
    clock: Arc<HttpClock>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, clock: Arc<HttpClock>) -> Self {
        Watched { inner, clock }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.on_bytes(Instant::now());
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(30);

    #[test]
    fn idle_then_head_then_served() {
        let t0 = Instant::now();
        let clock = HttpClock::new(t0);
        assert_eq!(clock.deadline(HEAD, IDLE), Some((t0 + IDLE, Expiry::Idle)));
        clock.on_bytes(t0 + Duration::from_secs(1));
        let head = clock.deadline(HEAD, IDLE).map(|(at, why)| (at - t0, why));
        assert_eq!(head, Some((Duration::from_secs(11), Expiry::Head)));
        clock.begin();
        assert_eq!(clock.deadline(HEAD, IDLE), None);
        // Body bytes of the request being served start no head.
        clock.on_bytes(t0 + Duration::from_secs(2));
        clock.end(t0 + Duration::from_secs(3));
        let idle = clock.deadline(HEAD, IDLE).map(|(at, why)| (at - t0, why));
        assert_eq!(idle, Some((Duration::from_secs(33), Expiry::Idle)));
    }
}
