//! Load generator for `bench/`: drives many Socket.IO v5 clients (Engine.IO v4 over WebSocket,
//! or polling with upgrade) against a server on loopback and reports what the scenarios
//! measure: idle memory, broadcast fan-out cost and latency, chatd's chat throughput, connect
//! storms, churn with connection state recovery, memory after many open/close cycles. Everything is bounded in count and time, only
//! 127.0.0.0/8 is ever a target, and the generator reports its own CPU use so that a saturated
//! generator is visible in the results.

pub mod client;
pub mod cycles;
pub mod http;
pub mod scenarios;
pub mod shards;
pub mod stats;
pub mod sys;

/// Errors are reported, not recovered from.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Milliseconds since the Unix epoch, with a fraction (the clock the peers stamp `ts` with).
pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}
