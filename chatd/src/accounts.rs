//! Accounts: registration, login, sessions, password changes and invites (see
//! `docs/protocol.md`, "Accounts").
//!
//! Passwords are hashed with Argon2id (OWASP's parameters: 19 MiB, 2 passes) on the blocking
//! pool, a few at a time ([`Hasher`]), so a flood of logins cannot take the runtime's threads.
//! Session tokens are 32 random bytes from the OS; the store keeps only their SHA-256, which
//! is also what a token is looked up by (no comparison of secrets in this process).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::Engine as _;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::{Registration, Settings};
use crate::identity::{alias_key, primary_key};
use crate::limits::TokenBucket;
use crate::protocol::{self, ChatError, Code};
use crate::store::{
    now_ms, Account, AccountStore, Created, Invite, NewAccount, NewSession, SessionInfo, StoreError,
};

/// The session cookie's name.
pub const COOKIE: &str = "chatd_session";
/// Longest token, invite code or session id accepted (longer ones are not ours).
pub const MAX_TOKEN: usize = 128;
/// Password length in characters.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=256;
/// Hashes waiting for a free hasher at most; more are answered `overloaded`.
pub const MAX_WAITING_HASHES: usize = 64;
/// Addresses or names a rate limiter remembers at most.
pub const MAX_LIMITED_KEYS: usize = 10_000;
/// How long an invite code is valid by default.
pub const INVITE_HOURS: u64 = 7 * 24;

/// A signed-in request or connection: the account and the session it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authed {
    /// The account.
    pub account: Account,
    /// The session.
    pub session: SessionInfo,
    /// SHA-256 of the token, hex (to find the session again).
    pub token_hash: String,
}

/// A new session: the token goes to the client once, never stored.
#[derive(Clone, Debug)]
pub struct LoggedIn {
    /// The account and session.
    pub authed: Authed,
    /// The token (base64url, 43 characters).
    pub token: String,
}

/// `n` random bytes from the OS, base64url without padding.
pub fn random_token(n: usize) -> Result<String, ChatError> {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).map_err(|e| {
        tracing::error!(%e, "the OS random number generator failed");
        unavailable()
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a token or code, lowercase hex.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The identity token of an account's connections: every tab and node of one account holds
/// the name together. Guests cannot claim an account's name, so they never present it. (16 to
/// 64 characters, as the identity actor takes.)
pub fn identity_token(account: &Account) -> String {
    format!("account:{:020}", account.id)
}

/// The Socket.IO room of a session's `/chat` connections, which end with it.
pub fn session_group(session_id: &str) -> String {
    format!("session:{session_id}")
}

fn unavailable() -> ChatError {
    ChatError::new(Code::Unavailable, "storage is unavailable, try again")
}

fn store_error(e: StoreError) -> ChatError {
    match e {
        StoreError::Overloaded => crate::registry::overloaded(),
        other => {
            tracing::warn!(error = %other, "account store");
            unavailable()
        }
    }
}

fn invalid_credentials() -> ChatError {
    ChatError::new(Code::InvalidCredentials, "wrong name or password")
}

/// Checks a new password: 8 to 256 characters, not only white space.
pub fn check_password(password: &str) -> Result<(), ChatError> {
    let chars = password.chars().count();
    if !PASSWORD_CHARS.contains(&chars) || password.trim().is_empty() {
        return Err(ChatError::new(
            Code::InvalidPassword,
            "passwords are 8 to 256 characters",
        ));
    }
    Ok(())
}

/// Runs Argon2id on the blocking pool, `permits` at a time, with at most
/// [`MAX_WAITING_HASHES`] waiting.
pub struct Hasher {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

/// One hash waiting for a hasher; counted out however the wait ends (a request dropped by its
/// client too).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hasher {
    /// A hasher running `permits` hashes at once.
    pub fn new(permits: usize) -> Hasher {
        Hasher {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ChatError> {
        let waiting = Waiting(self.waiting.clone());
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING_HASHES {
            return Err(crate::registry::overloaded());
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| unavailable())?;
        drop(waiting);
        // The permit goes with the work: a caller that stops waiting does not free it early.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(|_| unavailable())
    }

    /// The PHC string of `password` with a fresh salt.
    pub async fn hash(&self, password: &str) -> Result<String, ChatError> {
        let password = password.to_owned();
        self.run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
        })
        .await?
        .map_err(|e| {
            tracing::error!(%e, "password hashing failed");
            unavailable()
        })
    }

    /// Whether `password` matches the PHC string `hash` (false for a malformed one).
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, ChatError> {
        let (password, hash) = (password.to_owned(), hash.to_owned());
        self.run(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
    }
}

/// Token buckets by key (an address, a name): `per_minute` attempts a minute, as many at once.
/// At most [`MAX_LIMITED_KEYS`] keys; when full, the key with the most tokens left goes.
pub struct Limiter {
    per_minute: f64,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl Limiter {
    /// A limiter of `per_minute` attempts a minute (at least one).
    pub fn new(per_minute: u32) -> Limiter {
        Limiter {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes an attempt for `key`; false when it has none left.
    pub fn allow(&self, key: &str, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(key) && buckets.len() >= MAX_LIMITED_KEYS {
            // Refilled buckets first; else the one furthest from its limit.
            buckets.retain(|_, b| !b.is_full(now));
            if buckets.len() >= MAX_LIMITED_KEYS {
                let fullest = buckets
                    .iter_mut()
                    .map(|(k, b)| (b.available(now), k.clone()))
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, k)| k);
                if let Some(k) = fullest {
                    buckets.remove(&k);
                }
            }
        }
        buckets
            .entry(key.to_owned())
            .or_insert_with(|| TokenBucket::new(self.per_minute / 60.0, self.per_minute))
            .try_take(now)
    }

    /// Seconds until an attempt is certainly allowed again.
    pub fn retry_after(&self) -> u64 {
        (60.0 / self.per_minute).ceil() as u64
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A refusal for going over a rate limit, with the seconds to wait.
pub fn rate_limited(retry_after: u64) -> (ChatError, u64) {
    (
        ChatError::new(
            Code::RateLimited,
            "too many attempts, try again in a minute",
        ),
        retry_after,
    )
}

/// An account request's failure: the error, and for `rate_limited` the seconds to wait.
pub type Refused = (ChatError, u64);

fn refused(e: ChatError) -> Refused {
    (e, 0)
}

/// The accounts service: the store, the hasher and the rate limits.
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    hasher: Hasher,
    per_ip: Limiter,
    per_account: Limiter,
    /// Who may register.
    pub registration: Registration,
    session_ms: i64,
}

impl Accounts {
    /// The service over `store` with the settings' limits.
    pub fn new(store: Arc<dyn AccountStore>, settings: &Settings) -> Accounts {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Accounts {
            store,
            hasher: Hasher::new(cores.min(4)),
            per_ip: Limiter::new(settings.auth_rate_per_ip),
            per_account: Limiter::new(settings.auth_rate_per_account),
            registration: settings.registration,
            session_ms: i64::try_from(
                Duration::from_secs(settings.session_hours.max(1) * 3600).as_millis(),
            )
            .unwrap_or(i64::MAX),
        }
    }

    fn charge_ip(&self, ip: Option<IpAddr>) -> Result<(), Refused> {
        let key = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        if self.per_ip.allow(&key, Instant::now()) {
            Ok(())
        } else {
            Err(rate_limited(self.per_ip.retry_after()))
        }
    }

    fn charge_name(&self, name: &str) -> Result<(), Refused> {
        if self.per_account.allow(&primary_key(name), Instant::now()) {
            Ok(())
        } else {
            Err(rate_limited(self.per_account.retry_after()))
        }
    }

    /// The account holding `name` or a look-alike of it.
    pub async fn find(&self, name: &str) -> Result<Option<Account>, ChatError> {
        self.store
            .find_account(&primary_key(name), &alias_key(name))
            .await
            .map_err(store_error)
    }

    /// Whether `name`, or a look-alike, is an account's.
    pub async fn is_registered(&self, name: &str) -> Result<bool, ChatError> {
        Ok(self.find(name).await?.is_some())
    }

    /// Creates an account (no session); `NameTaken` answered `name_taken`.
    pub async fn create(
        &self,
        name: &str,
        password: &str,
        admin: bool,
        invite: Option<&str>,
    ) -> Result<Account, ChatError> {
        let name = protocol::user_name(name)?;
        check_password(password)?;
        let invite = invite.map(token_hash);
        let password_hash = self.hasher.hash(password).await?;
        let new = NewAccount {
            key: primary_key(&name),
            alias: alias_key(&name),
            name,
            password_hash,
            admin,
            created_at: now_ms(),
        };
        match self
            .store
            .create_account(new, invite)
            .await
            .map_err(store_error)?
        {
            Created::Created(account) => Ok(account),
            Created::NameTaken => Err(ChatError::new(
                Code::NameTaken,
                "an account with this name (or one that looks the same) exists",
            )),
            Created::BadInvite => Err(ChatError::new(
                Code::InvalidInvite,
                "the invite code is unknown, used or expired",
            )),
        }
    }

    async fn new_session(&self, account: Account, user_agent: &str) -> Result<LoggedIn, ChatError> {
        let token = random_token(32)?;
        let now = now_ms();
        let session = SessionInfo {
            id: random_token(12)?,
            account_id: account.id,
            created_at: now,
            expires_at: now.saturating_add(self.session_ms),
            user_agent: user_agent.chars().take(200).collect(),
        };
        let token_hash = token_hash(&token);
        self.store
            .create_session(NewSession {
                token_hash: token_hash.clone(),
                info: session.clone(),
            })
            .await
            .map_err(store_error)?;
        Ok(LoggedIn {
            authed: Authed {
                account,
                session,
                token_hash,
            },
            token,
        })
    }

    /// `POST /api/register`: a new account (as `--registration` allows) and its first session.
    /// `online` tells whether a guest is using the name right now.
    pub async fn register(
        &self,
        ip: Option<IpAddr>,
        name: &str,
        password: &str,
        invite: Option<&str>,
        user_agent: &str,
        online: impl std::future::Future<Output = Result<bool, ChatError>>,
    ) -> Result<LoggedIn, Refused> {
        self.charge_ip(ip)?;
        let invite = match (self.registration, invite) {
            (Registration::Closed, _) => {
                return Err(refused(ChatError::new(
                    Code::RegistrationClosed,
                    "registration is closed",
                )))
            }
            (Registration::Invite, None) => {
                return Err(refused(ChatError::new(
                    Code::RegistrationClosed,
                    "registration needs an invite code",
                )))
            }
            (Registration::Invite, Some(code)) if code.is_empty() || code.len() > MAX_TOKEN => {
                return Err(refused(ChatError::new(
                    Code::InvalidInvite,
                    "the invite code is unknown, used or expired",
                )))
            }
            (Registration::Invite, Some(code)) => Some(code),
            // Open: an invite is not needed, and not used up.
            (Registration::Open, _) => None,
        };
        let checked = protocol::user_name(name).map_err(refused)?;
        self.charge_name(&checked)?;
        if online.await.map_err(refused)? {
            return Err(refused(ChatError::new(
                Code::NameTaken,
                "a guest online is using this name",
            )));
        }
        let account = self
            .create(&checked, password, false, invite)
            .await
            .map_err(refused)?;
        tracing::info!(user = %account.name, "account registered");
        self.new_session(account, user_agent).await.map_err(refused)
    }

    /// `POST /api/login`: a new session for the right name and password.
    pub async fn login(
        &self,
        ip: Option<IpAddr>,
        name: &str,
        password: &str,
        user_agent: &str,
    ) -> Result<LoggedIn, Refused> {
        let account = self.check_login(ip, name, password).await?;
        self.new_session(account, user_agent).await.map_err(refused)
    }

    /// The account of the right name and password, under the login rate limits; no session.
    pub async fn check_login(
        &self,
        ip: Option<IpAddr>,
        name: &str,
        password: &str,
    ) -> Result<Account, Refused> {
        self.charge_ip(ip)?;
        if name.chars().count() > 64 || password.len() > 4 * 256 {
            return Err(refused(invalid_credentials()));
        }
        self.charge_name(name)?;
        let Some(account) = self.find(name).await.map_err(refused)? else {
            // As long as a real check: whether a name exists does not show in the time taken.
            self.hasher.hash(password).await.map_err(refused)?;
            return Err(refused(invalid_credentials()));
        };
        if !self
            .hasher
            .verify(password, &account.password_hash)
            .await
            .map_err(refused)?
        {
            return Err(refused(invalid_credentials()));
        }
        Ok(account)
    }

    /// The valid session of a token, if any.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Authed>, ChatError> {
        if token.is_empty() || token.len() > MAX_TOKEN {
            return Ok(None);
        }
        self.authenticate_hash(&token_hash(token)).await
    }

    /// The valid session of a token hash, if any.
    pub async fn authenticate_hash(&self, hash: &str) -> Result<Option<Authed>, ChatError> {
        let found = self
            .store
            .session(hash, now_ms())
            .await
            .map_err(store_error)?;
        Ok(found.map(|(session, account)| Authed {
            account,
            session,
            token_hash: hash.to_owned(),
        }))
    }

    /// Ends the session.
    pub async fn logout(&self, authed: &Authed) -> Result<(), ChatError> {
        self.store
            .delete_session(authed.account.id, &authed.session.id)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// `POST /api/password`: checks the current password, sets the new one, and ends every
    /// other session of the account; returns the ids of those it ended.
    pub async fn change_password(
        &self,
        ip: Option<IpAddr>,
        authed: &Authed,
        current: &str,
        new: &str,
    ) -> Result<Vec<String>, Refused> {
        self.charge_ip(ip)?;
        self.charge_name(&authed.account.name)?;
        check_password(new).map_err(refused)?;
        if current.len() > 4 * 256
            || !self
                .hasher
                .verify(current, &authed.account.password_hash)
                .await
                .map_err(refused)?
        {
            return Err(refused(ChatError::new(
                Code::InvalidCredentials,
                "the current password is wrong",
            )));
        }
        let hash = self.hasher.hash(new).await.map_err(refused)?;
        let others: Vec<String> = self
            .sessions(authed)
            .await
            .map_err(refused)?
            .into_iter()
            .map(|s| s.id)
            .filter(|id| *id != authed.session.id)
            .collect();
        self.store
            .set_password(authed.account.id, hash, Some(authed.session.id.clone()))
            .await
            .map_err(|e| refused(store_error(e)))?;
        tracing::info!(user = %authed.account.name, "password changed");
        Ok(others)
    }

    /// Sets the password of the account `name` and ends all its sessions (`chatd user passwd`).
    pub async fn reset_password(&self, name: &str, password: &str) -> Result<Account, ChatError> {
        check_password(password)?;
        let account = self
            .find(name)
            .await?
            .ok_or_else(|| ChatError::new(Code::NotFound, "no such account"))?;
        let hash = self.hasher.hash(password).await?;
        self.store
            .set_password(account.id, hash, None)
            .await
            .map_err(store_error)?;
        Ok(account)
    }

    /// Every account (`chatd user list`).
    pub async fn list(&self) -> Result<Vec<Account>, ChatError> {
        self.store.accounts().await.map_err(store_error)
    }

    /// The account's sessions.
    pub async fn sessions(&self, authed: &Authed) -> Result<Vec<SessionInfo>, ChatError> {
        self.store
            .sessions(authed.account.id, now_ms())
            .await
            .map_err(store_error)
    }

    /// Ends one of the account's sessions; false when it has none with this id.
    pub async fn revoke(&self, authed: &Authed, id: &str) -> Result<bool, ChatError> {
        if id.len() > MAX_TOKEN {
            return Ok(false);
        }
        self.store
            .delete_session(authed.account.id, id)
            .await
            .map_err(store_error)
    }

    /// A new invite code, valid for `hours`: the code, and its expiry (ms since the epoch).
    pub async fn invite(&self, by: &str, hours: u64) -> Result<(String, i64), ChatError> {
        let code = random_token(18)?;
        let now = now_ms();
        let hours = i64::try_from(hours.clamp(1, 24 * 365)).unwrap_or(1);
        let expires_at = now.saturating_add(hours * 3_600_000);
        self.store
            .create_invite(Invite {
                code_hash: token_hash(&code),
                created_by: by.to_owned(),
                created_at: now,
                expires_at,
            })
            .await
            .map_err(store_error)?;
        Ok((code, expires_at))
    }
}

/// The value of the session cookie in `Cookie` header values, if any.
pub fn cookie_token<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<String> {
    values
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value of a session (`max_age` seconds), or of its removal (`None`).
pub fn set_cookie(token: Option<&str>, max_age: u64, secure: bool) -> String {
    let (value, max_age) = match token {
        Some(token) => (token, max_age),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn settings() -> Settings {
        let mut s = Settings::defaults();
        s.auth_rate_per_ip = 1000;
        s.auth_rate_per_account = 1000;
        s
    }

    fn never_online() -> std::future::Ready<Result<bool, ChatError>> {
        std::future::ready(Ok(false))
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hasher = Hasher::new(2);
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.verify("correct horse", &hash).await.unwrap());
        assert!(!hasher.verify("correct horse!", &hash).await.unwrap());
        assert!(!hasher.verify("x", "not a hash").await.unwrap());
        // Salted: the same password hashes differently.
        assert_ne!(hasher.hash("correct horse").await.unwrap(), hash);
    }

    #[tokio::test]
    async fn hashes_waiting_are_bounded_and_counted_out_when_dropped() {
        use futures_util::FutureExt;
        let hasher = Arc::new(Hasher::new(1));
        // Hold the only hasher.
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let busy = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.run(move || held.blocking_recv()).await }
        });
        while hasher.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        // Waiters that give up (a client gone) do not count any more.
        for _ in 0..MAX_WAITING_HASHES * 2 {
            assert!(hasher.run(|| ()).now_or_never().is_none());
        }
        assert_eq!(hasher.waiting.load(Ordering::Acquire), 0);
        let mut queued: Vec<_> = (0..MAX_WAITING_HASHES)
            .map(|_| Box::pin(hasher.run(|| ())))
            .collect();
        for q in &mut queued {
            assert!(q.as_mut().now_or_never().is_none());
        }
        let over = hasher.run(|| ()).await;
        assert_eq!(over.map_err(|e| e.code), Err(Code::Overloaded));
        let _ = release.send(());
        assert!(busy.await.unwrap().is_ok());
        for q in queued {
            q.await.unwrap();
        }
        assert_eq!(hasher.waiting.load(Ordering::Acquire), 0);
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let a = random_token(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32).unwrap());
        let h = token_hash(&a);
        assert_eq!(h.len(), 64);
        assert_eq!(h, token_hash(&a));
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn cookies() {
        let headers = [
            b"a=1; chatd_session=tok; b=2".as_slice(),
            b"chatd_session=other".as_slice(),
        ];
        assert_eq!(cookie_token(headers.into_iter()).as_deref(), Some("tok"));
        assert_eq!(cookie_token([b"x=1".as_slice()].into_iter()), None);
        assert_eq!(
            cookie_token([b"chatd_session=".as_slice()].into_iter()),
            None
        );
        assert_eq!(
            set_cookie(Some("t"), 60, false),
            "chatd_session=t; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
        );
        assert!(set_cookie(None, 60, true).ends_with("Max-Age=0; HttpOnly; SameSite=Lax; Secure"));
    }

    #[test]
    fn limiter_is_per_key_and_bounded() {
        let limiter = Limiter::new(2);
        let now = Instant::now();
        assert!(limiter.allow("a", now));
        assert!(limiter.allow("a", now));
        assert!(!limiter.allow("a", now));
        assert!(limiter.allow("b", now));
        // Back after half a minute (2 a minute).
        assert!(limiter.allow("a", now + Duration::from_secs(31)));
        for i in 0..MAX_LIMITED_KEYS + 10 {
            limiter.allow(&format!("k{i}"), now);
        }
        assert!(limiter.len() <= MAX_LIMITED_KEYS);
    }

    #[tokio::test]
    async fn register_login_sessions_and_password_change() {
        let accounts = Accounts::new(Arc::new(MemoryStore::new()), &settings());
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        let first = accounts
            .register(ip, "alice", "password1", None, "ua", never_online())
            .await
            .unwrap();
        assert_eq!(first.authed.account.name, "alice");
        let again = accounts
            .register(ip, "ALICE", "password1", None, "ua", never_online())
            .await
            .unwrap_err();
        assert_eq!(again.0.code, Code::NameTaken);
        let short = accounts
            .register(ip, "bob", "short", None, "ua", never_online())
            .await
            .unwrap_err();
        assert_eq!(short.0.code, Code::InvalidPassword);
        let busy = accounts
            .register(
                ip,
                "carol",
                "password1",
                None,
                "ua",
                std::future::ready(Ok(true)),
            )
            .await
            .unwrap_err();
        assert_eq!(busy.0.code, Code::NameTaken);
        let wrong = accounts
            .login(ip, "alice", "password2", "ua")
            .await
            .unwrap_err();
        assert_eq!(wrong.0.code, Code::InvalidCredentials);
        let nobody = accounts
            .login(ip, "nobody", "password1", "ua")
            .await
            .unwrap_err();
        assert_eq!(nobody.0.code, Code::InvalidCredentials);
        let second = accounts
            .login(ip, "Alice", "password1", "ua")
            .await
            .unwrap();
        let authed = accounts.authenticate(&first.token).await.unwrap().unwrap();
        assert_eq!(authed.session.id, first.authed.session.id);
        assert_eq!(accounts.sessions(&authed).await.unwrap().len(), 2);
        // A new password keeps this session only.
        accounts
            .change_password(ip, &second.authed, "password1", "password2")
            .await
            .unwrap();
        assert_eq!(accounts.authenticate(&first.token).await.unwrap(), None);
        let current = accounts.authenticate(&second.token).await.unwrap().unwrap();
        let wrong = accounts
            .change_password(ip, &current, "password1", "password3")
            .await
            .unwrap_err();
        assert_eq!(wrong.0.code, Code::InvalidCredentials);
        assert!(accounts.login(ip, "alice", "password2", "ua").await.is_ok());
        accounts.logout(&current).await.unwrap();
        assert_eq!(accounts.authenticate(&second.token).await.unwrap(), None);
        assert_eq!(accounts.authenticate("").await.unwrap(), None);
        assert_eq!(
            accounts.authenticate(&"x".repeat(1000)).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn registration_modes_and_rate_limits() {
        let mut s = settings();
        s.registration = Registration::Invite;
        s.auth_rate_per_account = 2;
        let accounts = Accounts::new(Arc::new(MemoryStore::new()), &s);
        let ip = None;
        let err = accounts
            .register(ip, "bob", "password1", None, "", never_online())
            .await
            .unwrap_err();
        assert_eq!(err.0.code, Code::RegistrationClosed);
        let (code, _) = accounts.invite("cli", 1).await.unwrap();
        let err = accounts
            .register(ip, "bob", "password1", Some("wrong"), "", never_online())
            .await
            .unwrap_err();
        assert_eq!(err.0.code, Code::InvalidInvite);
        accounts
            .register(ip, "bob", "password1", Some(&code), "", never_online())
            .await
            .unwrap();
        let err = accounts
            .register(ip, "carl", "password1", Some(&code), "", never_online())
            .await
            .unwrap_err();
        assert_eq!(err.0.code, Code::InvalidInvite, "used up");
        // Per account: two attempts a minute (the two registrations of bob above), whatever
        // the address.
        let limited = accounts
            .login(Some(IpAddr::from([10, 0, 0, 1])), "BOB", "password1", "")
            .await
            .unwrap_err();
        assert_eq!((limited.0.code, limited.1), (Code::RateLimited, 30));
        s.registration = Registration::Closed;
        let closed = Accounts::new(Arc::new(MemoryStore::new()), &s);
        let err = closed
            .register(ip, "bob", "password1", Some(&code), "", never_online())
            .await
            .unwrap_err();
        assert_eq!(err.0.code, Code::RegistrationClosed);
    }
}
