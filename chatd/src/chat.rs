//! The chat protocol on the `/chat` namespace: identity at CONNECT, then commands with acks
//! (see `docs/protocol.md`).

use std::collections::HashSet;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use socketio::extract::{AckSender, Data, Extension, ExtractError};
use socketio::{ConnectError, Namespace, Socket};
use tokio::time::Instant;

use crate::access::{self, Viewer};
use crate::accounts::{self, Authed};
use crate::app::App;
use crate::deliver::{room_group, user_group};
use crate::identity::Claimed;
use crate::limits::{Budget, Charge};
use crate::paging::{self, PAGE, PAGE_BYTES};
use crate::protocol::{self, bad_request, ok, ChatError, Code};
use crate::room::{store_error, RoomGone, RoomHandle};
use crate::store::{now_ms, RoomInfo, RoomKind};

/// Commands of the protocol, also used to refuse unknown events.
pub const COMMANDS: [&str; 15] = [
    "rooms:list",
    "room:read",
    "room:invite",
    "room:invite_link",
    "room:members",
    "room:role",
    "room:create",
    "room:join",
    "room:leave",
    "room:topic",
    "message:send",
    "history",
    "typing",
    "dm:send",
    "dm:history",
];

/// What each command costs in tokens of the connection's budget (`--message-rate` tokens a
/// second, `--message-burst` at most); the table of docs/protocol.md. Writes and reads that
/// touch the store or every room cost a token; typing and leaving are cheap but not free.
pub const COSTS: [(&str, f64); 15] = [
    ("rooms:list", 1.0),
    ("room:read", 0.5),
    ("room:invite", 1.0),
    ("room:invite_link", 1.0),
    ("room:members", 1.0),
    ("room:role", 1.0),
    ("room:create", 1.0),
    ("room:join", 1.0),
    ("room:leave", 0.5),
    ("room:topic", 1.0),
    ("message:send", 1.0),
    ("history", 1.0),
    ("typing", 0.2),
    ("dm:send", 1.0),
    ("dm:history", 1.0),
];

/// What an event that is not a command costs.
const UNKNOWN_COST: f64 = 1.0;

fn cost(name: &str) -> f64 {
    COSTS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(UNKNOWN_COST, |(_, c)| *c)
}

/// What one connection carries along: who it is, its limits, its rooms. Kept in the socket's
/// extensions, so it goes with the socket.
pub(crate) struct Session {
    user: Claimed,
    budget: Mutex<Budget>,
    rooms: Mutex<HashSet<String>>,
}

impl Session {
    /// The user's name.
    pub(crate) fn name(&self) -> &str {
        &self.user.name
    }

    fn charge(&self, cost: f64) -> Charge {
        self.budget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .charge(cost, Instant::now())
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_member(&self, room: &str) -> bool {
        self.rooms().contains(room)
    }
}

/// The client's address: the peer, or behind `--trusted-proxies` the address they forwarded.
pub fn client_ip(socket: &Socket) -> Option<IpAddr> {
    socket.handshake().client_ip
}

fn connect_error(err: &ChatError) -> ConnectError {
    ConnectError::with_data(err.message.clone(), json!({"code": err.code}))
}

/// Installs the middleware and handlers of the chat namespace.
pub fn install(app: Arc<App>, ns: &Namespace) {
    let mw_app = app.clone();
    ns.middleware(move |socket| {
        let app = mw_app.clone();
        async move { admit(&app, &socket).await }
    });
    ns.on_connection(move |socket| {
        let app = app.clone();
        async move { connected(app, socket).await }
    });
}

/// Identity, before the socket is connected (the per-address cap applies at the Engine.IO
/// handshake).
async fn admit(app: &App, socket: &Socket) -> Result<(), ConnectError> {
    match claim(app, socket).await {
        Ok((user, account)) => {
            // Recovery restores `data`, not the extensions: who it is must survive in both.
            let mut data = json!({"user": user.name, "token": user.token});
            if let Some(authed) = &account {
                data["account"] = json!(authed.token_hash);
            }
            socket.set_data(data);
            socket.extensions().insert(user);
            if let Some(authed) = account {
                socket.extensions().insert(authed);
            }
            Ok(())
        }
        Err(err) => {
            app.metrics.refused();
            Err(connect_error(&err))
        }
    }
}

/// Who a connection is: the account of a valid session (`auth.token`, or the browser's
/// session cookie), else with `--guests` the name it picked (`auth.username`, its resume token
/// in `auth.token`).
async fn claim(app: &App, socket: &Socket) -> Result<(Claimed, Option<Authed>), ChatError> {
    let auth = socket.auth();
    let token = auth.get("token").and_then(Value::as_str);
    let cookie = accounts::cookie_token(socket.handshake().headers.get_all("cookie"));
    for presented in [token, cookie.as_deref()].into_iter().flatten() {
        if let Some(authed) = app.accounts.authenticate(presented).await? {
            let claimed = app
                .identities
                .claim(
                    &authed.account.name,
                    Some(accounts::identity_token(&authed.account)),
                    socket.id(),
                )
                .await?;
            return Ok((claimed, Some(authed)));
        }
    }
    let name = auth.get("username").and_then(Value::as_str);
    if !app.settings.guests {
        return Err(match (name, token.or(cookie.as_deref())) {
            (None, Some(_)) => ChatError::new(
                Code::InvalidSession,
                "the session is unknown, expired or revoked: log in again",
            ),
            _ => ChatError::new(
                Code::AuthRequired,
                "log in first: this server has no guests",
            ),
        });
    }
    // As before accounts: with guests, no valid session and no name is a bad name.
    let name = name.ok_or_else(|| {
        ChatError::new(
            Code::InvalidName,
            "auth.username is required (or a valid session token)",
        )
    })?;
    let name = protocol::user_name(name)?;
    if app.accounts.is_registered(&name).await? {
        return Err(ChatError::new(
            Code::NameTaken,
            "this name belongs to an account: log in to use it",
        ));
    }
    let token = token.map(str::to_owned);
    Ok((app.identities.claim(&name, token, socket.id()).await?, None))
}

/// The user a recovered socket had: recovery restores its `data` (the middleware, which set it,
/// is skipped).
fn recovered_user(data: &Value) -> Option<Claimed> {
    Some(Claimed {
        name: data.get("user")?.as_str()?.to_owned(),
        token: data.get("token")?.as_str()?.to_owned(),
    })
}

/// The account session a recovered socket had, still valid (`Ok(None)`: a guest's socket).
async fn recovered_account(app: &App, data: &Value) -> Result<Option<Authed>, ()> {
    let Some(hash) = data.get("account") else {
        return Ok(None);
    };
    let hash = hash.as_str().ok_or(())?;
    match app.accounts.authenticate_hash(hash).await {
        Ok(Some(authed)) => Ok(Some(authed)),
        _ => Err(()),
    }
}

async fn connected(app: Arc<App>, socket: Socket) {
    let user = if socket.recovered() {
        let data = socket.data();
        let Some(user) = recovered_user(&data) else {
            socket.disconnect();
            return;
        };
        // A session revoked meanwhile does not come back.
        match recovered_account(&app, &data).await {
            Ok(Some(authed)) => {
                socket.extensions().insert(authed);
            }
            Ok(None) => {}
            Err(()) => {
                socket.disconnect();
                return;
            }
        }
        // Recovery skips the middleware: take the name again.
        if app
            .identities
            .claim(&user.name, Some(user.token.clone()), socket.id())
            .await
            .is_err()
        {
            socket.disconnect();
            return;
        }
        user
    } else {
        match socket.extensions().remove::<Claimed>() {
            Some(user) => Arc::unwrap_or_clone(user),
            None => {
                socket.disconnect();
                return;
            }
        }
    };
    socket.join(user_group(&user.name));
    if let Some(authed) = socket.extensions().get::<Authed>() {
        // Logging out, a revocation or a new password ends this connection too.
        socket.join(accounts::session_group(&authed.session.id));
    }
    let session = socket.extensions().get_or_insert_with(|| Session {
        user: user.clone(),
        budget: Mutex::new(Budget::new(
            app.settings.message_rate,
            app.settings.message_burst,
            app.settings.max_violations,
            app.settings.violation_window(),
        )),
        rooms: Mutex::new(HashSet::new()),
    });
    if socket.recovered() {
        rejoin_recovered(&app, &socket, &session).await;
    }
    let session_event = match socket.extensions().get::<Authed>() {
        Some(authed) => json!({
            "user": user.name, "guest": false, "admin": authed.account.admin,
            "rooms": access::my_rooms(&app, &Viewer::of(&socket, &user.name)).await,
        }),
        None => json!({"user": user.name, "token": user.token, "guest": true}),
    };
    let _ = socket.emit("session", session_event);
    socket.use_event(move |socket, event| {
        if COMMANDS.contains(&event.name.as_str()) {
            return Ok(());
        }
        let Some(session) = socket.extensions().get::<Session>() else {
            return Err("no session".into());
        };
        let err = match session.charge(UNKNOWN_COST) {
            Charge::Allowed => {
                ChatError::new(Code::BadRequest, format!("unknown event {:?}", event.name))
            }
            Charge::Limited => rate_limited(),
            Charge::Abusive => {
                kick(socket);
                return Err("disconnected".into());
            }
        };
        if let Some(ack) = event.ack.take() {
            ack.send(err.to_ack());
        }
        Err("unknown event".into())
    });
    register(&socket, &app);
    access::register(&socket, &app);
    let gone_app = app.clone();
    socket.on_disconnect(move |socket, reason| {
        let app = gone_app.clone();
        async move {
            // The extensions go after the disconnect handlers.
            let Some(session) = socket.extensions().get::<Session>() else {
                return;
            };
            tracing::debug!(user = %session.user.name, %reason, "chat connection gone");
            app.identities
                .release(&session.user.name, socket.id())
                .await;
            let rooms: Vec<String> = session.rooms().iter().cloned().collect();
            for room in rooms {
                if let Ok(handle) = app.registry.get(&room).await {
                    let _ = handle.socket_gone(socket.id()).await;
                }
            }
        }
    });
}

/// A recovered connection is back in its Socket.IO rooms, but its chat rooms let it go when it
/// dropped: join them again, so that presence (within the grace period: no leave, no join) and
/// membership match. The missed messages came with the recovery.
async fn rejoin_recovered(app: &App, socket: &Socket, session: &Session) {
    let mut data = socket.data();
    let rejoin = data
        .as_object_mut()
        .and_then(|d| d.remove(crate::cluster::recovery::REJOIN));
    if let Some(Value::Object(rooms)) = rejoin {
        // Kept for the next move: until the client gets a packet this node records, this is
        // what it has.
        if let Some(d) = data.as_object_mut() {
            d.insert(
                crate::cluster::recovery::REJOINED.into(),
                Value::Object(rooms.clone()),
            );
        }
        socket.set_data(data);
        for (room, since) in rooms {
            rejoin_room(app, socket, session, room, since.as_u64()).await;
        }
        return;
    }
    let rooms: Vec<String> = socket
        .rooms()
        .iter()
        .filter_map(|r| r.strip_prefix("r:"))
        .map(str::to_owned)
        .collect();
    for room in rooms {
        let user = session.user.name.clone();
        let rejoined = with_room(app, &room, |h| {
            let user = user.clone();
            let sid = socket.id();
            async move { h.join(&user, sid, Some(u64::MAX)).await }
        })
        .await;
        match rejoined {
            Ok(_) => {
                session.rooms().insert(room);
            }
            Err(_) => socket.leave(&room_group(&room)),
        }
    }
}

/// Puts a connection recovered through the cluster back in a room: every message after
/// `since`, then the live ones (the room decides when it goes live); with `since` unknown,
/// from now on.
async fn rejoin_room(
    app: &App,
    socket: &Socket,
    session: &Session,
    room: String,
    since: Option<u64>,
) {
    let user = session.user.name.clone();
    let sid = socket.id();
    let rejoined = match since {
        Some(since) => {
            // Its until the room has caught it up, should it move on before that.
            crate::deliver::mark_joining(socket, &room, since);
            with_room(app, &room, |h| {
                let user = user.clone();
                async move { h.rejoin(&user, sid, since).await }
            })
            .await
        }
        None => {
            with_room(app, &room, |h| {
                let user = user.clone();
                async move { h.join(&user, sid, Some(u64::MAX)).await.map(drop) }
            })
            .await
        }
    };
    match rejoined {
        Ok(_) => {
            session.rooms().insert(room);
        }
        Err(_) => crate::deliver::not_joining(socket, &room),
    }
}

fn reply(app: &App, ack: AckSender, result: Result<Value, ChatError>) {
    let payload = match result {
        Ok(v) => v,
        Err(e) => {
            app.metrics.rejected();
            e.to_ack()
        }
    };
    ack.send(payload);
}

fn parse<T: DeserializeOwned>(payload: Value) -> Result<T, ChatError> {
    serde_json::from_value(payload).map_err(|e| bad_request(format!("invalid payload: {e}")))
}

fn rate_limited() -> ChatError {
    ChatError::new(Code::RateLimited, "too many commands, slow down")
}

/// Disconnects a connection that kept sending over its budget, telling it why first.
fn kick(socket: &Socket) {
    if !socket.connected() {
        return;
    }
    tracing::info!(socket = %socket.id(), "disconnected: too many refused commands");
    let err = ChatError::new(
        Code::TooManyViolations,
        "too many refused commands: disconnected",
    );
    let _ = socket.emit("error", json!({"code": err.code, "message": err.message}));
    socket.disconnect();
}

/// Registers one command: budget, then the payload (its first argument) as `T`, then the ack.
/// A payload that does not deserialise is charged too, and answered `bad_request`.
pub(crate) fn command<T, F, Fut>(socket: &Socket, app: &Arc<App>, name: &'static str, f: F)
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Arc<App>, Arc<Session>, Socket, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, ChatError>> + Send + 'static,
{
    let app = app.clone();
    let f = Arc::new(f);
    let cost = cost(name);
    socket.on_typed(
        name,
        move |socket: Socket,
              Extension(session): Extension<Session>,
              payload: Result<Data<T>, ExtractError>,
              ack: AckSender| {
            let (app, f) = (app.clone(), f.clone());
            async move {
                match session.charge(cost) {
                    Charge::Allowed => {}
                    Charge::Limited => return reply(&app, ack, Err(rate_limited())),
                    Charge::Abusive => {
                        reply(&app, ack, Err(rate_limited()));
                        return kick(&socket);
                    }
                }
                let result = match payload {
                    Ok(Data(req)) => f(app.clone(), session, socket, req).await,
                    Err(e) => Err(bad_request(e.to_string())),
                };
                reply(&app, ack, result);
            }
        },
    );
}

/// Runs `f` on a room, asking the registry again if the room stopped in between.
async fn with_room<T, Fut>(
    app: &App,
    name: &str,
    f: impl Fn(RoomHandle) -> Fut,
) -> Result<T, ChatError>
where
    Fut: Future<Output = Result<T, RoomGone>>,
{
    for _ in 0..3 {
        let handle = app.registry.get(name).await?;
        match f(handle).await {
            Ok(v) => return Ok(v),
            Err(RoomGone) => continue,
        }
    }
    Err(ChatError::new(
        Code::Unavailable,
        "room unavailable, try again",
    ))
}

#[derive(Deserialize)]
struct Empty {}

#[derive(Deserialize)]
struct CreateReq {
    room: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    private: bool,
}

#[derive(Deserialize)]
struct JoinReq {
    room: String,
    since: Option<u64>,
    /// An invite link's token, for a private room.
    invite: Option<String>,
}

#[derive(Deserialize)]
struct RoomReq {
    room: String,
}

#[derive(Deserialize)]
struct TopicReq {
    room: String,
    topic: String,
}

#[derive(Deserialize)]
struct SendReq {
    room: String,
    id: String,
    text: String,
}

#[derive(Deserialize)]
struct HistoryReq {
    room: String,
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
struct TypingReq {
    room: String,
    typing: bool,
}

#[derive(Deserialize)]
struct DmReq {
    to: String,
    id: String,
    text: String,
}

#[derive(Deserialize)]
struct DmHistoryReq {
    with: String,
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// Parses a command's payload into its request and runs the checks of its fields that need no
/// state, as the command's handler does (for the fuzz targets; not part of the API). Unknown
/// commands are `Ok`: no handler takes them.
#[doc(hidden)]
pub fn check_command(
    name: &str,
    payload: Value,
    max_message_bytes: usize,
) -> Result<(), ChatError> {
    use protocol::{client_id, room_name, text, topic, user_name};
    match name {
        "rooms:list" => parse::<Option<Empty>>(payload).map(drop),
        "room:create" => {
            let req: CreateReq = parse(payload)?;
            room_name(&req.room)?;
            topic(&req.topic).map(drop)
        }
        "room:join" => parse::<JoinReq>(payload).and_then(|req| room_name(&req.room).map(drop)),
        "room:leave" => parse::<RoomReq>(payload).and_then(|req| room_name(&req.room).map(drop)),
        "room:topic" => {
            let req: TopicReq = parse(payload)?;
            room_name(&req.room)?;
            topic(&req.topic).map(drop)
        }
        "message:send" => {
            let req: SendReq = parse(payload)?;
            room_name(&req.room)?;
            client_id(&req.id)?;
            text(&req.text, max_message_bytes).map(drop)
        }
        "history" => {
            let req: HistoryReq = parse(payload)?;
            room_name(&req.room)?;
            let _limit = req.limit.unwrap_or(50).clamp(1, PAGE);
            Ok(())
        }
        "typing" => parse::<TypingReq>(payload).and_then(|req| room_name(&req.room).map(drop)),
        "dm:send" => {
            let req: DmReq = parse(payload)?;
            let to = user_name(&req.to)?;
            client_id(&req.id)?;
            text(&req.text, max_message_bytes)?;
            let _room = protocol::direct_room("fuzzer", &to);
            Ok(())
        }
        "dm:history" => {
            let req: DmHistoryReq = parse(payload)?;
            let with = user_name(&req.with)?;
            let _room = protocol::direct_room("fuzzer", &with);
            let _limit = req.limit.unwrap_or(50).clamp(1, PAGE);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn room_json(info: &RoomInfo) -> Value {
    json!({"name": info.name, "topic": info.topic})
}

/// One page of a room's messages, oldest first: before `before` (newest first taken, `more`:
/// older ones exist) or after `after` (oldest first taken, `more`: newer ones exist); at most
/// `limit` messages and [`PAGE_BYTES`] of them.
async fn page(
    app: &App,
    room: &str,
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<usize>,
) -> Result<Value, ChatError> {
    let limit = limit.unwrap_or(50).clamp(1, PAGE);
    let (messages, more) = match (before, after) {
        (Some(_), Some(_)) => return Err(bad_request("give `before` or `after`, not both")),
        (_, Some(after)) => {
            let mut messages = app
                .store
                .messages_after(room, after, limit + 1)
                .await
                .map_err(store_error)?;
            let more = paging::keep_oldest(&mut messages, limit, PAGE_BYTES);
            (messages, more)
        }
        (before, None) => {
            let mut messages = app
                .store
                .messages_before(room, before.unwrap_or(u64::MAX), limit + 1)
                .await
                .map_err(store_error)?;
            let more = paging::keep_newest(&mut messages, limit, PAGE_BYTES);
            (messages, more)
        }
    };
    let cursor = messages.first().map(|m| m.seq);
    Ok(json!({"messages": messages, "cursor": cursor, "more": more}))
}

fn register(socket: &Socket, app: &Arc<App>) {
    command(
        socket,
        app,
        "rooms:list",
        |app, session, socket, _: Option<Empty>| async move {
            let viewer = Viewer::of(&socket, session.name());
            let listing = access::Listing::of(&app, &viewer).await?;
            let mut stored = app.store.rooms().await.map_err(store_error)?;
            stored.retain(|r| listing.shows(&r.name));
            // Rooms not running here count the users the other nodes have in them.
            let elsewhere = match &app.cluster {
                Some(c) => c.remote_member_counts().await,
                None => Default::default(),
            };
            let mut counts = std::collections::HashMap::new();
            for handle in app.registry.running().await? {
                if let Ok(summary) = handle.summary().await {
                    counts.insert(
                        summary.info.name.clone(),
                        (summary.members, summary.info.topic),
                    );
                }
            }
            let rooms: Vec<Value> = stored
                .iter()
                .map(|r| {
                    let (members, topic) = counts.get(&r.name).cloned().unwrap_or_else(|| {
                        (
                            elsewhere.get(&r.name).copied().unwrap_or(0),
                            r.topic.clone(),
                        )
                    });
                    let (private, role, unread) = listing.fields(&r.name);
                    json!({
                        "name": r.name, "topic": topic, "members": members,
                        "private": private, "role": role, "unread": unread,
                    })
                })
                .collect();
            Ok(ok(json!({"rooms": rooms})))
        },
    );

    command(
        socket,
        app,
        "room:create",
        |app, session, socket, req: CreateReq| async move {
            let name = protocol::room_name(&req.room)?;
            let topic = protocol::topic(&req.topic)?;
            let viewer = Viewer::of(&socket, session.name());
            access::create(&app, &viewer, &name, &topic, req.private).await?;
            let handle = app
                .registry
                .created(RoomInfo {
                    name: name.clone(),
                    topic,
                    kind: RoomKind::Room,
                    created_at: now_ms(),
                })
                .await?;
            let summary = handle.summary().await.map_err(|_| unavailable())?;
            let mut room = room_json(&summary.info);
            room["private"] = json!(req.private);
            Ok(ok(json!({"room": room})))
        },
    );

    command(
        socket,
        app,
        "room:join",
        |app, session, socket, req: JoinReq| async move {
            let name = protocol::room_name(&req.room)?;
            if !session.is_member(&name) && session.rooms().len() >= app.settings.max_rooms_per_user
            {
                return Err(ChatError::new(
                    Code::TooManyRooms,
                    "you are in too many rooms",
                ));
            }
            access::enter(
                &app,
                &Viewer::of(&socket, session.name()),
                &name,
                req.invite.as_deref(),
            )
            .await?;
            let user = session.user.name.clone();
            let joined = with_room(&app, &name, |h| {
                let user = user.clone();
                let sid = socket.id();
                async move { h.join(&user, sid, req.since).await }
            })
            .await?;
            // In the room even when its older messages could not be read (`unavailable`).
            session.rooms().insert(name.clone());
            let joined = joined?;
            if let Some(recovery) = &app.cluster_recovery {
                recovery.joined(&name, joined.last_seq);
            }
            Ok(ok(json!({
                "room": room_json(&joined.info),
                "members": joined.members,
                "messages": joined.messages,
                "cursor": joined.cursor,
                "more": joined.more,
                "last_seq": joined.last_seq,
            })))
        },
    );

    command(
        socket,
        app,
        "room:leave",
        |app, session, socket, req: RoomReq| async move {
            let name = protocol::room_name(&req.room)?;
            if !session.rooms().remove(&name) {
                return Err(not_member());
            }
            let user = session.user.name.clone();
            with_room(&app, &name, |h| {
                let user = user.clone();
                let sid = socket.id();
                async move { h.leave(&user, sid).await }
            })
            .await?;
            access::leave(&app, &Viewer::of(&socket, session.name()), &name).await?;
            Ok(ok(json!({})))
        },
    );

    command(
        socket,
        app,
        "room:topic",
        |app, session, _socket, req: TopicReq| async move {
            let name = protocol::room_name(&req.room)?;
            if !session.is_member(&name) {
                return Err(not_member());
            }
            let topic = protocol::topic(&req.topic)?;
            let user = session.user.name.clone();
            with_room(&app, &name, |h| {
                let (topic, user) = (topic.clone(), user.clone());
                async move { h.set_topic(topic, &user).await }
            })
            .await??;
            Ok(ok(json!({})))
        },
    );

    command(
        socket,
        app,
        "message:send",
        |app, session, socket, req: SendReq| async move {
            let name = protocol::room_name(&req.room)?;
            if !session.is_member(&name) {
                return Err(not_member());
            }
            let id = protocol::client_id(&req.id)?;
            let text = protocol::text(&req.text, app.settings.max_message_bytes)?;
            let user = session.user.name.clone();
            let appended = with_room(&app, &name, |h| {
                let (user, id, text) = (user.clone(), id.clone(), text.clone());
                let sid = socket.id();
                async move { h.post(&user, id, text, Some(sid)).await }
            })
            .await??;
            Ok(ok(
                json!({"message": appended.message, "duplicate": appended.duplicate}),
            ))
        },
    );

    command(
        socket,
        app,
        "history",
        |app, session, socket, req: HistoryReq| async move {
            let name = protocol::room_name(&req.room)?;
            if app.store.room(&name).await.map_err(store_error)?.is_none() {
                return Err(ChatError::new(Code::NoSuchRoom, "no such room"));
            }
            access::check_read(&app, &Viewer::of(&socket, session.name()), &name).await?;
            Ok(ok(
                page(&app, &name, req.before, req.after, req.limit).await?
            ))
        },
    );

    command(
        socket,
        app,
        "typing",
        |app, session, socket, req: TypingReq| async move {
            let name = protocol::room_name(&req.room)?;
            if !session.is_member(&name) {
                return Err(not_member());
            }
            let user = session.user.name.clone();
            with_room(&app, &name, |h| {
                let user = user.clone();
                let sid = socket.id();
                async move { h.typing(&user, sid, req.typing).await }
            })
            .await?;
            Ok(ok(json!({})))
        },
    );

    command(
        socket,
        app,
        "dm:send",
        |app, session, socket, req: DmReq| async move {
            let to = protocol::user_name(&req.to)?;
            let id = protocol::client_id(&req.id)?;
            let text = protocol::text(&req.text, app.settings.max_message_bytes)?;
            let room = protocol::direct_room(&session.user.name, &to);
            let known = app.identities.is_online(&to).await?
                || app.store.room(&room).await.map_err(store_error)?.is_some();
            if !known || to.eq_ignore_ascii_case(&session.user.name) {
                return Err(ChatError::new(Code::UnknownUser, "no such user online"));
            }
            let info = RoomInfo {
                name: room.clone(),
                topic: String::new(),
                kind: RoomKind::Direct,
                created_at: now_ms(),
            };
            let mut appended = None;
            for _ in 0..3 {
                let handle = app.registry.get_or_create(info.clone()).await?;
                match handle
                    .post(
                        &session.user.name,
                        id.clone(),
                        text.clone(),
                        Some(socket.id()),
                    )
                    .await
                {
                    Ok(result) => {
                        appended = Some(result?);
                        break;
                    }
                    Err(RoomGone) => continue,
                }
            }
            let appended = appended.ok_or_else(unavailable)?;
            if !appended.duplicate {
                app.metrics.direct_message();
            }
            Ok(ok(
                json!({"message": appended.message, "duplicate": appended.duplicate}),
            ))
        },
    );

    command(
        socket,
        app,
        "dm:history",
        |app, session, _socket, req: DmHistoryReq| async move {
            let with = protocol::user_name(&req.with)?;
            let room = protocol::direct_room(&session.user.name, &with);
            let mut body = page(&app, &room, req.before, req.after, req.limit).await?;
            if let Value::Object(fields) = &mut body {
                fields.insert("with".into(), json!(with));
                fields.insert("room".into(), json!(room));
            }
            Ok(ok(body))
        },
    );
}

fn unavailable() -> ChatError {
    ChatError::new(Code::Unavailable, "storage is unavailable, try again")
}

fn not_member() -> ChatError {
    ChatError::new(Code::NotMember, "join the room first")
}

impl From<RoomGone> for ChatError {
    fn from(_: RoomGone) -> Self {
        unavailable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_payloads_are_parsed_and_checked() {
        let send = json!({"room": "General", "id": "a1", "text": "hi"});
        assert_eq!(check_command("message:send", send, 10), Ok(()));
        let code =
            |name: &str, payload: Value| check_command(name, payload, 10).map_err(|e| e.code);
        assert_eq!(code("message:send", json!("hi")), Err(Code::BadRequest));
        assert_eq!(code("message:send", Value::Null), Err(Code::BadRequest));
        let long = json!({"room": "general", "id": "a1", "text": "x".repeat(11)});
        assert_eq!(code("message:send", long), Err(Code::TooLong));
        assert_eq!(
            code("room:join", json!({"room": "a b"})),
            Err(Code::InvalidRoomName)
        );
        assert_eq!(
            code("room:join", json!({"room": "a", "since": -1})),
            Err(Code::BadRequest)
        );
        assert_eq!(
            code("dm:history", json!({"with": "x"})),
            Err(Code::InvalidName)
        );
        assert_eq!(code("rooms:list", Value::Null), Ok(()));
        assert_eq!(code("rooms:list", json!({})), Ok(()));
        assert_eq!(code("no such command", json!(1)), Ok(()));
    }
}
