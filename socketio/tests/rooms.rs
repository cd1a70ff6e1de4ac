//! Rooms and broadcasts: join/leave, to/except, sender exclusion, de-duplication, volatile,
//! broadcast acks, bulk operations with selectors.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use socketio::{DisconnectReason, SocketIo};

/// Sockets of `/` handle `join <room>`, `leave <room>`, `to <room> <msg>` (socket.to),
/// `except <room> <msg>`, `broadcast <msg>`, `set-data <value>`, and record how they leave.
fn room_server() -> (SocketIo, Rec<(String, DisconnectReason)>) {
    let io = SocketIo::new(config().build());
    let (tx, rec) = recorder();
    io.of("/").on_connection(move |s| {
        let tx = tx.clone();
        async move {
            s.on("join", |s, e| async move {
                s.join(e.args.get::<String>(0).unwrap());
                if let Some(ack) = e.ack {
                    ack.send(());
                }
            });
            s.on("leave", |s, e| async move {
                s.leave(&e.args.get::<String>(0).unwrap());
                if let Some(ack) = e.ack {
                    ack.send(());
                }
            });
            s.on("to", |s, e| async move {
                let room: String = e.args.get(0).unwrap();
                let _ = s.to(room).emit("msg", e.args.json(1).cloned().unwrap());
            });
            s.on("except", |s, e| async move {
                let room: String = e.args.get(0).unwrap();
                let _ = s.except(room).emit("msg", e.args.json(1).cloned().unwrap());
            });
            s.on("broadcast", |s, e| async move {
                let _ = s.broadcast().emit("msg", e.args.json(0).cloned().unwrap());
            });
            s.on("set-data", |s, e| async move {
                s.set_data(e.args.json(0).cloned().unwrap());
                if let Some(ack) = e.ack {
                    ack.send(());
                }
            });
            s.on_disconnect(move |s, reason| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((s.id().to_string(), reason));
                }
            });
        }
    });
    (io, rec)
}

struct Client {
    ws: Ws,
    id: String,
}

async fn client(server: &TestServer) -> Client {
    let mut ws = server.ws().await;
    let id = ws.join("/").await;
    Client { ws, id }
}

impl Client {
    /// Joins a room, synchronously (acknowledged).
    async fn join(&mut self, room: &str) {
        self.ws.send(&format!(r#"421["join","{room}"]"#)).await;
        self.ws.expect("431[]").await;
    }

    async fn leave(&mut self, room: &str) {
        self.ws.send(&format!(r#"422["leave","{room}"]"#)).await;
        self.ws.expect("432[]").await;
    }
}

#[tokio::test]
async fn join_leave_and_room_broadcasts() {
    let (io, _gone) = room_server();
    let server = TestServer::start(io.clone()).await;
    let mut a = client(&server).await;
    let mut b = client(&server).await;
    let mut c = client(&server).await;
    a.join("r").await;
    b.join("r").await;

    io.to("r").emit("news", json!(1)).unwrap();
    a.ws.expect(r#"42["news",1]"#).await;
    b.ws.expect(r#"42["news",1]"#).await;
    c.ws.barrier().await;

    b.leave("r").await;
    io.to("r").emit("news", json!(2)).unwrap();
    a.ws.expect(r#"42["news",2]"#).await;
    b.ws.barrier().await;
    c.ws.barrier().await;

    let mut rooms = io.of("/").adapter().rooms();
    rooms.sort();
    let mut expected = vec![a.id.clone(), b.id.clone(), c.id.clone(), "r".into()];
    expected.sort();
    assert_eq!(rooms, expected);
    server.stop().await;
}

#[tokio::test]
async fn socket_to_and_broadcast_exclude_the_sender() {
    let (io, _gone) = room_server();
    let server = TestServer::start(io).await;
    let mut a = client(&server).await;
    let mut b = client(&server).await;
    let mut c = client(&server).await;
    a.join("r").await;
    b.join("r").await;

    // socket.to(room): room members except the sender.
    a.ws.send(r#"42["to","r","hi"]"#).await;
    b.ws.expect(r#"42["msg","hi"]"#).await;
    a.ws.barrier().await;
    c.ws.barrier().await;

    // socket.broadcast(): everyone but the sender.
    a.ws.send(r#"42["broadcast","all"]"#).await;
    b.ws.expect(r#"42["msg","all"]"#).await;
    c.ws.expect(r#"42["msg","all"]"#).await;
    a.ws.barrier().await;

    // socket.except(room): everyone but the sender and the room's members.
    c.ws.send(r#"42["except","r","not r"]"#).await;
    a.ws.barrier().await;
    b.ws.barrier().await;
    c.ws.barrier().await;
    a.ws.send(r#"42["except","nobody","x"]"#).await;
    b.ws.expect(r#"42["msg","x"]"#).await;
    c.ws.expect(r#"42["msg","x"]"#).await;
    a.ws.barrier().await;
    server.stop().await;
}

#[tokio::test]
async fn to_and_except_from_the_server() {
    let (io, _gone) = room_server();
    let server = TestServer::start(io.clone()).await;
    let mut a = client(&server).await;
    let mut b = client(&server).await;
    let mut c = client(&server).await;
    a.join("x").await;
    b.join("x").await;
    b.join("muted").await;

    io.to("x").except("muted").emit("e", json!(1)).unwrap();
    a.ws.expect(r#"42["e",1]"#).await;
    b.ws.barrier().await;
    c.ws.barrier().await;

    io.except("x").emit("e", json!(2)).unwrap();
    c.ws.expect(r#"42["e",2]"#).await;
    a.ws.barrier().await;
    b.ws.barrier().await;

    // Every socket of the namespace.
    io.emit("e", json!(3)).unwrap();
    for cl in [&mut a, &mut b, &mut c] {
        cl.ws.expect(r#"42["e",3]"#).await;
    }
    // A room no one is in.
    io.to("empty").emit("e", json!(4)).unwrap();
    for cl in [&mut a, &mut b, &mut c] {
        cl.ws.barrier().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_socket_in_several_target_rooms_gets_one_copy() {
    let (io, _gone) = room_server();
    let server = TestServer::start(io.clone()).await;
    let mut a = client(&server).await;
    let mut b = client(&server).await;
    a.join("r1").await;
    a.join("r2").await;
    b.join("r2").await;
    io.to(["r1", "r2"]).emit("once", ()).unwrap();
    io.to("r1")
        .to("r2")
        .to(a.id.as_str())
        .emit("twice", ())
        .unwrap();
    a.ws.expect(r#"42["once"]"#).await;
    a.ws.expect(r#"42["twice"]"#).await;
    a.ws.barrier().await;
    b.ws.expect(r#"42["once"]"#).await;
    b.ws.expect(r#"42["twice"]"#).await;
    b.ws.barrier().await;
    server.stop().await;
}

#[tokio::test]
async fn broadcasts_stay_in_their_namespace() {
    let (io, _gone) = room_server();
    io.of("/admin");
    let server = TestServer::start(io.clone()).await;
    let mut a = client(&server).await;
    let mut b = server.ws().await;
    b.join("/admin").await;
    io.of("/admin").emit("admin-only", ()).unwrap();
    b.expect(r#"42/admin,["admin-only"]"#).await;
    a.ws.barrier().await;
    io.emit("root-only", ()).unwrap();
    a.ws.expect(r#"42["root-only"]"#).await;
    b.barrier().await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_frames_are_byte_identical() {
    let (io, _gone) = room_server();
    let server = TestServer::start(io.clone()).await;
    let mut a = client(&server).await;
    let mut b = client(&server).await;
    let payload: Value =
        serde_json::from_str(r#"{"z":[1,2.5,"é/"],"a":{"y":null,"b":true}}"#).unwrap();
    io.emit("same", payload).unwrap();
    let fa = a.ws.recv().await;
    let fb = b.ws.recv().await;
    assert_eq!(fa, fb);
    assert_eq!(
        fa,
        Frame::Text(r#"42["same",{"z":[1,2.5,"é/"],"a":{"y":null,"b":true}}]"#.into())
    );
    // Binary too: same header, same attachment.
    io.emit("bin", bytes::Bytes::from_static(b"\x00\x01"))
        .unwrap();
    for cl in [&mut a, &mut b] {
        cl.ws
            .expect(r#"451-["bin",{"_placeholder":true,"num":0}]"#)
            .await;
        assert_eq!(cl.ws.binary().await, vec![0, 1]);
    }
    server.stop().await;
}

#[tokio::test]
async fn volatile_broadcast_reaches_ready_clients() {
    let (io, _gone) = room_server();
    let server = TestServer::start(io.clone()).await;
    let mut a = client(&server).await;
    io.of("/").volatile().emit("v", json!(1)).unwrap();
    a.ws.expect(r#"42["v",1]"#).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_with_acks_collects_every_answer() {
    let (io, _gone) = room_server();
    let server = TestServer::start(io.clone()).await;
    let mut a = client(&server).await;
    let mut b = client(&server).await;
    let mut c = client(&server).await;
    a.join("q").await;
    b.join("q").await;

    let (tx, mut results) = recorder();
    let ns = io.of("/");
    tokio::spawn(async move {
        let acks = ns
            .to("q")
            .timeout(Duration::from_secs(30))
            .emit_with_ack("question", "?")
            .await;
        let _ = tx.send(acks);
    });
    for (cl, answer) in [(&mut a, "\"from a\""), (&mut b, "{\"from\":\"b\"}")] {
        let frame = cl.ws.text().await;
        let id = frame
            .strip_prefix("42")
            .and_then(|r| r.strip_suffix(r#"["question","?"]"#))
            .unwrap_or_else(|| panic!("{frame}"));
        assert!(id.parse::<u64>().is_ok(), "{frame}");
        cl.ws.send(&format!("43{id}[{answer}]")).await;
    }
    c.ws.barrier().await;
    let acks = results.next().await.unwrap();
    assert_eq!(acks.missing, 0);
    let mut answers: Vec<String> = acks
        .responses
        .iter()
        .map(|args| args.json(0).unwrap().to_string())
        .collect();
    answers.sort();
    assert_eq!(answers, vec![r#""from a""#, r#"{"from":"b"}"#]);
    server.stop().await;
}

#[tokio::test]
async fn broadcast_with_acks_reports_missing_answers_on_timeout() {
    let (io, _gone) = room_server();
    let server = TestServer::start(io.clone()).await;
    let mut a = client(&server).await;
    let mut b = client(&server).await;
    let mut c = client(&server).await;

    let (tx, mut results) = recorder();
    let ns = io.of("/");
    tokio::spawn(async move {
        let acks = ns
            .timeout(Duration::from_millis(300))
            .emit_with_ack("question", ())
            .await;
        let _ = tx.send(acks);
    });
    // a answers, b and c stay silent.
    let frame = a.ws.text().await;
    let id = frame
        .strip_prefix("42")
        .unwrap()
        .strip_suffix(r#"["question"]"#)
        .unwrap();
    a.ws.send(&format!(r#"43{id}["yes"]"#)).await;
    b.ws.text().await;
    c.ws.text().await;
    let acks = results.next().await.unwrap();
    assert_eq!(acks.missing, 2);
    assert_eq!(acks.responses.len(), 1);
    assert_eq!(acks.responses[0].get::<String>(0).unwrap(), "yes");
    assert!(acks.into_result().is_err());
    server.stop().await;
}

#[tokio::test]
async fn fetch_sockets_with_selectors() {
    let (io, _gone) = room_server();
    let server = TestServer::start(io.clone()).await;
    let mut a = server.ws().await;
    a.send(r#"40{"user":"alice"}"#).await;
    let a_id = json_after(&a.text().await, "40")["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut a = Client { ws: a, id: a_id };
    let mut b = client(&server).await;
    let _c = client(&server).await;
    a.join("r").await;
    b.join("r").await;
    b.join("s").await;
    a.ws.send(r#"423["set-data",{"role":"admin"}]"#).await;
    a.ws.expect("433[]").await;

    let all = io.of("/").fetch_sockets().await.unwrap();
    assert_eq!(all.len(), 3);
    // The handshake's query is an object, as Node's adapters exchange it.
    let query = &all[0].handshake["query"];
    assert_eq!(query["EIO"], "4");
    assert_eq!(query["transport"], "websocket");

    let mut in_r = io.of("/").to("r").fetch_sockets().await.unwrap();
    in_r.sort_by_key(|s| s.id.to_string());
    let mut expected = vec![a.id.clone(), b.id.clone()];
    expected.sort();
    assert_eq!(
        in_r.iter().map(|s| s.id.to_string()).collect::<Vec<_>>(),
        expected
    );

    let only_a = io
        .of("/")
        .to("r")
        .except("s")
        .fetch_sockets()
        .await
        .unwrap();
    assert_eq!(only_a.len(), 1);
    let info = &only_a[0];
    assert_eq!(info.id.to_string(), a.id);
    assert_eq!(info.data, json!({"role": "admin"}));
    let mut rooms = info.rooms.clone();
    rooms.sort();
    let mut expected = vec![a.id.clone(), "r".into()];
    expected.sort();
    assert_eq!(rooms, expected);
    assert_eq!(info.handshake["auth"], json!({"user": "alice"}));
    assert_eq!(info.handshake["address"], json!("127.0.0.1"));
    server.stop().await;
}

#[tokio::test]
async fn sockets_join_and_leave_with_selectors() {
    let (io, _gone) = room_server();
    let server = TestServer::start(io.clone()).await;
    let mut a = client(&server).await;
    let mut b = client(&server).await;
    let mut c = client(&server).await;
    a.join("r").await;
    b.join("r").await;

    io.of("/").to("r").sockets_join("joined");
    io.to("joined").emit("j", ()).unwrap();
    a.ws.expect(r#"42["j"]"#).await;
    b.ws.expect(r#"42["j"]"#).await;
    c.ws.barrier().await;

    io.of("/").to(a.id.as_str()).sockets_leave(["joined", "r"]);
    io.to(["joined", "r"]).emit("k", ()).unwrap();
    b.ws.expect(r#"42["k"]"#).await;
    a.ws.barrier().await;
    c.ws.barrier().await;

    io.of("/").sockets_join("everyone");
    io.to("everyone").emit("l", ()).unwrap();
    for cl in [&mut a, &mut b, &mut c] {
        cl.ws.expect(r#"42["l"]"#).await;
    }
    io.of("/").sockets_leave("everyone");
    io.to("everyone").emit("m", ()).unwrap();
    for cl in [&mut a, &mut b, &mut c] {
        cl.ws.barrier().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn disconnect_sockets_with_selectors() {
    let (io, mut gone) = room_server();
    let server = TestServer::start(io.clone()).await;
    let mut a = client(&server).await;
    let mut b = client(&server).await;
    let mut c = client(&server).await;
    a.join("r").await;
    b.join("r").await;

    io.of("/")
        .to("r")
        .except(b.id.as_str())
        .disconnect_sockets(false);
    a.ws.expect("41").await;
    assert_eq!(
        gone.next().await,
        (a.id.clone(), DisconnectReason::ServerNamespaceDisconnect)
    );
    // The connection itself stays open.
    a.ws.barrier().await;
    b.ws.barrier().await;
    c.ws.barrier().await;

    // `close`: the connection goes too.
    io.of("/").to("r").disconnect_sockets(true);
    b.ws.frames_until_closed().await;
    assert_eq!(
        gone.next().await,
        (b.id.clone(), DisconnectReason::ServerNamespaceDisconnect)
    );
    c.ws.barrier().await;
    gone.assert_empty();
    assert_eq!(io.of("/").sockets().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn disconnect_sockets_with_close_sends_41_before_closing() {
    let (io, _gone) = room_server();
    let server = TestServer::start(io.clone()).await;
    let mut a = client(&server).await;
    io.of("/").disconnect_sockets(true);
    assert_eq!(
        a.ws.frames_until_closed().await,
        vec![Frame::Text("41".into())]
    );
    server.stop().await;
}

#[tokio::test]
async fn socket_leaves_every_room_on_disconnect() {
    let (io, mut gone) = room_server();
    let server = TestServer::start(io.clone()).await;
    let mut a = client(&server).await;
    a.join("r").await;
    let id = a.id.clone();
    a.ws.close().await;
    assert_eq!(gone.next().await.0, id);
    assert!(io.of("/").adapter().rooms().is_empty());
    assert!(io.of("/").fetch_sockets().await.unwrap().is_empty());
    server.stop().await;
}
