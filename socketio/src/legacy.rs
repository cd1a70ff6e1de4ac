//! Socket.IO v4 specifics (old clients on Engine.IO v3), as pure functions.

use serde_json::{Map, Value};

use crate::namespace::ConnectError;

/// Splits a v4 CONNECT namespace `/admin?token=abc` into the namespace and the auth object
/// built from the query string (`{"token":"abc"}`), parsed with URL rules: percent-decoding,
/// `+` as space, the first value of a repeated key kept.
pub(crate) fn split_namespace(nsp: &str) -> (String, Value) {
    let (path, query) = nsp.split_once('?').unwrap_or((nsp, ""));
    let mut auth = Map::new();
    for (k, v) in engineio::query_pairs(query) {
        auth.entry(k).or_insert_with(|| Value::String(v));
    }
    let path = if path.is_empty() { "/" } else { path };
    (path.to_owned(), Value::Object(auth))
}

/// The CONNECT_ERROR payload for a v4 client: `err.data` when set (and not null), else the
/// message, as the reference server does (`err.data || err.message`).
pub(crate) fn connect_error_payload(err: &ConnectError) -> Value {
    match &err.data {
        Some(data) if truthy(data) => data.clone(),
        _ => Value::String(err.message.clone()),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespace_query_is_the_auth() {
        assert_eq!(
            split_namespace("/admin?token=abc"),
            ("/admin".to_owned(), json!({"token": "abc"}))
        );
        assert_eq!(split_namespace("/admin"), ("/admin".to_owned(), json!({})));
        assert_eq!(split_namespace("/"), ("/".to_owned(), json!({})));
        assert_eq!(
            split_namespace("/a?x=1%2F2&y=a+b&x=3&flag&z=%zz&w=%4"),
            (
                "/a".to_owned(),
                json!({"x": "1/2", "y": "a b", "flag": "", "z": "%zz", "w": "%4"})
            )
        );
        assert_eq!(split_namespace("?t=1"), ("/".to_owned(), json!({"t": "1"})));
        assert_eq!(
            split_namespace("/é?n=%C3%A9"),
            ("/é".to_owned(), json!({"n": "é"}))
        );
    }

    #[test]
    fn connect_error_is_a_string_or_the_data() {
        assert_eq!(
            connect_error_payload(&ConnectError::new("Not authorized")),
            json!("Not authorized")
        );
        assert_eq!(
            connect_error_payload(&ConnectError::with_data("no", json!({"content": "x"}))),
            json!({"content": "x"})
        );
        assert_eq!(
            connect_error_payload(&ConnectError::with_data("no", json!(null))),
            json!("no")
        );
        assert_eq!(
            connect_error_payload(&ConnectError::with_data("no", json!(""))),
            json!("no")
        );
    }
}
