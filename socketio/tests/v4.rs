//! Part C: Socket.IO v4 over Engine.IO v3 (old clients), with `allow_eio3` on; refused when off.

mod common;

use std::net::SocketAddr;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use socketio::{ConnectError, SocketIo};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What the server saw of each connection: `(nsp, id, client_id, auth, protocol)`.
type Seen = (String, String, String, Value, u8);

/// `/` (with a middleware that refuses `deny=1` handshakes), `/admin` (auth as the query),
/// `/secure` (refuses with a message), `/data` (refuses with data). Every namespace: `echo`
/// acks its arguments (binary kept), `ask` emits `question` with an ack and emits the answer
/// back as `answer`.
fn server(allow_eio3: bool) -> (SocketIo, mpsc::UnboundedReceiver<Seen>) {
    let io = SocketIo::new(config().engine_with(|e| e.allow_eio3(allow_eio3)).build());
    let (tx, rx) = mpsc::unbounded_channel();
    io.of("/").middleware(|s| async move {
        if s.handshake().query_param("deny").is_some() {
            Err(ConnectError::new("Not authorized"))
        } else {
            Ok(())
        }
    });
    io.of("/secure")
        .middleware(|_s| async move { Err(ConnectError::new("Not authorized")) });
    io.of("/data")
        .middleware(|_s| async move { Err(ConnectError::with_data("no", json!({"code": 7}))) });
    for nsp in ["/", "/admin", "/secure", "/data"] {
        let tx = tx.clone();
        io.of(nsp).on_connection(move |s| {
            let _ = tx.send((
                s.ns().name().to_owned(),
                s.id().to_string(),
                s.client_id().to_owned(),
                s.auth().clone(),
                s.protocol(),
            ));
            async move {
                s.on("echo", |_s, e| async move {
                    if let Some(ack) = e.ack {
                        ack.send(e.args);
                    }
                });
                s.on("ask", |s, _e| async move {
                    let answer = s.emit_with_ack("question", "q").await;
                    let _ = s.emit("answer", answer.map(|a| a.0).unwrap_or_default());
                });
            }
        });
    }
    (io, rx)
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw Engine.IO v3 WebSocket client.
struct V3Ws {
    stream: Stream,
    sid: String,
}

impl V3Ws {
    async fn connect(addr: SocketAddr) -> V3Ws {
        let url = format!("ws://{addr}/socket.io/?EIO=3&transport=websocket");
        let (stream, _) = within(
            "the WebSocket handshake",
            tokio_tungstenite::connect_async(url),
        )
        .await
        .expect("WebSocket handshake");
        let mut ws = V3Ws {
            stream,
            sid: String::new(),
        };
        let open = ws.text().await;
        let open: Value =
            serde_json::from_str(open.strip_prefix('0').expect("open packet")).expect("open JSON");
        ws.sid = open["sid"].as_str().expect("sid").to_owned();
        ws
    }

    async fn send(&mut self, text: &str) {
        self.stream
            .send(WsMessage::text(text.to_owned()))
            .await
            .expect("send");
    }

    async fn send_binary(&mut self, data: &[u8]) {
        self.stream
            .send(WsMessage::binary(data.to_vec()))
            .await
            .expect("send");
    }

    async fn next(&mut self) -> WsMessage {
        loop {
            match within("a WebSocket frame", self.stream.next()).await {
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(m)) => return m,
                other => panic!("connection ended: {other:?}"),
            }
        }
    }

    async fn text(&mut self) -> String {
        match self.next().await {
            WsMessage::Text(t) => t.as_str().to_owned(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    async fn binary(&mut self) -> Vec<u8> {
        match self.next().await {
            WsMessage::Binary(b) => b.to_vec(),
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

/// A v3 text payload: `<length>:<packet>` each (ASCII packets here).
fn frame(packets: &[&str]) -> String {
    packets.iter().map(|p| format!("{}:{p}", p.len())).collect()
}

async fn seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    within("a connection", rx.recv()).await.expect("channel")
}

#[tokio::test]
async fn old_clients_are_refused_by_default() {
    let (io, _rx) = server(false);
    let server = TestServer::start(io).await;
    let res = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=3&transport=polling",
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.text(),
        r#"{"code":5,"message":"Unsupported protocol version"}"#
    );
    server.stop().await;
}

#[tokio::test]
async fn connected_to_root_at_once_with_the_engine_sid() {
    let (io, mut rx) = server(true);
    let server = TestServer::start(io).await;
    let mut ws = V3Ws::connect(server.addr).await;
    assert_eq!(ws.text().await, "40");
    let (nsp, id, client_id, auth, protocol) = seen(&mut rx).await;
    assert_eq!(nsp, "/");
    assert_eq!(id, ws.sid);
    assert_eq!(client_id, ws.sid);
    assert_eq!(auth, json!({}));
    assert_eq!(protocol, 4);
    // The v3 heartbeat: the client pings.
    ws.send("2").await;
    assert_eq!(ws.text().await, "3");
    // JSON event with an ack.
    ws.send(r#"421["echo",{"a":"é"},2]"#).await;
    assert_eq!(ws.text().await, r#"431[{"a":"é"},2]"#);
    // Binary event with an ack: attachments carry the type byte `4`.
    ws.send(r#"451-7["echo",{"_placeholder":true,"num":0}]"#)
        .await;
    ws.send_binary(&[4, 1, 2, 3]).await;
    assert_eq!(ws.text().await, r#"461-7[{"_placeholder":true,"num":0}]"#);
    assert_eq!(ws.binary().await, vec![4, 1, 2, 3]);
    // The server asks, the client acks with binary.
    ws.send(r#"42["ask"]"#).await;
    assert_eq!(ws.text().await, r#"420["question","q"]"#);
    ws.send(r#"461-0[{"_placeholder":true,"num":0}]"#).await;
    ws.send_binary(&[4, 9]).await;
    assert_eq!(
        ws.text().await,
        r#"451-["answer",{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(ws.binary().await, vec![4, 9]);
    server.stop().await;
}

#[tokio::test]
async fn namespaces_auth_from_the_query_and_string_errors() {
    let (io, mut rx) = server(true);
    let server = TestServer::start(io).await;
    let mut ws = V3Ws::connect(server.addr).await;
    assert_eq!(ws.text().await, "40");
    seen(&mut rx).await;
    ws.send("40/admin?token=abc&x=a%20b,").await;
    assert_eq!(ws.text().await, "40/admin,");
    let (nsp, id, client_id, auth, _) = seen(&mut rx).await;
    assert_eq!(nsp, "/admin");
    assert_eq!(id, ws.sid);
    assert_eq!(client_id, format!("/admin#{}", ws.sid));
    assert_eq!(auth, json!({"token": "abc", "x": "a b"}));
    ws.send(r#"42/admin,1["echo","in admin"]"#).await;
    assert_eq!(ws.text().await, r#"43/admin,1["in admin"]"#);
    // The socket is in the rooms of both names.
    let admin = server.io.of("/admin");
    let sockets = admin.sockets();
    assert_eq!(sockets.len(), 1);
    let mut rooms = sockets[0].rooms();
    rooms.sort();
    let mut expected = vec![ws.sid.clone(), format!("/admin#{}", ws.sid)];
    expected.sort();
    assert_eq!(rooms, expected);
    admin
        .to(format!("/admin#{}", ws.sid))
        .emit("direct", "x")
        .expect("emit");
    assert_eq!(ws.text().await, r#"42/admin,["direct","x"]"#);
    // Refusals: a string (message, or the data), Invalid namespace stays an object.
    ws.send("40/secure,").await;
    assert_eq!(ws.text().await, r#"44/secure,"Not authorized""#);
    ws.send("40/data,").await;
    assert_eq!(ws.text().await, r#"44/data,{"code":7}"#);
    ws.send("40/nope?token=1,").await;
    assert_eq!(
        ws.text().await,
        r#"44/nope,{"message":"Invalid namespace"}"#
    );
    // Disconnect from a namespace: no answer, the connection stays.
    ws.send("41/admin,").await;
    ws.send("2").await;
    assert_eq!(ws.text().await, "3");
    assert!(server.io.of("/admin").sockets().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn root_middleware_refusal_is_a_string() {
    let (io, _rx) = server(true);
    let server = TestServer::start(io).await;
    let url = format!(
        "ws://{}/socket.io/?EIO=3&transport=websocket&deny=1",
        server.addr
    );
    let (stream, _) = within("handshake", tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake");
    let mut ws = V3Ws {
        stream,
        sid: String::new(),
    };
    assert!(ws.text().await.starts_with("0{"));
    assert_eq!(ws.text().await, r#"44"Not authorized""#);
    server.stop().await;
}

#[tokio::test]
async fn polling_then_upgrade() {
    let (io, mut rx) = server(true);
    let server = TestServer::start(io).await;
    let base = "/socket.io/?EIO=3&transport=polling";
    let res = http(server.addr, "GET", &format!("{base}&b64=1"), &[], b"").await;
    assert_eq!(res.status, 200);
    let body = res.text();
    let (len, open) = body.split_once(':').expect("framed open packet");
    assert_eq!(len.parse::<usize>().expect("length"), open.len());
    let open: Value = serde_json::from_str(&open[1..]).expect("open JSON");
    let sid = open["sid"].as_str().expect("sid").to_owned();
    let poll = format!("{base}&sid={sid}");
    // The implicit CONNECT to `/` is the first thing polled.
    assert_eq!(
        http(server.addr, "GET", &poll, &[], b"").await.text(),
        "2:40"
    );
    assert_eq!(seen(&mut rx).await.1, sid);
    // Binary over polling with b64: `b4…` inside the framing.
    let post = http(
        server.addr,
        "POST",
        &poll,
        &[("Content-Type", "text/plain;charset=UTF-8")],
        frame(&[r#"451-3["echo",{"_placeholder":true,"num":0}]"#, "b4AQI="]).as_bytes(),
    )
    .await;
    assert_eq!(post.text(), "ok");
    assert_eq!(
        http(server.addr, "GET", &poll, &[], b"").await.text(),
        frame(&[r#"461-3[{"_placeholder":true,"num":0}]"#, "b4AQI="])
    );
    // Upgrade.
    let url = format!(
        "ws://{}/socket.io/?EIO=3&transport=websocket&sid={sid}",
        server.addr
    );
    let (stream, _) = within("probe", tokio_tungstenite::connect_async(url))
        .await
        .expect("probe");
    let mut ws = V3Ws {
        stream,
        sid: sid.clone(),
    };
    ws.send("2probe").await;
    assert_eq!(ws.text().await, "3probe");
    ws.send("5").await;
    ws.send(r#"421["echo",[1]]"#).await;
    assert_eq!(ws.text().await, "431[[1]]");
    let root = server.io.of("/").sockets();
    assert_eq!(root.len(), 1);
    assert_eq!(root[0].transport(), engineio::TransportKind::Websocket);
    assert_eq!(root[0].engine().protocol(), engineio::Protocol::V3);
    server.stop().await;
}
