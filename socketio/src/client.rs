//! One Engine.IO connection seen from Socket.IO: decoding, namespaces joined, state rules.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use engineio::{CloseReason, Handler, Message, Sid};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::namespace::{ConnectError, NsInner, OnConnection};
use crate::packet::{Decoder, Packet, PacketType};
use crate::reason::DisconnectReason;
use crate::server::ServerInner;
use crate::socket::{encode, ConnectionJob, Socket};

pub(crate) struct Client {
    pub(crate) engine: engineio::Socket,
    /// Socket.IO v4 over Engine.IO v3 (old clients).
    legacy: bool,
    server: Arc<ServerInner>,
    decoder: Mutex<Decoder>,
    sockets: Mutex<HashMap<String, Socket>>,
    connect_timer: Mutex<Option<JoinHandle<()>>>,
}

/// The Engine.IO handler of a Socket.IO server.
pub(crate) struct SioHandler {
    pub(crate) server: Arc<ServerInner>,
}

impl Handler for SioHandler {
    type Conn = Arc<Client>;

    fn on_open(&self, engine: engineio::Socket) -> Arc<Client> {
        let legacy = engine.protocol() == engineio::Protocol::V3;
        let client = Arc::new(Client {
            engine,
            legacy,
            server: self.server.clone(),
            decoder: Mutex::new(Decoder::with_max_attachments(
                self.server.config.max_attachments,
            )),
            sockets: Mutex::new(HashMap::new()),
            connect_timer: Mutex::new(None),
        });
        client.start_connect_timer();
        if legacy {
            // Socket.IO v4: the client is on `/` as soon as the Engine.IO session opens.
            client.on_connect(Packet::connect("/", None));
        }
        client
    }

    fn on_message(&self, client: &Arc<Client>, message: Message) {
        let decoded = {
            let mut decoder = client.decoder.lock().unwrap_or_else(|e| e.into_inner());
            match &message {
                Message::Text(t) if t.as_str().is_empty() => Err(crate::packet::DecodeError::Empty),
                Message::Text(t) => decoder.on_text(t.as_str()),
                Message::Binary(b) => decoder.on_binary(b.clone()),
            }
        };
        match decoded {
            Ok(Some(packet)) => client.on_packet(packet),
            Ok(None) => {}
            Err(err) => {
                tracing::debug!(sid = %client.engine.id(), %err, "undecodable Socket.IO packet");
                client.close(DisconnectReason::ParseError);
            }
        }
    }

    fn on_upgrade(&self, client: &Arc<Client>) {
        if let Some(observer) = self.server.observer.get() {
            let sockets: Vec<Socket> = client.lock_sockets().values().cloned().collect();
            for socket in &sockets {
                observer.socket_upgraded(socket);
            }
        }
    }

    fn on_close(&self, client: &Arc<Client>, reason: CloseReason) {
        client.stop_connect_timer();
        for socket in client.take_sockets() {
            socket.leave_namespace(reason.into());
        }
    }
}

impl Client {
    /// Whether the client speaks Socket.IO v4 (Engine.IO v3).
    pub(crate) fn legacy(&self) -> bool {
        self.legacy
    }

    fn start_connect_timer(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let timeout = self.server.config.connect_timeout;
        let timer = tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(client) = weak.upgrade() {
                if client.lock_sockets().is_empty() {
                    tracing::debug!(sid = %client.engine.id(), "no namespace joined in time");
                    client.close(DisconnectReason::ForcedServerClose);
                }
            }
        });
        *self.connect_timer.lock().unwrap_or_else(|e| e.into_inner()) = Some(timer);
    }

    fn stop_connect_timer(&self) {
        if let Some(timer) = self
            .connect_timer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            timer.abort();
        }
    }

    fn lock_sockets(&self) -> std::sync::MutexGuard<'_, HashMap<String, Socket>> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_sockets(&self) -> Vec<Socket> {
        self.lock_sockets().drain().map(|(_, s)| s).collect()
    }

    /// Drops a socket from the namespaces joined, if it is still the one registered.
    pub(crate) fn forget(&self, nsp: &str, socket: &Socket) {
        let mut sockets = self.lock_sockets();
        if sockets.get(nsp) == Some(socket) {
            sockets.remove(nsp);
        }
    }

    /// Disconnects every socket with `reason` and closes the connection.
    pub(crate) fn close(&self, reason: DisconnectReason) {
        for socket in self.take_sockets() {
            socket.leave_namespace(reason);
        }
        self.engine.close();
    }

    /// Sends DISCONNECT for every namespace joined, then closes the connection.
    pub(crate) fn disconnect_all_and_close(&self) {
        for socket in self.take_sockets() {
            socket.send_packet(Packet::disconnect(socket.ns().name()));
            socket.leave_namespace(DisconnectReason::ServerNamespaceDisconnect);
        }
        self.engine.close();
    }

    fn send(&self, packet: &Packet) {
        let _ = self.engine.send_all(&encode(packet));
    }

    fn violation(&self, what: &str) {
        tracing::debug!(sid = %self.engine.id(), what, "invalid packet state, closing");
        self.close(DisconnectReason::ForcedServerClose);
    }

    fn on_packet(self: &Arc<Self>, packet: Packet) {
        if packet.kind == PacketType::Connect {
            return self.on_connect(packet);
        }
        let socket = self.lock_sockets().get(&packet.nsp).cloned();
        let Some(socket) = socket else {
            return self.violation("packet for a namespace not joined");
        };
        match packet.kind {
            PacketType::Event | PacketType::BinaryEvent => socket.on_event(packet),
            PacketType::Ack | PacketType::BinaryAck => socket.on_ack(packet),
            PacketType::Disconnect => {
                self.forget(&packet.nsp, &socket);
                socket.leave_namespace(DisconnectReason::ClientNamespaceDisconnect);
            }
            PacketType::ConnectError => self.violation("CONNECT_ERROR from a client"),
            PacketType::Connect => {}
        }
    }

    fn on_connect(self: &Arc<Self>, packet: Packet) {
        let (nsp, auth) = if self.legacy {
            // v4: `40/admin?token=abc,` carries the auth as a query string in the namespace.
            crate::legacy::split_namespace(&packet.nsp)
        } else {
            let auth = match packet.data {
                Some(Value::Object(map)) => Value::Object(map),
                _ => json!({}),
            };
            (packet.nsp, auth)
        };
        if self.lock_sockets().contains_key(&nsp) {
            return self.violation("CONNECT for a namespace already joined");
        }
        let Some(ns) = self.server.namespace_for(&nsp, &auth) else {
            let mut reply = Packet::connect_error(nsp, json!({"message": "Invalid namespace"}));
            reply.id = None;
            return self.send(&reply);
        };
        let client = self.clone();
        let job = Box::pin(async move { client.connect(ns, auth).await });
        // Most connects finish without waiting (no async middleware): no task for them.
        let mut cx = std::task::Context::from_waker(futures_util::task::noop_waker_ref());
        let mut job: crate::namespace::BoxFut = job;
        if job.as_mut().poll(&mut cx).is_pending() {
            tokio::spawn(job);
        }
    }

    async fn connect(self: Arc<Self>, joining: crate::namespace::Joining, auth: Value) {
        let ns: Arc<NsInner> = Arc::clone(&joining);
        // Off server-wide or for this namespace: no restore, no pid.
        let store = ns.recovery_store();
        let recovery = self
            .server
            .config
            .recovery
            .clone()
            .filter(|_| store.is_some());
        let mut restored = None;
        // The last offset the restored socket has or is replayed: what was recorded after it
        // is asked for again just before the socket joins its rooms.
        let mut resume_from = None;
        if let (false, Some(store), Some(Value::String(pid)), Some(Value::String(offset))) = (
            self.legacy,
            store.clone(),
            auth.get("pid"),
            auth.get("offset"),
        ) {
            if let Some(pid) = Sid::parse(pid) {
                // An immediate reconnect can come before the server noticed the old connection
                // drop. Only the client holding the secret pid can ask: close the stale
                // connection (which saves its session) and restore from it. First, since a
                // store may hold the session of a live socket (saved ahead of time, in a
                // cluster): two live sockets must never share an id.
                if let Some(stale) = ns.socket_with_pid(&pid) {
                    tracing::debug!(socket = %stale.id(), "recovery takes over a stale connection");
                    stale.engine().close();
                }
                restored = store.restore_session(pid, offset.clone(), &ns.name).await;
                resume_from = restored.as_ref().map(|(_, missed)| {
                    missed
                        .last()
                        .map_or_else(|| offset.clone(), |p| p.offset.clone())
                });
            }
        }
        // The replay goes out in one piece before the CONNECT reply: a session that missed more
        // than it may take is not recovered, and the application catches the client up itself.
        let mut replay = Vec::new();
        if let (Some((saved, missed)), Some(r)) = (&restored, &recovery) {
            let mut bytes = 0usize;
            for stored in missed {
                let messages = encode_stored(&ns.name, stored);
                bytes += messages.iter().map(engineio::Message::len).sum::<usize>();
                replay.push(messages);
            }
            if bytes > r.max_replay_bytes {
                tracing::info!(socket = %saved.sid, bytes, "too much missed to replay: not recovered");
                replay.clear();
                restored = None;
            }
        }
        let recovered = restored.is_some();
        let (id, pid, data) = match &restored {
            Some((s, _)) => (s.sid, Some(s.pid), s.data.clone()),
            // v4: the socket id is the Engine.IO sid (shown as `/nsp#<sid>` outside `/`), and
            // connection state recovery does not apply.
            None if self.legacy => (self.engine.id(), None, Value::Null),
            None => (
                Sid::random(),
                recovery.as_ref().map(|_| Sid::random()),
                Value::Null,
            ),
        };
        let socket = Socket::new(id, pid, ns.clone(), self.clone(), auth, recovered, data);
        let skip = recovered && recovery.as_ref().is_some_and(|r| r.skip_middlewares);
        if !skip {
            for middleware in ns.setup.middlewares() {
                if let Err(err) = middleware(socket.clone()).await {
                    return self.refuse(&ns, &err);
                }
            }
        }
        if self.engine.is_closed() {
            return;
        }
        // A typed handler's arguments are taken now, so that what cannot be is a refusal.
        let on_connection = match ns.setup.connection_handler() {
            None => None,
            Some(OnConnection::Plain(handler)) => Some(ConnectionJob::Plain(handler)),
            Some(OnConnection::Typed(handler)) => match handler(&socket) {
                Ok(job) => Some(ConnectionJob::Typed(job)),
                Err(err) => {
                    if err.is_payload() {
                        tracing::debug!(nsp = %ns.name, error = %err, "connection refused: invalid auth");
                    } else {
                        tracing::warn!(nsp = %ns.name, error = %err, "connection refused");
                    }
                    return self.refuse(&ns, &ConnectError::new(err.client_message()));
                }
            },
        };
        {
            let mut sockets = self.lock_sockets();
            if sockets.contains_key(&ns.name) {
                drop(sockets);
                return self.violation("CONNECT for a namespace already joined");
            }
            sockets.insert(ns.name.clone(), socket.clone());
        }
        self.stop_connect_timer();
        ns.insert(socket.clone());
        let own = id.to_string();
        let mut rooms = vec![own.clone()];
        if socket.client_id() != own {
            rooms.push(socket.client_id().to_owned());
        }
        if let Some((saved, _)) = &restored {
            rooms.extend(saved.rooms.iter().filter(|r| **r != own).cloned());
        }
        let engine = &self.engine;
        ns.adapter().add_all_after(id, &rooms, &mut || {
            // Missed packets go out before the CONNECT reply (the client buffers them), with
            // those recorded since the restore read: no recorded broadcast comes in between.
            if let (Some(from), Some(store), Some((saved, _))) = (&resume_from, &store, &restored) {
                for stored in store
                    .recorded_after(from, &ns.name, &saved.rooms)
                    .unwrap_or_default()
                {
                    replay.push(encode_stored(&ns.name, &stored));
                }
            }
            for messages in &replay {
                let _ = engine.send_all(messages);
            }
        });
        if self.engine.is_closed() {
            // Closed while joining: on_close did not see this socket.
            self.forget(&ns.name, &socket);
            if ns.remove(&socket) {
                ns.adapter().del_all(id);
            }
            return;
        }
        let reply = match pid {
            _ if self.legacy => None,
            Some(pid) => Some(json!({"sid": id.as_str(), "pid": pid.as_str()})),
            None => Some(json!({"sid": id.as_str()})),
        };
        self.send(&Packet::connect(ns.name.as_str(), reply));
        tracing::debug!(socket = %id, nsp = %ns.name, recovered, "socket connected");
        socket.connected_now(on_connection);
    }

    /// Refuses a CONNECT with CONNECT_ERROR (unless the connection closed meanwhile).
    fn refuse(&self, ns: &NsInner, err: &ConnectError) {
        if self.engine.is_closed() {
            return;
        }
        let data = if self.legacy {
            crate::legacy::connect_error_payload(err)
        } else {
            err.to_json()
        };
        self.send(&Packet::connect_error(ns.name.as_str(), data));
    }
}

/// A kept packet, encoded for a replay.
fn encode_stored(nsp: &str, stored: &crate::recovery::StoredPacket) -> Vec<engineio::Message> {
    encode(&Packet {
        kind: if stored.attachments.is_empty() {
            PacketType::Event
        } else {
            PacketType::BinaryEvent
        },
        nsp: nsp.to_owned(),
        id: None,
        data: Some(stored.data.clone()),
        attachments: stored.attachments.clone(),
    })
}
