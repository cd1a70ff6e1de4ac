//! Stored accounts, their login sessions and registration invites.
//!
//! Passwords are stored as Argon2id PHC strings, session tokens and invite codes only as their
//! SHA-256 (hex): a copy of the database gives neither a password nor a usable token.

use serde::Serialize;

use super::{BoxFuture, StoreError};

/// A registered user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Row id.
    pub id: i64,
    /// The name as registered.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Server-wide administrator.
    pub admin: bool,
    /// Registration time, ms since the epoch.
    pub created_at: i64,
}

/// An account to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    /// The name, already checked and normalised.
    pub name: String,
    /// The name's key (lowercased confusable skeleton): unique among accounts.
    pub key: String,
    /// Its second look-alike key (skeleton before lowercasing).
    pub alias: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Server-wide administrator.
    pub admin: bool,
    /// Registration time, ms since the epoch.
    pub created_at: i64,
}

/// The outcome of [`AccountStore::create_account`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// Stored.
    Created(Account),
    /// An account with this name, or one that looks the same, exists.
    NameTaken,
    /// The invite code is unknown, used or expired.
    BadInvite,
}

/// A login session of an account, as listed to its owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// Public id (random, not the token): what the owner revokes it by.
    pub id: String,
    /// The account.
    #[serde(skip)]
    pub account_id: i64,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Expiry, ms since the epoch.
    pub expires_at: i64,
    /// The `User-Agent` of the login, at most 200 characters.
    pub user_agent: String,
}

/// A session to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSession {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Everything else.
    pub info: SessionInfo,
}

/// A registration invite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    /// SHA-256 of the code, hex.
    pub code_hash: String,
    /// Who made it (an account name, or `cli`).
    pub created_by: String,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Expiry, ms since the epoch.
    pub expires_at: i64,
}

/// Accounts, sessions and invites, durably. Implemented by every message store.
pub trait AccountStore: Send + Sync + 'static {
    /// Creates an account unless its name or a look-alike is taken; with `invite` (a code
    /// hash), only if that invite is valid at `account.created_at`, which it uses up.
    fn create_account(
        &self,
        account: NewAccount,
        invite: Option<String>,
    ) -> BoxFuture<Result<Created, StoreError>>;
    /// The account whose key or alias is `key` or `alias` (a name and its look-alikes).
    fn find_account(
        &self,
        key: &str,
        alias: &str,
    ) -> BoxFuture<Result<Option<Account>, StoreError>>;
    /// Every account, by name.
    fn accounts(&self) -> BoxFuture<Result<Vec<Account>, StoreError>>;
    /// Replaces an account's password and ends all its sessions but `keep` (a session id);
    /// false when there is no such account.
    fn set_password(
        &self,
        account: i64,
        password_hash: String,
        keep: Option<String>,
    ) -> BoxFuture<Result<bool, StoreError>>;
    /// Stores a session (and drops the account's expired ones).
    fn create_session(&self, session: NewSession) -> BoxFuture<Result<(), StoreError>>;
    /// The unexpired session with this token hash at `now`, and its account.
    fn session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> BoxFuture<Result<Option<(SessionInfo, Account)>, StoreError>>;
    /// An account's unexpired sessions at `now`, oldest first.
    fn sessions(&self, account: i64, now: i64) -> BoxFuture<Result<Vec<SessionInfo>, StoreError>>;
    /// Ends one session of an account; false when it has none with this id.
    fn delete_session(&self, account: i64, id: &str) -> BoxFuture<Result<bool, StoreError>>;
    /// Stores an invite.
    fn create_invite(&self, invite: Invite) -> BoxFuture<Result<(), StoreError>>;
}

#[cfg(test)]
pub(crate) mod contract {
    //! What every account store does.
    use super::*;
    use crate::identity::{alias_key, primary_key};

    pub(crate) fn new_account(name: &str, admin: bool) -> NewAccount {
        NewAccount {
            name: name.into(),
            key: primary_key(name),
            alias: alias_key(name),
            password_hash: format!("hash of {name}"),
            admin,
            created_at: 1000,
        }
    }

    fn session(id: &str, account: i64, expires_at: i64) -> NewSession {
        NewSession {
            token_hash: format!("token {id}"),
            info: SessionInfo {
                id: id.into(),
                account_id: account,
                created_at: 1000,
                expires_at,
                user_agent: "test".into(),
            },
        }
    }

    pub(crate) async fn run(store: &dyn AccountStore) {
        let Created::Created(alice) = store
            .create_account(new_account("Alice", true), None)
            .await
            .unwrap()
        else {
            panic!("alice not created");
        };
        assert_eq!((alice.name.as_str(), alice.admin), ("Alice", true));
        // Same name in another case, or a look-alike (Cyrillic а): taken.
        for taken in ["alice", "\u{0430}lice", "ALICE"] {
            assert_eq!(
                store
                    .create_account(new_account(taken, false), None)
                    .await
                    .unwrap(),
                Created::NameTaken,
                "{taken}"
            );
        }
        let found = store
            .find_account(&primary_key("aLiCe"), &alias_key("aLiCe"))
            .await
            .unwrap();
        assert_eq!(found.as_ref().map(|a| a.id), Some(alice.id));
        assert_eq!(
            store
                .find_account(&primary_key("bob"), &alias_key("bob"))
                .await
                .unwrap(),
            None
        );
        // Invites: unknown, expired and used ones are refused.
        assert_eq!(
            store
                .create_account(new_account("bob", false), Some("nope".into()))
                .await
                .unwrap(),
            Created::BadInvite
        );
        for (code, expires_at) in [("good", 2000), ("old", 999)] {
            store
                .create_invite(Invite {
                    code_hash: code.into(),
                    created_by: "Alice".into(),
                    created_at: 500,
                    expires_at,
                })
                .await
                .unwrap();
        }
        assert_eq!(
            store
                .create_account(new_account("bob", false), Some("old".into()))
                .await
                .unwrap(),
            Created::BadInvite
        );
        // A taken name does not use the invite up.
        assert_eq!(
            store
                .create_account(new_account("alice", false), Some("good".into()))
                .await
                .unwrap(),
            Created::NameTaken
        );
        let Created::Created(bob) = store
            .create_account(new_account("bob", false), Some("good".into()))
            .await
            .unwrap()
        else {
            panic!("bob not created");
        };
        assert_eq!(
            store
                .create_account(new_account("carol", false), Some("good".into()))
                .await
                .unwrap(),
            Created::BadInvite
        );
        let names: Vec<String> = store
            .accounts()
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, vec!["Alice".to_string(), "bob".to_string()]);
        // Sessions.
        store
            .create_session(session("s1", alice.id, 5000))
            .await
            .unwrap();
        store
            .create_session(session("s2", alice.id, 5000))
            .await
            .unwrap();
        store
            .create_session(session("s3", alice.id, 1500))
            .await
            .unwrap();
        store
            .create_session(session("b1", bob.id, 5000))
            .await
            .unwrap();
        let (info, account) = store.session("token s1", 2000).await.unwrap().unwrap();
        assert_eq!((info.id.as_str(), account.id), ("s1", alice.id));
        assert_eq!(
            store.session("token s3", 2000).await.unwrap(),
            None,
            "expired"
        );
        assert_eq!(store.session("token x", 2000).await.unwrap(), None);
        let ids = |list: Vec<SessionInfo>| list.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.sessions(alice.id, 2000).await.unwrap()),
            ["s1", "s2"]
        );
        // Only the owner's sessions can be deleted by the owner.
        assert!(!store.delete_session(alice.id, "b1").await.unwrap());
        assert!(store.delete_session(alice.id, "s2").await.unwrap());
        assert!(!store.delete_session(alice.id, "s2").await.unwrap());
        assert_eq!(store.session("token s2", 2000).await.unwrap(), None);
        store
            .create_session(session("s4", alice.id, 5000))
            .await
            .unwrap();
        // A new password ends every session but the one kept.
        assert!(store
            .set_password(alice.id, "new hash".into(), Some("s4".into()))
            .await
            .unwrap());
        assert_eq!(ids(store.sessions(alice.id, 2000).await.unwrap()), ["s4"]);
        let (_, account) = store.session("token s4", 2000).await.unwrap().unwrap();
        assert_eq!(account.password_hash, "new hash");
        assert!(store
            .set_password(alice.id, "newer".into(), None)
            .await
            .unwrap());
        assert!(store.sessions(alice.id, 2000).await.unwrap().is_empty());
        assert!(!store.set_password(9999, "x".into(), None).await.unwrap());
        assert_eq!(ids(store.sessions(bob.id, 2000).await.unwrap()), ["b1"]);
    }
}
