//! B.3 / B.5 / B.6: malformed packets and state violations close the whole Engine.IO
//! connection; connectTimeout.

mod common;

use std::time::Duration;

use common::*;
use socketio::{DisconnectReason, SocketIo};

/// A server whose `/` and `/admin` sockets record `(namespace, reason)` when they leave.
fn recording_server(config: socketio::Config) -> (SocketIo, Rec<(String, DisconnectReason)>) {
    let io = SocketIo::new(config);
    let (tx, rec) = recorder();
    for nsp in ["/", "/admin"] {
        let tx = tx.clone();
        io.of(nsp).on_connection(move |s| {
            let tx = tx.clone();
            async move {
                s.on("x", |_s, _e| async move {});
                s.on_disconnect(move |s, reason| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send((s.ns().name().to_owned(), reason));
                    }
                });
            }
        });
    }
    (io, rec)
}

/// Joins `/`, sends `frames` (text, or binary when prefixed with `bin:`), and expects the
/// connection to close without any reply, the `/` socket leaving with `reason`.
async fn closes_with(frames: &[&str], reason: DisconnectReason) {
    let (io, mut left) = recording_server(config().build());
    let server = TestServer::start(io.clone()).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    // A second, healthy connection is not affected.
    let mut other = server.ws().await;
    other.join("/").await;
    for frame in frames {
        match frame.strip_prefix("bin:") {
            Some(bytes) => ws.send_binary(bytes.as_bytes()).await,
            None => ws.send(frame).await,
        }
    }
    ws.expect_closed().await;
    assert_eq!(left.next().await, ("/".to_owned(), reason), "{frames:?}");
    other.barrier().await;
    left.assert_empty();
    assert_eq!(io.engine().session_count(), 1);
    server.stop().await;
}

async fn parse_error(frames: &[&str]) {
    closes_with(frames, DisconnectReason::ParseError).await;
}

async fn invalid_state(frames: &[&str]) {
    closes_with(frames, DisconnectReason::ForcedServerClose).await;
}

#[tokio::test]
async fn connect_with_a_string_payload_closes() {
    parse_error(&[r#"40"abc""#]).await;
}

#[tokio::test]
async fn connect_with_an_array_payload_closes() {
    parse_error(&["40[1]"]).await;
}

#[tokio::test]
async fn connect_with_null_payload_closes() {
    parse_error(&["40/admin,null"]).await;
}

#[tokio::test]
async fn empty_event_array_closes() {
    parse_error(&["42[]"]).await;
}

#[tokio::test]
async fn reserved_event_names_close() {
    for name in [
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    ] {
        parse_error(&[&format!(r#"42["{name}"]"#)]).await;
    }
}

#[tokio::test]
async fn event_name_of_the_wrong_type_closes() {
    parse_error(&[r#"42[{"a":1}]"#]).await;
    parse_error(&["42[null]"]).await;
    parse_error(&[r#"42{"a":1}"#]).await;
    parse_error(&["42"]).await;
}

#[tokio::test]
async fn invalid_json_closes() {
    parse_error(&[r#"42["x""#]).await;
    parse_error(&[r#"42["x"]garbage"#]).await;
    parse_error(&[r#"43["x"]]"#]).await;
}

#[tokio::test]
async fn unknown_packet_type_closes() {
    parse_error(&["47"]).await;
    parse_error(&["4x"]).await;
}

#[tokio::test]
async fn too_many_attachments_close() {
    let placeholders: Vec<String> = (0..11)
        .map(|i| format!(r#"{{"_placeholder":true,"num":{i}}}"#))
        .collect();
    parse_error(&[&format!(r#"4511-["x",{}]"#, placeholders.join(","))]).await;
}

#[tokio::test]
async fn missing_attachment_count_closes() {
    parse_error(&[r#"45["x",{"_placeholder":true,"num":0}]"#]).await;
    parse_error(&[r#"451["x",{"_placeholder":true,"num":0}]"#]).await;
}

#[tokio::test]
async fn placeholder_out_of_range_closes() {
    parse_error(&[r#"451-["x",{"_placeholder":true,"num":5}]"#]).await;
    parse_error(&[r#"461-3[{"_placeholder":true,"num":1}]"#]).await;
    parse_error(&[r#"451-["x",{"_placeholder":true,"num":-1}]"#]).await;
}

#[tokio::test]
async fn text_while_reassembling_closes() {
    parse_error(&[
        r#"452-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        "bin:a",
        r#"42["x"]"#,
    ])
    .await;
}

#[tokio::test]
async fn binary_without_pending_packet_closes() {
    parse_error(&["bin:abc"]).await;
}

#[tokio::test]
async fn empty_message_closes() {
    parse_error(&["4"]).await;
}

#[tokio::test]
async fn ack_id_overflow_closes() {
    parse_error(&[r#"4218446744073709551616["x"]"#]).await;
    parse_error(&["4399999999999999999999[]"]).await;
}

#[tokio::test]
async fn connect_twice_for_the_same_namespace_closes() {
    invalid_state(&["40"]).await;
    invalid_state(&[r#"40{"token":"again"}"#]).await;
}

#[tokio::test]
async fn event_for_a_namespace_not_joined_closes() {
    invalid_state(&[r#"42/admin,["x"]"#]).await;
    invalid_state(&[r#"43/admin,1[]"#]).await;
    invalid_state(&["41/nowhere,"]).await;
}

#[tokio::test]
async fn event_after_leaving_the_namespace_closes() {
    let (io, mut left) = recording_server(config().build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.join("/admin").await;
    ws.send("41/admin,").await;
    assert_eq!(
        left.next().await,
        (
            "/admin".to_owned(),
            DisconnectReason::ClientNamespaceDisconnect
        )
    );
    ws.send(r#"42/admin,["x"]"#).await;
    ws.expect_closed().await;
    assert_eq!(
        left.next().await,
        ("/".to_owned(), DisconnectReason::ForcedServerClose)
    );
    server.stop().await;
}

#[tokio::test]
async fn connect_error_from_the_client_closes() {
    invalid_state(&[r#"44{"message":"x"}"#]).await;
    invalid_state(&[r#"44"plain""#]).await;
}

#[tokio::test]
async fn violations_before_any_namespace_close_too() {
    let (io, mut left) = recording_server(config().build());
    let server = TestServer::start(io.clone()).await;
    for frame in [r#"42["x"]"#, "41", r#"42[]"#, r#"44{"message":"x"}"#, "4"] {
        let mut ws = server.ws().await;
        ws.send(frame).await;
        ws.expect_closed().await;
    }
    left.assert_empty();
    server.stop().await;
}

#[tokio::test]
async fn numeric_event_name_and_unknown_ack_ids_do_not_close() {
    let (io, mut left) = recording_server(config().build());
    let server = TestServer::start(io).await;
    let mut ws = server.ws().await;
    ws.join("/").await;
    ws.send("42[1,2]").await;
    ws.send("43999[1]").await;
    ws.barrier().await;
    left.assert_empty();
    server.stop().await;
}

#[tokio::test]
async fn connect_timeout_closes_a_connection_without_namespace() {
    let (io, mut left) =
        recording_server(config().connect_timeout(Duration::from_millis(100)).build());
    let server = TestServer::start(io.clone()).await;
    // `joined` connects to `/` before `idle` even opens: its timer would fire first.
    let mut joined = server.ws().await;
    joined.join("/").await;
    // `left_all` joins then leaves every namespace: the timer is not re-armed.
    let mut left_all = server.ws().await;
    left_all.join("/admin").await;
    left_all.send("41/admin,").await;
    assert_eq!(
        left.next().await,
        (
            "/admin".to_owned(),
            DisconnectReason::ClientNamespaceDisconnect
        )
    );
    let mut idle = server.ws().await;
    // The idle connection is closed by the server, with nothing sent before.
    idle.expect_closed().await;
    // By now the other two timers have expired too: both connections are still open.
    joined.barrier().await;
    left_all.barrier().await;
    left.assert_empty();
    assert_eq!(io.engine().session_count(), 2);
    server.stop().await;
}

#[tokio::test]
async fn connect_timeout_over_polling() {
    let (io, _left) =
        recording_server(config().connect_timeout(Duration::from_millis(100)).build());
    let server = TestServer::start(io).await;
    let polling = server.polling().await;
    // The pending GET is answered with the close packet.
    assert_eq!(polling.get().await, vec![PollPacket::Text("1".into())]);
    server.stop().await;
}
