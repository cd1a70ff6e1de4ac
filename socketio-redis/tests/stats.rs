//! `RedisAdapterFactory::stats()` through a Redis outage.

mod common;

use std::time::{Duration, Instant};

use common::RedisServer;
use serde_json::json;
use socketio::{Config, SocketIo};
use socketio_redis::{RedisAdapterConfig, RedisAdapterFactory, RedisStats};

async fn until(factory: &RedisAdapterFactory, what: &str, check: impl Fn(&RedisStats) -> bool) {
    // The keepalive pings every 500 ms; nothing else announces a state change.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check(&factory.stats()) {
        assert!(Instant::now() < deadline, "{what}: {:?}", factory.stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_reconnects_and_dropped_publishes_are_counted() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    let config = RedisAdapterConfig {
        requests_timeout: Duration::from_millis(500),
        publish_queue: 4,
        ..Default::default()
    };
    let factory = RedisAdapterFactory::connect(&redis.url, config)
        .await
        .expect("connect");
    let io = SocketIo::builder(Config::default())
        .adapter(factory.clone())
        .build();
    factory.ready().await;
    assert_eq!(
        factory.stats(),
        RedisStats {
            connected: true,
            ..Default::default()
        }
    );

    redis.kill();
    until(&factory, "outage noticed", |s| !s.connected).await;
    // Far more than the queue holds: the excess is dropped and counted.
    for i in 0..1000 {
        io.of("/").emit("ev", json!(i)).expect("emit");
    }
    let s = factory.stats();
    assert_eq!(s.outages, 1);
    assert!(s.dropped_publishes > 0, "{s:?}");

    let _back = RedisServer::start_on(port).expect("redis-server back on its port");
    until(&factory, "reconnected", |s| {
        s.connected && s.reconnects >= 1
    })
    .await;
    assert!(factory.stats().outages >= 1);
    assert_eq!(io.of("/").adapter().server_count().await, 1);
}
