//! Our bench server in-process on 127.0.0.1:0, for the smoke tests.
#![allow(dead_code)]

use std::time::Duration;

use loadgen::client::Target;
use loadgen::scenarios::Common;

/// Starts the server (with connection state recovery or not) and returns the scenario settings.
pub async fn start(recovery: bool) -> Common {
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
