//! Entry points for the fuzz targets in `fuzz/`: the crate's private decoders and encoders,
//! reachable without making them part of the API. Not covered by semver; do not use.

use bytes::Bytes;
use http::request::Parts;

use crate::packet::{DecodeError, Frame, Message, Packet};

/// Decodes an Engine.IO v3 text polling payload (`<length>:<packet>…`).
pub fn decode_v3_text_payload(body: &[u8]) -> Vec<Result<Packet, DecodeError>> {
    crate::v3::decode_text_payload(body)
}

/// Decodes an Engine.IO v3 XHR2 binary polling payload.
pub fn decode_v3_binary_payload(body: Bytes) -> Vec<Result<Packet, DecodeError>> {
    crate::v3::decode_binary_payload(body)
}

/// Decodes an Engine.IO v3 WebSocket binary frame.
pub fn decode_v3_ws_binary(data: Bytes) -> Result<Packet, DecodeError> {
    crate::v3::decode_ws_binary(data)
}

/// Encodes messages as an Engine.IO v3 text polling payload.
pub fn encode_v3_text_payload(messages: &[Message]) -> Vec<u8> {
    let frames = frames(messages);
    let mut out = Vec::new();
    crate::v3::encode_text_payload(&frames, &mut out);
    out
}

/// Encodes messages as an Engine.IO v3 XHR2 binary polling payload.
pub fn encode_v3_binary_payload(messages: &[Message]) -> Vec<u8> {
    let frames = frames(messages);
    let mut out = Vec::new();
    crate::v3::encode_binary_payload(&frames, &mut out);
    out
}

/// Encodes messages as an Engine.IO v4 polling payload.
pub fn encode_payload(messages: &[Message]) -> Vec<u8> {
    let frames = frames(messages);
    let mut out = Vec::new();
    crate::payload::encode_payload(&frames, &mut out);
    out
}

/// The first value of `name` in a raw query string, as the server reads `EIO`, `sid`, ….
pub fn query_param(query: &str, name: &str) -> Option<String> {
    crate::query::param(query, name).map(|v| v.into_owned())
}

/// What the server reads from a request's headers before it answers.
#[derive(Debug)]
pub struct RequestHeaders {
    /// Whether it asks for a WebSocket upgrade.
    pub upgrade: bool,
    /// Whether its `Origin` headers are acceptable.
    pub origin_valid: bool,
    /// Whether its `Accept-Encoding` takes gzip.
    pub gzip: bool,
    /// Whether its `Accept-Encoding` takes deflate.
    pub deflate: bool,
}

/// Reads a request's headers as the server does.
pub fn request_headers(parts: &Parts) -> RequestHeaders {
    let accept = parts
        .headers
        .get(http::header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    RequestHeaders {
        upgrade: crate::websocket::is_upgrade(parts),
        origin_valid: crate::engine::origin_is_valid(parts),
        gzip: crate::response::accepts_coding(accept, "gzip"),
        deflate: crate::response::accepts_coding(accept, "deflate"),
    }
}

fn frames(messages: &[Message]) -> Vec<Frame> {
    messages.iter().cloned().map(Frame::from).collect()
}
