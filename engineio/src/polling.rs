//! The long-polling transport: GET delivers queued packets, POST carries the client's packets.

use std::sync::Arc;

use bytes::Bytes;
use http::header;
use http::request::Parts;
use http::Response;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use tokio::time::Instant;

use crate::config::Protocol;
use crate::error::HttpError;
use crate::packet::{Frame, Packet};
use crate::payload::{decode_payload, encode_payload, encoded_len};
use crate::reason::CloseReason;
use crate::response;
use crate::server::EngineIo;
use crate::session::Session;
use crate::socket::Handler;
use crate::state::Refusal;

/// Maps a refused request to its HTTP error, closing the session where the protocol says so.
fn refuse(session: &Arc<Session>, refusal: Refusal) -> Response<Full<Bytes>> {
    match refusal {
        Refusal::Unknown => HttpError::UnknownSid.into_response(),
        Refusal::Expired => {
            session.close(CloseReason::PingTimeout);
            HttpError::UnknownSid.into_response()
        }
        Refusal::Mismatch => HttpError::BadRequest.into_response(),
        Refusal::Overlap => {
            tracing::debug!(sid = %session.sid, "overlapping polling request");
            session.close(CloseReason::TransportError);
            HttpError::BadRequest.into_response()
        }
    }
}

/// Ends the pending GET even if the client goes away while it waits.
/// Ends the pending GET. A GET dropped before it was answered means the client went away (a
/// closed tab, a dropped connection): the session closes at once, as the reference server does,
/// instead of lingering until the ping timeout.
struct GetGuard<'a> {
    session: &'a Arc<Session>,
    answered: bool,
}

impl Drop for GetGuard<'_> {
    fn drop(&mut self) {
        self.session.lock().end_get();
        if !self.answered {
            tracing::debug!(sid = %self.session.sid, "poll closed prematurely");
            self.session.close(CloseReason::TransportClose);
        }
    }
}

struct PostGuard<'a>(&'a Session);

impl Drop for PostGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().end_post();
    }
}

pub(crate) async fn get<H: Handler>(
    engine: &EngineIo<H>,
    session: Arc<Session>,
    parts: &Parts,
) -> Response<Full<Bytes>> {
    // Bound first: the lock must be released before `refuse` closes the session.
    let begun = session.lock().begin_get(Instant::now());
    if let Err(refusal) = begun {
        return refuse(&session, refusal);
    }
    let mut guard = GetGuard {
        session: &session,
        answered: false,
    };
    let mut frames: Vec<Frame> = Vec::new();
    loop {
        let woken = session.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if session.lock().poll_get(&mut frames) {
            break;
        }
        woken.await;
    }
    guard.answered = true;
    drop(guard);
    session.room.notify_waiters();
    if session.lock().finished() {
        session.forget();
    }
    let mut body = Vec::with_capacity(frames.iter().map(encoded_len).sum::<usize>() + 8);
    let mut res = response::text(Bytes::new());
    match session.protocol {
        Protocol::V4 => encode_payload(&frames, &mut body),
        Protocol::V3 => {
            // Clients ask for `b64` on the handshake only; a later request may repeat it.
            let b64 = crate::query::param(&session.handshake.query, "b64").is_some()
                || crate::query::param(parts.uri.query().unwrap_or(""), "b64").is_some();
            if crate::v3::needs_binary_payload(&frames, b64) {
                crate::v3::encode_binary_payload(&frames, &mut body);
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/octet-stream"),
                );
            } else {
                crate::v3::encode_text_payload(&frames, &mut body);
            }
        }
    }
    response::compress(&engine.shared.config, parts, &mut res, body);
    res
}

pub(crate) async fn post<H: Handler, B>(
    engine: &EngineIo<H>,
    session: Arc<Session>,
    parts: &Parts,
    body: B,
) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let begun = session.lock().begin_post(Instant::now());
    if let Err(refusal) = begun {
        return refuse(&session, refusal);
    }
    let _guard = PostGuard(&session);
    let binary = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/octet-stream"));
    if binary && session.protocol == Protocol::V4 {
        tracing::debug!(sid = %session.sid, "binary POST body on protocol v4");
        session.close(CloseReason::TransportError);
        return HttpError::BadRequest.into_response();
    }
    let limit = usize::try_from(engine.shared.config.max_payload).unwrap_or(usize::MAX);
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > engine.shared.config.max_payload) {
        tracing::info!(sid = %session.sid, "POST body over maxPayload");
        return HttpError::PayloadTooLarge.into_response();
    }
    let read = Limited::new(body, limit).collect();
    let Ok(read) = tokio::time::timeout(engine.shared.config.http_header_timeout, read).await
    else {
        tracing::info!(sid = %session.sid, "POST body too slow");
        session.close(CloseReason::TransportError);
        return HttpError::BadRequest.into_response();
    };
    let bytes = match read {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            tracing::info!(sid = %session.sid, "POST body over maxPayload");
            return HttpError::PayloadTooLarge.into_response();
        }
        Err(_) => {
            session.close(CloseReason::TransportError);
            return HttpError::BadRequest.into_response();
        }
    };
    if session.check_expired() || session.close_reason().is_some() {
        // Closed while the body was read (an overlapping request, a timeout): the handler
        // already saw the close, so nothing more is dispatched.
        return HttpError::UnknownSid.into_response();
    }
    if bytes.is_empty() {
        session.close(CloseReason::ParseError);
        return response::ok();
    }
    let packets = match session.protocol {
        Protocol::V4 => Decoded::V4(decode_payload(bytes)),
        Protocol::V3 if binary => Decoded::V3(crate::v3::decode_binary_payload(bytes).into_iter()),
        Protocol::V3 => Decoded::V3(crate::v3::decode_text_payload(&bytes).into_iter()),
    };
    for packet in packets {
        match packet {
            Ok(Packet::Message(message)) => session.dispatch(message),
            Ok(Packet::Pong) => session.on_pong(),
            Ok(Packet::Close) => {
                session.close(CloseReason::TransportClose);
                break;
            }
            Ok(Packet::Ping { probe }) if session.on_client_ping(probe) => {}
            Ok(Packet::Ping { .. }) => {
                tracing::debug!(sid = %session.sid, "invalid heartbeat direction");
                session.close(CloseReason::TransportError);
                return HttpError::BadRequest.into_response();
            }
            Ok(Packet::Open | Packet::Upgrade | Packet::Noop) => {}
            Err(err) => {
                tracing::debug!(sid = %session.sid, %err, "undecodable POST");
                session.close(CloseReason::ParseError);
                return HttpError::BadRequest.into_response();
            }
        }
        if session.close_reason().is_some() {
            break;
        }
    }
    response::ok()
}

/// The packets of a POST body, decoded by the session's protocol revision.
enum Decoded {
    V4(crate::payload::PayloadDecoder),
    V3(std::vec::IntoIter<Result<Packet, crate::packet::DecodeError>>),
}

impl Iterator for Decoded {
    type Item = Result<Packet, crate::packet::DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Decoded::V4(d) => d.next(),
            Decoded::V3(d) => d.next(),
        }
    }
}
