//! Open/close cycles: sessions open, are put in room `all` by the server, exchange one `echo`
//! and close, `concurrency` at a time, over WebSocket, polling and polling upgraded to WebSocket
//! in turn. The server's RSS is read with no session open after the first cycles (10 000 by
//! default) and at checkpoints up to the total: memory that grows with the number of sessions
//! ever served, not with the number open, shows as a final RSS above the first sample.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::time::{sleep, timeout};

use crate::client::{json_str, SioConn, Target};
use crate::http::Polling;
use crate::scenarios::{cpu_json, report, storm_client, Common};
use crate::stats::{round3, summary};
use crate::sys::{rss_kib, socket_fds, CpuMeter};
use crate::Result;

/// What a cycles run does besides [`Common`].
#[derive(Clone, Debug)]
pub struct CyclesOpts {
    /// Cycles in all.
    pub total: u64,
    /// Cycles before the first RSS sample, the reference of the ratio.
    pub first: u64,
    /// Further samples, evenly spaced from `first` to `total` (the last at `total`).
    pub samples: u64,
    /// Path of the server's stats endpoint (`{"sessions", "sessions_in_memory", "sockets",
    /// "rooms"}`): before a sample, wait until every one of them is zero. `None`: the server
    /// exposes no count, only its socket descriptors are waited for.
    pub stats_path: Option<String>,
    /// Pause after the server is quiet, before the RSS is read.
    pub settle: Duration,
    /// Only this transport (an index into [`TRANSPORTS`]); `None`: all three in turn.
    pub only: Option<usize>,
}

/// The transports in the order cycles take them (cycle i uses `TRANSPORTS[i % 3]`).
pub const TRANSPORTS: [&str; 3] = ["websocket", "polling", "polling+upgrade"];

/// Upper bound of one cycle.
const CYCLE_LIMIT: Duration = Duration::from_secs(15);

/// The checkpoints: `first`, then `samples` more evenly spaced up to `total`.
pub fn checkpoints(total: u64, first: u64, samples: u64) -> Vec<u64> {
    let first = first.min(total);
    let mut out = vec![first];
    let span = total - first;
    for k in 1..=samples.max(1) {
        let at = first + span * k / samples.max(1);
        if out.last() != Some(&at) {
            out.push(at);
        }
    }
    out
}

/// Sends `echo i` and waits for the same event back.
async fn echo(conn: &mut SioConn, i: u64) -> Result<()> {
    conn.emit("echo", &json!(i), None).await?;
    let want = format!("2[\"echo\",{i}]");
    loop {
        match conn.next_sio().await? {
            Some(t) if t.as_str() == want => return Ok(()),
            Some(_) => {}
            None => return Err("closed before the echo".into()),
        }
    }
}

/// Leaves `/` (DISCONNECT) and closes the WebSocket, as the stock client's `disconnect()`.
async fn leave(mut conn: SioConn) -> Result<()> {
    conn.send_sio("1").await?;
    conn.close().await;
    Ok(())
}

async fn websocket_cycle(i: u64, target: &Target) -> Result<()> {
    let src = target.src(i as usize);
    let mut conn = SioConn::connect(src, target, "/", None, &mut |_| {}).await?;
    echo(&mut conn, i).await?;
    leave(conn).await
}

/// GETs until a record satisfies `want` (a few polls at most); returns that record.
async fn poll_for(http: &mut Polling, q: &str, want: impl Fn(&str) -> bool) -> Result<String> {
    for _ in 0..5 {
        let (status, body) = http.request("GET", q, "").await?;
        if status != 200 {
            return Err(format!("GET: {status} {body:.80}").into());
        }
        if let Some(rec) = body.split('\x1e').find(|r| want(r)) {
            return Ok(rec.to_owned());
        }
    }
    Err("polling: the expected packet did not come".into())
}

async fn post(http: &mut Polling, q: &str, body: &str) -> Result<()> {
    let (status, reply) = http.request("POST", q, body).await?;
    if status != 200 {
        return Err(format!("POST {body:.20}: {status} {reply:.80}").into());
    }
    Ok(())
}

async fn polling_cycle(i: u64, target: &Target) -> Result<()> {
    let mut http = Polling::new(target.src(i as usize), target);
    let (status, body) = http
        .request("GET", &format!("EIO=4&transport=polling&t=c{i}"), "")
        .await?;
    if status != 200 || !body.starts_with('0') {
        return Err(format!("handshake: {status} {body:.80}").into());
    }
    let sid = json_str(&body, "sid").ok_or("no sid")?.to_owned();
    let q = format!("EIO=4&transport=polling&sid={sid}");
    post(&mut http, &q, "40").await?;
    poll_for(&mut http, &q, |r| r.starts_with("40")).await?;
    post(&mut http, &q, &format!("42[\"echo\",{i}]")).await?;
    let want = format!("42[\"echo\",{i}]");
    poll_for(&mut http, &q, |r| r == want).await?;
    // DISCONNECT, then the Engine.IO close, in one payload (as the stock client flushes them)
    post(&mut http, &q, "41\x1e1").await
}

async fn upgrade_cycle(i: u64, target: &Target) -> Result<()> {
    // the connect storm's client: polling handshake, CONNECT, upgrade, one echo
    let conn = storm_client(i as usize, target).await?;
    leave(conn).await
}

async fn cycle(k: usize, i: u64, target: &Target) -> Result<()> {
    match k {
        0 => websocket_cycle(i, target).await,
        1 => polling_cycle(i, target).await,
        _ => upgrade_cycle(i, target).await,
    }
}

#[derive(Default)]
struct Tally {
    ok: [AtomicU64; 3],
    failed: [AtomicU64; 3],
    errors: Mutex<Vec<String>>,
    /// Duration of every successful cycle, ms, per transport.
    took: [Mutex<Vec<f32>>; 3],
}

impl Tally {
    fn failed(&self) -> u64 {
        self.failed.iter().map(|f| f.load(Relaxed)).sum()
    }
}

/// Runs cycles `next..upto`, one per call of the shared counter.
async fn worker(
    next: Arc<AtomicU64>,
    upto: u64,
    only: Option<usize>,
    target: Target,
    tally: Arc<Tally>,
) {
    loop {
        let i = next.fetch_add(1, Relaxed);
        if i >= upto {
            return;
        }
        let k = only.unwrap_or((i % 3) as usize);
        let t0 = Instant::now();
        match timeout(CYCLE_LIMIT, cycle(k, i, &target)).await {
            Ok(Ok(())) => {
                tally.ok[k].fetch_add(1, Relaxed);
                if let Ok(mut took) = tally.took[k].lock() {
                    took.push(t0.elapsed().as_secs_f32() * 1000.0);
                }
            }
            r => {
                tally.failed[k].fetch_add(1, Relaxed);
                let e = match r {
                    Ok(Err(e)) => format!("{}: {e}", TRANSPORTS[k]),
                    _ => format!("{}: cycle timed out", TRANSPORTS[k]),
                };
                if let Ok(mut errors) = tally.errors.lock() {
                    if errors.len() < 5 && !errors.contains(&e) {
                        errors.push(e);
                    }
                }
            }
        }
    }
}

/// The server's stats (see [`CyclesOpts::stats_path`]), over a connection of its own.
async fn fetch_stats(target: &Target, path: &str) -> Result<Value> {
    let mut http = Polling::new(target.src(0), target);
    let (status, body) = http.request_to("GET", path, "").await?;
    if status != 200 {
        return Err(format!("{path}: {status} {body:.80}").into());
    }
    Ok(serde_json::from_str(&body)?)
}

fn all_zero(stats: &Value) -> bool {
    ["sessions", "sessions_in_memory", "sockets", "rooms"]
        .iter()
        .all(|k| stats.get(k).and_then(Value::as_u64) == Some(0))
}

/// Waits until the server holds nothing of the cycles: its stats all zero (when it has them),
/// then no more sockets than before the first cycle; then `settle`. Bounded by `limit`.
async fn quiesce(c: &Common, o: &CyclesOpts, fds0: Option<u64>) -> Value {
    let start = Instant::now();
    let end = start + c.timeout;
    let mut stats = Value::Null;
    let mut stats_zero = None;
    if let Some(path) = &o.stats_path {
        stats_zero = Some(false);
        while Instant::now() < end {
            match fetch_stats(&c.target, path).await {
                Ok(s) => {
                    let zero = all_zero(&s);
                    stats = s;
                    if zero {
                        stats_zero = Some(true);
                        break;
                    }
                }
                Err(e) => stats = json!({ "error": e.to_string() }),
            }
            sleep(Duration::from_millis(20)).await;
        }
    }
    let mut fds = None;
    let mut fds_back = None;
    if let (Some(pid), Some(base)) = (c.server_pid, fds0) {
        fds_back = Some(false);
        while Instant::now() < end {
            fds = socket_fds(pid);
            if fds.is_some_and(|n| n <= base) {
                fds_back = Some(true);
                break;
            }
            sleep(Duration::from_millis(20)).await;
        }
    }
    let waited = start.elapsed();
    sleep(o.settle).await;
    json!({
        "stats": stats,
        "stats_zero": stats_zero,
        "socket_fds": fds,
        "socket_fds_back": fds_back,
        "wait_s": round3(waited.as_secs_f64()),
    })
}

/// Runs the cycles and reads the RSS at every checkpoint (see the module).
pub async fn cycles(c: &Common, o: &CyclesOpts) -> Result<Value> {
    let pid = c.server_pid;
    let fds0 = pid.and_then(socket_fds);
    let rss0 = pid.and_then(|p| rss_kib(Some(p)));
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicU64::new(0));
    let meter = CpuMeter::start(pid);
    let mut samples = Vec::new();
    let mut done = 0u64;
    for at in checkpoints(o.total, o.first, o.samples) {
        let phase = Instant::now();
        let workers: Vec<_> = (0..c.concurrency.max(1))
            .map(|_| {
                tokio::spawn(worker(
                    next.clone(),
                    at,
                    o.only,
                    c.target.clone(),
                    tally.clone(),
                ))
            })
            .collect();
        for w in workers {
            // a worker's cycles are each bounded, so this ends
            let _ = w.await;
        }
        next.store(at, Relaxed);
        let rate = (at - done) as f64 / phase.elapsed().as_secs_f64().max(1e-9);
        done = at;
        let quiet = quiesce(c, o, fds0).await;
        let rss = pid.and_then(|p| rss_kib(Some(p)));
        eprintln!(
            "{} cycles: {at} done, {} failed, server RSS {} KiB, {:.0} cycles/s",
            c.label,
            tally.failed(),
            rss.map_or("?".into(), |r| r.to_string()),
            rate
        );
        samples.push(json!({
            "cycles": at,
            "rss_kib": rss,
            "failed_so_far": tally.failed(),
            "cycles_per_s": round3(rate),
            "quiet": quiet,
        }));
    }
    let span = meter.stop();
    let rss_at = |s: Option<&Value>| s.and_then(|s| s["rss_kib"].as_u64());
    let (first, last) = (rss_at(samples.first()), rss_at(samples.last()));
    let ratio = first
        .zip(last)
        .filter(|(f, _)| *f > 0)
        .map(|(f, l)| round3(l as f64 / f as f64));
    let first_at = samples
        .first()
        .and_then(|s| s["cycles"].as_u64())
        .unwrap_or(0);
    let growth = first.zip(last).and_then(|(f, l)| {
        let n = o.total.saturating_sub(first_at);
        (n > 0).then(|| round3((l as f64 - f as f64) * 1024.0 / n as f64))
    });
    let by_transport: serde_json::Map<String, Value> = TRANSPORTS
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let ok = tally.ok[k].load(Relaxed);
            let failed = tally.failed[k].load(Relaxed);
            let took = tally.took[k]
                .lock()
                .map(|mut v| summary(&mut v))
                .unwrap_or(Value::Null);
            (
                t.to_string(),
                json!({ "ok": ok, "failed": failed, "cycle_time": took }),
            )
        })
        .collect();
    let ok: u64 = tally.ok.iter().map(|x| x.load(Relaxed)).sum();
    let errors = tally.errors.lock().map(|e| e.clone()).unwrap_or_default();
    Ok(report(
        c,
        "cycles",
        json!({
            "cycles": o.total,
            "first": o.first,
            "samples": o.samples,
            "concurrency": c.concurrency,
            "transports": o.only.map_or(&TRANSPORTS[..], |k| &TRANSPORTS[k..=k]),
            "stats_path": o.stats_path,
            "settle_s": o.settle.as_secs_f64(),
        }),
        json!({
            "ok": ok,
            "failed": tally.failed(),
            "by_transport": by_transport,
            "errors": errors,
            "server_rss_kib_before": rss0,
            "server_socket_fds_before": fds0,
            "rss_kib_first": first,
            "rss_kib_final": last,
            "ratio_final_to_first": ratio,
            "growth_bytes_per_cycle": growth,
            "samples": samples,
            "cycles_per_s": round3(ok as f64 / span.wall.as_secs_f64().max(1e-9)),
            "cpu": cpu_json(&span),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::checkpoints;

    #[test]
    fn checkpoints_end_at_the_total() {
        assert_eq!(
            checkpoints(1_000_000, 10_000, 4),
            [10_000, 257_500, 505_000, 752_500, 1_000_000]
        );
        assert_eq!(checkpoints(5_000, 10_000, 3), [5_000]);
        assert_eq!(checkpoints(100, 10, 0), [10, 100]);
    }
}
