//! Sockets as the admin UI shows them: Node's `serialize(socket, nsp)`.
//!
//! In development mode a socket's data, as `fetch_sockets` reports it, carries
//! `_admin: {clientId, transport}` (Node keeps them in `socket.data._admin`), so a node can
//! describe another node's sockets, whether that node is ours or Node's. The application's
//! own [`Socket::data`](crate::Socket::data) never holds it.

use serde_json::{json, Map, Value};

use crate::adapter::SocketInfo;
use crate::socket::Socket;

/// The first 12 characters of the Engine.IO session id, which the UI groups sockets by.
pub(crate) fn client_id(socket: &Socket) -> String {
    socket.engine().id().as_str().chars().take(12).collect()
}

/// Adds `_admin` to a socket's data: to an object, or in place of `null`, as Node does.
pub(crate) fn decorate(data: &mut Value, client_id: String, transport: &str) {
    let admin = json!({"clientId": client_id, "transport": transport});
    match data {
        Value::Object(map) => {
            map.insert("_admin".into(), admin);
        }
        Value::Null => *data = json!({"_admin": admin}),
        _ => {}
    }
}

/// The data the UI shows: without `_admin`; `null` shows as `{}`.
pub(crate) fn visible_data(data: &Value) -> Value {
    match data {
        Value::Object(map) => {
            let mut map = map.clone();
            map.remove("_admin");
            Value::Object(map)
        }
        Value::Null => Value::Object(Map::new()),
        other => other.clone(),
    }
}

/// One socket of `all_sockets` and `socket_connected`.
pub(crate) fn serialize(info: &SocketInfo, nsp: &str) -> Value {
    let hs = &info.handshake;
    let header = |name: &str| {
        hs.get("headers")
            .and_then(|h| h.get(name))
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            .cloned()
    };
    let address = header("cf-connecting-ip")
        .or_else(|| header("x-forwarded-for"))
        .or_else(|| hs.get("address").cloned())
        .unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert("id".into(), json!(info.id.as_str()));
    let admin = info.data.get("_admin");
    // Left out when unknown (a socket of a node without the admin UI), as in Node.
    if let Some(v) = admin.and_then(|a| a.get("clientId")) {
        out.insert("clientId".into(), v.clone());
    }
    if let Some(v) = admin.and_then(|a| a.get("transport")) {
        out.insert("transport".into(), v.clone());
    }
    out.insert("nsp".into(), json!(nsp));
    out.insert("data".into(), visible_data(&info.data));
    let mut handshake = Map::new();
    handshake.insert("address".into(), address);
    for key in [
        "headers", "query", "issued", "secure", "time", "url", "xdomain",
    ] {
        if let Some(v) = hs.get(key) {
            handshake.insert(key.into(), v.clone());
        }
    }
    out.insert("handshake".into(), Value::Object(handshake));
    out.insert("rooms".into(), json!(info.rooms));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use engineio::Sid;

    fn info(data: Value, headers: Value) -> SocketInfo {
        SocketInfo {
            id: Sid::parse("AAAAAAAAAAAAAAAAAAAA").unwrap_or_else(Sid::random),
            rooms: vec!["AAAAAAAAAAAAAAAAAAAA".into(), "lobby".into()],
            data,
            handshake: json!({
                "headers": headers, "time": "Thu Jan 01 1970 00:00:00 GMT+0000 (Coordinated Universal Time)",
                "address": "127.0.0.1", "xdomain": false, "secure": false, "issued": 5,
                "url": "/socket.io/?EIO=4&transport=polling", "query": {"EIO": "4"},
                "auth": {"token": "secret"},
            }),
        }
    }

    #[test]
    fn serializes_as_node_does() {
        let mut data = json!({"user": "alice"});
        decorate(&mut data, "abcdefghijkl".into(), "polling");
        let s = serialize(&info(data, json!({"host": "x"})), "/chat");
        assert_eq!(
            s,
            json!({
                "id": "AAAAAAAAAAAAAAAAAAAA", "clientId": "abcdefghijkl", "transport": "polling",
                "nsp": "/chat", "data": {"user": "alice"},
                "handshake": {
                    "address": "127.0.0.1", "headers": {"host": "x"}, "query": {"EIO": "4"},
                    "issued": 5, "secure": false,
                    "time": "Thu Jan 01 1970 00:00:00 GMT+0000 (Coordinated Universal Time)",
                    "url": "/socket.io/?EIO=4&transport=polling", "xdomain": false,
                },
                "rooms": ["AAAAAAAAAAAAAAAAAAAA", "lobby"],
            })
        );
        // The auth object stays out, as in Node.
        assert!(s["handshake"].get("auth").is_none());
    }

    #[test]
    fn address_from_proxy_headers_then_peer() {
        let cf = info(
            Value::Null,
            json!({"cf-connecting-ip": "1.1.1.1", "x-forwarded-for": "2.2.2.2"}),
        );
        assert_eq!(serialize(&cf, "/")["handshake"]["address"], "1.1.1.1");
        let xff = info(Value::Null, json!({"x-forwarded-for": "2.2.2.2, 3.3.3.3"}));
        assert_eq!(
            serialize(&xff, "/")["handshake"]["address"],
            "2.2.2.2, 3.3.3.3"
        );
        let peer = info(Value::Null, json!({}));
        let s = serialize(&peer, "/");
        assert_eq!(s["handshake"]["address"], "127.0.0.1");
        // Without `_admin` (a node without the admin UI): no clientId, no transport.
        assert!(s.get("clientId").is_none() && s.get("transport").is_none());
        assert_eq!(s["data"], json!({}));
    }

    #[test]
    fn decorates_objects_and_null_only() {
        let mut null = Value::Null;
        decorate(&mut null, "c".into(), "websocket");
        assert_eq!(
            null,
            json!({"_admin": {"clientId": "c", "transport": "websocket"}})
        );
        assert_eq!(visible_data(&null), json!({}));
        let mut text = json!("plain");
        decorate(&mut text, "c".into(), "polling");
        assert_eq!(text, json!("plain"));
        assert_eq!(visible_data(&text), json!("plain"));
    }
}
