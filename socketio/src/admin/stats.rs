//! `server_stats`, sent to the admin namespace every 2 seconds, as Node's `instrument` sends
//! it: through the namespace's adapter, so that in a cluster the UI hears from every node.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use engineio::{Meter, MeterReading};
use serde_json::{json, Value};

use crate::{Namespace, SocketIo};

/// How often the statistics go out (fixed in Node too).
pub(crate) const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// What stays the same in every `server_stats` of this server.
pub(crate) struct Identity {
    pub(crate) server_id: String,
    pub(crate) hostname: String,
    pub(crate) pid: u32,
    pub(crate) started: Instant,
}

/// The `aggregatedEvents` of one reading, stamped with `now` truncated to the second (Node
/// stamps each event with its own second; here the counts since the previous reading share
/// one, which the UI, grouping by 10 seconds, does not tell apart).
pub(crate) fn aggregated_events(reading: &MeterReading, now: SystemTime) -> Vec<Value> {
    let millis = crate::time::unix_millis(now);
    let timestamp = millis - millis % 1000;
    let mut events = Vec::new();
    let mut push = |kind: &str, sub: Option<&str>, count: u64| {
        if count == 0 {
            return;
        }
        let mut e = json!({"timestamp": timestamp, "type": kind});
        if let (Some(sub), Some(obj)) = (sub, e.as_object_mut()) {
            obj.insert("subType".into(), Value::String(sub.to_owned()));
        }
        if let Some(obj) = e.as_object_mut() {
            obj.insert("count".into(), json!(count));
        }
        events.push(e);
    };
    push("rawConnection", None, reading.connections);
    for (reason, count) in &reading.disconnections {
        push("rawDisconnection", Some(reason.as_str()), *count);
    }
    push("packetsIn", None, reading.packets_in);
    push("packetsOut", None, reading.packets_out);
    push("bytesIn", None, reading.bytes_in);
    push("bytesOut", None, reading.bytes_out);
    events
}

/// One `server_stats` payload.
pub(crate) fn server_stats(
    id: &Identity,
    uptime: Duration,
    clients: usize,
    polling: usize,
    namespaces: &[(String, usize)],
    aggregated: Vec<Value>,
) -> Value {
    json!({
        "serverId": id.server_id,
        "hostname": id.hostname,
        "pid": id.pid,
        "uptime": uptime.as_secs_f64(),
        "clientsCount": clients,
        "pollingClientsCount": polling,
        "aggregatedEvents": aggregated,
        "namespaces": namespaces
            .iter()
            .map(|(name, count)| json!({"name": name, "socketsCount": count}))
            .collect::<Vec<_>>(),
    })
}

/// Sends `server_stats` now and every [`STATS_INTERVAL`], for as long as the runtime runs
/// (as Node's unreferenced interval).
pub(crate) async fn run(io: SocketIo, admin: Namespace, meter: Arc<Meter>, id: Identity) {
    let mut ticks = tokio::time::interval(STATS_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mut namespaces: Vec<(String, usize)> = io
            .inner
            .all_namespaces()
            .iter()
            .map(|ns| (ns.name.clone(), ns.socket_count()))
            .collect();
        namespaces.sort();
        let stats = server_stats(
            &id,
            id.started.elapsed(),
            io.engine.session_count(),
            meter.polling_sessions(),
            &namespaces,
            aggregated_events(&meter.take(), SystemTime::now()),
        );
        let _ = admin.emit("server_stats", stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engineio::CloseReason;
    use std::time::UNIX_EPOCH;

    #[test]
    fn aggregates_as_node_does() {
        let reading = MeterReading {
            packets_in: 3,
            bytes_in: 30,
            packets_out: 4,
            bytes_out: 0,
            connections: 2,
            disconnections: vec![
                (CloseReason::TransportClose, 1),
                (CloseReason::PingTimeout, 2),
            ],
        };
        let now = UNIX_EPOCH + Duration::from_millis(1_709_632_862_345);
        let events = aggregated_events(&reading, now);
        let t = 1_709_632_862_000u64;
        assert_eq!(
            Value::Array(events),
            json!([
                {"timestamp": t, "type": "rawConnection", "count": 2},
                {"timestamp": t, "type": "rawDisconnection", "subType": "transport close", "count": 1},
                {"timestamp": t, "type": "rawDisconnection", "subType": "ping timeout", "count": 2},
                {"timestamp": t, "type": "packetsIn", "count": 3},
                {"timestamp": t, "type": "packetsOut", "count": 4},
                {"timestamp": t, "type": "bytesIn", "count": 30},
            ])
        );
        assert!(aggregated_events(&MeterReading::default(), now).is_empty());
    }

    #[test]
    fn stats_payload() {
        let id = Identity {
            server_id: "host#1".into(),
            hostname: "host".into(),
            pid: 1,
            started: Instant::now(),
        };
        let stats = server_stats(
            &id,
            Duration::from_millis(1500),
            3,
            1,
            &[("/".into(), 2), ("/admin".into(), 1)],
            Vec::new(),
        );
        assert_eq!(
            stats,
            json!({
                "serverId": "host#1", "hostname": "host", "pid": 1, "uptime": 1.5,
                "clientsCount": 3, "pollingClientsCount": 1, "aggregatedEvents": [],
                "namespaces": [{"name": "/", "socketsCount": 2}, {"name": "/admin", "socketsCount": 1}],
            })
        );
    }
}
