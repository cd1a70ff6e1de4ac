//! CI smoke run of the open/close cycles scenario, in a test binary of its own so that it does
//! not compete for the CPU with the delivery checks of `smoke.rs`.

mod common;

use std::time::Duration;

use common::start;

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
