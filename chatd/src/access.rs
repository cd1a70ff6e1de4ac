//! Who may see and enter a room: private rooms, stored members with their roles, invitations
//! and invite links. Only accounts are stored members (a guest's name is not theirs for
//! good); server administrators may do anything an owner may. A private room is invisible to
//! whoever may not enter it: it answers `no_such_room`, as a room that does not exist.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};
use socketio::Socket;

use crate::accounts::{self, Authed};
use crate::app::App;
use crate::identity::primary_key;
use crate::protocol::{self, ok, ChatError, Code};
use crate::room::store_error;
use crate::store::{now_ms, MyRoom, NewMember, Role, RoomInvite};

/// Longest and default life of an invite link.
const MAX_LINK_HOURS: u64 = 24 * 30;
const LINK_HOURS: u64 = 24 * 7;

/// Who is asking.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// Their name as shown.
    pub name: String,
    /// Their name key.
    pub key: String,
    /// Logged in with an account (not a guest).
    pub account: bool,
    /// A server administrator.
    pub admin: bool,
}

impl Viewer {
    /// The user of a `/chat` connection called `name`.
    pub fn of(socket: &Socket, name: &str) -> Viewer {
        let authed = socket.extensions().get::<Authed>();
        Viewer {
            name: name.to_owned(),
            key: primary_key(name),
            account: authed.is_some(),
            admin: authed.is_some_and(|a| a.account.admin),
        }
    }

    /// The rooms they belong to, with their read markers and unread counts.
    async fn rooms(&self, app: &App) -> Result<Vec<MyRoom>, ChatError> {
        if !self.account {
            return Ok(Vec::new());
        }
        app.members
            .rooms_of(&self.key, &self.name.to_lowercase())
            .await
            .map_err(store_error)
    }

    fn member(&self, room: &str, role: Role) -> NewMember {
        NewMember {
            room: room.to_owned(),
            key: self.key.clone(),
            name: self.name.clone(),
            role,
            joined_at: now_ms(),
        }
    }
}

/// The room does not exist, or the viewer may not know it does.
pub fn no_such_room() -> ChatError {
    ChatError::new(Code::NoSuchRoom, "no such room")
}

fn forbidden(what: &str) -> ChatError {
    ChatError::new(Code::Forbidden, what)
}

/// The viewer's role in a room: their stored one (an administrator's is at least that of an
/// owner in a private room, a moderator's in a public one), `None` if they have none.
pub async fn role_in(app: &App, viewer: &Viewer, room: &str) -> Result<Option<Role>, ChatError> {
    let stored = if viewer.account {
        app.members
            .member(room, &viewer.key)
            .await
            .map_err(store_error)?
            .map(|m| m.role)
    } else {
        None
    };
    Ok(if viewer.admin {
        Some(Role::Owner)
    } else {
        stored
    })
}

/// May the viewer read `room` (its history, its members)? A public room: anyone.
pub async fn check_read(app: &App, viewer: &Viewer, room: &str) -> Result<(), ChatError> {
    if !app.members.is_private(room).await.map_err(store_error)? {
        return Ok(());
    }
    match role_in(app, viewer, room).await? {
        Some(_) => Ok(()),
        None => Err(no_such_room()),
    }
}

/// Lets the viewer into `room` before a join, with an invite link's token if they have one:
/// an account becomes (or stays) a stored member, so the room comes back on every device.
pub async fn enter(
    app: &App,
    viewer: &Viewer,
    room: &str,
    invite: Option<&str>,
) -> Result<(), ChatError> {
    let private = app.members.is_private(room).await.map_err(store_error)?;
    if private && role_in(app, viewer, room).await?.is_none() {
        let opened = match invite {
            Some(token) if viewer.account => app
                .members
                .room_invite(&accounts::token_hash(token), now_ms())
                .await
                .map_err(store_error)?,
            _ => None,
        };
        if opened.as_deref() != Some(room) {
            return Err(no_such_room());
        }
    }
    if viewer.account && app.store.room(room).await.map_err(store_error)?.is_some() {
        app.members
            .add_member(viewer.member(room, Role::Member))
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

/// Creates a room: the viewer (an account) becomes its owner. Private rooms need an account.
pub async fn create(
    app: &App,
    viewer: &Viewer,
    room: &str,
    topic: &str,
    private: bool,
) -> Result<(), ChatError> {
    if private && !viewer.account {
        return Err(ChatError::new(
            Code::AuthRequired,
            "log in to create a private room",
        ));
    }
    let info = crate::store::RoomInfo {
        name: room.to_owned(),
        topic: topic.to_owned(),
        kind: crate::store::RoomKind::Room,
        created_at: now_ms(),
    };
    let owner = viewer.account.then(|| viewer.member(room, Role::Owner));
    let created = app
        .members
        .create_room_owned(info, private, owner)
        .await
        .map_err(store_error)?;
    if created {
        Ok(())
    } else {
        Err(ChatError::new(
            Code::RoomExists,
            "a room with this name exists",
        ))
    }
}

/// Leaves a room for good: the stored membership goes (the live connections go by `room:leave`).
pub async fn leave(app: &App, viewer: &Viewer, room: &str) -> Result<(), ChatError> {
    if viewer.account {
        app.members
            .remove_member(room, &viewer.key)
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

/// The rooms `rooms:list` shows the viewer: their role per room, and the private rooms they
/// may not see.
pub struct Listing {
    mine: std::collections::HashMap<String, MyRoom>,
    private: std::collections::HashSet<String>,
    hidden: std::collections::HashSet<String>,
}

impl Listing {
    /// Reads what the viewer may see.
    pub async fn of(app: &App, viewer: &Viewer) -> Result<Listing, ChatError> {
        let mine: std::collections::HashMap<String, MyRoom> = viewer
            .rooms(app)
            .await?
            .into_iter()
            .map(|r| (r.room.clone(), r))
            .collect();
        let private = app.members.private_rooms().await.map_err(store_error)?;
        let hidden = if viewer.admin {
            Default::default()
        } else {
            private
                .iter()
                .filter(|r| !mine.contains_key(*r))
                .cloned()
                .collect()
        };
        Ok(Listing {
            mine,
            private: private.into_iter().collect(),
            hidden,
        })
    }

    /// Whether the viewer may see `room` listed.
    pub fn shows(&self, room: &str) -> bool {
        !self.hidden.contains(room)
    }

    /// The fields `rooms:list` adds to a room: private or not, the viewer's role, and their
    /// unread messages there (members only).
    pub fn fields(&self, room: &str) -> (bool, Option<Role>, Option<u64>) {
        let mine = self.mine.get(room);
        (
            self.private.contains(room),
            mine.map(|r| r.role),
            mine.map(|r| r.unread),
        )
    }
}

#[derive(Deserialize)]
struct InviteReq {
    room: String,
    user: String,
}

#[derive(Deserialize)]
struct LinkReq {
    room: String,
    hours: Option<u64>,
}

#[derive(Deserialize)]
struct RoleReq {
    room: String,
    user: String,
    role: String,
}

#[derive(Deserialize)]
struct RoomReq {
    room: String,
}

#[derive(Deserialize)]
struct ReadReq {
    room: String,
    seq: u64,
}

/// The right to invite: a moderator in a private room, any member in a public one.
async fn may_invite(app: &App, viewer: &Viewer, room: &str) -> Result<(), ChatError> {
    if !viewer.account {
        return Err(ChatError::new(Code::AuthRequired, "log in to invite"));
    }
    let private = app.members.is_private(room).await.map_err(store_error)?;
    match role_in(app, viewer, room).await? {
        None if private => Err(no_such_room()),
        None => Err(ChatError::new(Code::NotMember, "join the room first")),
        Some(Role::Member) if private => Err(forbidden("only moderators and owners invite here")),
        Some(_) => Ok(()),
    }
}

/// The commands of this module, on a `/chat` connection of `user`.
pub fn register(socket: &Socket, app: &Arc<App>) {
    crate::chat::command(
        socket,
        app,
        "room:invite",
        |app, session, socket, req: InviteReq| async move {
            let room = protocol::room_name(&req.room)?;
            let viewer = Viewer::of(&socket, session.name());
            may_invite(&app, &viewer, &room).await?;
            let Some(account) = app.accounts.find(&req.user).await? else {
                return Err(ChatError::new(Code::UnknownUser, "no such account"));
            };
            let invitee = Viewer {
                name: account.name.clone(),
                key: primary_key(&account.name),
                account: true,
                admin: account.admin,
            };
            app.members
                .add_member(invitee.member(&room, Role::Member))
                .await
                .map_err(store_error)?;
            // Their connections on this node learn it now; elsewhere, from `rooms:list`.
            let _ = socket
                .within(crate::deliver::user_group(&account.name))
                .emit("invited", json!({"room": room, "by": viewer.name}));
            Ok(ok(json!({"user": account.name})))
        },
    );

    crate::chat::command(
        socket,
        app,
        "room:invite_link",
        |app, session, socket, req: LinkReq| async move {
            let room = protocol::room_name(&req.room)?;
            let viewer = Viewer::of(&socket, session.name());
            may_invite(&app, &viewer, &room).await?;
            let hours = req.hours.unwrap_or(LINK_HOURS);
            if hours == 0 || hours > MAX_LINK_HOURS {
                return Err(ChatError::new(
                    Code::BadRequest,
                    format!("hours must be 1 to {MAX_LINK_HOURS}"),
                ));
            }
            let token = accounts::random_token(24)?;
            let now = now_ms();
            let expires_at = now.saturating_add((hours * 3_600_000) as i64);
            app.members
                .create_room_invite(RoomInvite {
                    token_hash: accounts::token_hash(&token),
                    room: room.clone(),
                    created_by: viewer.name.clone(),
                    created_at: now,
                    expires_at,
                })
                .await
                .map_err(store_error)?;
            Ok(ok(
                json!({"room": room, "invite": token, "expires_at": expires_at}),
            ))
        },
    );

    crate::chat::command(
        socket,
        app,
        "room:members",
        |app, session, socket, req: RoomReq| async move {
            let room = protocol::room_name(&req.room)?;
            let viewer = Viewer::of(&socket, session.name());
            if app.store.room(&room).await.map_err(store_error)?.is_none() {
                return Err(no_such_room());
            }
            check_read(&app, &viewer, &room).await?;
            let members = app.members.members(&room).await.map_err(store_error)?;
            Ok(ok(json!({"room": room, "members": members})))
        },
    );

    crate::chat::command(
        socket,
        app,
        "room:read",
        |app, session, socket, req: ReadReq| async move {
            let room = protocol::room_name(&req.room)?;
            let viewer = Viewer::of(&socket, session.name());
            if !viewer.account {
                return Err(ChatError::new(
                    Code::AuthRequired,
                    "guests have no read markers",
                ));
            }
            let Some(read) = app
                .members
                .set_read(&room, &viewer.key, req.seq)
                .await
                .map_err(store_error)?
            else {
                return Err(ChatError::new(Code::NotMember, "not a member of the room"));
            };
            // The user's other connections: here at once, on other nodes through the room.
            let event = json!({"room": room, "seq": read});
            let _ = socket
                .within(crate::deliver::user_group(&viewer.name))
                .emit("read", event);
            if let Some(cluster) = &app.cluster {
                cluster.publish_room(
                    &room,
                    crate::cluster::RoomEvent::Read {
                        user: viewer.name.clone(),
                        seq: read,
                    },
                );
            }
            Ok(ok(json!({"room": room, "seq": read})))
        },
    );

    crate::chat::command(
        socket,
        app,
        "room:role",
        |app, session, socket, req: RoleReq| async move {
            let room = protocol::room_name(&req.room)?;
            let viewer = Viewer::of(&socket, session.name());
            let Some(role) = Role::parse(&req.role) else {
                return Err(ChatError::new(
                    Code::BadRequest,
                    "role must be owner, moderator or member",
                ));
            };
            match role_in(&app, &viewer, &room).await? {
                Some(Role::Owner) => {}
                None if app.members.is_private(&room).await.map_err(store_error)? => {
                    return Err(no_such_room())
                }
                _ => return Err(forbidden("only owners change roles")),
            }
            let key = primary_key(&req.user);
            if !app
                .members
                .set_role(&room, &key, role)
                .await
                .map_err(store_error)?
            {
                return Err(ChatError::new(
                    Code::UnknownUser,
                    "not a member of the room",
                ));
            }
            Ok(ok(json!({"room": room, "user": req.user, "role": role})))
        },
    );
}

/// The rooms the viewer belongs to, for the `session` event: the rooms that come back on every
/// device, with the read marker and unread count of each.
pub async fn my_rooms(app: &App, viewer: &Viewer) -> Value {
    match viewer.rooms(app).await {
        Ok(rooms) => json!(rooms),
        Err(_) => json!([]),
    }
}
