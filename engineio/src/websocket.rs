//! The WebSocket transport: direct sessions, upgrades from polling, and the one task that
//! drives each WebSocket connection (reads, coalesced writes, close). Only IO here: what a
//! frame means for the session (and the probe exchange) is the machine's.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::config::{Config, Protocol, TransportKind};
use crate::engine::EngineIo;
use crate::error::HttpError;
use crate::machine::{ProbeRefusal, ProbeStep};
use crate::packet::{Frame, Packet};
use crate::reason::CloseReason;
use crate::response;
use crate::session::Session;
use crate::shared::IpSlot;
use crate::socket::{Handler, Handshake};
use crate::{wire, ws_frame};

/// How long a closing WebSocket may still take to write what is queued and its close frame
/// before the connection is dropped (a client that stopped reading).
const WRITE_GRACE: Duration = Duration::from_secs(2);

/// Whether the request asks for a WebSocket upgrade.
pub(crate) fn is_upgrade(parts: &Parts) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        parts.headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

/// An error response; for a refused WebSocket upgrade the connection is closed after it.
pub(crate) fn refuse_if(upgrade: bool, err: HttpError) -> Response<Full<Bytes>> {
    let mut res = err.into_response();
    if upgrade {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

fn ws_config(config: &Config) -> WebSocketConfig {
    let max = usize::try_from(config.max_payload).unwrap_or(usize::MAX);
    WebSocketConfig::default()
        .read_buffer_size(config.ws_read_buffer)
        .write_buffer_size(16 << 10)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// Checks the WebSocket handshake headers and takes the connection for upgrading.
fn accept(parts: &Parts) -> Result<(Response<Full<Bytes>>, OnUpgrade), HttpError> {
    let version_ok = parts
        .headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    // RFC 6455 4.2.1: the key is 16 random bytes in base64.
    let key = parts
        .headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|k| key_is_valid(k.as_bytes()));
    let on_upgrade = parts.extensions.get::<OnUpgrade>().cloned();
    let (Some(key), true, Some(on_upgrade)) = (key, version_ok, on_upgrade) else {
        return Err(HttpError::BadRequest);
    };
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept = derive_accept_key(key.as_bytes());
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok((res, on_upgrade))
}

fn key_is_valid(key: &[u8]) -> bool {
    use base64::Engine as _;
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|raw| raw.len() == 16)
}

async fn finish_upgrade(
    on_upgrade: OnUpgrade,
    config: &Config,
) -> Option<WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>> {
    match on_upgrade.await {
        Ok(upgraded) => Some(
            WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(ws_config(config)),
            )
            .await,
        ),
        Err(err) => {
            tracing::debug!(%err, "WebSocket upgrade failed");
            None
        }
    }
}

/// A session that starts on WebSocket: the open packet is its first frame.
pub(crate) fn handshake<H: Handler>(
    engine: &EngineIo<H>,
    parts: &Parts,
    handshake: Handshake,
    protocol: Protocol,
    ip_slot: Option<IpSlot>,
) -> Response<Full<Bytes>> {
    let (mut res, on_upgrade) = match accept(parts) {
        Ok(ok) => ok,
        Err(err) => return refuse_if(true, err),
    };
    let sid = engine.shared.config.new_sid();
    response::cookie(&engine.shared.config, sid.as_str(), res.headers_mut());
    let engine = engine.clone();
    let guard = engine.shared.ws_tasks.enter();
    tokio::spawn(async move {
        let _guard = guard;
        let Some(mut ws) = finish_upgrade(on_upgrade, &engine.shared.config).await else {
            return;
        };
        let session = engine.open(sid, handshake, TransportKind::Websocket, protocol, ip_slot);
        // The open packet goes out before anything on_open queued.
        let open = Utf8Bytes::try_from(engine.open_packet(&session, false)).unwrap_or_default();
        drive(session, &mut ws, Some(Frame::Text(open))).await;
    });
    res
}

/// A WebSocket for an existing session: the polling → WebSocket upgrade.
pub(crate) fn upgrade<H: Handler>(
    engine: &EngineIo<H>,
    session: Arc<Session>,
    parts: &Parts,
) -> Response<Full<Bytes>> {
    if !engine.shared.config.offers_upgrade() {
        return refuse_if(true, HttpError::BadRequest);
    }
    let begun = session
        .lock()
        .begin_probe(Instant::now(), engine.shared.config.upgrade_timeout);
    let deadline = match begun {
        Ok(deadline) => Some(deadline),
        Err(ProbeRefusal::Busy) => None,
        Err(ProbeRefusal::Unknown) => return refuse_if(true, HttpError::UnknownSid),
    };
    let (res, on_upgrade) = match accept(parts) {
        Ok(ok) => ok,
        Err(err) => {
            if deadline.is_some() {
                session.abort_upgrade();
            }
            return refuse_if(true, err);
        }
    };
    // The engine (an `Arc`), not a copy of the config, lives as long as the connection.
    let engine = engine.clone();
    let guard = engine.shared.ws_tasks.enter();
    tokio::spawn(async move {
        let _guard = guard;
        let ws = finish_upgrade(on_upgrade, &engine.shared.config).await;
        match (ws, deadline) {
            (Some(mut ws), None) => {
                // At most one WebSocket per session: accept, then close the newcomer.
                let _ = ws.close(None).await;
            }
            (Some(mut ws), Some(deadline)) => probe(session, &mut ws, deadline).await,
            (None, Some(_)) => session.abort_upgrade(),
            (None, None) => {}
        }
    });
    res
}

/// Runs the probe exchange the machine leads until `deadline`, then drives the upgraded
/// session, or closes the probing WebSocket and lets polling go on.
async fn probe<S>(session: Arc<Session>, ws: &mut WebSocketStream<S>, deadline: Instant)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = async {
        loop {
            let text = next_text(ws).await?;
            match session.on_probe_text(text.as_str()) {
                ProbeStep::Answer(answer) => {
                    ws.send(WsMessage::Text(Utf8Bytes::from_static(answer)))
                        .await
                        .ok()?;
                    session.probe_answered();
                }
                ProbeStep::Upgraded => return Some(()),
                ProbeStep::Failed => return None,
            }
        }
    };
    // Boxed: the exchange's state lives only during the upgrade, not in the connection's task.
    let upgraded = matches!(
        Box::pin(tokio::time::timeout_at(deadline, exchange)).await,
        Ok(Some(()))
    );
    if !upgraded {
        tracing::debug!(sid = %session.sid, "upgrade failed, polling goes on");
        session.abort_upgrade();
        let _ = ws.close(None).await;
        return;
    }
    session.upgraded();
    drive(session, ws, None).await;
}

/// The next text frame, skipping WebSocket-level pings and pongs; anything else is `None`.
async fn next_text<S>(ws: &mut WebSocketStream<S>) -> Option<Utf8Bytes>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match ws.next().await? {
            Ok(WsMessage::Text(t)) => return Some(t),
            Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => {}
            _ => return None,
        }
    }
}

/// How a read ended the connection.
fn read_error_reason(err: &WsError) -> CloseReason {
    match err {
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            CloseReason::TransportClose
        }
        WsError::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            CloseReason::TransportClose
        }
        _ => CloseReason::TransportError,
    }
}

/// The one task of a WebSocket connection: writes what the session queues (coalesced: all
/// frames queued since the last write go out with one flush) and reads what the client sends.
/// The stream is borrowed: an `async fn` keeps its arguments and its locals apart, so an owned
/// stream would be stored twice in every connection's task.
pub(crate) async fn drive<S>(
    session: Arc<Session>,
    ws: &mut WebSocketStream<S>,
    first: Option<Frame>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut batch: VecDeque<Frame> = first.into_iter().collect();
    let mut close_code: Option<CloseCode> = None;
    // tungstenite answers a client's ping itself; the pong may still sit in its buffer.
    let mut owes_flush = false;
    // Set when a write was abandoned: the stream may hold half a frame, so no close frame.
    let mut stalled = false;
    let reason = loop {
        let held = batch.len();
        let closed = session.lock().take_frames(&mut batch);
        if !batch.is_empty() {
            if let Some(meter) = &session.meter {
                meter.sent(batch.iter().skip(held));
            }
            // Boxed: the write's state (a timer among it) exists only while a write is under
            // way, instead of in every idle connection's task.
            let written = Box::pin(write_or_give_up(
                ws,
                &mut batch,
                &session,
                closed,
                &mut owes_flush,
            ))
            .await;
            stalled = written.is_none();
            if stalled {
                tracing::debug!(sid = %session.sid, "client not reading: dropping the WebSocket");
                break session.close_reason().unwrap_or(CloseReason::ForcedClose);
            }
            if written != Some(true) {
                break CloseReason::TransportClose;
            }
            session.lock().written();
            session.room.notify_waiters();
            if batch.capacity() > 64 {
                batch = VecDeque::new();
            }
        }
        if closed {
            // Closed by the server (or a timeout): the session already knows why.
            break session.close_reason().unwrap_or(CloseReason::ForcedClose);
        }
        let woken = session.wake.notified();
        let incoming = tokio::select! {
            biased;
            () = woken => continue,
            incoming = ws.next() => incoming,
        };
        let packet = match incoming {
            Some(Ok(WsMessage::Text(text))) => Packet::decode_wire(text),
            Some(Ok(WsMessage::Binary(data))) => wire::decode_ws_binary(session.protocol, data),
            Some(Ok(WsMessage::Ping(_))) => {
                owes_flush = true;
                session.alive();
                continue;
            }
            Some(Ok(WsMessage::Pong(_) | WsMessage::Frame(_))) => {
                session.alive();
                continue;
            }
            Some(Ok(WsMessage::Close(_))) | None => {
                break session
                    .transport_ended(CloseReason::TransportClose)
                    .unwrap_or(CloseReason::TransportClose);
            }
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                tracing::info!(sid = %session.sid, size, max_size, "WebSocket message over maxPayload");
                close_code = Some(CloseCode::Size);
                break session
                    .transport_ended(CloseReason::TransportError)
                    .unwrap_or(CloseReason::TransportError);
            }
            Some(Err(err)) => {
                tracing::debug!(sid = %session.sid, %err, "WebSocket read failed");
                let reason = read_error_reason(&err);
                break session.transport_ended(reason).unwrap_or(reason);
            }
        };
        if let Some(reason) = session.receive(packet) {
            break reason;
        }
    };
    session.close(reason);
    if stalled {
        return;
    }
    let frame = close_code.map(|code| CloseFrame {
        code,
        reason: Utf8Bytes::from_static(""),
    });
    let _ = Box::pin(tokio::time::timeout(WRITE_GRACE, async {
        if ws.close(frame).await.is_err() {
            return;
        }
        if close_code.is_some() {
            // A refused frame may still be arriving: its bytes are no frames to parse.
            discard_until_closed(ws.get_mut()).await;
        } else {
            await_close_reply(ws).await;
        }
    }))
    .await;
}

/// Reads until the client answers the close frame, then returns so that the connection is
/// dropped: the server closes TCP first (RFC 6455 7.1.1). A browser waits for that before it
/// reports the close, so waiting for the client to close its side would delay both.
async fn await_close_reply<S>(ws: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = ws.next().await {
        if let WsMessage::Close(_) = message {
            break;
        }
    }
}

/// Reads and drops what the client still sends until it closes its side. Closing a socket with
/// unread data resets the connection, and the client may then never see the close frame (a
/// message over maxPayload is cut off at its header, with the rest still on its way).
async fn discard_until_closed<S: AsyncRead + Unpin>(io: &mut S) {
    let mut scratch = [0u8; 2048];
    while let Ok(n) = io.read(&mut scratch).await {
        if n == 0 {
            break;
        }
    }
}

/// Writes `batch`; a client that stops reading blocks the write, so once the session is closed
/// (slow consumer, ping timeout, server close) the write gets `WRITE_GRACE` more and is then
/// abandoned: `None`. Otherwise whether the write succeeded.
async fn write_or_give_up<S>(
    ws: &mut WebSocketStream<S>,
    batch: &mut VecDeque<Frame>,
    session: &Session,
    closed: bool,
    owes_flush: &mut bool,
) -> Option<bool>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let give_up = async {
        if !closed {
            closing(session).await;
        }
        tokio::time::sleep(WRITE_GRACE).await;
    };
    tokio::select! {
        biased;
        written = write_batch(ws, batch, session.protocol, owes_flush) => Some(written),
        () = give_up => None,
    }
}

/// Writes and flushes every frame of `batch`, framed here: small frames are copied into one
/// buffer and go out with one write; false if the connection failed. What tungstenite still
/// holds (a pong it owes) is flushed first, so frames never interleave.
async fn write_batch<S>(
    ws: &mut WebSocketStream<S>,
    batch: &mut VecDeque<Frame>,
    protocol: Protocol,
    owes_flush: &mut bool,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if std::mem::take(owes_flush) && ws.flush().await.is_err() {
        return false;
    }
    let size: usize = batch
        .iter()
        .map(|f| f.len().min(ws_frame::COPY_LIMIT) + 11)
        .sum();
    let mut buf = Vec::with_capacity(size);
    let io = ws.get_mut();
    for frame in batch.drain(..) {
        let (opcode, prefix, payload) = ws_frame::parts(&frame, protocol);
        if payload.len() < ws_frame::COPY_LIMIT {
            ws_frame::put(&mut buf, opcode, prefix, payload);
            continue;
        }
        ws_frame::put_header(&mut buf, opcode, prefix, payload.len());
        if io.write_all(&buf).await.is_err() || io.write_all(payload).await.is_err() {
            return false;
        }
        buf.clear();
    }
    (buf.is_empty() || io.write_all(&buf).await.is_ok()) && io.flush().await.is_ok()
}

/// Resolves once the session is closed.
async fn closing(session: &Session) {
    loop {
        let woken = session.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if session.close_reason().is_some() {
            return;
        }
        woken.await;
    }
}
