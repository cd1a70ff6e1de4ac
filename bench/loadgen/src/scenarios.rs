//! The five scenarios. Each returns one JSON object with its parameters and measurements.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, timeout};

use crate::client::{json_str, parse_tick, SioConn, Target};
use crate::http::Polling;
use crate::stats::{round3, summary};
use crate::sys::{rss_kib, tree_cpu_seconds, CpuMeter, CpuSpan};
use crate::{now_ms, Result};

/// What every scenario needs.
#[derive(Clone, Debug)]
pub struct Common {
    /// The server.
    pub target: Target,
    /// The server's pid, for CPU and RSS (`None`: not measured).
    pub server_pid: Option<u32>,
    /// Peer name written into the report.
    pub label: String,
    /// Upper bound for every wait of the scenario.
    pub timeout: Duration,
    /// Connections opened at a time while connecting a fleet.
    pub concurrency: usize,
}

/// Waits (polling every 5 ms) until `cond` holds or `limit` passes; returns whether it held.
async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) fn cpu_json(span: &CpuSpan) -> Value {
    let wall = span.wall.as_secs_f64();
    json!({
        "wall_s": round3(wall),
        "server_cpu_s": span.server.map(round3),
        "server_user_cpu_s": span.server_user.map(round3),
        "server_sys_cpu_s": span.server_sys.map(round3),
        "loadgen_cpu_s": round3(span.loadgen),
        // Above ~0.9 the generator (pinned to one core by run.sh) may be what limits the run.
        "loadgen_cpu_share": if wall > 0.0 { round3(span.loadgen / wall) } else { 0.0 },
    })
}

pub(crate) fn report(c: &Common, scenario: &str, params: Value, mut results: Value) -> Value {
    if let (Some(obj), Some(pid)) = (results.as_object_mut(), c.server_pid) {
        obj.insert("server_rss_kib_end".into(), json!(rss_kib(Some(pid))));
    }
    json!({
        "scenario": scenario,
        "peer": c.label,
        "params": params,
        "results": results,
        "loadgen_rss_kib": rss_kib(None),
        "machine": crate::sys::machine(),
    })
}

// ------------------------------------------------------------------------------------------
// A fleet of broadcast clients (idle, fan-out, churn)

#[derive(Default)]
struct Shared {
    connected: AtomicU64,
    failed: AtomicU64,
    ticks: AtomicU64,
    drops: AtomicU64,
    recovered: AtomicU64,
    not_recovered: AtomicU64,
    lost: AtomicU64,
}

/// What one client saw.
#[derive(Default)]
struct ClientState {
    received: u64,
    lat: Vec<f32>,
    /// Bit b set: a tick of burst b arrived (churn, where every burst is one message).
    seen: Vec<u64>,
    track_seen: bool,
    last_offset: String,
}

impl ClientState {
    fn on_packet(&mut self, text: &str, shared: &Shared) {
        let Some(t) = parse_tick(text) else { return };
        shared.ticks.fetch_add(1, Relaxed);
        self.received += 1;
        if let Some(o) = t.offset {
            self.last_offset.clear();
            self.last_offset.push_str(o);
        }
        if t.b > 0 {
            self.lat.push((now_ms() - t.ts) as f32);
            if self.track_seen {
                let (w, bit) = ((t.b / 64) as usize, t.b % 64);
                if self.seen.len() <= w {
                    self.seen.resize(w + 1, 0);
                }
                self.seen[w] |= 1 << bit;
            }
        }
    }

    fn unique_seen(&self, upto: u64) -> u64 {
        (1..=upto)
            .filter(|b| {
                self.seen
                    .get((b / 64) as usize)
                    .is_some_and(|w| w & (1 << (b % 64)) != 0)
            })
            .count() as u64
    }
}

#[derive(Clone, Copy)]
struct Churn {
    every: (f64, f64),
}

async fn maybe<T>(f: Option<impl Future<Output = T>>) -> T {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

#[allow(clippy::too_many_arguments)]
async fn fleet_client(
    i: usize,
    target: Target,
    churn: Option<Churn>,
    track_seen: bool,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    mut cmd: Option<mpsc::UnboundedReceiver<String>>,
) -> ClientState {
    let src = target.src(i);
    let mut st = ClientState {
        track_seen,
        ..ClientState::default()
    };
    let permit = gate.acquire_owned().await.ok();
    let first = timeout(
        Duration::from_secs(60),
        SioConn::connect(src, &target, "/", None, &mut |t| st.on_packet(t, &shared)),
    )
    .await;
    drop(permit);
    let mut conn = match first {
        Ok(Ok(c)) => c,
        _ => {
            shared.failed.fetch_add(1, Relaxed);
            return st;
        }
    };
    shared.connected.fetch_add(1, Relaxed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
    let mut next_drop = churn.map(|c| {
        tokio::time::Instant::now()
            + Duration::from_secs_f64(rng.random_range(c.every.0..c.every.1))
    });
    loop {
        let drop_at = next_drop;
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            Some(c) = maybe(cmd.as_mut().map(|rx| rx.recv())) => {
                if conn.send_sio(&c).await.is_err() {
                    shared.lost.fetch_add(1, Relaxed);
                    break;
                }
            }
            _ = maybe(drop_at.map(sleep_until)) => {
                let pid = conn.pid.clone();
                conn.abort();
                shared.drops.fetch_add(1, Relaxed);
                // the stock client's reconnection delay: 1 s ± 50 %
                sleep(Duration::from_secs_f64(rng.random_range(0.5..1.5))).await;
                let mut auth = Map::new();
                if let Some(p) = &pid {
                    auth.insert("pid".into(), json!(p));
                }
                if !st.last_offset.is_empty() {
                    auth.insert("offset".into(), json!(st.last_offset));
                }
                let auth = Value::Object(auth);
                let mut attempt = 0;
                conn = loop {
                    let r = timeout(
                        Duration::from_secs(5),
                        SioConn::connect(src, &target, "/", Some(&auth), &mut |t| {
                            st.on_packet(t, &shared)
                        }),
                    )
                    .await;
                    match r {
                        Ok(Ok(c)) => break c,
                        _ if attempt < 3 => {
                            attempt += 1;
                            sleep(Duration::from_secs(1)).await;
                        }
                        _ => {
                            shared.lost.fetch_add(1, Relaxed);
                            return st;
                        }
                    }
                };
                if conn.pid.is_some() && conn.pid == pid {
                    shared.recovered.fetch_add(1, Relaxed);
                } else {
                    shared.not_recovered.fetch_add(1, Relaxed);
                }
                next_drop = churn.map(|c| {
                    tokio::time::Instant::now()
                        + Duration::from_secs_f64(rng.random_range(c.every.0..c.every.1))
                });
            }
            r = conn.next_sio() => match r {
                Ok(Some(text)) => st.on_packet(&text, &shared),
                _ => {
                    shared.lost.fetch_add(1, Relaxed);
                    break;
                }
            }
        }
    }
    drop(conn);
    st
}

struct Fleet {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    driver: mpsc::UnboundedSender<String>,
    handles: Vec<JoinHandle<ClientState>>,
    connect_span: CpuSpan,
}

impl Fleet {
    /// A driver connection (index `n`, sends the triggers, never churns) and `n` clients.
    async fn connect(c: &Common, n: usize, churn: Option<Churn>, track: bool) -> Result<Fleet> {
        let shared = Arc::new(Shared::default());
        let (stop, stop_rx) = watch::channel(false);
        let gate = Arc::new(Semaphore::new(c.concurrency.max(1)));
        let (driver, driver_rx) = mpsc::unbounded_channel();
        let meter = CpuMeter::start(c.server_pid);
        let mut handles = Vec::with_capacity(n + 1);
        handles.push(tokio::spawn(fleet_client(
            n,
            c.target.clone(),
            None,
            false,
            shared.clone(),
            gate.clone(),
            stop_rx.clone(),
            Some(driver_rx),
        )));
        if !wait_until(Duration::from_secs(30), || {
            shared.connected.load(Relaxed) + shared.failed.load(Relaxed) >= 1
        })
        .await
            || shared.connected.load(Relaxed) == 0
        {
            let _ = stop.send(true);
            return Err("the driver connection failed".into());
        }
        for i in 0..n {
            handles.push(tokio::spawn(fleet_client(
                i,
                c.target.clone(),
                churn,
                track,
                shared.clone(),
                gate.clone(),
                stop_rx.clone(),
                None,
            )));
        }
        wait_until(c.timeout, || {
            (shared.connected.load(Relaxed) + shared.failed.load(Relaxed)) as usize > n
        })
        .await;
        Ok(Fleet {
            shared,
            stop,
            driver,
            handles,

            connect_span: meter.stop(),
        })
    }

    /// Connected clients, the driver not counted.
    fn connected(&self) -> u64 {
        self.shared.connected.load(Relaxed).saturating_sub(1)
    }

    fn trigger(&self, k: u64, b: u64) {
        let _ = self
            .driver
            .send(format!("2[\"trigger\",{{\"k\":{k},\"b\":{b}}}]"));
    }

    /// One broadcast of one message (burst 0) that every connected client (and the driver)
    /// must receive; returns how many did within `limit`.
    async fn verify(&self, limit: Duration) -> u64 {
        let before = self.shared.ticks.load(Relaxed);
        let want = self.connected() + 1;
        self.trigger(1, 0);
        wait_until(limit, || self.shared.ticks.load(Relaxed) - before >= want).await;
        self.shared.ticks.load(Relaxed) - before
    }

    /// Stops every client (bounded) and returns what they saw (aborted stragglers: nothing).
    async fn finish(self) -> Vec<ClientState> {
        let _ = self.stop.send(true);
        let end = Instant::now() + Duration::from_secs(30);
        let mut out = Vec::with_capacity(self.handles.len());
        for h in self.handles {
            let left = end.saturating_duration_since(Instant::now());
            let abort = h.abort_handle();
            match timeout(left, h).await {
                Ok(Ok(st)) => out.push(st),
                _ => abort.abort(),
            }
        }
        out
    }
}

// ------------------------------------------------------------------------------------------
// 1. Idle

/// N clients connect (over WebSocket) and join room `all`: server RSS per connection.
pub async fn idle(c: &Common, n: usize, settle: Duration) -> Result<Value> {
    idle_held(c, n, settle, |_| async {}).await
}

/// [`idle`], with `hold` awaited while every client is connected and settled, after the RSS
/// reading and before the broadcast check; it gets `{connected, failed, server_rss_kib}`.
/// [`crate::shards`] holds several of these at once.
pub async fn idle_held<F: Future<Output = ()>>(
    c: &Common,
    n: usize,
    settle: Duration,
    hold: impl FnOnce(Value) -> F,
) -> Result<Value> {
    let rss0 = c.server_pid.and_then(|p| rss_kib(Some(p)));
    let fleet = Fleet::connect(c, n, None, false).await?;
    let connected = fleet.connected();
    sleep(settle).await;
    let rss1 = c.server_pid.and_then(|p| rss_kib(Some(p)));
    hold(json!({
        "connected": connected,
        "failed": fleet.shared.failed.load(Relaxed),
        "server_rss_kib": rss1,
    }))
    .await;
    let delivered = fleet.verify(Duration::from_secs(30)).await;
    let span = fleet.connect_span;
    let failed = fleet.shared.failed.load(Relaxed);
    let lost = fleet.shared.lost.load(Relaxed);
    fleet.finish().await;
    let per_conn = match (rss0, rss1) {
        (Some(a), Some(b)) if connected > 0 => Some(round3(
            (b.saturating_sub(a) as f64 * 1024.0) / connected as f64,
        )),
        _ => None,
    };
    Ok(report(
        c,
        "idle",
        json!({
            "clients": n,
            "concurrency": c.concurrency,
            "settle_s": settle.as_secs_f64(),
            "browser_headers": c.target.browser_headers,
        }),
        json!({
            "connected": connected,
            "failed": failed,
            "lost": lost,
            "server_rss_kib_before": rss0,
            "server_rss_kib": rss1,
            "rss_per_conn_bytes": per_conn,
            "connect": cpu_json(&span),
            "connects_per_s": round3(connected as f64 / span.wall.as_secs_f64().max(1e-9)),
            "verify_delivered": delivered,
            "verify_expected": connected + 1,
        }),
    ))
}

// ------------------------------------------------------------------------------------------
// 2. Fan-out

/// N clients in room `all`; `bursts` triggers, `interval` apart, each broadcasting K messages.
pub async fn fanout(
    c: &Common,
    n: usize,
    k: u64,
    bursts: u64,
    interval: Duration,
) -> Result<Value> {
    let fleet = Fleet::connect(c, n, None, false).await?;
    let connected = fleet.connected();
    let warm = fleet.verify(Duration::from_secs(30)).await;
    let expected = (connected + 1) * k * bursts;
    let before = fleet.shared.ticks.load(Relaxed);
    let meter = CpuMeter::start(c.server_pid);
    for b in 1..=bursts {
        fleet.trigger(k, b);
        if b < bursts {
            sleep(interval).await;
        }
    }
    let done = || fleet.shared.ticks.load(Relaxed) - before >= expected;
    wait_until(c.timeout, done).await;
    let span = meter.stop();
    let delivered = fleet.shared.ticks.load(Relaxed) - before;
    let lost = fleet.shared.lost.load(Relaxed);
    let failed = fleet.shared.failed.load(Relaxed);
    let states = fleet.finish().await;
    let mut lat: Vec<f32> = Vec::with_capacity(delivered as usize);
    for s in &states {
        lat.extend_from_slice(&s.lat);
    }
    let per_msg_us = |s: f64| round3(s * 1e6 / delivered.max(1) as f64);
    let cpu_per_msg_us = span.server.map(per_msg_us);
    let user_cpu_per_msg_us = span.server_user.map(per_msg_us);
    Ok(report(
        c,
        "fanout",
        json!({"clients": n, "k": k, "bursts": bursts, "interval_ms": interval.as_millis() as u64}),
        json!({
            "connected": connected,
            "failed": failed,
            "lost": lost,
            "warmup_delivered": warm,
            "delivered": delivered,
            "expected": expected,
            "cpu": cpu_json(&span),
            "server_cpu_per_msg_us": cpu_per_msg_us,
            "server_user_cpu_per_msg_us": user_cpu_per_msg_us,
            "delivered_per_s": round3(delivered as f64 / span.wall.as_secs_f64().max(1e-9)),
            "latency": summary(&mut lat),
        }),
    ))
}

// ------------------------------------------------------------------------------------------
// 6. Cluster

/// The second node of a cluster run.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// Its pid (CPU), if measured.
    pub pid: Option<u32>,
}

/// Two nodes of a cluster (`c.target` = A, `b`), `n` clients spread evenly over them, and a
/// Redis server (`redis_pid`, CPU only). A's driver sends bursts of K broadcasts to `all`:
/// A's clients get them locally, B's through Redis. Reports CPU of both nodes per delivered
/// message (and Redis's), and latency on A (local) and on B (cross-node).
pub async fn cluster(
    c: &Common,
    b: Peer,
    redis_pid: Option<u32>,
    n: usize,
    k: u64,
    bursts: u64,
    interval: Duration,
) -> Result<Value> {
    let mut cb = c.clone();
    cb.target.addr = b.addr;
    cb.server_pid = b.pid;
    let on_b = n / 2;
    let fleet_a = Fleet::connect(c, n - on_b, None, false).await?;
    let fleet_b = Fleet::connect(&cb, on_b, None, false).await?;
    // Every handle, drivers included, is in `all`.
    let (sockets_a, sockets_b) = (fleet_a.connected() + 1, fleet_b.connected() + 1);
    let ticks = |f: &Fleet| f.shared.ticks.load(Relaxed);
    // Warm-up: one message from A must reach every socket of both nodes.
    let (a0, b0) = (ticks(&fleet_a), ticks(&fleet_b));
    fleet_a.trigger(1, 0);
    wait_until(Duration::from_secs(30), || {
        ticks(&fleet_a) - a0 >= sockets_a && ticks(&fleet_b) - b0 >= sockets_b
    })
    .await;
    let warm = ticks(&fleet_a) - a0 + ticks(&fleet_b) - b0;
    let (expected_a, expected_b) = (sockets_a * k * bursts, sockets_b * k * bursts);
    let (a0, b0) = (ticks(&fleet_a), ticks(&fleet_b));
    let meters = (
        CpuMeter::start(c.server_pid),
        CpuMeter::start(b.pid),
        CpuMeter::start(redis_pid),
    );
    for burst in 1..=bursts {
        fleet_a.trigger(k, burst);
        if burst < bursts {
            sleep(interval).await;
        }
    }
    wait_until(c.timeout, || {
        ticks(&fleet_a) - a0 >= expected_a && ticks(&fleet_b) - b0 >= expected_b
    })
    .await;
    let spans = (meters.0.stop(), meters.1.stop(), meters.2.stop());
    let (delivered_a, delivered_b) = (ticks(&fleet_a) - a0, ticks(&fleet_b) - b0);
    let delivered = delivered_a + delivered_b;
    let connected = fleet_a.connected() + fleet_b.connected();
    let failed = fleet_a.shared.failed.load(Relaxed) + fleet_b.shared.failed.load(Relaxed);
    let latencies = |states: Vec<ClientState>| -> Vec<f32> {
        states.iter().flat_map(|s| s.lat.iter().copied()).collect()
    };
    let mut lat_a = latencies(fleet_a.finish().await);
    let mut lat_b = latencies(fleet_b.finish().await);
    let nodes_cpu = spans.0.server.zip(spans.1.server).map(|(a, b)| a + b);
    let per_msg_us = |s: f64| round3(s * 1e6 / delivered.max(1) as f64);
    Ok(report(
        c,
        "cluster",
        json!({"clients": n, "k": k, "bursts": bursts, "interval_ms": interval.as_millis() as u64}),
        json!({
            "connected": connected,
            "failed": failed,
            "warmup_delivered": warm,
            "delivered": delivered,
            "expected": expected_a + expected_b,
            "delivered_a": delivered_a,
            "delivered_b": delivered_b,
            "cpu_a": cpu_json(&spans.0),
            "cpu_b": cpu_json(&spans.1),
            "redis_cpu_s": spans.2.server.map(round3),
            "nodes_cpu_s": nodes_cpu.map(round3),
            "nodes_cpu_per_msg_us": nodes_cpu.map(per_msg_us),
            "redis_cpu_per_msg_us": spans.2.server.map(per_msg_us),
            "latency_local": summary(&mut lat_a),
            "latency_cross": summary(&mut lat_b),
        }),
    ))
}

// ------------------------------------------------------------------------------------------
// 5. Churn

/// N clients drop their TCP connection every `every` seconds (uniform) and reconnect with the
/// recovery CONNECT `{pid, offset}`, while the server broadcasts one message every `tick`.
pub async fn churn(
    c: &Common,
    n: usize,
    duration: Duration,
    tick: Duration,
    every: (f64, f64),
    drain: Duration,
) -> Result<Value> {
    let fleet = Fleet::connect(c, n, Some(Churn { every }), true).await?;
    let connected = fleet.connected();
    // every client needs an offset before its first drop
    let warm = fleet.verify(Duration::from_secs(30)).await;
    let meter = CpuMeter::start(c.server_pid);
    let start = Instant::now();
    let mut bursts = 0;
    while start.elapsed() < duration {
        bursts += 1;
        fleet.trigger(1, bursts);
        sleep(tick).await;
    }
    sleep(drain).await;
    let span = meter.stop();
    let sh = fleet.shared.clone();
    let states = fleet.finish().await;
    // the driver (first handle) is not a churning client
    let clients = &states[1.min(states.len())..];
    let seen: u64 = clients.iter().map(|s| s.unique_seen(bursts)).sum();
    let expected = connected * bursts;
    let mut lat: Vec<f32> = clients.iter().flat_map(|s| s.lat.iter().copied()).collect();
    Ok(report(
        c,
        "churn",
        json!({
            "clients": n, "duration_s": duration.as_secs_f64(), "tick_ms": tick.as_millis() as u64,
            "drop_every_s": [every.0, every.1], "drain_s": drain.as_secs_f64(),
        }),
        json!({
            "connected": connected,
            "failed": sh.failed.load(Relaxed),
            "warmup_delivered": warm,
            "messages": bursts,
            "delivered_unique": seen,
            "expected": expected,
            "delivered_share": if expected > 0 { seen as f64 / expected as f64 } else { 0.0 },
            "drops": sh.drops.load(Relaxed),
            "recovered": sh.recovered.load(Relaxed),
            "not_recovered": sh.not_recovered.load(Relaxed),
            "lost_connections": sh.lost.load(Relaxed),
            "cpu": cpu_json(&span),
            "latency": summary(&mut lat),
        }),
    ))
}

// ------------------------------------------------------------------------------------------
// 4. Connect storm

/// Polling handshake → CONNECT over polling → upgrade to WebSocket → an echo round trip.
pub(crate) async fn storm_client(i: usize, target: &Target) -> Result<SioConn> {
    let src = target.src(i);
    let mut http = Polling::new(src, target);
    let (status, body) = http
        .request("GET", &format!("EIO=4&transport=polling&t={i}"), "")
        .await?;
    if status != 200 || !body.starts_with('0') {
        return Err(format!("handshake: {status} {body:.80}").into());
    }
    let sid = json_str(&body, "sid").ok_or("no sid")?.to_owned();
    let q = format!("EIO=4&transport=polling&sid={sid}");
    let (status, body) = http.request("POST", &q, "40").await?;
    if status != 200 {
        return Err(format!("POST 40: {status} {body:.80}").into());
    }
    let mut joined = None;
    for _ in 0..5 {
        let (status, body) = http.request("GET", &q, "").await?;
        if status != 200 {
            return Err(format!("GET: {status} {body:.80}").into());
        }
        if let Some(rec) = body.split('\x1e').find(|r| r.starts_with("40")) {
            joined = Some(rec.to_owned());
            break;
        }
    }
    let joined = joined.ok_or("no CONNECT reply over polling")?;
    drop(http);
    let mut ws = SioConn::websocket(src, target, Some(&sid)).await?;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text("2probe")).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == "3probe" => break,
            Some(Ok(_)) => {}
            _ => return Err("no 3probe".into()),
        }
    }
    ws.send(Message::text("5")).await?;
    let mut conn = SioConn::upgraded(ws, json_str(&joined, "sid").unwrap_or_default());
    conn.emit("echo", &json!(i), None).await?;
    let want = format!("2[\"echo\",{i}");
    loop {
        match conn.next_sio().await? {
            Some(t) if t.starts_with(want.as_str()) => return Ok(conn),
            Some(_) => {}
            None => return Err("closed before the echo".into()),
        }
    }
}

/// N clients connect at once over polling, then upgrade: time until all are connected.
pub async fn storm(c: &Common, n: usize) -> Result<Value> {
    let (stop, stop_rx) = watch::channel(false);
    let done = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let meter = CpuMeter::start(c.server_pid);
    let start = Instant::now();
    let limit = c.timeout;
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let target = c.target.clone();
        let mut stop = stop_rx.clone();
        let (done, ok) = (done.clone(), ok.clone());
        handles.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = timeout(limit, storm_client(i, &target)).await;
            let took = t0.elapsed();
            done.fetch_add(1, Relaxed);
            match r {
                Ok(Ok(mut conn)) => {
                    ok.fetch_add(1, Relaxed);
                    // hold the connection (answering pings) until every client is through
                    loop {
                        tokio::select! {
                            _ = stop.changed() => break,
                            r = conn.next_sio() => if !matches!(r, Ok(Some(_))) { break },
                        }
                    }
                    Ok(took)
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_owned()),
            }
        }));
    }
    wait_until(limit + Duration::from_secs(5), || {
        done.load(Relaxed) as usize >= n
    })
    .await;
    let all_in = start.elapsed();
    let span = meter.stop();
    let _ = stop.send(true);
    let mut lat = Vec::with_capacity(n);
    let mut errors: Vec<String> = Vec::new();
    let mut failures = 0u64;
    for h in handles {
        match timeout(Duration::from_secs(10), h).await {
            Ok(Ok(Ok(took))) => lat.push(took.as_secs_f64() as f32 * 1000.0),
            Ok(Ok(Err(e))) => {
                failures += 1;
                if errors.len() < 5 && !errors.contains(&e) {
                    errors.push(e);
                }
            }
            _ => failures += 1,
        }
    }
    let connected = ok.load(Relaxed);
    Ok(report(
        c,
        "storm",
        json!({"clients": n, "transport": "polling+upgrade"}),
        json!({
            "connected": connected,
            "failures": failures,
            "errors": errors,
            "time_to_all_s": round3(all_in.as_secs_f64()),
            "connect_time": summary(&mut lat),
            "cpu": cpu_json(&span),
        }),
    ))
}

// ------------------------------------------------------------------------------------------
// 3. Chat (chatd's /chat protocol)

#[derive(Default)]
struct ChatOut {
    ok: bool,
    sent: u64,
    acked_ok: u64,
    acked_err: u64,
    first_error: Option<String>,
    received: u64,
    e2e: Vec<f32>,
    ack: Vec<f32>,
}

/// Sends a command with ack id `id` and waits for its ack (other packets are ignored).
async fn chat_call(conn: &mut SioConn, event: &str, arg: Value, id: u64) -> Result<String> {
    conn.emit(event, &arg, Some(id)).await?;
    let head = format!("3/chat,{id}[");
    loop {
        match conn.next_sio().await? {
            Some(t) if t.starts_with(head.as_str()) => return Ok(t[head.len()..].to_owned()),
            Some(_) => {}
            None => return Err("closed".into()),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn chat_user(
    idx: usize,
    room: usize,
    user: usize,
    target: Target,
    gate: Arc<Semaphore>,
    ready: Arc<AtomicU64>,
    mut go: watch::Receiver<u8>,
    rate: f64,
    duration: Duration,
) -> ChatOut {
    let mut out = ChatOut::default();
    let name = format!("u{room}-{user}");
    let room_name = format!("bench{room}");
    let setup = async {
        let permit = gate.acquire_owned().await.ok();
        let auth = json!({ "username": name });
        let mut conn =
            SioConn::connect(target.src(idx), &target, "/chat", Some(&auth), &mut |_| {}).await?;
        drop(permit);
        let mut id = 0;
        if user == 0 {
            id += 1;
            let r = chat_call(&mut conn, "room:create", json!({ "room": room_name }), id).await?;
            if !r.contains("\"ok\":true") && !r.contains("room_exists") {
                return Err(format!("room:create: {r}").into());
            }
        }
        for _ in 0..100 {
            id += 1;
            let r = chat_call(&mut conn, "room:join", json!({ "room": room_name }), id).await?;
            if r.starts_with("{\"ok\":true") {
                return Ok::<_, crate::Error>((conn, id));
            }
            if !r.contains("no_such_room") {
                return Err(format!("room:join: {r}").into());
            }
            sleep(Duration::from_millis(100)).await;
        }
        Err("room never appeared".into())
    };
    let (mut conn, mut id) = match timeout(Duration::from_secs(60), setup).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            out.first_error = Some(e.to_string());
            return out;
        }
        Err(_) => {
            out.first_error = Some("setup timed out".into());
            return out;
        }
    };
    out.ok = true;
    ready.fetch_add(1, Relaxed);
    // 1 = send, 2 = stop
    while *go.borrow() == 0 {
        tokio::select! {
            r = go.changed() => if r.is_err() { return out },
            r = conn.next_sio() => if !matches!(r, Ok(Some(_))) { return out },
        }
    }
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let offset = Duration::from_secs_f64(rand::rng().random_range(0.0..period.as_secs_f64()));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let send_until = Instant::now() + duration;
    let mut pending = std::collections::HashMap::<u64, f64>::new();
    let ack_head = "3/chat,";
    loop {
        let sending = Instant::now() < send_until;
        tokio::select! {
            _ = go.changed() => break,
            _ = ticker.tick(), if sending => {
                id += 1;
                let t = now_ms();
                pending.insert(id, t);
                out.sent += 1;
                let arg = json!({"room": room_name, "id": format!("c-{id}"), "text": format!("{t}")});
                if conn.emit("message:send", &arg, Some(id)).await.is_err() { break }
            }
            r = conn.next_sio() => {
                let Ok(Some(text)) = r else { break };
                if let Some(rest) = text.strip_prefix(ack_head) {
                    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                    let Ok(aid) = rest[..digits].parse::<u64>() else { continue };
                    if let Some(t0) = pending.remove(&aid) {
                        out.ack.push((now_ms() - t0) as f32);
                        if rest[digits..].starts_with("[{\"ok\":true") {
                            out.acked_ok += 1;
                        } else {
                            out.acked_err += 1;
                            if out.first_error.is_none() {
                                out.first_error = Some(rest[digits..].chars().take(120).collect());
                            }
                        }
                    }
                } else if text.starts_with("2/chat,[\"message\",") {
                    out.received += 1;
                    if let Some(t0) = json_str(&text, "text").and_then(|s| s.parse::<f64>().ok()) {
                        out.e2e.push((now_ms() - t0) as f32);
                    }
                }
            }
        }
    }
    out
}

/// The chatd nodes a chat run talks to, and what else it measures.
#[derive(Clone, Debug, Default)]
pub struct ChatNodes {
    /// The nodes' addresses: user i connects to `addrs[i % len]` (empty: `c.target` only).
    pub addrs: Vec<std::net::SocketAddr>,
    /// Every node's pid, for CPU (empty: `c.server_pid`).
    pub pids: Vec<u32>,
    /// What the nodes store messages in, as named in the report (`sqlite`, `postgres`).
    pub store: String,
    /// PostgreSQL's postmaster, for the CPU of it and its backends.
    pub db_pid: Option<u32>,
    /// Redis's pid, for its CPU.
    pub redis_pid: Option<u32>,
}

/// Sums the servers' CPU of spans measured over the same phase (wall time and the generator's
/// CPU from the first); `None` when any server is unmeasured.
fn sum_spans(spans: &[CpuSpan]) -> Option<CpuSpan> {
    let first = *spans.first()?;
    let add = |f: fn(&CpuSpan) -> Option<f64>| spans.iter().map(f).sum::<Option<f64>>();
    Some(CpuSpan {
        server: add(|s| s.server),
        server_user: add(|s| s.server_user),
        server_sys: add(|s| s.server_sys),
        ..first
    })
}

/// R rooms × U users on chatd's `/chat`, each user sending `rate` messages per second for
/// `duration`: end-to-end latency, server CPU, messages stored per second. With several nodes
/// the users are dealt round-robin over them, so each room has members on every node (when
/// U ≥ nodes) and its messages cross nodes; CPU is that of every node (and of PostgreSQL and
/// Redis when their pids are given).
pub async fn chat(
    c: &Common,
    nodes: &ChatNodes,
    rooms: usize,
    users: usize,
    rate: f64,
    duration: Duration,
    drain: Duration,
) -> Result<Value> {
    let addrs = if nodes.addrs.is_empty() {
        vec![c.target.addr]
    } else {
        nodes.addrs.clone()
    };
    let pids: Vec<Option<u32>> = if nodes.pids.is_empty() {
        vec![c.server_pid]
    } else {
        nodes.pids.iter().map(|&p| Some(p)).collect()
    };
    let gate = Arc::new(Semaphore::new(c.concurrency.max(1)));
    let ready = Arc::new(AtomicU64::new(0));
    let (go, go_rx) = watch::channel(0u8);
    let total = rooms * users;
    let mut handles = Vec::with_capacity(total);
    for r in 0..rooms {
        for u in 0..users {
            let idx = r * users + u;
            let mut target = c.target.clone();
            target.addr = addrs[idx % addrs.len()];
            handles.push(tokio::spawn(chat_user(
                idx,
                r,
                u,
                target,
                gate.clone(),
                ready.clone(),
                go_rx.clone(),
                rate,
                duration,
            )));
        }
    }
    wait_until(c.timeout, || ready.load(Relaxed) as usize >= total).await;
    let joined = ready.load(Relaxed);
    let meters: Vec<CpuMeter> = pids.iter().map(|&p| CpuMeter::start(p)).collect();
    let side = (
        CpuMeter::start(nodes.redis_pid),
        nodes.db_pid.and_then(tree_cpu_seconds),
    );
    let _ = go.send(1);
    sleep(duration + drain).await;
    let spans: Vec<CpuSpan> = meters.iter().map(CpuMeter::stop).collect();
    let redis_cpu = side.0.stop().server;
    let db_cpu = side
        .1
        .zip(nodes.db_pid.and_then(tree_cpu_seconds))
        .map(|(a, b)| b - a);
    let span = sum_spans(&spans).ok_or("no CPU span")?;
    let _ = go.send(2);
    let mut all = ChatOut::default();
    let mut errors = Vec::new();
    for h in handles {
        if let Ok(Ok(o)) = timeout(Duration::from_secs(10), h).await {
            all.sent += o.sent;
            all.acked_ok += o.acked_ok;
            all.acked_err += o.acked_err;
            all.received += o.received;
            all.e2e.extend(o.e2e);
            all.ack.extend(o.ack);
            if let Some(e) = o.first_error {
                if errors.len() < 5 && !errors.contains(&e) {
                    errors.push(e);
                }
            }
        }
    }
    let expected = all.acked_ok * (users as u64 - 1);
    let stored_per_s = all.acked_ok as f64 / duration.as_secs_f64();
    let per_msg = |cpu: Option<f64>| cpu.map(|s| round3(s * 1e6 / all.acked_ok.max(1) as f64));
    // Nodes, PostgreSQL and Redis: what the server side spent, wherever it ran.
    let all_cpu = [span.server, db_cpu, redis_cpu]
        .into_iter()
        .flatten()
        .reduce(|a, b| a + b);
    let store = if nodes.store.is_empty() {
        "sqlite"
    } else {
        nodes.store.as_str()
    };
    Ok(report(
        c,
        "chat",
        json!({"rooms": rooms, "users": users, "rate": rate, "duration_s": duration.as_secs_f64(), "drain_s": drain.as_secs_f64(), "nodes": addrs.len(), "store": store}),
        json!({
            "joined": joined,
            "sent": all.sent,
            "stored": all.acked_ok,
            "refused": all.acked_err,
            "errors": errors,
            "stored_per_s": round3(stored_per_s),
            "delivered": all.received,
            "expected": expected,
            "e2e_latency": summary(&mut all.e2e),
            "ack_latency": summary(&mut all.ack),
            "cpu": cpu_json(&span),
            "node_cpu_s": spans.iter().map(|s| s.server.map(round3)).collect::<Vec<_>>(),
            "server_cpu_per_stored_msg_us": per_msg(span.server),
            "db_cpu_s": db_cpu.map(round3),
            "redis_cpu_s": redis_cpu.map(round3),
            "server_side_cpu_s": all_cpu.map(round3),
            "server_side_cpu_per_stored_msg_us": per_msg(all_cpu),
        }),
    ))
}
