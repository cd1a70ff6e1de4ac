//! CI smoke run of the benchmark harness: our bench server in-process on 127.0.0.1:0, tiny
//! idle, fan-out and churn (with recovery) scenarios, every message delivered. A few seconds.

use std::time::Duration;

use loadgen::scenarios;
use loadgen::shards::Shard;

mod common;
use common::start;

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
        // A client dropped near the end reconnects and recovers within the drain, on a
        // loaded machine too.
        Duration::from_millis(5000),
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
