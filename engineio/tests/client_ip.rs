//! Client addresses behind trusted proxies, and the per-address session cap at the handshake
//! (polling and WebSocket alike).

mod common;

use common::*;
use engineio::Config;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn config(trusted: &[&str], max: usize) -> Config {
    Config::builder()
        .trusted_proxies(trusted.iter().map(|n| n.parse().expect("cidr")))
        .max_sessions_per_ip(Some(max))
        .build()
}

async fn polling_handshake(client: &Client, forwarded: &str) -> Resp {
    client
        .request(
            "GET",
            &client.target("EIO=4&transport=polling"),
            &[("X-Forwarded-For", forwarded)],
            b"",
        )
        .await
}

async fn ws_handshake(server: &TestServer, forwarded: &str) -> Result<Ws, u16> {
    let url = format!("ws://{}/engine.io/?EIO=4&transport=websocket", server.addr);
    let mut request = url.as_str().into_client_request().expect("request");
    request
        .headers_mut()
        .insert("x-forwarded-for", forwarded.parse().expect("header"));
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    match within("ws", tokio_tungstenite::client_async(request, stream)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn forged_forwarded_entries_do_not_pass_the_cap() {
    let mut server = TestServer::start(config(&["127.0.0.0/8"], 2)).await;
    let client = server.client();
    // The client forges the left part; the trusted proxy appended the real address.
    let first = polling_handshake(&client, "1.1.1.1, 203.0.113.7").await;
    assert_eq!(first.status, 200);
    let socket = server.expect_open().await;
    assert_eq!(socket.client_ip(), Some("203.0.113.7".parse().unwrap()));
    let _ws = ws_handshake(&server, "2.2.2.2, 203.0.113.7")
        .await
        .expect("second session");
    polling_handshake(&client, "3.3.3.3, 203.0.113.7")
        .await
        .assert_error(403, 4, "Too many connections from this address");
    assert_eq!(
        ws_handshake(&server, "4.4.4.4, 203.0.113.7").await.err(),
        Some(403)
    );
    // Another address is not affected.
    assert_eq!(polling_handshake(&client, "198.51.100.1").await.status, 200);

    // A session that closes gives its place back.
    let open = parse_open(&first.polling_body());
    client.send(&open.sid, b"1").await.assert_ok();
    assert_eq!(polling_handshake(&client, "203.0.113.7").await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
    let server = TestServer::start(config(&["10.0.0.0/8"], 1)).await;
    let client = server.client();
    assert_eq!(polling_handshake(&client, "203.0.113.7").await.status, 200);
    polling_handshake(&client, "198.51.100.1")
        .await
        .assert_error(403, 4, "Too many connections from this address");
    server.stop().await;
}
