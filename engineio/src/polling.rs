//! The long-polling transport: GET delivers queued packets, POST carries the client's packets.
//! Only HTTP here; what a request means for the session is the machine's.

use std::sync::Arc;

use bytes::Bytes;
use http::header;
use http::request::Parts;
use http::Response;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use tokio::time::Instant;

use crate::engine::EngineIo;
use crate::error::HttpError;
use crate::machine::Refusal;
use crate::packet::Frame;
use crate::payload::encoded_len;
use crate::reason::CloseReason;
use crate::response;
use crate::session::Session;
use crate::socket::Handler;
use crate::wire;

/// The HTTP answer to a refused request; a close the machine made on the way is carried out.
fn refuse(session: &Arc<Session>, refusal: Refusal) -> Response<Full<Bytes>> {
    match refusal {
        Refusal::Unknown => HttpError::UnknownSid.into_response(),
        Refusal::Expired(closed) => {
            session.finish_close(closed);
            HttpError::UnknownSid.into_response()
        }
        Refusal::Mismatch => HttpError::BadRequest.into_response(),
        Refusal::Overlap(closed) => {
            tracing::debug!(sid = %session.sid, "overlapping polling request");
            session.finish_close(closed);
            HttpError::BadRequest.into_response()
        }
        Refusal::Binary(closed) => {
            tracing::debug!(sid = %session.sid, "binary POST body on protocol v4");
            session.finish_close(closed);
            HttpError::BadRequest.into_response()
        }
    }
}

/// Ends the pending GET, also when the request is dropped before it was answered (the client
/// went away).
struct GetGuard<'a> {
    session: &'a Arc<Session>,
    answered: bool,
}

impl Drop for GetGuard<'_> {
    fn drop(&mut self) {
        self.session.end_get(self.answered);
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
    // Bound first: the lock must be released before `refuse` finishes a close.
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
    if let Some(meter) = &session.meter {
        meter.sent(&frames);
    }
    session.room.notify_waiters();
    let mut body = Vec::with_capacity(frames.iter().map(encoded_len).sum::<usize>() + 8);
    // Clients ask for `b64` on the handshake only; a later request may repeat it.
    let b64 = || {
        crate::query::param(&session.handshake.query, "b64").is_some()
            || crate::query::param(parts.uri.query().unwrap_or(""), "b64").is_some()
    };
    let binary = wire::encode_poll(session.protocol, &frames, b64, &mut body);
    let mut res = response::text(Bytes::new());
    if binary {
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/octet-stream"),
        );
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
    let binary = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/octet-stream"));
    let begun = session.lock().begin_post(Instant::now(), binary);
    if let Err(refusal) = begun {
        return refuse(&session, refusal);
    }
    let _guard = PostGuard(&session);
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
    if !session.alive() {
        // Closed while the body was read (an overlapping request, a timeout): the handler
        // already saw the close, so nothing more is dispatched.
        return HttpError::UnknownSid.into_response();
    }
    if bytes.is_empty() {
        let closed = session.lock().empty_post(Instant::now());
        if let Some(closed) = closed {
            session.finish_close(closed);
        }
        return response::ok();
    }
    for packet in wire::decode_post(session.protocol, binary, bytes) {
        // Once the session is closed (by the client's `1`, or by the application while it
        // handled a packet), the machine delivers nothing more.
        match session.receive(packet) {
            None | Some(CloseReason::TransportClose) => {}
            Some(CloseReason::PingTimeout) => return HttpError::UnknownSid.into_response(),
            Some(_) => return HttpError::BadRequest.into_response(),
        }
    }
    response::ok()
}
