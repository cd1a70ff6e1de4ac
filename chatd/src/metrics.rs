//! Counters exported at `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the store write latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Process-wide counters; every field is an atomic, updated without locks.
#[derive(Default)]
pub struct Metrics {
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    direct_messages: AtomicU64,
    rejected_commands: AtomicU64,
    refused_connections: AtomicU64,
    store_writes: AtomicU64,
    store_write_micros: AtomicU64,
    store_buckets: [AtomicU64; BUCKETS.len()],
}

/// Values read at scrape time from elsewhere.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Open connections on long-polling.
    pub polling: usize,
    /// Open connections on WebSocket.
    pub websocket: usize,
    /// Running room actors.
    pub rooms: usize,
    /// Connections closed because their outgoing queue was full.
    pub slow_consumers: u64,
    /// Handshakes refused by the per-address cap.
    pub refused_handshakes: u64,
    /// Cluster figures, in cluster mode.
    pub cluster: Option<crate::cluster::ClusterFigures>,
}

impl Metrics {
    /// A message was stored.
    pub fn message_in(&self) {
        self.messages_in.fetch_add(1, Relaxed);
    }

    /// Deliveries queued to clients.
    pub fn messages_out(&self, n: usize) {
        self.messages_out.fetch_add(n as u64, Relaxed);
    }

    /// A direct message was stored.
    pub fn direct_message(&self) {
        self.direct_messages.fetch_add(1, Relaxed);
    }

    /// A command was answered with an error.
    pub fn rejected(&self) {
        self.rejected_commands.fetch_add(1, Relaxed);
    }

    /// A connection was refused (limits, origin).
    pub fn refused(&self) {
        self.refused_connections.fetch_add(1, Relaxed);
    }

    /// A store write took this long.
    pub fn store_write(&self, took: Duration) {
        self.store_writes.fetch_add(1, Relaxed);
        self.store_write_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.store_buckets[i].fetch_add(1, Relaxed);
            }
        }
    }

    /// The exposition text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, lines: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in lines {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v.to_string())];
        metric(
            "chatd_connections",
            "gauge",
            "Open connections by transport.",
            &[
                ("{transport=\"polling\"}".into(), g.polling.to_string()),
                ("{transport=\"websocket\"}".into(), g.websocket.to_string()),
            ],
        );
        metric(
            "chatd_rooms",
            "gauge",
            "Running room actors.",
            &one(g.rooms as u64),
        );
        metric(
            "chatd_messages_in_total",
            "counter",
            "Messages stored.",
            &one(self.messages_in.load(Relaxed)),
        );
        metric(
            "chatd_messages_out_total",
            "counter",
            "Message deliveries queued to clients.",
            &one(self.messages_out.load(Relaxed)),
        );
        metric(
            "chatd_direct_messages_total",
            "counter",
            "Direct messages stored.",
            &one(self.direct_messages.load(Relaxed)),
        );
        metric(
            "chatd_rejected_commands_total",
            "counter",
            "Commands answered with an error.",
            &one(self.rejected_commands.load(Relaxed)),
        );
        metric(
            "chatd_refused_connections_total",
            "counter",
            "Connections refused by limits or origin.",
            &one(self.refused_connections.load(Relaxed) + g.refused_handshakes),
        );
        metric(
            "chatd_slow_consumers_dropped_total",
            "counter",
            "Connections closed because they read too slowly.",
            &one(g.slow_consumers),
        );
        let mut hist: Vec<(String, String)> = BUCKETS
            .iter()
            .zip(self.store_buckets.iter())
            .map(|(b, c)| {
                (
                    format!("_bucket{{le=\"{b}\"}}"),
                    c.load(Relaxed).to_string(),
                )
            })
            .collect();
        let count = self.store_writes.load(Relaxed);
        hist.push(("_bucket{le=\"+Inf\"}".into(), count.to_string()));
        hist.push((
            "_sum".into(),
            format!("{}", self.store_write_micros.load(Relaxed) as f64 / 1e6),
        ));
        hist.push(("_count".into(), count.to_string()));
        metric(
            "chatd_store_write_seconds",
            "histogram",
            "Time from submitting a message to its durable commit.",
            &hist,
        );
        if let Some(c) = &g.cluster {
            metric(
                "chatd_cluster_nodes",
                "gauge",
                "Cluster nodes alive, this one included.",
                &one(c.nodes),
            );
            metric(
                "chatd_cluster_redis_up",
                "gauge",
                "Whether Redis answers.",
                &one(u64::from(c.connected)),
            );
            metric(
                "chatd_cluster_redis_reconnects_total",
                "counter",
                "Times Redis came back after an outage.",
                &one(c.reconnects),
            );
            metric(
                "chatd_cluster_published_total",
                "counter",
                "Events published to the other nodes.",
                &one(c.published),
            );
            metric(
                "chatd_cluster_publish_errors_total",
                "counter",
                "Events lost on the way to Redis (the nodes then resync from the store).",
                &one(c.publish_errors),
            );
            metric(
                "chatd_cluster_publish_seconds",
                "summary",
                "Round trips of publish batches to Redis.",
                &[
                    ("_sum".into(), format!("{}", c.publish_micros as f64 / 1e6)),
                    ("_count".into(), c.publish_batches.to_string()),
                ],
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.message_in();
        m.store_write(Duration::from_millis(3));
        let text = m.render(&Gauges {
            polling: 1,
            websocket: 2,
            rooms: 3,
            slow_consumers: 0,
            refused_handshakes: 0,
            cluster: None,
        });
        assert!(text.contains("chatd_connections{transport=\"websocket\"} 2"));
        assert!(text.contains("chatd_messages_in_total 1"));
        assert!(text.contains("chatd_store_write_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("chatd_store_write_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("chatd_store_write_seconds_count 1"));
    }
}
