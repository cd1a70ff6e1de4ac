//! B.4 / B.11: namespaces, CONNECT, auth, CONNECT_ERROR, dynamic namespaces.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use socketio::{ConnectError, Recovery, SocketIo};

#[tokio::test]
async fn nothing_is_sent_before_the_client_connects_websocket() {
    let io =
        SocketIo::new(config_with_ping(Duration::from_millis(50), Duration::from_secs(5)).build());
    let (tx, mut connected) = recorder::<String>();
    io.of("/").on_connection(move |s| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(s.id().to_string());
        }
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    // The first frame after the open packet is the first ping, never `40`.
    assert_eq!(ws.recv_raw().await, Frame::Text("2".into()));
    ws.send("3").await;
    connected.assert_empty();
    // Only an explicit CONNECT creates a socket.
    let sid = ws.join("/").await;
    assert_eq!(connected.next().await, sid);
    server.stop().await;
}

#[tokio::test]
async fn nothing_is_sent_before_the_client_connects_polling() {
    let io =
        SocketIo::new(config_with_ping(Duration::from_millis(50), Duration::from_secs(5)).build());
    let server = TestServer::start(io).await;
    let polling = server.polling().await;
    assert_eq!(polling.get().await, vec![PollPacket::Text("2".into())]);
    polling.post("3").await;
    polling.post("40").await;
    let packets = polling.get_skipping_pings().await;
    assert_eq!(packets.len(), 1, "{packets:?}");
    let PollPacket::Text(reply) = &packets[0] else {
        panic!("{packets:?}")
    };
    let reply = json_after(reply, "40");
    assert!(is_id(reply["sid"].as_str().unwrap()));
    server.stop().await;
}

#[tokio::test]
async fn connect_reply_holds_exactly_sid_distinct_from_engine_sid() {
    let io = SocketIo::new(config().build());
    let (tx, mut ids) = recorder::<String>();
    io.of("/").on_connection(move |s| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(s.id().to_string());
        }
    });
    io.of("/other");
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.send("40").await;
    let reply = ws.text().await;
    let json = json_after(&reply, "40");
    let obj = json.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["sid"], "{reply}");
    let sid = obj["sid"].as_str().unwrap();
    assert!(is_id(sid), "{sid}");
    assert_eq!(reply, format!(r#"40{{"sid":"{sid}"}}"#));
    assert_ne!(sid, ws.sid, "socket id must differ from the Engine.IO sid");
    assert_eq!(ids.next().await, sid);

    // Another namespace on the same connection gets yet another id.
    let other = ws.join("/other").await;
    assert!(is_id(&other));
    assert_ne!(other, sid);
    assert_ne!(other, ws.sid);
    server.stop().await;
}

#[tokio::test]
async fn connect_reply_with_recovery_holds_sid_then_pid() {
    let io = SocketIo::new(config().recovery(Recovery::default()).build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.send("40").await;
    let reply = ws.text().await;
    let json = json_after(&reply, "40");
    let obj = json.as_object().unwrap();
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        vec!["sid", "pid"],
        "{reply}"
    );
    let (sid, pid) = (obj["sid"].as_str().unwrap(), obj["pid"].as_str().unwrap());
    assert!(is_id(sid) && is_id(pid));
    assert_ne!(sid, pid);
    assert_eq!(reply, format!(r#"40{{"sid":"{sid}","pid":"{pid}"}}"#));
    server.stop().await;
}

fn auth_recorder(io: &SocketIo, nsp: &str) -> Rec<(String, Value)> {
    let (tx, rec) = recorder();
    io.of(nsp).on_connection(move |s| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((s.id().to_string(), s.auth().clone()));
        }
    });
    rec
}

#[tokio::test]
async fn auth_reaches_the_handler() {
    let io = SocketIo::new(config().build());
    let mut admin = auth_recorder(&io, "/admin");
    let mut root = auth_recorder(&io, "/");
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;

    ws.send(r#"40/admin,{"token":"123"}"#).await;
    let reply = ws.text().await;
    let sid = json_after(&reply, "40/admin,")["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(admin.next().await, (sid, json!({"token": "123"})));

    // No payload: the auth is `{}`.
    let sid = ws.join("/").await;
    assert_eq!(root.next().await, (sid, json!({})));
    server.stop().await;
}

#[tokio::test]
async fn namespace_without_trailing_comma_is_accepted() {
    let io = SocketIo::new(config().build());
    let mut custom = auth_recorder(&io, "/custom");
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.send("40/custom").await;
    let reply = ws.text().await;
    let sid = json_after(&reply, "40/custom,")["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(custom.next().await, (sid, json!({})));
    server.stop().await;
}

#[tokio::test]
async fn unknown_namespace_is_refused_and_connection_kept() {
    let io = SocketIo::new(config().build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.send("40/random").await;
    ws.expect(r#"44/random,{"message":"Invalid namespace"}"#)
        .await;
    ws.send("40/random,").await;
    ws.expect(r#"44/random,{"message":"Invalid namespace"}"#)
        .await;
    ws.send(r#"40/random,{"token":"1"}"#).await;
    ws.expect(r#"44/random,{"message":"Invalid namespace"}"#)
        .await;
    // The connection stays open: a later CONNECT works.
    ws.join("/").await;
    server.stop().await;
}

#[tokio::test]
async fn query_string_in_namespace_is_an_unknown_namespace() {
    let io = SocketIo::new(config().build());
    let mut custom = auth_recorder(&io, "/custom");
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.send("40/custom?x=1,").await;
    ws.expect(r#"44/custom?x=1,{"message":"Invalid namespace"}"#)
        .await;
    ws.barrier().await;
    custom.assert_empty();
    server.stop().await;
}

#[tokio::test]
async fn missing_comma_swallows_the_payload_into_the_namespace() {
    let io = SocketIo::new(config().build());
    let mut custom = auth_recorder(&io, "/custom");
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.send(r#"40/custom{"a":1}"#).await;
    ws.expect(r#"44/custom{"a":1},{"message":"Invalid namespace"}"#)
        .await;
    ws.join("/custom").await;
    assert_eq!(custom.next().await.1, json!({}));
    server.stop().await;
}

#[tokio::test]
async fn middleware_refusal_sends_connect_error_and_keeps_connection() {
    let io = SocketIo::new(config().build());
    let (tx, mut handled) = recorder::<String>();
    io.of("/auth")
        .middleware(|_s| async {
            Err(ConnectError::with_data(
                "not authorized",
                json!({"content": "x"}),
            ))
        })
        .on_connection({
            let tx = tx.clone();
            move |_s| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send("/auth".into());
                }
            }
        });
    io.of("/plain")
        .middleware(|_s| async { Err(ConnectError::new("nope")) })
        .on_connection({
            let tx = tx.clone();
            move |_s| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send("/plain".into());
                }
            }
        });
    io.of("/").on_connection(move |_s| {
        let tx = tx.clone();
        async move {
            let _ = tx.send("/".into());
        }
    });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.send("40/auth,").await;
    ws.expect(r#"44/auth,{"message":"not authorized","data":{"content":"x"}}"#)
        .await;
    ws.send("40/plain").await;
    ws.expect(r#"44/plain,{"message":"nope"}"#).await;
    // The connection is still usable, and the refused namespaces saw no connection.
    ws.join("/").await;
    assert_eq!(handled.next().await, "/");
    handled.assert_empty();
    // A refused namespace may be tried again (it was never joined).
    ws.send("40/plain,").await;
    ws.expect(r#"44/plain,{"message":"nope"}"#).await;
    server.stop().await;
}

#[tokio::test]
async fn middlewares_run_in_order_and_may_wait() {
    let io = SocketIo::new(config().build());
    let (tx, mut order) = recorder::<String>();
    let t1 = tx.clone();
    let t2 = tx.clone();
    let t3 = tx.clone();
    io.of("/")
        .middleware(move |s| {
            let tx = t1.clone();
            async move {
                let _ = tx.send(format!("m1 {}", s.auth()));
                Ok(())
            }
        })
        .middleware(move |_s| {
            let tx = t2.clone();
            async move {
                // Really wait: the connect continues on a task.
                tokio::task::yield_now().await;
                let _ = tx.send("m2".into());
                Ok(())
            }
        })
        .on_connection(move |s| {
            let tx = t3.clone();
            async move {
                let _ = tx.send("connected".into());
                let _ = s.emit("welcome", ());
            }
        });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.send(r#"40{"k":"v"}"#).await;
    let reply = ws.text().await;
    assert!(reply.starts_with(r#"40{"sid":""#), "{reply}");
    ws.expect(r#"42["welcome"]"#).await;
    assert_eq!(order.next().await, r#"m1 {"k":"v"}"#);
    assert_eq!(order.next().await, "m2");
    assert_eq!(order.next().await, "connected");
    server.stop().await;
}

#[tokio::test]
async fn handler_emits_follow_the_connect_reply() {
    let io = SocketIo::new(config().build());
    // Synchronous handler.
    io.of("/").on_connection(|s| async move {
        let _ = s.emit("first", json!(1));
        let _ = s.emit("second", json!({"a": "b"}));
    });
    // Handler that waits before emitting, behind an async middleware.
    io.of("/slow")
        .middleware(|_s| async {
            tokio::task::yield_now().await;
            Ok(())
        })
        .on_connection(|s| async move {
            let _ = s.emit("early", ());
            tokio::task::yield_now().await;
            let _ = s.emit("late", ());
        });
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.send("40").await;
    let reply = ws.text().await;
    assert!(reply.starts_with("40{"), "{reply}");
    ws.expect(r#"42["first",1]"#).await;
    ws.expect(r#"42["second",{"a":"b"}]"#).await;

    ws.send("40/slow,").await;
    let reply = ws.text().await;
    assert!(reply.starts_with("40/slow,{"), "{reply}");
    ws.expect(r#"42/slow,["early"]"#).await;
    ws.expect(r#"42/slow,["late"]"#).await;
    server.stop().await;
}

#[tokio::test]
async fn each_socket_joins_its_own_room() {
    let io = SocketIo::new(config().build());
    let (tx, mut rooms) = recorder::<(String, Vec<String>)>();
    io.of("/").on_connection(move |s| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((s.id().to_string(), s.rooms()));
        }
    });
    let server = TestServer::start(io.clone()).await;
    let mut a = server.ws().await;
    let mut b = server.ws().await;
    let id_a = a.join("/").await;
    let id_b = b.join("/").await;
    assert_eq!(rooms.next().await, (id_a.clone(), vec![id_a.clone()]));
    assert_eq!(rooms.next().await, (id_b.clone(), vec![id_b.clone()]));
    // The own-id room targets exactly that socket.
    io.to(id_b.as_str()).emit("for-b", ()).unwrap();
    b.expect(r#"42["for-b"]"#).await;
    a.barrier().await;
    server.stop().await;
}

#[tokio::test]
async fn dynamic_namespaces_share_middleware_and_handler() {
    let io = SocketIo::new(config().build());
    let (tx, mut seen) = recorder::<(String, String)>();
    let mw_tx = tx.clone();
    io.dynamic(|name, _auth| name.starts_with("/dyn-"))
        .middleware(move |s| {
            let tx = mw_tx.clone();
            async move {
                let _ = tx.send(("middleware".into(), s.ns().name().to_owned()));
                if s.auth().get("token").is_some() {
                    Ok(())
                } else {
                    Err(ConnectError::new("no token"))
                }
            }
        })
        .on_connection(move |s| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(("connection".into(), s.ns().name().to_owned()));
                s.on("ping", |s, _e| async move {
                    let _ = s.emit("pong", s.ns().name().to_owned());
                });
            }
        });
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;

    ws.connect_with("/dyn-1", Some(r#"{"token":"t"}"#)).await;
    assert_eq!(seen.next().await, ("middleware".into(), "/dyn-1".into()));
    assert_eq!(seen.next().await, ("connection".into(), "/dyn-1".into()));

    ws.connect_with("/dyn-2", Some(r#"{"token":"t"}"#)).await;
    assert_eq!(seen.next().await, ("middleware".into(), "/dyn-2".into()));
    assert_eq!(seen.next().await, ("connection".into(), "/dyn-2".into()));

    // The shared middleware applies to every child.
    ws.send("40/dyn-3,").await;
    ws.expect(r#"44/dyn-3,{"message":"no token"}"#).await;
    assert_eq!(seen.next().await, ("middleware".into(), "/dyn-3".into()));

    // Names the matcher refuses are unknown.
    ws.send("40/other").await;
    ws.expect(r#"44/other,{"message":"Invalid namespace"}"#)
        .await;

    // Children are real namespaces: their handlers and broadcasts work.
    ws.send(r#"42/dyn-2,["ping"]"#).await;
    ws.expect(r#"42/dyn-2,["pong","/dyn-2"]"#).await;
    io.of("/dyn-1").emit("news", json!(1)).unwrap();
    ws.expect(r#"42/dyn-1,["news",1]"#).await;
    let names: Vec<String> = io
        .namespaces()
        .iter()
        .map(|n| n.name().to_owned())
        .collect();
    assert!(names.contains(&"/dyn-1".to_owned()) && names.contains(&"/dyn-2".to_owned()));
    server.stop().await;
}

#[tokio::test]
async fn connect_abandoned_during_middleware_is_dropped() {
    let io = SocketIo::new(config().build());
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let release_rx = std::sync::Arc::new(std::sync::Mutex::new(Some(release_rx)));
    let (tx, mut events) = recorder::<String>();
    let mw_tx = tx.clone();
    io.of("/")
        .middleware(move |_s| {
            let rx = release_rx.lock().unwrap().take();
            let tx = mw_tx.clone();
            async move {
                let _ = tx.send("middleware waiting".into());
                if let Some(rx) = rx {
                    let _ = rx.await;
                }
                // Dropped right after the middleware finishes: the connect job then runs to
                // its end without waiting again.
                struct Done(tokio::sync::mpsc::UnboundedSender<String>);
                impl Drop for Done {
                    fn drop(&mut self) {
                        let _ = self.0.send("middleware done".into());
                    }
                }
                let _done = Done(tx);
                Ok(())
            }
        })
        .on_connection(move |_s| {
            let tx = tx.clone();
            async move {
                let _ = tx.send("connected".into());
            }
        });
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    ws.send("40").await;
    assert_eq!(events.next().await, "middleware waiting");
    // The server closes its session before it answers the close handshake.
    ws.close().await;
    assert_eq!(io.engine().session_count(), 0);
    release_tx.send(()).unwrap();
    assert_eq!(events.next().await, "middleware done");
    // Current-thread runtime: the connect job finished before this task ran again.
    assert!(io.of("/").sockets().is_empty());
    events.assert_empty();
    server.stop().await;
}

/// Names of the namespaces the server holds.
fn namespace_names(io: &SocketIo) -> Vec<String> {
    let mut names: Vec<String> = io
        .namespaces()
        .iter()
        .map(|n| n.name().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn empty_dynamic_children_are_removed_when_asked() {
    for cleanup in [true, false] {
        let io = SocketIo::new(config().cleanup_empty_child_namespaces(cleanup).build());
        io.dynamic(|name, _auth| name.starts_with("/dyn-"))
            .middleware(|s| async move {
                if s.auth().get("token").is_some() {
                    Ok(())
                } else {
                    Err(ConnectError::new("no token"))
                }
            });
        let server = TestServer::start(io.clone()).await;
        let mut ws = server.ws().await;
        ws.connect_with("/dyn-1", Some(r#"{"token":"t"}"#)).await;
        ws.connect_with("/dyn-2", Some(r#"{"token":"t"}"#)).await;
        ws.send("40/dyn-3,").await;
        ws.expect(r#"44/dyn-3,{"message":"no token"}"#).await;
        ws.send("41/dyn-1,").await;
        ws.barrier().await;
        let expected: &[&str] = if cleanup {
            &["/", "/dyn-2"]
        } else {
            &["/", "/dyn-1", "/dyn-2", "/dyn-3"]
        };
        assert_eq!(namespace_names(&io), expected, "cleanup {cleanup}");
        // A removed child comes back on the next CONNECT.
        ws.connect_with("/dyn-1", Some(r#"{"token":"t"}"#)).await;
        assert!(namespace_names(&io).contains(&"/dyn-1".to_owned()));
        ws.close().await;
        server.stop().await;
    }
}
