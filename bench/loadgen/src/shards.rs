//! The idle scenario over several server processes ("shards", one port each) for fleets larger
//! than one process's descriptor limit: one child loadgen per shard, every child holding its
//! clients until all of them are connected, so that the whole fleet is held at one moment and
//! the servers' RSS is read then.
//!
//! A child is this program with `idle --hold`: once its clients are connected and settled it
//! prints one `{"held": …}` line and waits for a line on its standard input before the broadcast
//! check; its report is the last line it prints.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

use crate::scenarios::{report, Common};
use crate::stats::round3;
use crate::sys::rss_kib;
use crate::Result;

/// One server process of a sharded run.
#[derive(Clone, Copy, Debug)]
pub struct Shard {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its pid, for RSS and CPU.
    pub pid: u32,
}

/// How many of `n` clients shard `j` of `shards` gets.
pub fn share(n: usize, shards: usize, j: usize) -> usize {
    n / shards + usize::from(j < n % shards)
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    fn spawn(
        c: &Common,
        program: &Path,
        shard: Shard,
        clients: usize,
        settle: Duration,
    ) -> Result<Worker> {
        let mut child = Command::new(program)
            .args(["--addr", &shard.addr.to_string()])
            .args(["--path", &c.target.path])
            .args(["--server-pid", &shard.pid.to_string()])
            .args(["--label", &c.label])
            .args(["--src-ips", &c.target.src_ips.to_string()])
            .args(["--timeout-s", &c.timeout.as_secs().to_string()])
            .args(["--concurrency", &c.concurrency.to_string()])
            .args(c.target.browser_headers.then_some("--browser-headers"))
            .args(["idle", "--hold", "--clients", &clients.to_string()])
            .args(["--settle-s", &settle.as_secs_f64().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("a worker's pipes were not set up".into());
        };
        Ok(Worker {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The next JSON line the worker prints.
    async fn next(&mut self, limit: Duration) -> Result<Value> {
        let line = timeout(limit, self.lines.next_line())
            .await
            .map_err(|_| "a worker did not answer in time")??
            .ok_or("a worker exited early")?;
        Ok(serde_json::from_str(&line)?)
    }
}

fn sum(values: &[Value], path: &[&str]) -> f64 {
    values
        .iter()
        .filter_map(|v| path.iter().try_fold(v, |v, k| v.get(k))?.as_f64())
        .sum()
}

fn max(values: &[Value], path: &[&str]) -> f64 {
    values
        .iter()
        .filter_map(|v| path.iter().try_fold(v, |v, k| v.get(k))?.as_f64())
        .fold(0.0, f64::max)
}

/// N clients over `shards`, all held at once: the summed RSS of the servers per connection.
/// `program` is the loadgen binary the children run.
pub async fn idle(
    c: &Common,
    program: &Path,
    shards: &[Shard],
    n: usize,
    settle: Duration,
) -> Result<Value> {
    if shards.is_empty() {
        return Err("no shards".into());
    }
    let mut workers = shards
        .iter()
        .enumerate()
        .map(|(j, s)| Worker::spawn(c, program, *s, share(n, shards.len(), j), settle))
        .collect::<Result<Vec<_>>>()?;
    let limit = c.timeout * 2 + Duration::from_secs(60);
    let mut held = Vec::with_capacity(workers.len());
    for w in &mut workers {
        let line = w.next(limit).await?;
        held.push(
            line.get("held")
                .cloned()
                .ok_or("a worker failed to connect")?,
        );
    }
    // Every worker is holding its clients now: this is the moment of the whole fleet.
    let rss: Vec<Option<u64>> = shards.iter().map(|s| rss_kib(Some(s.pid))).collect();
    let loadgen_rss: u64 = workers
        .iter()
        .filter_map(|w| w.child.id())
        .filter_map(|pid| rss_kib(Some(pid)))
        .sum();
    for w in &mut workers {
        w.stdin.write_all(b"go\n").await?;
        w.stdin.flush().await?;
    }
    let mut reports = Vec::with_capacity(workers.len());
    for w in &mut workers {
        reports.push(w.next(limit).await?);
        let _ = timeout(Duration::from_secs(30), w.child.wait()).await;
    }
    let results: Vec<Value> = reports.iter().map(|r| r["results"].clone()).collect();
    let connected = sum(&held, &["connected"]);
    let rss_now: Option<u64> = rss.iter().copied().sum();
    let rss_before = sum(&results, &["server_rss_kib_before"]);
    let wall = max(&results, &["connect", "wall_s"]);
    let loadgen_cpu = sum(&results, &["connect", "loadgen_cpu_s"]);
    let per_conn = rss_now
        .filter(|_| connected > 0.0)
        .map(|r| round3((r as f64 - rss_before).max(0.0) * 1024.0 / connected));
    let per_shard: Vec<Value> = held
        .iter()
        .zip(&rss)
        .map(|(h, r)| json!({"connected": h["connected"], "server_rss_kib": r}))
        .collect();
    // the shards' pids are reported above, not as one server
    let coordinator = Common {
        server_pid: None,
        ..c.clone()
    };
    let mut out = report(
        &coordinator,
        "idle",
        json!({
            "clients": n,
            "shards": shards.len(),
            "concurrency": c.concurrency,
            "settle_s": settle.as_secs_f64(),
            "browser_headers": c.target.browser_headers,
        }),
        json!({
            "connected": connected as u64,
            "failed": sum(&held, &["failed"]) as u64,
            "lost": sum(&results, &["lost"]) as u64,
            "server_rss_kib_before": rss_before as u64,
            "server_rss_kib": rss_now,
            "rss_per_conn_bytes": per_conn,
            "connect": {
                "wall_s": round3(wall),
                "server_cpu_s": round3(sum(&results, &["connect", "server_cpu_s"])),
                "loadgen_cpu_s": round3(loadgen_cpu),
                "loadgen_cpu_share": if wall > 0.0 { round3(loadgen_cpu / wall) } else { 0.0 },
            },
            "connects_per_s": round3(connected / wall.max(1e-9)),
            "verify_delivered": sum(&results, &["verify_delivered"]) as u64,
            "verify_expected": sum(&results, &["verify_expected"]) as u64,
            "per_shard": per_shard,
        }),
    );
    out["loadgen_rss_kib"] = json!(loadgen_rss);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for (n, s) in [(100_000, 6), (50_000, 3), (7, 3), (2, 5)] {
            let parts: Vec<usize> = (0..s).map(|j| share(n, s, j)).collect();
            assert_eq!(parts.iter().sum::<usize>(), n);
            let (lo, hi) = (parts.iter().min(), parts.iter().max());
            assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{parts:?}");
        }
    }
}
