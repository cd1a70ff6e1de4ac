//! Socket.IO over raw HTTP long-polling (hand-written HTTP/1.1).

mod common;

use std::time::Duration;

use common::*;
use socketio::{ConnectError, DisconnectReason, SocketIo};

fn text(p: &PollPacket) -> &str {
    match p {
        PollPacket::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

fn server() -> (SocketIo, Rec<DisconnectReason>) {
    let io =
        SocketIo::new(config_with_ping(Duration::from_millis(50), Duration::from_secs(2)).build());
    let (tx, rec) = recorder();
    io.of("/").on_connection(move |s| {
        let tx = tx.clone();
        async move {
            let _ = s.emit("welcome", ());
            s.on("echo", |_s, e| async move {
                if let Some(ack) = e.ack {
                    ack.send(e.args);
                }
            });
            s.on_disconnect(move |_s, reason| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(reason);
                }
            });
        }
    });
    io.of("/private")
        .middleware(|_s| async { Err(ConnectError::new("go away")) });
    (io, rec)
}

#[tokio::test]
async fn connect_event_and_ack_over_polling() {
    let (io, _gone) = server();
    let server = TestServer::start(io).await;
    let polling = server.polling().await;
    // Several packets in one POST are handled in order, replies in the same order.
    polling
        .post("40\x1e42[\"echo\"]\x1e40/private,\x1e40/nope\x1e421[\"echo\",\"é/\",{\"b\":1,\"a\":2}]")
        .await;
    let mut packets = Vec::new();
    while packets.len() < 5 {
        packets.extend(polling.get_skipping_pings().await);
    }
    let texts: Vec<&str> = packets.iter().map(text).collect();
    assert!(texts[0].starts_with(r#"40{"sid":""#), "{texts:?}");
    assert_eq!(
        &texts[1..],
        &[
            r#"42["welcome"]"#,
            r#"44/private,{"message":"go away"}"#,
            r#"44/nope,{"message":"Invalid namespace"}"#,
            r#"431["é/",{"b":1,"a":2}]"#,
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn client_namespace_disconnect_over_polling_gets_no_reply() {
    let (io, mut gone) = server();
    let server = TestServer::start(io).await;
    let polling = server.polling().await;
    polling.post("40").await;
    let mut packets = Vec::new();
    while packets.len() < 2 {
        packets.extend(polling.get_skipping_pings().await);
    }
    polling.post("41").await;
    assert_eq!(
        gone.next().await,
        DisconnectReason::ClientNamespaceDisconnect
    );
    // Nothing but the heartbeat comes.
    assert_eq!(polling.get().await, vec![PollPacket::Text("2".into())]);
    polling.post("3").await;
    // The session is alive: CONNECT again.
    polling.post("40").await;
    let packets = polling.get_skipping_pings().await;
    assert!(text(&packets[0]).starts_with("40{"), "{packets:?}");
    server.stop().await;
}

#[tokio::test]
async fn malformed_packet_over_polling_closes_the_session() {
    let (io, mut gone) = server();
    let server = TestServer::start(io).await;
    let polling = server.polling().await;
    polling.post("40").await;
    let mut packets = Vec::new();
    while packets.len() < 2 {
        packets.extend(polling.get_skipping_pings().await);
    }
    polling.post("42[]").await;
    assert_eq!(gone.next().await, DisconnectReason::ParseError);
    // The session is closed: a GET gets whatever was still queued (a ping, say), then the
    // close packet `1`, or 400 once the session is forgotten.
    let mut closed = false;
    for _ in 0..3 {
        let res = http(
            server.addr,
            "GET",
            &format!("/socket.io/?EIO=4&transport=polling&sid={}", polling.sid),
            &[],
            b"",
        )
        .await;
        if res.status == 400 || res.text().split('\x1e').any(|r| r == "1") {
            closed = true;
            break;
        }
        assert!(
            res.text().split('\x1e').all(|r| r == "2"),
            "{:?}",
            res.text()
        );
    }
    assert!(closed, "no close packet and no 400");
    server.stop().await;
}
