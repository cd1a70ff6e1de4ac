//! A.4 / A.5: HTTP long-polling framing, GET and POST semantics, concurrency and error rules.

mod common;

use common::*;
use engineio::{CloseReason, Config, Message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_returns_everything_buffered_at_once() {
    let mut server = TestServer::start_with(Config::default(), false).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    socket.send(Message::text("hello")).unwrap();
    socket.send(Message::binary(vec![1u8, 2, 3, 4])).unwrap();
    socket.send(Message::text("world")).unwrap();
    socket
        .send_all(&[Message::text("x"), Message::binary(Vec::new())])
        .unwrap();
    let res = client.poll(&open.sid).await;
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(
        res.polling_body(),
        "4hello\x1ebAQIDBA==\x1e4world\x1e4x\x1eb"
    );
    // Drained: the next GET waits.
    let mut next = client.spawn_poll(&open.sid);
    assert_held(&mut next).await;
    socket.send(Message::text("later")).unwrap();
    assert_eq!(join_resp("GET", next).await.polling_body(), "4later");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_waits_until_the_server_sends() {
    let mut server = TestServer::start_with(Config::default(), false).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut get = client.spawn_poll(&open.sid);
    assert_held(&mut get).await;
    socket.send(Message::text("late")).unwrap();
    let res = join_resp("the pending GET", get).await;
    assert_eq!(res.polling_body(), "4late");
    assert_eq!(res.header("cache-control"), Some("no-store"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_dispatches_every_packet_before_answering() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let res = client.send(&open.sid, b"4one\x1e4two\x1e4three").await;
    res.assert_ok();
    assert_eq!(res.header("content-length"), Some("2"));
    for expected in ["one", "two", "three"] {
        assert_eq!(server.expect_text(socket.id()).await, expected);
    }
    // Every echo is queued by the time `ok` arrives: one GET returns all three.
    let res = client.poll(&open.sid).await;
    assert_eq!(res.records(), ["4one", "4two", "4three"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_messages_travel_as_base64_both_ways() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    client
        .send(&open.sid, b"bAQIDBA==\x1eb\x1e4hello\x1eb/wD+")
        .await
        .assert_ok();
    assert_eq!(
        server.expect_message(socket.id()).await,
        Message::binary(vec![1u8, 2, 3, 4])
    );
    assert_eq!(
        server.expect_message(socket.id()).await,
        Message::binary(Vec::new())
    );
    assert_eq!(server.expect_text(socket.id()).await, "hello");
    assert_eq!(
        server.expect_message(socket.id()).await,
        Message::binary(vec![0xffu8, 0x00, 0xfe])
    );
    let res = client.poll(&open.sid).await;
    assert_eq!(res.polling_body(), "bAQIDBA==\x1eb\x1e4hello\x1eb/wD+");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_edge_cases() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    // `4` alone is an empty message; UTF-8 survives; a declared text content type is fine.
    let res = client
        .request(
            "POST",
            &client.target(&poll_query(&open.sid)),
            &[("Content-Type", "text/plain;charset=UTF-8")],
            "4\x1e4h\u{e9}llo \u{1f389}\x1e4{\"a\":[1,2]}".as_bytes(),
        )
        .await;
    res.assert_ok();
    assert_eq!(server.expect_text(socket.id()).await, "");
    assert_eq!(
        server.expect_text(socket.id()).await,
        "h\u{e9}llo \u{1f389}"
    );
    assert_eq!(server.expect_text(socket.id()).await, "{\"a\":[1,2]}");
    let res = client.poll(&open.sid).await;
    assert_eq!(
        res.records(),
        ["4", "4h\u{e9}llo \u{1f389}", "4{\"a\":[1,2]}"]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pong_upgrade_and_noop_packets_are_not_messages() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    // An unsolicited pong, a stray upgrade and a noop are ignored on polling.
    client
        .send(&open.sid, b"3\x1e6\x1e5\x1e4after")
        .await
        .assert_ok();
    assert_eq!(server.expect_text(socket.id()).await, "after");
    assert!(!socket.is_closed());
    assert_eq!(client.poll(&open.sid).await.polling_body(), "4after");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_get_while_one_is_pending() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    // Whichever GET reaches the server second is the duplicate.
    let a = client.spawn_poll(&open.sid);
    let b = client.spawn_poll(&open.sid);
    let a = join_resp("GET a", a).await;
    let b = join_resp("GET b", b).await;
    let (pending, duplicate) = if a.status == 200 { (a, b) } else { (b, a) };
    duplicate.assert_error(400, 3, "Bad request");
    assert_eq!(pending.polling_body(), "1");
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportError
    );
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    client
        .send(&open.sid, b"4x")
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_post_while_one_is_in_flight() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    // Two POSTs whose bodies never end: whichever reaches the server second is refused.
    let mut a = HeldPost::start(&client, &open.sid, b"").await;
    let mut b = HeldPost::start(&client, &open.sid, b"").await;
    let (refused, mut first) = within("one POST to be refused", async {
        tokio::select! {
            res = &mut a.response => (res, b),
            res = &mut b.response => (res, a),
        }
    })
    .await;
    let refused = refused.expect("task").expect("response");
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportError
    );
    // The POST in flight ends after the close: its packets are not dispatched.
    first.finish(b"4late").await;
    join_resp("the first POST", first.response)
        .await
        .assert_error(400, 1, "Session ID unknown");
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_with_octet_stream_content_type_closes_the_session() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let res = client
        .request(
            "POST",
            &client.target(&poll_query(&open.sid)),
            &[("Content-Type", "application/octet-stream")],
            b"4x",
        )
        .await;
    assert_eq!(res.status, 400, "{res:?}");
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportError
    );
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_over_max_payload_is_413_and_the_session_is_kept() {
    let config = Config::builder().max_payload(100).build();
    let mut server = TestServer::start(config).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    assert_eq!(open.json["maxPayload"], 100);

    // Declared length over the limit.
    let body = format!("4{}", "a".repeat(150));
    let res = client.send(&open.sid, body.as_bytes()).await;
    assert_eq!(res.status, 413, "{res:?}");

    // Chunked body, no declared length, over the limit.
    let mut post = HeldPost::start(&client, &open.sid, &body.as_bytes()[..60]).await;
    post.finish(&body.as_bytes()[60..]).await;
    let res = join_resp("the chunked POST", post.response).await;
    assert_eq!(res.status, 413, "{res:?}");

    // Exactly at the limit is fine.
    let body = format!("4{}", "b".repeat(99));
    client.send(&open.sid, body.as_bytes()).await.assert_ok();
    assert_eq!(server.expect_text(socket.id()).await, "b".repeat(99));

    // The session is kept: GET works.
    assert!(!socket.is_closed());
    assert_eq!(client.poll(&open.sid).await.polling_body(), body);
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_post_closes_with_parse_error() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let res = client.send(&open.sid, b"abc").await;
    assert_eq!(res.status, 400, "{res:?}");
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::ParseError
    );
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_before_a_bad_record_are_dispatched() {
    let mut server = TestServer::start_with(Config::default(), false).await;
    let client = server.client();
    for body in [
        &b"4a\x1e"[..],
        b"4a\x1eabc\x1e4b",
        b"4a\x1eb!!!",
        b"4a\x1e4\xff",
    ] {
        let (open, socket) = server.open_polling().await;
        let res = client.send(&open.sid, body).await;
        assert_eq!(res.status, 400, "{body:?}: {res:?}");
        assert_eq!(server.expect_text(socket.id()).await, "a");
        assert_eq!(
            server.expect_close(socket.id()).await,
            CloseReason::ParseError,
            "{body:?}"
        );
        client
            .poll(&open.sid)
            .await
            .assert_error(400, 1, "Session ID unknown");
    }
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_post_is_ok_and_closes_with_parse_error() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    client.send(&open.sid, b"").await.assert_ok();
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::ParseError
    );
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_answers_the_pending_get_with_noop() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut get = client.spawn_poll(&open.sid);
    assert_held(&mut get).await;
    client.send(&open.sid, b"1").await.assert_ok();
    assert_eq!(join_resp("the pending GET", get).await.polling_body(), "6");
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportClose
    );
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    client
        .send(&open.sid, b"4x")
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_after_messages_dispatches_them_first() {
    let mut server = TestServer::start_with(Config::default(), false).await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    client.send(&open.sid, b"4a\x1e1\x1e4b").await.assert_ok();
    assert_eq!(server.expect_text(socket.id()).await, "a");
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportClose
    );
    server.assert_no_event();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ping_on_polling_closes_the_session() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let res = client.send(&open.sid, b"2").await;
    assert_eq!(res.status, 400, "{res:?}");
    assert_eq!(
        server.expect_close(socket.id()).await,
        CloseReason::TransportError
    );
    client
        .poll(&open.sid)
        .await
        .assert_error(400, 1, "Session ID unknown");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_post_may_overlap() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    let mut get = client.spawn_poll(&open.sid);
    assert_held(&mut get).await;
    client.send(&open.sid, b"4ping-pong").await.assert_ok();
    assert_eq!(server.expect_text(socket.id()).await, "ping-pong");
    assert_eq!(
        join_resp("the pending GET", get).await.polling_body(),
        "4ping-pong"
    );
    assert!(!socket.is_closed());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_in_parallel() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let open = client.handshake().await;
            let msg = format!("4m{i}");
            client.send(&open.sid, msg.as_bytes()).await.assert_ok();
            assert_eq!(client.poll(&open.sid).await.polling_body(), msg);
        }));
    }
    for task in tasks {
        within("a session", task).await.unwrap();
    }
    assert_eq!(server.engine.session_count(), 20);
    for _ in 0..40 {
        server.next_event().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_long_poll_closes_the_session_at_once() {
    let mut server = TestServer::default_echo().await;
    let client = server.client();
    let (open, socket) = server.open_polling().await;
    // The client goes away (a closed tab) while its GET waits.
    let mut get = client.spawn_poll(&open.sid);
    assert_held(&mut get).await;
    get.abort();
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
