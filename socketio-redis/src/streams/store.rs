//! Connection state recovery with the sessions in Redis and the missed packets in the stream.

use std::sync::Arc;

use socketio::adapter::BoxFuture;
use socketio::recovery::{SavedSession, SessionStore, StoredPacket};
use socketio::Sid;

use super::proto::{self, Broadcast, Message};
use super::{kind, stream_entries, Job, Shared};

/// XRANGE calls of one restore, at most (as in Node: a stream written faster than it is read
/// must not keep a restore going for ever).
const MAX_XRANGE_CALLS: usize = 100;

/// The recovery store of the Streams adapter, from
/// [`RedisStreamsFactory::session_store`](super::RedisStreamsFactory::session_store).
///
/// Sessions are Redis keys `<session_key_prefix><pid>` holding base64 MessagePack
/// `{sid, pid, rooms, data}` that expire after `max_disconnection_duration`; a restore takes the
/// key (`GET` + `DEL` in one transaction) and replays the stream's broadcasts after the client's
/// offset (a stream entry id) that reached the session's rooms. Offsets are given by the adapter:
/// [`SessionStore::store_packet`] is not used with it.
pub struct RedisSessionStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.shared.config.session_key_prefix)
            .finish()
    }
}

impl RedisSessionStore {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        RedisSessionStore { shared }
    }
}

/// Queues the `SET` of a session.
pub(super) fn save(shared: &Shared, session: &SavedSession) {
    match proto::encode_session(session) {
        Ok(value) => shared.send(Job::Set {
            key: shared.config.session_key(&session.pid),
            value,
            ttl: shared.config.max_disconnection_duration,
        }),
        Err(e) => tracing::warn!(error = %e, sid = %session.sid, "cannot encode session"),
    }
}

impl SessionStore for RedisSessionStore {
    fn store_packet(&self, _make: &mut dyn FnMut(&str) -> StoredPacket) -> String {
        // The stream gives offsets, through the adapter; another adapter's packets are not kept.
        tracing::debug!("the redis streams store keeps only the streams adapter's packets");
        String::new()
    }

    fn save_session(&self, session: SavedSession) {
        // The adapter then sees the socket leave: this tells it to keep the key.
        self.shared
            .saved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session.sid);
        save(&self.shared, &session);
    }

    fn restore_session(
        &self,
        pid: Sid,
        offset: String,
        nsp: &str,
    ) -> BoxFuture<Option<(SavedSession, Vec<StoredPacket>)>> {
        let shared = self.shared.clone();
        let nsp = nsp.to_owned();
        Box::pin(async move {
            match restore(&shared, pid, &offset, &nsp).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "redis session restore failed");
                    None
                }
            }
        })
    }
}

async fn restore(
    shared: &Shared,
    pid: Sid,
    offset: &str,
    nsp: &str,
) -> Result<Option<(SavedSession, Vec<StoredPacket>)>, redis::RedisError> {
    if proto::parse_offset(offset).is_none() {
        return Ok(None);
    }
    let cfg = &shared.config;
    let stream = proto::stream_name(&cfg.stream_name, cfg.stream_count, nsp);
    let mut conn = shared.commands.clone();
    // The offset first: without it, packets may have been lost, and the session stays.
    let at: redis::Value = redis::cmd("XRANGE")
        .arg(&stream)
        .arg(offset)
        .arg(offset)
        .query_async(&mut conn)
        .await?;
    if stream_entries(&at).is_empty() {
        return Ok(None);
    }
    let key = cfg.session_key(&pid);
    let (raw,): (Option<String>,) = redis::pipe()
        .atomic()
        .cmd("GET")
        .arg(&key)
        .cmd("DEL")
        .arg(&key)
        .ignore()
        .query_async(&mut conn)
        .await?;
    let Some(raw) = raw else {
        return Ok(None);
    };
    let session = match proto::decode_session(&raw, nsp) {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(error = %e, "ignoring malformed stored session");
            return Ok(None);
        }
    };
    let mut missed = Vec::new();
    let mut cursor = offset.to_owned();
    for _ in 0..MAX_XRANGE_CALLS {
        let Some(start) = proto::next_offset(&cursor) else {
            break;
        };
        let reply: redis::Value = redis::cmd("XRANGE")
            .arg(&stream)
            .arg(start)
            .arg("+")
            .query_async(&mut conn)
            .await?;
        let entries = stream_entries(&reply);
        if entries.is_empty() {
            break;
        }
        for (id, fields) in entries {
            let relevant = fields.iter().any(|(k, v)| k == "nsp" && v == nsp)
                && fields
                    .iter()
                    .any(|(k, v)| k == "type" && *v == kind::BROADCAST.to_string());
            if relevant {
                if let Some(packet) = missed_packet(&fields, &id, nsp) {
                    if packet.reaches(&session.rooms) {
                        missed.push(packet);
                    }
                }
            }
            cursor = id;
        }
    }
    Ok(Some((session, missed)))
}

fn missed_packet(fields: &[(String, String)], id: &str, nsp: &str) -> Option<StoredPacket> {
    let msg = Message::from_fields(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| tracing::info!(error = %e, %id, "skipping malformed stream entry"))
        .ok()?;
    let b = Broadcast::parse(msg.data.as_ref()?)
        .map_err(|e| tracing::info!(error = %e, %id, "skipping malformed broadcast"))
        .ok()?;
    if b.request_id.is_some() {
        return None;
    }
    let packet = b.packet(nsp, Some(id));
    Some(StoredPacket {
        offset: id.to_owned(),
        nsp: nsp.to_owned(),
        data: packet.data.unwrap_or(serde_json::Value::Null),
        attachments: packet.attachments,
        rooms: b.opts.rooms,
        except: b.opts.except,
    })
}
