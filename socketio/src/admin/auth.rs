//! Basic authentication of the admin namespace, as Node's: `{username, password}` checked
//! against a bcrypt hash, or `{sessionId}` from an earlier success; a refusal is
//! `invalid credentials`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;

use super::options::AdminError;
use crate::namespace::ConnectError;

/// How long a session id lets the UI back in without its password (Node's Redis store: a day).
const SESSION_LIFETIME: Duration = Duration::from_secs(86_400);
/// Most session ids kept; the oldest goes when a new one would exceed it.
const MAX_SESSIONS: usize = 1_000;
/// Bcrypt checks at once: each takes tens of milliseconds of CPU on a blocking thread.
const CONCURRENT_CHECKS: usize = 2;

/// The session id given to a socket that logged in, for the connection handler to send.
#[derive(Clone, Debug)]
pub(crate) struct NewSession(pub(crate) String);

/// Session ids handed out, in memory, with when they were made.
#[derive(Default)]
pub(crate) struct Sessions {
    ids: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new random session id, kept.
    pub(crate) fn create(&self, now: Instant) -> String {
        let id: String = rand::random::<[u8; 8]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut ids = self.lock();
        ids.retain(|_, made| now.saturating_duration_since(*made) < SESSION_LIFETIME);
        if ids.len() >= MAX_SESSIONS {
            if let Some(oldest) = ids
                .iter()
                .min_by_key(|(_, made)| **made)
                .map(|(k, _)| k.clone())
            {
                ids.remove(&oldest);
            }
        }
        ids.insert(id.clone(), now);
        id
    }

    /// Whether the id was handed out and has not expired.
    pub(crate) fn is_valid(&self, id: &str, now: Instant) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|made| now.saturating_duration_since(*made) < SESSION_LIFETIME)
    }
}

/// The username and password hash, checked on blocking threads, a few at a time.
pub(crate) struct Credentials {
    username: String,
    hash: Arc<str>,
    checks: Semaphore,
    pub(crate) sessions: Sessions,
}

impl Credentials {
    /// Refuses a hash that bcrypt cannot read (Node: "must be a valid bcrypt hash").
    pub(crate) fn new(username: String, hash: String) -> Result<Self, AdminError> {
        hash.parse::<bcrypt::HashParts>()
            .map_err(|_| AdminError::InvalidPasswordHash)?;
        Ok(Credentials {
            username,
            hash: hash.into(),
            checks: Semaphore::new(CONCURRENT_CHECKS),
            sessions: Sessions::default(),
        })
    }

    /// Lets the socket in with a valid session id, or with the right username and password,
    /// in which case it gets a new session id.
    pub(crate) async fn authenticate(
        &self,
        auth: &Value,
    ) -> Result<Option<NewSession>, ConnectError> {
        let refused = || ConnectError::new("invalid credentials");
        if let Some(Value::String(id)) = auth.get("sessionId") {
            if self.sessions.is_valid(id, Instant::now()) {
                return Ok(None);
            }
        }
        let (Some(Value::String(username)), Some(Value::String(password))) =
            (auth.get("username"), auth.get("password"))
        else {
            return Err(refused());
        };
        // The hash is checked even for a wrong username, which takes as long.
        let matches = self.check(password.clone()).await && *username == self.username;
        if !matches {
            return Err(refused());
        }
        Ok(Some(NewSession(self.sessions.create(Instant::now()))))
    }

    async fn check(&self, password: String) -> bool {
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
        };
        let hash = self.hash.clone();
        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // "changeit", as in Node's documentation; and the same made by bcryptjs ($2a$, cost 4).
    const HASH_2B: &str = "$2b$10$heqvAkYMez.Va6Et2uXInOnkCT6/uQj1brkrbyG3LpopDklcq7ZOS";

    fn creds() -> Credentials {
        let hash = bcrypt::hash("changeit", 4).unwrap_or_default();
        Credentials::new("admin".into(), hash).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn refuses_what_is_not_a_bcrypt_hash() {
        assert!(Credentials::new("a".into(), HASH_2B.into()).is_ok());
        for bad in [
            "",
            "changeit",
            "$2b$10$short",
            "$9z$10$heqvAkYMez.Va6Et2uXInOnkCT6/uQj1brkrbyG3LpopDklcq7ZOS",
        ] {
            assert_eq!(
                Credentials::new("a".into(), bad.into()).err(),
                Some(AdminError::InvalidPasswordHash),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn logs_in_then_accepts_the_session_id() {
        let c = creds();
        let session = c
            .authenticate(&json!({"username": "admin", "password": "changeit"}))
            .await;
        let Ok(Some(NewSession(id))) = session else {
            panic!("refused: {session:?}");
        };
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|ch| ch.is_ascii_hexdigit()));
        assert!(matches!(
            c.authenticate(&json!({"sessionId": id})).await,
            Ok(None)
        ));
    }

    #[tokio::test]
    async fn refuses_wrong_or_malformed_credentials() {
        let c = creds();
        for auth in [
            json!({}),
            json!({"username": "admin", "password": "wrong"}),
            json!({"username": "root", "password": "changeit"}),
            json!({"username": "admin", "password": 42}),
            json!({"sessionId": "0123456789abcdef"}),
            json!({"sessionId": 7}),
        ] {
            let err = c.authenticate(&auth).await.err();
            assert_eq!(
                err.map(|e| e.message),
                Some("invalid credentials".to_owned()),
                "{auth}"
            );
        }
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let first = s.create(t0);
        assert!(s.is_valid(&first, t0 + Duration::from_secs(60)));
        assert!(!s.is_valid(&first, t0 + SESSION_LIFETIME));
        for i in 0..MAX_SESSIONS {
            s.create(t0 + Duration::from_millis(i as u64 + 1));
        }
        assert_eq!(s.lock().len(), MAX_SESSIONS);
        assert!(!s.is_valid(&first, t0 + Duration::from_secs(1)));
    }
}
