//! CI smoke run of the benchmark harness: our bench server in-process on 127.0.0.1:0, tiny
//! idle, fan-out and churn (with recovery) scenarios, every message delivered. A few seconds.

use std::time::Duration;

use loadgen::client::Target;
use loadgen::scenarios::{self, Common};
use loadgen::shards::Shard;

async fn start(recovery: bool) -> Common {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(bench_ours::serve(
        listener,
        recovery,
        std::future::pending::<()>(),
    ));
    let mut target = Target::new(addr);
    target.src_ips = 4;
    Common {
        target,
        // in-process: CPU and RSS would be the test's own, so they are not measured
        server_pid: None,
        label: "ours".into(),
        timeout: Duration::from_secs(10),
        concurrency: 32,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_fanout_churn_deliver_everything() {
    loadgen::sys::raise_nofile();
    let c = start(false).await;

    let r = scenarios::idle(&c, 50, Duration::from_millis(100))
        .await
        .unwrap();
    let res = &r["results"];
    assert_eq!(res["connected"], 50, "{r}");
    assert_eq!(res["failed"], 0, "{r}");
    assert_eq!(res["verify_delivered"], 51, "{r}");

    let r = scenarios::fanout(&c, 50, 5, 3, Duration::from_millis(50))
        .await
        .unwrap();
    let res = &r["results"];
    assert_eq!(res["connected"], 50, "{r}");
    assert_eq!(res["expected"], 51 * 5 * 3, "{r}");
    assert_eq!(res["delivered"], res["expected"], "{r}");
    assert_eq!(res["latency"]["n"], 51 * 5 * 3, "{r}");
    assert_eq!(r["scenario"], "fanout");

    let c = start(true).await;
    let r = scenarios::churn(
        &c,
        50,
        Duration::from_secs(4),
        Duration::from_millis(50),
        (0.8, 2.0),
        Duration::from_millis(2500),
    )
    .await
    .unwrap();
    let res = &r["results"];
    assert_eq!(res["connected"], 50, "{r}");
    assert!(res["drops"].as_u64().unwrap() >= 50, "{r}");
    assert_eq!(res["not_recovered"], 0, "{r}");
    assert_eq!(res["lost_connections"], 0, "{r}");
    assert_eq!(res["delivered_unique"], res["expected"], "{r}");
}

/// Two shards (in-process servers), one child loadgen each, held at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_idle_holds_every_shard_at_once() {
    loadgen::sys::raise_nofile();
    let (a, b) = (start(false).await, start(false).await);
    let pid = std::process::id();
    let shards = [
        Shard {
            addr: a.target.addr,
            pid,
        },
        Shard {
            addr: b.target.addr,
            pid,
        },
    ];
    let program = std::path::Path::new(env!("CARGO_BIN_EXE_loadgen"));
    let r = loadgen::shards::idle(&a, program, &shards, 51, Duration::from_millis(100))
        .await
        .unwrap();
    let res = &r["results"];
    assert_eq!(r["params"]["shards"], 2, "{r}");
    assert_eq!(res["connected"], 51, "{r}");
    assert_eq!(res["failed"], 0, "{r}");
    // each shard's driver connection receives the broadcast check too
    assert_eq!(res["verify_expected"], 53, "{r}");
    assert_eq!(res["verify_delivered"], 53, "{r}");
    let per_shard = res["per_shard"].as_array().unwrap();
    assert_eq!(per_shard.len(), 2, "{r}");
    assert_eq!(per_shard[0]["connected"], 26, "{r}");
    assert_eq!(per_shard[1]["connected"], 25, "{r}");
}

/// Open/close cycles over the three transports; at every sample the server holds no session,
/// socket or room (its `/bench/stats`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_leave_nothing_open() {
    loadgen::sys::raise_nofile();
    let c = start(false).await;
    let o = loadgen::cycles::CyclesOpts {
        total: 90,
        first: 30,
        samples: 2,
        stats_path: Some("/bench/stats".into()),
        settle: Duration::ZERO,
        only: None,
    };
    let r = loadgen::cycles::cycles(&c, &o).await.unwrap();
    let res = &r["results"];
    assert_eq!(res["ok"], 90, "{r}");
    assert_eq!(res["failed"], 0, "{r}");
    for t in loadgen::cycles::TRANSPORTS {
        assert_eq!(res["by_transport"][t]["ok"], 30, "{r}");
    }
    let samples = res["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3, "{r}");
    for s in samples {
        assert_eq!(s["quiet"]["stats_zero"], true, "{r}");
        assert_eq!(s["quiet"]["stats"]["sessions"], 0, "{r}");
    }
}
