//! The HTTP error table of the Engine.IO server.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;

/// A request refused with an Engine.IO error: status and `{"code":N,"message":"…"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// Code 0: `transport` missing or not enabled.
    UnknownTransport,
    /// Code 1: the `sid` is not (or no longer) known.
    UnknownSid,
    /// Code 2: a handshake with a method other than GET.
    BadHandshakeMethod,
    /// Code 3: bad request (transport mismatch, missing Upgrade, invalid origin, overlapping requests).
    BadRequest,
    /// Code 4 (403): refused by the allow-request hook.
    Forbidden(String),
    /// Code 5: `EIO` missing or not 4.
    UnsupportedProtocolVersion,
    /// 413: body over `maxPayload`.
    PayloadTooLarge,
    /// 503: the server takes no new sessions (it is draining); a proxy may try another.
    Unavailable(String),
}

impl HttpError {
    /// The Engine.IO error code, if the error has one.
    pub fn code(&self) -> Option<u8> {
        Some(match self {
            HttpError::UnknownTransport => 0,
            HttpError::UnknownSid => 1,
            HttpError::BadHandshakeMethod => 2,
            HttpError::BadRequest => 3,
            HttpError::Forbidden(_) => 4,
            HttpError::UnsupportedProtocolVersion => 5,
            HttpError::PayloadTooLarge | HttpError::Unavailable(_) => return None,
        })
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        match self {
            HttpError::UnknownTransport => "Transport unknown",
            HttpError::UnknownSid => "Session ID unknown",
            HttpError::BadHandshakeMethod => "Bad handshake method",
            HttpError::BadRequest => "Bad request",
            HttpError::Forbidden(m) if !m.is_empty() => m,
            HttpError::Forbidden(_) => "Forbidden",
            HttpError::UnsupportedProtocolVersion => "Unsupported protocol version",
            HttpError::PayloadTooLarge => "Payload too large",
            HttpError::Unavailable(m) => m,
        }
    }

    /// The response: JSON body, `Content-Type: application/json`.
    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let body = match self.code() {
            Some(code) => serde_json::json!({"code": code, "message": self.message()}),
            None => serde_json::json!({"message": self.message()}),
        };
        let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
        *res.status_mut() = self.status();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn error_bodies_match_the_reference() {
        let cases = [
            (
                HttpError::UnknownTransport,
                400,
                r#"{"code":0,"message":"Transport unknown"}"#,
            ),
            (
                HttpError::UnknownSid,
                400,
                r#"{"code":1,"message":"Session ID unknown"}"#,
            ),
            (
                HttpError::BadHandshakeMethod,
                400,
                r#"{"code":2,"message":"Bad handshake method"}"#,
            ),
            (
                HttpError::BadRequest,
                400,
                r#"{"code":3,"message":"Bad request"}"#,
            ),
            (
                HttpError::Forbidden(String::new()),
                403,
                r#"{"code":4,"message":"Forbidden"}"#,
            ),
            (
                HttpError::UnsupportedProtocolVersion,
                400,
                r#"{"code":5,"message":"Unsupported protocol version"}"#,
            ),
        ];
        for (err, status, body) in cases {
            let res = err.into_response();
            assert_eq!(res.status().as_u16(), status);
            assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
            let got = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(got, body.as_bytes());
        }
    }
}
