//! A.7: the polling → WebSocket upgrade.

mod common;

use std::time::{Duration, Instant};

use common::*;
use engineio::{CloseReason, Config, Message, TransportKind};
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_upgrade_sequence() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    assert_eq!(socket.transport(), TransportKind::Polling);

    // Polling works before the upgrade.
    client.send(&open.sid, b"4before").await.assert_ok();
    assert_eq!(server.expect_text(socket.id()).await, "before");
    assert_eq!(client.poll(&open.sid).await.polling_body(), "4before");

    // A GET pending while the probe runs is ended with a noop.
    let mut get = client.spawn_poll(&open.sid);
    assert_held(&mut get).await;
    let mut ws = client
        .ws(&ws_query(&open.sid))
        .await
        .expect("probe WebSocket");
    // No open packet on the probing WebSocket: the first frame is the probe answer.
    ws_send(&mut ws, "2probe").await;
    assert_eq!(ws_text(&mut ws).await, "3probe");
    assert_eq!(join_resp("the pending GET", get).await.polling_body(), "6");

    // A GET made after `3probe` gets a noop at once.
    assert_eq!(client.poll(&open.sid).await.polling_body(), "6");
    assert_eq!(socket.transport(), TransportKind::Polling);

    // Messages the server sends during the upgrade wait for the WebSocket.
    socket.send(Message::text("during1")).unwrap();
    socket.send(Message::binary(vec![5u8, 6])).unwrap();
    ws_send(&mut ws, "5").await;
    server.expect_upgrade(socket.id()).await;
    assert_eq!(socket.transport(), TransportKind::Websocket);
    assert_eq!(ws_text(&mut ws).await, "4during1");
    assert_eq!(ws_binary(&mut ws).await, [5, 6]);

    // From now on the WebSocket carries everything.
    ws_send(&mut ws, "4after").await;
    assert_eq!(server.expect_text(socket.id()).await, "after");
    assert_eq!(ws_text(&mut ws).await, "4after");
    socket.send(Message::text("pushed")).unwrap();
    assert_eq!(ws_text(&mut ws).await, "4pushed");

    // Polling with this sid is a transport mismatch.
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 3, "Bad request");
    client
        .send(&open.sid, b"4x")
        .await
        .assert_error(400, 3, "Bad request");
    assert!(!socket.is_closed());
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_before_the_probe_go_out_on_polling_or_websocket_never_lost() {
    let mut server = TestServer::start_with(Config::default(), false).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    socket.send(Message::text("queued")).unwrap();
    let mut ws = probe(&client, &open.sid).await;
    // Polling winds down with a noop; the queued message stays for the WebSocket.
    assert_eq!(client.poll(&open.sid).await.polling_body(), "6");
    ws_send(&mut ws, "5").await;
    server.expect_upgrade(socket.id()).await;
    assert_eq!(ws_text(&mut ws).await, "4queued");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_websocket_for_an_upgraded_sid_is_accepted_then_closed() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut ws = probe(&client, &open.sid).await;
    ws_send(&mut ws, "5").await;
    server.expect_upgrade(socket.id()).await;

    let mut second = client
        .ws(&ws_query(&open.sid))
        .await
        .expect("101 for the second WebSocket");
    ws_expect_close(&mut second).await;

    // The upgraded WebSocket is unaffected.
    ws_send(&mut ws, "4ok").await;
    assert_eq!(ws_text(&mut ws).await, "4ok");
    assert_eq!(server.expect_text(socket.id()).await, "ok");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_probe_while_one_runs_is_accepted_then_closed() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut ws = probe(&client, &open.sid).await;
    let mut second = client
        .ws(&ws_query(&open.sid))
        .await
        .expect("101 for the second WebSocket");
    ws_expect_close(&mut second).await;
    ws_send(&mut ws, "5").await;
    server.expect_upgrade(socket.id()).await;
    ws_send(&mut ws, "4x").await;
    assert_eq!(ws_text(&mut ws).await, "4x");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anything_but_2probe_closes_the_probe_and_polling_continues() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let first: [WsMessage; 5] = [
        WsMessage::text("4hello"),
        WsMessage::text("2"),
        WsMessage::text("3probe"),
        WsMessage::text("abc"),
        WsMessage::binary(vec![1u8]),
    ];
    for msg in first {
        let mut ws = client.ws(&ws_query(&open.sid)).await.expect("probe");
        within("send", futures_util::SinkExt::send(&mut ws, msg.clone()))
            .await
            .unwrap();
        ws_expect_close(&mut ws).await;
        // Polling goes on: the message was not dispatched, GET and POST still work.
        client.send(&open.sid, b"4poll").await.assert_ok();
        assert_eq!(server.expect_text(socket.id()).await, "poll", "{msg:?}");
        assert_eq!(client.poll(&open.sid).await.polling_body(), "4poll");
        assert_eq!(socket.transport(), TransportKind::Polling);
        assert!(!socket.is_closed());
    }
    // And a later upgrade still succeeds.
    let mut ws = probe(&client, &open.sid).await;
    ws_send(&mut ws, "5").await;
    server.expect_upgrade(socket.id()).await;
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_packet_without_probe_upgrades_too() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut get = client.spawn_poll(&open.sid);
    assert_held(&mut get).await;
    let mut ws = client.ws(&ws_query(&open.sid)).await.expect("WebSocket");
    ws_send(&mut ws, "5").await;
    server.expect_upgrade(socket.id()).await;
    assert_eq!(join_resp("the pending GET", get).await.polling_body(), "6");
    assert_eq!(socket.transport(), TransportKind::Websocket);
    ws_send(&mut ws, "4x").await;
    assert_eq!(ws_text(&mut ws).await, "4x");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anything_but_5_after_the_probe_closes_the_probe_and_polling_continues() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut ws = probe(&client, &open.sid).await;
    ws_send(&mut ws, "4early").await;
    ws_expect_close(&mut ws).await;
    socket.send(Message::text("back")).unwrap();
    assert_eq!(client.poll(&open.sid).await.polling_body(), "4back");
    assert_eq!(socket.transport(), TransportKind::Polling);
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_upgrade_within_upgrade_timeout_closes_the_probe() {
    let timeout = Duration::from_millis(300);
    let config = Config::builder().upgrade_timeout(timeout).build();
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let started = Instant::now();
    let mut ws = probe(&client, &open.sid).await;
    // A GET pending during the probe is released with a noop.
    let get = client.spawn_poll(&open.sid);
    assert_eq!(join_resp("the GET", get).await.polling_body(), "6");
    // No `5`: the server closes the probe once the upgrade timeout has passed.
    ws_expect_close(&mut ws).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout - Duration::from_millis(10),
        "probe closed after {elapsed:?}"
    );
    // Polling continues normally.
    let mut get = client.spawn_poll(&open.sid);
    assert_held(&mut get).await;
    socket.send(Message::text("still polling")).unwrap();
    assert_eq!(
        join_resp("the GET", get).await.polling_body(),
        "4still polling"
    );
    client.send(&open.sid, b"4up").await.assert_ok();
    assert_eq!(server.expect_text(socket.id()).await, "up");
    assert_eq!(socket.transport(), TransportKind::Polling);
    assert!(!socket.is_closed());
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_probe_is_closed_after_upgrade_timeout() {
    let config = Config::builder()
        .upgrade_timeout(Duration::from_millis(200))
        .build();
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut ws = client.ws(&ws_query(&open.sid)).await.expect("probe");
    ws_expect_close(&mut ws).await;
    socket.send(Message::text("x")).unwrap();
    assert_eq!(client.poll(&open.sid).await.polling_body(), "4x");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_session_closes_like_a_websocket_session() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut ws = probe(&client, &open.sid).await;
    ws_send(&mut ws, "5").await;
    server.expect_upgrade(socket.id()).await;
    ws_send(&mut ws, "1").await;
    ws_expect_close(&mut ws).await;
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportClose
    );
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_refused_when_upgrades_are_off() {
    let config = Config::builder().allow_upgrades(false).build();
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    assert_eq!(open.json["upgrades"], serde_json::json!([]));
    assert_eq!(client.ws_refused(&ws_query(&open.sid)).await, 400);
    // Polling is unaffected.
    socket.send(Message::text("x")).unwrap();
    assert_eq!(client.poll(&open.sid).await.polling_body(), "4x");
    server.stop().await;
}
