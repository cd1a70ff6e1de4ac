//! B.9: connection state recovery on the wire.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use serde_json::{json, Value};
use socketio::{ConnectError, DisconnectReason, Recovery, SocketIo};

#[derive(Debug, PartialEq)]
enum Seen {
    Middleware,
    Connected {
        id: String,
        recovered: bool,
        rooms: Vec<String>,
        data: Value,
        auth: Value,
    },
    Left(String, DisconnectReason),
}

/// Recovery on. `/` and `/admin`: a middleware that refuses `{"deny":true}`, a connection handler
/// that records what it sees, `join`/`set-data`/`kick`/`emit-all` events (acknowledged).
fn recovery_server() -> (SocketIo, Rec<Seen>) {
    let io = SocketIo::new(config().recovery(Recovery::default()).build());
    let (tx, rec) = recorder();
    for nsp in ["/", "/admin"] {
        let mw_tx = tx.clone();
        let tx = tx.clone();
        io.of(nsp)
            .middleware(move |s| {
                let tx = mw_tx.clone();
                async move {
                    let _ = tx.send(Seen::Middleware);
                    if s.auth().get("deny").is_some() {
                        return Err(ConnectError::new("denied"));
                    }
                    Ok(())
                }
            })
            .on_connection(move |s| {
                let tx = tx.clone();
                async move {
                    let mut rooms = s.rooms();
                    rooms.sort();
                    let _ = tx.send(Seen::Connected {
                        id: s.id().to_string(),
                        recovered: s.recovered(),
                        rooms,
                        data: s.data(),
                        auth: s.auth().clone(),
                    });
                    s.on("join", |s, e| async move {
                        s.join(e.args.get::<String>(0).unwrap());
                        if let Some(ack) = e.ack {
                            ack.send(());
                        }
                    });
                    s.on("set-data", |s, e| async move {
                        s.set_data(e.args.json(0).cloned().unwrap());
                        if let Some(ack) = e.ack {
                            ack.send(());
                        }
                    });
                    s.on("kick", |s, _e| async move { s.disconnect() });
                    // Volatile packets only go out when nothing is queued: emit each one
                    // first thing, on its own request.
                    s.on("volatile", |s, _e| async move {
                        let _ = s.emit_volatile("volatile", "b");
                    });
                    s.on("volatile-broadcast", |s, _e| async move {
                        let _ = s.ns().volatile().emit("volatile-broadcast", json!(2));
                    });
                    s.on("emit-all", |s, e| async move {
                        let _ = s.emit("plain", "a");
                        let _ = s.ns().emit("broadcast", json!(1));
                        let _ = s.emit("binary", Bytes::from_static(&[7]));
                        if let Some(ack) = e.ack {
                            ack.send("acked");
                        }
                        let s2 = s.clone();
                        tokio::spawn(async move {
                            let _ = s2.emit_with_ack("with-ack", ()).await;
                        });
                    });
                    s.on_disconnect(move |s, reason| {
                        let tx = tx.clone();
                        async move {
                            let _ = tx.send(Seen::Left(s.id().to_string(), reason));
                        }
                    });
                }
            });
    }
    (io, rec)
}

/// Records each socket of `/` that leaves (its disconnect handler ran).
fn departures(io: &SocketIo) -> Rec<()> {
    let (tx, left) = recorder::<()>();
    io.of("/").on_connection(move |s| {
        let tx = tx.clone();
        async move {
            s.on_disconnect(move |_s, _reason| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(());
                }
            });
        }
    });
    left
}

/// The trailing offset of an event frame `42[…,"<offset>"]`.
fn offset_of(frame: &str, prefix: &str) -> String {
    let json = json_after(frame, prefix);
    let items = json.as_array().unwrap();
    items.last().unwrap().as_str().unwrap().to_owned()
}

/// Connects with `auth` and returns `(sid, pid)` from the reply, plus the frames before it.
async fn connect(ws: &mut Ws, nsp: &str, auth: &str) -> (String, String, Vec<String>) {
    let prefix = if nsp == "/" {
        "40".to_owned()
    } else {
        format!("40{nsp},")
    };
    ws.send(&format!("{prefix}{auth}")).await;
    let mut before = Vec::new();
    loop {
        let frame = ws.text().await;
        if let Some(json) = frame.strip_prefix(&prefix) {
            let v: Value = serde_json::from_str(json).unwrap();
            return (
                v["sid"].as_str().unwrap().to_owned(),
                v["pid"].as_str().unwrap().to_owned(),
                before,
            );
        }
        before.push(frame);
    }
}

fn connected(seen: Seen) -> (String, bool, Vec<String>, Value, Value) {
    match seen {
        Seen::Connected {
            id,
            recovered,
            rooms,
            data,
            auth,
        } => (id, recovered, rooms, data, auth),
        other => panic!("expected a connection, got {other:?}"),
    }
}

#[tokio::test]
async fn offsets_are_appended_to_events_without_ack_and_not_volatile() {
    let (io, _seen) = recovery_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    connect(&mut ws, "/", "").await;
    ws.send(r#"42["volatile"]"#).await;
    ws.expect(r#"42["volatile","b"]"#).await;
    ws.send(r#"42["volatile-broadcast"]"#).await;
    ws.expect(r#"42["volatile-broadcast",2]"#).await;

    ws.send(r#"429["emit-all"]"#).await;
    let plain = ws.text().await;
    let o1 = offset_of(&plain, "42");
    assert_eq!(plain, format!(r#"42["plain","a","{o1}"]"#));
    let broadcast = ws.text().await;
    let o2 = offset_of(&broadcast, "42");
    assert_eq!(broadcast, format!(r#"42["broadcast",1,"{o2}"]"#));
    let binary = ws.text().await;
    let o3 = offset_of(&binary, "451-");
    assert_eq!(
        binary,
        format!(r#"451-["binary",{{"_placeholder":true,"num":0}},"{o3}"]"#)
    );
    assert_eq!(ws.binary().await, vec![7]);
    // Acks carry no offset, nor do events sent with an ack id.
    ws.expect(r#"439["acked"]"#).await;
    ws.expect(r#"420["with-ack"]"#).await;
    assert!(!o1.is_empty() && o1 != o2 && o2 != o3 && o1 != o3);
    server.stop().await;
}

#[tokio::test]
async fn no_pid_and_no_offsets_without_recovery() {
    let io = SocketIo::new(config().build());
    io.of("/").on_connection(|s| async move {
        let _ = s.emit("plain", "a");
        let _ = s.ns().emit("broadcast", json!(1));
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    let reply = ws.connect_with("/", None).await;
    assert!(reply.get("pid").is_none(), "{reply}");
    ws.expect(r#"42["plain","a"]"#).await;
    ws.expect(r#"42["broadcast",1]"#).await;
    server.stop().await;
}

#[tokio::test]
async fn a_namespace_can_turn_recovery_off() {
    let (io, mut seen) = recovery_server();
    io.of("/").recovery(false);
    assert!(!io.of("/").has_recovery());
    assert!(io.of("/admin").has_recovery());
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;

    // `/`: no pid, and events (per socket, broadcast, binary) without an offset.
    let reply = ws.connect_with("/", None).await;
    assert!(reply.get("pid").is_none(), "{reply}");
    assert_eq!(seen.next().await, Seen::Middleware);
    let (sid, ..) = connected(seen.next().await);
    ws.send(r#"429["emit-all"]"#).await;
    ws.expect(r#"42["plain","a"]"#).await;
    ws.expect(r#"42["broadcast",1]"#).await;
    ws.expect(r#"451-["binary",{"_placeholder":true,"num":0}]"#)
        .await;
    assert_eq!(ws.binary().await, vec![7]);
    ws.expect(r#"439["acked"]"#).await;
    ws.expect(r#"420["with-ack"]"#).await;

    // `/admin` on the same connection keeps recovery.
    let (_, admin_pid, _) = connect(&mut ws, "/admin", "").await;
    assert!(is_id(&admin_pid));
    assert_eq!(seen.next().await, Seen::Middleware);
    connected(seen.next().await);
    io.of("/admin").emit("e", ()).unwrap();
    let admin = ws.text().await;
    let offset = offset_of(&admin, "42/admin,");
    assert_eq!(admin, format!(r#"42/admin,["e","{offset}"]"#));

    // A dropped `/` socket is not saved: its id and the `/admin` pid and offset restore
    // nothing on `/`.
    drop(ws);
    for _ in 0..2 {
        assert!(matches!(seen.next().await, Seen::Left(..)));
    }
    let mut ws = server.ws().await;
    let auth = format!(r#"{{"pid":"{sid}","offset":"{offset}"}}"#);
    let reply = ws.connect_with("/", Some(&auth)).await;
    assert_ne!(reply["sid"], json!(sid));
    assert!(reply.get("pid").is_none(), "{reply}");
    assert_eq!(seen.next().await, Seen::Middleware);
    assert!(!connected(seen.next().await).1);
    server.stop().await;
}

#[tokio::test]
async fn a_namespace_with_recovery_off_restores_no_session_saved_before() {
    let (io, mut seen) = recovery_server();
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    let (sid, pid, _) = connect(&mut ws, "/", "").await;
    io.emit("e", ()).unwrap();
    let offset = offset_of(&ws.text().await, "42");
    drop(ws);
    loop {
        if let Seen::Left(id, _) = seen.next().await {
            assert_eq!(id, sid);
            break;
        }
    }
    // Saved while recovery was on; turned off since: not restored.
    io.of("/").recovery(false);
    let mut ws = server.ws().await;
    let auth = format!(r#"{{"pid":"{pid}","offset":"{offset}"}}"#);
    let reply = ws.connect_with("/", Some(&auth)).await;
    assert_ne!(reply["sid"], json!(sid));
    assert!(reply.get("pid").is_none(), "{reply}");
    server.stop().await;
}

#[tokio::test]
async fn recovery_restores_sid_pid_rooms_data_and_replays_before_the_reply() {
    let (io, mut seen) = recovery_server();
    let server = TestServer::start(io.clone()).await;

    let mut ws = server.ws().await;
    let (sid, pid, _) = connect(&mut ws, "/", "").await;
    assert_eq!(seen.next().await, Seen::Middleware);
    assert!(!connected(seen.next().await).1);
    ws.send(r#"421["join","r"]"#).await;
    ws.expect("431[]").await;
    ws.send(r#"422["set-data",{"name":"alice"}]"#).await;
    ws.expect("432[]").await;
    io.emit("before", ()).unwrap();
    let offset = offset_of(&ws.text().await, "42");

    // The transport drops.
    drop(ws);
    assert_eq!(
        seen.next().await,
        Seen::Left(sid.clone(), DisconnectReason::TransportClose)
    );

    // Missed meanwhile: two packets for it, others not.
    io.to("r").emit("missed", json!(1)).unwrap();
    io.to("elsewhere").emit("not-for-you", ()).unwrap();
    io.emit("missed", (json!(2), Bytes::from_static(b"bin")))
        .unwrap();
    io.except("r").emit("not-for-you", ()).unwrap();
    io.of("/").volatile().emit("volatile", ()).unwrap();
    io.of("/admin").emit("other-namespace", ()).unwrap();

    let mut ws = server.ws().await;
    ws.send(&format!(
        r#"40{{"pid":"{pid}","offset":"{offset}","token":"t"}}"#
    ))
    .await;
    // Replayed events come first, then the CONNECT reply with the same sid and pid.
    let first = ws.text().await;
    let o1 = offset_of(&first, "42");
    assert_eq!(first, format!(r#"42["missed",1,"{o1}"]"#));
    let second = ws.text().await;
    let o2 = offset_of(&second, "451-");
    assert_eq!(
        second,
        format!(r#"451-["missed",2,{{"_placeholder":true,"num":0}},"{o2}"]"#)
    );
    assert_eq!(ws.binary().await, b"bin");
    ws.expect(&format!(r#"40{{"sid":"{sid}","pid":"{pid}"}}"#))
        .await;

    // Middlewares skipped; same id, recovered, rooms and data back, auth as sent.
    let (id, recovered, rooms, data, auth) = connected(seen.next().await);
    assert_eq!(id, sid);
    assert!(recovered);
    let mut expected_rooms = vec![sid.clone(), "r".to_owned()];
    expected_rooms.sort();
    assert_eq!(rooms, expected_rooms);
    assert_eq!(data, json!({"name": "alice"}));
    assert_eq!(auth["token"], json!("t"));
    assert_eq!(auth["pid"], json!(pid));

    // Still in its room.
    io.to("r").emit("after", ()).unwrap();
    let after = ws.text().await;
    assert!(after.starts_with(r#"42["after","#), "{after}");
    server.stop().await;
}

#[tokio::test]
async fn unknown_offset_or_pid_gives_a_new_session() {
    let (io, mut seen) = recovery_server();
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    let (sid, pid, _) = connect(&mut ws, "/", "").await;
    assert_eq!(seen.next().await, Seen::Middleware);
    connected(seen.next().await);
    io.emit("e", ()).unwrap();
    let offset = offset_of(&ws.text().await, "42");
    drop(ws);
    assert_eq!(
        seen.next().await,
        Seen::Left(sid.clone(), DisconnectReason::TransportClose)
    );

    // Unknown offset: a normal new socket (middlewares run), new sid and pid.
    let mut ws = server.ws().await;
    let (sid2, pid2, before) = connect(
        &mut ws,
        "/",
        &format!(r#"{{"pid":"{pid}","offset":"nope"}}"#),
    )
    .await;
    assert!(before.is_empty(), "{before:?}");
    assert_ne!(sid2, sid);
    assert_ne!(pid2, pid);
    assert_eq!(seen.next().await, Seen::Middleware);
    let (_, recovered, ..) = connected(seen.next().await);
    assert!(!recovered);

    // Unknown pid with a valid offset.
    let mut ws2 = server.ws().await;
    let (sid3, pid3, _) = connect(
        &mut ws2,
        "/",
        &format!(r#"{{"pid":"AAAAAAAAAAAAAAAAAAAA","offset":"{offset}"}}"#),
    )
    .await;
    assert!(![sid.as_str(), sid2.as_str()].contains(&sid3.as_str()));
    assert!(![pid.as_str(), pid2.as_str()].contains(&pid3.as_str()));
    assert_eq!(seen.next().await, Seen::Middleware);
    assert!(!connected(seen.next().await).1);

    // A pid that is not a string, or no offset: no recovery attempted.
    let mut ws3 = server.ws().await;
    let (sid4, ..) = connect(&mut ws3, "/", &format!(r#"{{"pid":"{pid}"}}"#)).await;
    assert_ne!(sid4, sid);
    assert_eq!(seen.next().await, Seen::Middleware);
    assert!(!connected(seen.next().await).1);
    server.stop().await;
}

#[tokio::test]
async fn a_failed_restore_still_runs_the_middlewares() {
    let (io, mut seen) = recovery_server();
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.send(r#"40{"pid":"AAAAAAAAAAAAAAAAAAAA","offset":"x","deny":true}"#)
        .await;
    ws.expect(r#"44{"message":"denied"}"#).await;
    assert_eq!(seen.next().await, Seen::Middleware);
    server.stop().await;
}

/// Connects, receives one event (so it has an offset), and leaves through `leave`; then tries to
/// recover and returns whether it did.
async fn recovers_after(leave: &str) -> bool {
    let (io, mut seen) = recovery_server();
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    let (sid, pid, _) = connect(&mut ws, "/", "").await;
    io.emit("e", ()).unwrap();
    let offset = offset_of(&ws.text().await, "42");
    match leave {
        "client 41" => ws.send("41").await,
        "server kick" => {
            ws.send(r#"42["kick"]"#).await;
            ws.expect("41").await;
        }
        "parse error" => ws.send("42[]").await,
        "invalid state" => ws.send(r#"42/admin,["x"]"#).await,
        "transport close" => ws.close().await,
        _ => unreachable!(),
    }
    loop {
        if let Seen::Left(id, _) = seen.next().await {
            assert_eq!(id, sid);
            break;
        }
    }
    let mut ws = server.ws().await;
    let (sid2, pid2, _) = connect(
        &mut ws,
        "/",
        &format!(r#"{{"pid":"{pid}","offset":"{offset}"}}"#),
    )
    .await;
    let recovered = sid2 == sid;
    assert_eq!(recovered, pid2 == pid);
    server.stop().await;
    recovered
}

#[tokio::test]
async fn only_recoverable_reasons_are_recovered() {
    assert!(recovers_after("transport close").await);
    assert!(recovers_after("invalid state").await);
    assert!(!recovers_after("client 41").await);
    assert!(!recovers_after("server kick").await);
    assert!(!recovers_after("parse error").await);
}

#[tokio::test]
async fn a_session_is_restored_only_in_its_namespace_and_held_by_one_connection() {
    let (io, mut seen) = recovery_server();
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    let (sid, pid, _) = connect(&mut ws, "/admin", "").await;
    io.of("/admin").emit("e", ()).unwrap();
    let offset = offset_of(&ws.text().await, "42/admin,");
    drop(ws);
    loop {
        if let Seen::Left(id, _) = seen.next().await {
            assert_eq!(id, sid);
            break;
        }
    }
    let auth = format!(r#"{{"pid":"{pid}","offset":"{offset}"}}"#);
    // Presented on another namespace: not restored there...
    let mut ws = server.ws().await;
    let (other, ..) = connect(&mut ws, "/", &auth).await;
    assert_ne!(other, sid);
    // ... and presented on its own namespace: restored, once.
    let (again, pid2, _) = connect(&mut ws, "/admin", &auth).await;
    assert_eq!(
        (again.as_str(), pid2.as_str()),
        (sid.as_str(), pid.as_str())
    );
    // Presented again while restored: the session moves to the new connection and the one
    // holding it is closed (a client that reconnected before its old connection was seen gone).
    let mut ws2 = server.ws().await;
    let (third, ..) = connect(&mut ws2, "/admin", &auth).await;
    assert_eq!(third, sid);
    ws.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn expired_sessions_are_not_recovered() {
    let io = SocketIo::new(
        config()
            .recovery(Recovery {
                max_disconnection_duration: Duration::ZERO,
                ..Recovery::default()
            })
            .build(),
    );
    let (tx, mut left) = recorder::<()>();
    io.of("/").on_connection(move |s| {
        let tx = tx.clone();
        async move {
            s.on_disconnect(move |_s, _r| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(());
                }
            });
        }
    });
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    let (sid, pid, _) = connect(&mut ws, "/", "").await;
    io.emit("e", ()).unwrap();
    let offset = offset_of(&ws.text().await, "42");
    drop(ws);
    left.next().await;
    // Kept for zero time: expired as soon as any time has passed.
    let mut ws = server.ws().await;
    let (sid2, ..) = connect(
        &mut ws,
        "/",
        &format!(r#"{{"pid":"{pid}","offset":"{offset}"}}"#),
    )
    .await;
    assert_ne!(sid2, sid);
    server.stop().await;
}

#[tokio::test]
async fn an_immediate_reconnect_takes_over_the_connection_not_yet_seen_dropped() {
    let (io, mut seen) = recovery_server();
    let server = TestServer::start(io.clone()).await;
    let mut old = server.ws().await;
    let (sid, pid, _) = connect(&mut old, "/", "").await;
    assert_eq!(seen.next().await, Seen::Middleware);
    connected(seen.next().await);
    io.emit("before", ()).unwrap();
    let offset = offset_of(&old.text().await, "42");
    // The client's network changed: it reconnects while the server still holds the old
    // connection, and something is emitted in between.
    io.emit("in-between", ()).unwrap();
    let mut new = server.ws().await;
    new.send(&format!(r#"40{{"pid":"{pid}","offset":"{offset}"}}"#))
        .await;
    let replayed = new.text().await;
    assert!(replayed.starts_with(r#"42["in-between","#), "{replayed}");
    new.expect(&format!(r#"40{{"sid":"{sid}","pid":"{pid}"}}"#))
        .await;
    assert_eq!(
        seen.next().await,
        Seen::Left(sid.clone(), DisconnectReason::ForcedClose)
    );
    let (id, recovered, ..) = connected(seen.next().await);
    assert_eq!(id, sid);
    assert!(recovered);
    // Broadcasts reach the new connection, by namespace and by the socket's own room.
    io.emit("after", ()).unwrap();
    let after = new.text().await;
    assert!(after.starts_with(r#"42["after","#), "{after}");
    io.to(sid.as_str()).emit("to-self", ()).unwrap();
    let to_self = new.text().await;
    assert!(to_self.starts_with(r#"42["to-self","#), "{to_self}");
    server.stop().await;
}

#[tokio::test]
async fn a_session_that_missed_more_than_max_replay_bytes_is_not_recovered() {
    for (missed, recovered) in [(5, true), (50, false)] {
        let io = SocketIo::new(
            config()
                .recovery(Recovery {
                    max_replay_bytes: 2000,
                    ..Recovery::default()
                })
                .build(),
        );
        let mut left = departures(&io);
        let server = TestServer::start(io.clone()).await;
        let mut ws = server.ws().await;
        let (sid, pid, _) = connect(&mut ws, "/", "").await;
        io.emit("e", "first").unwrap();
        let offset = offset_of(&ws.text().await, "42");
        ws.close().await;
        left.next().await;
        // About 100 bytes each.
        for i in 0..missed {
            io.emit("e", format!("{i:0>90}")).unwrap();
        }
        let mut ws = server.ws().await;
        let auth = format!(r#"{{"pid":"{pid}","offset":"{offset}"}}"#);
        let (sid2, _, replayed) = connect(&mut ws, "/", &auth).await;
        assert_eq!(sid2 == sid, recovered, "{missed} missed");
        assert_eq!(replayed.len(), if recovered { missed } else { 0 });
        ws.close().await;
        server.stop().await;
    }
}

/// A [`MemoryStore`](socketio::recovery::MemoryStore) that takes its time after assigning an
/// offset, as a store writing elsewhere may: a broadcast recorded meanwhile gets the next one.
struct SlowStore(socketio::recovery::MemoryStore);

impl socketio::recovery::SessionStore for SlowStore {
    fn store_packet(
        &self,
        make: &mut dyn FnMut(&str) -> socketio::recovery::StoredPacket,
    ) -> String {
        let offset = self.0.store_packet(make);
        for _ in 0..50 {
            std::thread::yield_now();
        }
        offset
    }
    fn save_session(&self, session: socketio::recovery::SavedSession) {
        self.0.save_session(session)
    }
    fn restore_session(
        &self,
        pid: engineio::Sid,
        offset: String,
        nsp: &str,
    ) -> socketio::adapter::BoxFuture<
        Option<(
            socketio::recovery::SavedSession,
            Vec<socketio::recovery::StoredPacket>,
        )>,
    > {
        self.0.restore_session(pid, offset, nsp)
    }
}

/// The offsets a connection receives rise in the store's order even while per-socket emits and
/// broadcasts are recorded on several threads at once: a client that reconnects from the last
/// offset it got must be replayed every later packet, and none it got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_reach_a_connection_in_the_order_the_store_gave_them() {
    const EACH: usize = 500;
    let store = Arc::new(SlowStore(socketio::recovery::MemoryStore::new(
        Duration::from_secs(60),
    )));
    let io = SocketIo::builder(config().recovery(Recovery::default()).build())
        .recovery_store(store)
        .build();
    io.of("/").on_connection(|s| async move {
        s.on("go", |s, _e| async move {
            let one = s.clone();
            let direct = tokio::spawn(async move {
                for i in 0..EACH {
                    let _ = one.emit("direct", json!(i));
                    tokio::task::yield_now().await;
                }
            });
            let all = s.ns();
            let broadcast = tokio::spawn(async move {
                for i in 0..EACH {
                    let _ = all.emit("broadcast", json!(i));
                    tokio::task::yield_now().await;
                }
            });
            let _ = tokio::join!(direct, broadcast);
        });
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    connect(&mut ws, "/", "").await;
    ws.send(r#"42["go"]"#).await;
    let mut last: Option<u64> = None;
    for n in 0..2 * EACH {
        let frame = ws.text().await;
        let offset = offset_of(&frame, "42");
        let ord: u64 = offset
            .rsplit('-')
            .next()
            .and_then(|o| u64::from_str_radix(o, 36).ok())
            .unwrap_or_else(|| panic!("offset {offset}"));
        if let Some(prev) = last {
            assert!(ord > prev, "frame {n}: offset {ord} after {prev} ({frame})");
        }
        last = Some(ord);
    }
    server.stop().await;
}

/// A [`MemoryStore`](socketio::recovery::MemoryStore) where a broadcast is recorded (on another
/// thread) right after a restore has read what the session missed, before the socket is back in
/// its rooms.
struct BroadcastDuringRestore {
    inner: Arc<socketio::recovery::MemoryStore>,
    io: std::sync::OnceLock<SocketIo>,
}

impl socketio::recovery::SessionStore for BroadcastDuringRestore {
    fn store_packet(
        &self,
        make: &mut dyn FnMut(&str) -> socketio::recovery::StoredPacket,
    ) -> String {
        self.inner.store_packet(make)
    }
    fn save_session(&self, session: socketio::recovery::SavedSession) {
        self.inner.save_session(session)
    }
    fn restore_session(
        &self,
        pid: engineio::Sid,
        offset: String,
        nsp: &str,
    ) -> socketio::adapter::BoxFuture<
        Option<(
            socketio::recovery::SavedSession,
            Vec<socketio::recovery::StoredPacket>,
        )>,
    > {
        let read = self.inner.restore_session(pid, offset, nsp);
        let io = self.io.get().cloned();
        Box::pin(async move {
            let restored = read.await;
            if let Some(io) = io {
                let sent = std::thread::spawn(move || io.emit("e", "during the restore"));
                let _ = sent.join();
            }
            restored
        })
    }
    fn recorded_after(
        &self,
        offset: &str,
        nsp: &str,
        rooms: &[String],
    ) -> Option<Vec<socketio::recovery::StoredPacket>> {
        self.inner.recorded_after(offset, nsp, rooms)
    }
}

/// A broadcast recorded between a restore's read and the socket's return to its rooms reaches
/// the recovered client, after the replay and once.
#[tokio::test]
async fn a_broadcast_recorded_during_a_restore_is_not_missed() {
    let store = Arc::new(BroadcastDuringRestore {
        inner: Arc::new(socketio::recovery::MemoryStore::new(Duration::from_secs(
            60,
        ))),
        io: std::sync::OnceLock::new(),
    });
    let io = SocketIo::builder(config().recovery(Recovery::default()).build())
        .recovery_store(store.clone())
        .build();
    let mut left = departures(&io);
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    let (sid, pid, _) = connect(&mut ws, "/", "").await;
    io.emit("e", "first").unwrap();
    let offset = offset_of(&ws.text().await, "42");
    ws.close().await;
    left.next().await;
    io.emit("e", "missed").unwrap();
    let _ = store.io.set(io.clone());

    let mut ws = server.ws().await;
    let auth = format!(r#"{{"pid":"{pid}","offset":"{offset}"}}"#);
    let (sid2, _, replayed) = connect(&mut ws, "/", &auth).await;
    assert_eq!(sid2, sid, "recovered");
    let texts: Vec<Value> = replayed
        .iter()
        .map(|f| json_after(f, "42")[1].clone())
        .collect();
    assert_eq!(texts, [json!("missed"), json!("during the restore")]);
    // Nothing else (the same packet live as well) follows.
    io.emit("e", "after").unwrap();
    assert_eq!(json_after(&ws.text().await, "42")[1], json!("after"));
    ws.close().await;
    server.stop().await;
}
