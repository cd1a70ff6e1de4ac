//! Who belongs to a room, with which role, and who may enter a private one.
//!
//! Only accounts are members (a guest's name is not theirs for good); users are known by their
//! name key (the lowercased confusable skeleton, as accounts are). Invite links are stored as
//! the SHA-256 (hex) of their token.

use serde::Serialize;

use super::{BoxFuture, RoomInfo, StoreError};

/// A member's rights in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads and writes.
    Member,
    /// Also invites, and moderates.
    Moderator,
    /// Also changes roles.
    Owner,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Moderator => "moderator",
            Role::Owner => "owner",
        }
    }

    /// A stored or wire name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "member" => Some(Role::Member),
            "moderator" => Some(Role::Moderator),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

/// A membership to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMember {
    /// The room.
    pub room: String,
    /// The user's name key.
    pub key: String,
    /// The user's name as shown.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// When, ms since the epoch.
    pub joined_at: i64,
}

/// A room's member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The user's name as shown.
    #[serde(rename = "user")]
    pub name: String,
    /// Their role.
    pub role: Role,
    /// Since when, ms since the epoch.
    pub joined_at: i64,
}

/// A room a user belongs to, with where they are in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MyRoom {
    /// The room.
    #[serde(rename = "name")]
    pub room: String,
    /// The user's role.
    pub role: Role,
    /// Their read marker: the last message they have read.
    pub read: u64,
    /// Messages after the marker not sent by them, counted up to [`MAX_UNREAD`].
    pub unread: u64,
}

/// Unread messages are counted up to this many ("1000+").
pub const MAX_UNREAD: u64 = 1000;

/// An invite link to a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomInvite {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The room it opens.
    pub room: String,
    /// The account that made it.
    pub created_by: String,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Expiry, ms since the epoch.
    pub expires_at: i64,
}

/// Room memberships, privacy and invite links, durably. Implemented by every message store.
pub trait MemberStore: Send + Sync + 'static {
    /// Creates a room, private or not, with its owner as first member, in one step; false
    /// when a room of this name exists (nothing is changed then).
    fn create_room_owned(
        &self,
        info: RoomInfo,
        private: bool,
        owner: Option<NewMember>,
    ) -> BoxFuture<Result<bool, StoreError>>;
    /// Whether a room is private (false for an unknown one).
    fn is_private(&self, room: &str) -> BoxFuture<Result<bool, StoreError>>;
    /// The names of the private rooms.
    fn private_rooms(&self) -> BoxFuture<Result<Vec<String>, StoreError>>;
    /// Adds a member; one already there keeps their role. Returns the role they have.
    fn add_member(&self, member: NewMember) -> BoxFuture<Result<Role, StoreError>>;
    /// Changes a member's role; false when they are not a member.
    fn set_role(&self, room: &str, key: &str, role: Role) -> BoxFuture<Result<bool, StoreError>>;
    /// Removes a member; false when they were not one.
    fn remove_member(&self, room: &str, key: &str) -> BoxFuture<Result<bool, StoreError>>;
    /// One member of a room.
    fn member(&self, room: &str, key: &str) -> BoxFuture<Result<Option<Member>, StoreError>>;
    /// A room's members, by name.
    fn members(&self, room: &str) -> BoxFuture<Result<Vec<Member>, StoreError>>;
    /// The rooms a user (name key `key`, sender key `sender`: their lowercased name) is a
    /// member of, by room name.
    fn rooms_of(&self, key: &str, sender: &str) -> BoxFuture<Result<Vec<MyRoom>, StoreError>>;
    /// Moves a member's read marker forward to `seq` (at most the room's last message);
    /// the marker then, `None` when they are not a member.
    fn set_read(
        &self,
        room: &str,
        key: &str,
        seq: u64,
    ) -> BoxFuture<Result<Option<u64>, StoreError>>;
    /// Stores an invite link.
    fn create_room_invite(&self, invite: RoomInvite) -> BoxFuture<Result<(), StoreError>>;
    /// The room an unexpired invite link opens at `now`.
    fn room_invite(
        &self,
        token_hash: &str,
        now: i64,
    ) -> BoxFuture<Result<Option<String>, StoreError>>;
}

#[cfg(test)]
pub(crate) mod contract {
    //! What every member store does.
    use super::*;
    use crate::store::{NewMessage, RoomKind, Store};

    fn room(name: &str) -> RoomInfo {
        RoomInfo {
            name: name.into(),
            topic: String::new(),
            kind: RoomKind::Room,
            created_at: 1,
        }
    }

    fn member(room: &str, name: &str, role: Role) -> NewMember {
        NewMember {
            room: room.into(),
            key: name.to_lowercase(),
            name: name.into(),
            role,
            joined_at: 10,
        }
    }

    pub(crate) async fn run<S: MemberStore + Store>(store: &S) {
        let messages: &dyn Store = store;
        let owner = member("secret", "Ann", Role::Owner);
        assert!(store
            .create_room_owned(room("secret"), true, Some(owner))
            .await
            .unwrap());
        // Taken: nothing changes, not even the privacy or the owner.
        assert!(!store
            .create_room_owned(
                room("secret"),
                false,
                Some(member("secret", "Bob", Role::Owner))
            )
            .await
            .unwrap());
        assert!(store
            .create_room_owned(room("open"), false, None)
            .await
            .unwrap());
        assert!(store.is_private("secret").await.unwrap());
        assert!(!store.is_private("open").await.unwrap());
        assert!(!store.is_private("nowhere").await.unwrap());
        assert_eq!(store.private_rooms().await.unwrap(), ["secret"]);
        assert_eq!(store.member("secret", "bob").await.unwrap(), None);
        // A member added again keeps their role.
        let bob = member("secret", "Bob", Role::Member);
        assert_eq!(store.add_member(bob.clone()).await.unwrap(), Role::Member);
        assert!(store
            .set_role("secret", "bob", Role::Moderator)
            .await
            .unwrap());
        assert_eq!(store.add_member(bob).await.unwrap(), Role::Moderator);
        assert!(!store.set_role("secret", "carl", Role::Owner).await.unwrap());
        store
            .add_member(member("open", "Bob", Role::Member))
            .await
            .unwrap();
        let names = |list: Vec<Member>| {
            list.into_iter()
                .map(|m| (m.name, m.role))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(store.members("secret").await.unwrap()),
            [("Ann".into(), Role::Owner), ("Bob".into(), Role::Moderator)]
        );
        let mine = |list: Vec<MyRoom>| {
            list.into_iter()
                .map(|r| (r.room, r.role, r.read, r.unread))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            mine(store.rooms_of("bob", "bob").await.unwrap()),
            [
                ("open".to_string(), Role::Member, 0, 0),
                ("secret".to_string(), Role::Moderator, 0, 0)
            ]
        );
        // Unread: the messages after the marker, but one's own.
        for (id, user) in [("1", "Ann"), ("2", "bob"), ("3", "Ann"), ("4", "Ann")] {
            let m = NewMessage {
                room: "secret".into(),
                client_id: id.into(),
                user: user.into(),
                text: "t".into(),
                ts: 1,
            };
            messages.append(m).await.unwrap();
        }
        let unread = |list: Vec<MyRoom>| {
            list.iter()
                .find(|r| r.room == "secret")
                .map(|r| (r.read, r.unread))
        };
        assert_eq!(
            unread(store.rooms_of("bob", "bob").await.unwrap()),
            Some((0, 3))
        );
        assert_eq!(store.set_read("secret", "bob", 3).await.unwrap(), Some(3));
        // Never back, never past the last message.
        assert_eq!(store.set_read("secret", "bob", 1).await.unwrap(), Some(3));
        assert_eq!(
            unread(store.rooms_of("bob", "bob").await.unwrap()),
            Some((3, 1))
        );
        assert_eq!(store.set_read("secret", "bob", 99).await.unwrap(), Some(4));
        assert_eq!(
            unread(store.rooms_of("bob", "bob").await.unwrap()),
            Some((4, 0))
        );
        assert_eq!(store.set_read("secret", "carl", 2).await.unwrap(), None);
        assert!(store.remove_member("open", "bob").await.unwrap());
        assert!(!store.remove_member("open", "bob").await.unwrap());
        assert_eq!(store.rooms_of("bob", "bob").await.unwrap().len(), 1);
        // Invite links: by hash, until they expire.
        store
            .create_room_invite(RoomInvite {
                token_hash: "h1".into(),
                room: "secret".into(),
                created_by: "Ann".into(),
                created_at: 10,
                expires_at: 100,
            })
            .await
            .unwrap();
        assert_eq!(
            store.room_invite("h1", 50).await.unwrap().as_deref(),
            Some("secret")
        );
        assert_eq!(store.room_invite("h1", 100).await.unwrap(), None);
        assert_eq!(store.room_invite("h2", 50).await.unwrap(), None);
    }
}
