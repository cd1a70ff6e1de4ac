//! `loadgen`: see `docs/benchmarks.md`. Prints one JSON object per run on stdout (and appends it
//! to `--out`); a one-line summary goes to stderr.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use loadgen::client::{check_loopback, Target};
use loadgen::scenarios::{self, Common};
use loadgen::shards::Shard;

#[derive(Parser)]
#[command(about = "Socket.IO v5 load generator (loopback only)")]
struct Cli {
    /// Server address (must be in 127.0.0.0/8).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Engine.IO path.
    #[arg(long, default_value = "/socket.io/")]
    path: String,
    /// Server pid: its CPU (utime+stime) and RSS are read from /proc. A sharded idle run takes
    /// one pid per shard, comma-separated, in port order.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Peer name for the report.
    #[arg(long, default_value = "server")]
    label: String,
    /// Source addresses 127.0.0.1..=127.0.0.N to spread clients over (~28k ports each).
    #[arg(long, default_value_t = 16)]
    src_ips: u8,
    /// Every WebSocket handshake carries a browser's headers (behind nginx), ~700 bytes.
    #[arg(long, global = true)]
    browser_headers: bool,
    /// Upper bound of every wait, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Connections opened at a time when connecting a fleet; sessions open at a time in
    /// `cycles`.
    #[arg(long, global = true, default_value_t = 256)]
    concurrency: usize,
    /// Append the JSON result to this file.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N clients connect and join `all`: server RSS per connection.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
        /// Seconds to wait after the last connect before reading RSS.
        #[arg(long, default_value_t = 3.0)]
        settle_s: f64,
        /// Server processes on consecutive ports from `--addr`, one child loadgen each, all
        /// held at once: for fleets larger than one process's descriptor limit.
        #[arg(long, default_value_t = 1)]
        shards: usize,
        /// Run as a shard's child: print `{"held":…}` once settled, wait for a line on stdin.
        #[arg(long, hide = true)]
        hold: bool,
    },
    /// N clients in `all`; bursts of K broadcasts: server CPU per delivered message, latency.
    Fanout {
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        k: u64,
        #[arg(long, default_value_t = 10)]
        bursts: u64,
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
    },
    /// Two nodes of a cluster over Redis (`--addr` and `--addr-b`; `--server-pid A,B`), N
    /// clients spread over both, bursts of K broadcasts from A: CPU of both nodes per delivered
    /// message, local and cross-node latency.
    Cluster {
        #[arg(long)]
        addr_b: SocketAddr,
        /// Redis's pid, for its CPU.
        #[arg(long)]
        redis_pid: Option<u32>,
        #[arg(long, default_value_t = 2_000)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        k: u64,
        #[arg(long, default_value_t = 5)]
        bursts: u64,
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
    },
    /// chatd's /chat: R rooms × U users sending M messages per second each.
    Chat {
        /// Nodes of one chatd cluster, comma-separated (default: `--addr` alone): users connect
        /// round-robin; `--server-pid` lists their pids in the same order.
        #[arg(long, value_delimiter = ',')]
        addrs: Vec<SocketAddr>,
        /// What the nodes store messages in, for the report (`sqlite`, `postgres`).
        #[arg(long, default_value = "sqlite")]
        store: String,
        /// PostgreSQL's postmaster pid: CPU of it and its backends.
        #[arg(long)]
        db_pid: Option<u32>,
        /// Redis's pid, for its CPU.
        #[arg(long)]
        redis_pid: Option<u32>,
        #[arg(long, default_value_t = 10)]
        rooms: usize,
        #[arg(long, default_value_t = 10)]
        users: usize,
        #[arg(long, default_value_t = 1.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        duration_s: f64,
        #[arg(long, default_value_t = 2.0)]
        drain_s: f64,
    },
    /// N clients connect at once over polling, then upgrade.
    Storm {
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
    },
    /// Clients drop TCP every ~15 s and recover while one message per tick is broadcast.
    Churn {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 60.0)]
        duration_s: f64,
        #[arg(long, default_value_t = 100)]
        tick_ms: u64,
        #[arg(long, default_value_t = 10.0)]
        drop_min_s: f64,
        #[arg(long, default_value_t = 20.0)]
        drop_max_s: f64,
        #[arg(long, default_value_t = 4.0)]
        drain_s: f64,
    },
    /// Sessions open, exchange one echo and close (`--concurrency` at a time; WebSocket,
    /// polling, polling + upgrade in turn): server RSS after the first cycles and at
    /// checkpoints up to the total, each read with no session open.
    Cycles {
        /// Cycles in all.
        #[arg(long, default_value_t = 1_000_000)]
        cycles: u64,
        /// Cycles before the first RSS sample (the reference).
        #[arg(long, default_value_t = 10_000)]
        first: u64,
        /// Further samples, evenly spaced up to the total.
        #[arg(long, default_value_t = 10)]
        samples: u64,
        /// The server's stats path (bench-ours: `/bench/stats`): before each sample, wait
        /// until it reports zero sessions, sockets and rooms. Without it only the server's
        /// socket descriptors are waited for.
        #[arg(long)]
        stats_path: Option<String>,
        /// Seconds to wait once the server is quiet, before reading RSS.
        #[arg(long, default_value_t = 1.0)]
        settle_s: f64,
        /// Only one transport: `websocket`, `polling` or `polling+upgrade` (default: all three
        /// in turn).
        #[arg(long)]
        transport: Option<String>,
    },
}

/// `idle --shards S`: shard j listens on the port of `--addr` plus j and has the j-th pid.
async fn sharded_idle(
    c: &Common,
    pids: &[u32],
    shards: usize,
    clients: usize,
    settle: Duration,
) -> loadgen::Result<serde_json::Value> {
    if pids.len() != shards {
        return Err(format!("--shards {shards} needs {shards} server pids").into());
    }
    let shards: Vec<Shard> = pids
        .iter()
        .enumerate()
        .map(|(j, &pid)| {
            let mut addr = c.target.addr;
            addr.set_port(addr.port().saturating_add(j as u16));
            Shard { addr, pid }
        })
        .collect();
    loadgen::shards::idle(c, &std::env::current_exe()?, &shards, clients, settle).await
}

/// A shard's child: tells the parent it holds its clients and waits to be told to go on.
async fn hold_until_told(held: serde_json::Value) {
    use tokio::io::AsyncBufReadExt;
    println!("{}", serde_json::json!({ "held": held }));
    let mut line = String::new();
    let _ = tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await;
}

#[tokio::main]
async fn main() -> loadgen::Result<()> {
    let cli = Cli::parse();
    check_loopback(&cli.addr)?;
    let nofile = loadgen::sys::raise_nofile();
    let c = Common {
        target: Target {
            addr: cli.addr,
            path: cli.path.clone(),
            src_ips: cli.src_ips.max(1),
            browser_headers: cli.browser_headers,
        },
        server_pid: cli.server_pid.first().copied(),
        label: cli.label.clone(),
        timeout: Duration::from_secs(cli.timeout_s),
        concurrency: cli.concurrency,
    };
    // Each client holds one socket (two during a storm's upgrade), the driver one more.
    let need = match &cli.scenario {
        Scenario::Idle {
            clients, shards, ..
        } => clients.div_ceil((*shards).max(1)) + 64,
        Scenario::Fanout { clients, .. }
        | Scenario::Churn { clients, .. }
        | Scenario::Cluster { clients, .. } => clients + 64,
        // a storm client closes its polling connection before it opens the WebSocket
        Scenario::Storm { clients } => clients + 64,
        Scenario::Chat { rooms, users, .. } => rooms * users + 64,
        // an upgrade may hold its polling and its WebSocket connection at once
        Scenario::Cycles { .. } => cli.concurrency * 2 + 64,
    } as u64;
    if need > nofile {
        return Err(format!(
            "{need} file descriptors needed but RLIMIT_NOFILE is {nofile} and cannot be raised \
             further here (raising the hard limit needs root with CAP_SYS_RESOURCE)"
        )
        .into());
    }
    let mut overall = Duration::from_secs(cli.timeout_s * 3 + 120);
    if let Scenario::Cycles {
        cycles, samples, ..
    } = &cli.scenario
    {
        // up to 5 ms per cycle, and a quiet wait per sample
        overall += Duration::from_millis(cycles * 5) + Duration::from_secs(cli.timeout_s * samples);
    }
    let run = async {
        match cli.scenario {
            Scenario::Idle {
                clients,
                settle_s,
                shards,
                hold,
            } => {
                let settle = Duration::from_secs_f64(settle_s);
                if shards > 1 {
                    sharded_idle(&c, &cli.server_pid, shards, clients, settle).await
                } else if hold {
                    scenarios::idle_held(&c, clients, settle, hold_until_told).await
                } else {
                    scenarios::idle(&c, clients, settle).await
                }
            }
            Scenario::Fanout {
                clients,
                k,
                bursts,
                interval_ms,
            } => {
                scenarios::fanout(&c, clients, k, bursts, Duration::from_millis(interval_ms)).await
            }
            Scenario::Cluster {
                addr_b,
                redis_pid,
                clients,
                k,
                bursts,
                interval_ms,
            } => {
                check_loopback(&addr_b)?;
                let b = scenarios::Peer {
                    addr: addr_b,
                    pid: cli.server_pid.get(1).copied(),
                };
                let interval = Duration::from_millis(interval_ms);
                scenarios::cluster(&c, b, redis_pid, clients, k, bursts, interval).await
            }
            Scenario::Chat {
                addrs,
                store,
                db_pid,
                redis_pid,
                rooms,
                users,
                rate,
                duration_s,
                drain_s,
            } => {
                for a in &addrs {
                    check_loopback(a)?;
                }
                // every node's CPU or none: a partial sum would pass for the whole
                if !addrs.is_empty()
                    && !cli.server_pid.is_empty()
                    && cli.server_pid.len() != addrs.len()
                {
                    return Err(format!(
                        "{} addresses but {} server pids",
                        addrs.len(),
                        cli.server_pid.len()
                    )
                    .into());
                }
                let nodes = scenarios::ChatNodes {
                    addrs,
                    pids: cli.server_pid.clone(),
                    store,
                    db_pid,
                    redis_pid,
                };
                scenarios::chat(
                    &c,
                    &nodes,
                    rooms,
                    users,
                    rate,
                    Duration::from_secs_f64(duration_s),
                    Duration::from_secs_f64(drain_s),
                )
                .await
            }
            Scenario::Storm { clients } => scenarios::storm(&c, clients).await,
            Scenario::Churn {
                clients,
                duration_s,
                tick_ms,
                drop_min_s,
                drop_max_s,
                drain_s,
            } => {
                scenarios::churn(
                    &c,
                    clients,
                    Duration::from_secs_f64(duration_s),
                    Duration::from_millis(tick_ms),
                    (drop_min_s, drop_max_s),
                    Duration::from_secs_f64(drain_s),
                )
                .await
            }
            Scenario::Cycles {
                cycles,
                first,
                samples,
                stats_path,
                settle_s,
                transport,
            } => {
                let only = match transport {
                    None => None,
                    Some(t) => Some(
                        loadgen::cycles::TRANSPORTS
                            .iter()
                            .position(|x| *x == t)
                            .ok_or_else(|| format!("unknown transport {t}"))?,
                    ),
                };
                let o = loadgen::cycles::CyclesOpts {
                    only,
                    total: cycles,
                    first,
                    samples,
                    stats_path,
                    settle: Duration::from_secs_f64(settle_s),
                };
                loadgen::cycles::cycles(&c, &o).await
            }
        }
    };
    // bounded: the generator stops by itself whatever the server does
    let mut report = tokio::time::timeout(overall, run)
        .await
        .map_err(|_| "loadgen: overall time limit reached")??;
    report["nofile_limit"] = nofile.into();
    let line = serde_json::to_string(&report)?;
    println!("{line}");
    if let Some(path) = &cli.out {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{line}")?;
    }
    eprintln!(
        "{} {}: {}",
        report["peer"].as_str().unwrap_or(""),
        report["scenario"].as_str().unwrap_or(""),
        report["results"]
    );
    // do not wait for 100k sockets to be dropped one by one
    std::process::exit(0);
}
