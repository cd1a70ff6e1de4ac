//! The identity actor: which names are online, held by which connections, with which resume
//! token. A name is unique among online users, case-insensitively and up to look-alikes (the
//! confusable skeleton of Unicode TR39: Latin `a` and Cyrillic `а`, fullwidth `ａ`, `l` and `I`
//! are the same name). When a user's last connection goes, the name stays reserved for the
//! grace period, and the resume token takes it back; several tabs with the same token share one
//! identity.
//!
//! Requests queue in a bounded mailbox ([`MAILBOX`]): a claim or a question that finds it full
//! is answered `overloaded` at once. A release waits for room instead (it must not be lost);
//! there is at most one per connection, and the actor never waits on anything.
//!
//! In cluster mode a name this node does not hold yet is leased in Redis first ([`Names`]);
//! the actor renews the leases of every name it holds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use engineio::Sid;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::cluster::names::{Lease, Names};
use crate::protocol::{ChatError, Code};

/// An identity granted to a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The name as the user spelled it.
    pub name: String,
    /// The secret that takes the name back after a reconnect.
    pub token: String,
}

/// The actor's answer to a claim.
enum Local {
    /// Decided here.
    Done(Result<Claimed, ChatError>),
    /// Nobody holds it on this node: lease it in Redis with this token, then adopt it.
    Lease(String),
}

enum Command {
    Claim {
        name: String,
        token: Option<String>,
        socket: Sid,
        reply: oneshot::Sender<Local>,
    },
    /// A name leased in Redis, held from now on by this node too.
    Adopt {
        name: String,
        token: String,
        socket: Sid,
        reply: oneshot::Sender<Result<Claimed, ChatError>>,
    },
    Release {
        name: String,
        socket: Sid,
    },
    Online {
        name: String,
        reply: oneshot::Sender<bool>,
    },
    Count {
        reply: oneshot::Sender<usize>,
    },
}

/// The key a name is held under: the TR39 skeleton of the lowercased name.
pub(crate) fn primary_key(name: &str) -> String {
    let lower = name.to_lowercase();
    unicode_security::skeleton(&lower)
        .collect::<String>()
        .to_lowercase()
}

/// A second key: the skeleton before lowercasing, where capital `I` still looks like `l`.
pub(crate) fn alias_key(name: &str) -> String {
    unicode_security::skeleton(name)
        .collect::<String>()
        .to_lowercase()
}

/// The names held: holders by primary key, and the alias keys that differ from it.
#[derive(Default)]
struct Held {
    holders: HashMap<String, Holder>,
    aliases: HashMap<String, String>,
}

impl Held {
    /// The primary key of a held name that `name` is the same as or looks like.
    fn find(&self, name: &str) -> Option<String> {
        [primary_key(name), alias_key(name)]
            .into_iter()
            .find_map(|k| {
                if self.holders.contains_key(&k) {
                    Some(k)
                } else {
                    self.aliases.get(&k).cloned()
                }
            })
    }

    fn insert(&mut self, holder: Holder) {
        let (primary, alias) = (primary_key(&holder.name), alias_key(&holder.name));
        if alias != primary {
            self.aliases.insert(alias, primary.clone());
        }
        self.holders.insert(primary, holder);
    }

    /// Drops the names whose grace ended; returns them.
    fn expire(&mut self, now: Instant) -> Vec<Holder> {
        let gone: Vec<String> = self
            .holders
            .iter()
            .filter(|(_, h)| h.release_at.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        let gone: Vec<Holder> = gone.iter().filter_map(|k| self.holders.remove(k)).collect();
        let holders = &self.holders;
        self.aliases.retain(|_, p| holders.contains_key(p));
        gone
    }
}

struct Holder {
    name: String,
    token: String,
    sockets: HashSet<Sid>,
    release_at: Option<Instant>,
}

/// Requests the identity actor holds at most.
pub const MAILBOX: usize = 8192;

/// A handle to the identity actor.
#[derive(Clone)]
pub struct Identities {
    tx: mpsc::Sender<Command>,
    names: Option<Arc<Names>>,
}

/// The Redis keys of a name: its primary key and, when it differs, its look-alike key.
fn lease_keys(names: &Names, name: &str) -> Vec<String> {
    let (primary, alias) = (primary_key(name), alias_key(name));
    let mut keys = vec![names.key(&primary)];
    if alias != primary {
        keys.push(names.key(&alias));
    }
    keys
}

fn closed() -> ChatError {
    ChatError::new(Code::Unavailable, "server is shutting down")
}

impl Identities {
    /// Starts the actor.
    pub fn start(grace: Duration) -> Identities {
        Self::start_with(grace, MAILBOX, None)
    }

    /// Starts the actor for a cluster: names are leased in Redis.
    pub fn start_cluster(grace: Duration, names: Arc<Names>) -> Identities {
        Self::start_with(grace, MAILBOX, Some(names))
    }

    /// Starts the actor with a mailbox of `mailbox` requests.
    pub(crate) fn start_with(
        grace: Duration,
        mailbox: usize,
        names: Option<Arc<Names>>,
    ) -> Identities {
        let (tx, mut rx) = mpsc::channel::<Command>(mailbox.max(1));
        let renewer = names.clone().map(start_renewer);
        // Leases are renewed three times per lease period.
        let renew_every = names
            .as_ref()
            .map_or(Duration::from_secs(3600), |n| n.lease() / 3);
        let leasing = names.is_some();
        tokio::spawn(async move {
            let mut held = Held::default();
            let mut renew = tokio::time::interval(renew_every);
            renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let next = held.holders.values().filter_map(|h| h.release_at).min();
                let command = tokio::select! {
                    command = rx.recv() => command,
                    _ = renew.tick(), if renewer.is_some() => {
                        if let Some(renewer) = &renewer {
                            // A renewal still queued gets this one's work next time.
                            let _ = renewer.try_send(Leases::Renew(held.leases()));
                        }
                        continue;
                    }
                    () = async {
                        match next {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => {
                        let gone = held.expire(Instant::now());
                        if let Some(renewer) = &renewer {
                            if !gone.is_empty() {
                                // Lost when the queue is full: the leases then just run out.
                                let _ = renewer.try_send(Leases::Release(
                                    gone.iter().map(Holder::lease).collect(),
                                ));
                            }
                        }
                        continue;
                    }
                };
                let Some(command) = command else { return };
                handle(&mut held, command, grace, leasing);
            }
        });
        Identities { tx, names }
    }

    fn send(&self, command: Command) -> Result<(), ChatError> {
        self.tx.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => crate::registry::overloaded(),
            mpsc::error::TrySendError::Closed(_) => closed(),
        })
    }

    /// Claims a name for a connection; `overloaded` when the mailbox is full.
    pub async fn claim(
        &self,
        name: &str,
        token: Option<String>,
        socket: Sid,
    ) -> Result<Claimed, ChatError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Claim {
            name: name.to_owned(),
            token,
            socket,
            reply,
        })?;
        let token = match rx.await.map_err(|_| closed())? {
            Local::Done(result) => return result,
            Local::Lease(token) => token,
        };
        let Some(names) = &self.names else {
            return Err(closed());
        };
        let leased = names
            .claim(&lease_keys(names, name), name, &token)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "name lease failed");
                ChatError::new(Code::Unavailable, "names are unavailable, try again")
            })?;
        let Some((name, token)) = leased else {
            return Err(taken());
        };
        let (reply, rx) = oneshot::channel();
        self.send(Command::Adopt {
            name,
            token,
            socket,
            reply,
        })?;
        rx.await.map_err(|_| closed())?
    }

    /// A connection that held `name` is gone.
    pub async fn release(&self, name: &str, socket: Sid) {
        let _ = self
            .tx
            .send(Command::Release {
                name: name.to_owned(),
                socket,
            })
            .await;
    }

    /// Whether someone holds this name (online, or within the grace period); `overloaded`
    /// when the mailbox is full.
    pub async fn is_online(&self, name: &str) -> Result<bool, ChatError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Online {
            name: name.to_owned(),
            reply,
        })?;
        if rx.await.unwrap_or(false) {
            return Ok(true);
        }
        match &self.names {
            None => Ok(false),
            Some(names) => names
                .online(&names.key(&primary_key(name)), name)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "name lookup failed");
                    ChatError::new(Code::Unavailable, "names are unavailable, try again")
                }),
        }
    }

    /// Number of names held.
    pub async fn count(&self) -> Result<usize, ChatError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Count { reply })?;
        Ok(rx.await.unwrap_or(0))
    }
}

fn taken() -> ChatError {
    ChatError::new(
        Code::NameTaken,
        "this name, or one that looks the same, is in use",
    )
}

/// Work for the lease task.
enum Leases {
    Renew(Vec<Lease>),
    Release(Vec<Lease>),
}

/// Renews and gives back leases in a task of its own, one batch at a time, in order.
fn start_renewer(names: Arc<Names>) -> mpsc::Sender<Leases> {
    let (tx, mut rx) = mpsc::channel::<Leases>(64);
    tokio::spawn(async move {
        while let Some(work) = rx.recv().await {
            let done = match &work {
                Leases::Renew(leases) => names.renew(leases).await,
                Leases::Release(leases) => names.release(leases).await,
            };
            if let Err(e) = done {
                tracing::warn!(error = %e, "name leases not renewed or given back");
            }
        }
    });
    tx
}

impl Holder {
    fn lease(&self) -> Lease {
        let (primary, alias) = (primary_key(&self.name), alias_key(&self.name));
        let mut keys = vec![primary.clone()];
        if alias != primary {
            keys.push(alias);
        }
        Lease {
            keys,
            token: self.token.clone(),
            name: self.name.clone(),
        }
    }
}

impl Held {
    fn leases(&self) -> Vec<Lease> {
        self.holders.values().map(Holder::lease).collect()
    }

    /// Adds a connection to a holder with this token; `None` when nobody holds the name here.
    fn share(
        &mut self,
        name: &str,
        token: Option<&str>,
        socket: Sid,
    ) -> Option<Result<Claimed, ChatError>> {
        let key = self.find(name)?;
        let h = self.holders.get_mut(&key)?;
        if token != Some(h.token.as_str()) {
            return Some(Err(taken()));
        }
        h.sockets.insert(socket);
        h.release_at = None;
        Some(Ok(Claimed {
            name: h.name.clone(),
            token: h.token.clone(),
        }))
    }
}

fn handle(held: &mut Held, command: Command, grace: Duration, leasing: bool) {
    match command {
        Command::Claim {
            name,
            token,
            socket,
            reply,
        } => {
            let answer = match held.share(&name, token.as_deref(), socket) {
                Some(result) => Local::Done(result),
                None => {
                    let token = token
                        .filter(|t| (16..=64).contains(&t.len()))
                        .unwrap_or_else(|| Sid::random().to_string());
                    if leasing {
                        Local::Lease(token)
                    } else {
                        held.insert(Holder {
                            name: name.clone(),
                            token: token.clone(),
                            sockets: HashSet::from([socket]),
                            release_at: None,
                        });
                        Local::Done(Ok(Claimed { name, token }))
                    }
                }
            };
            let _ = reply.send(answer);
        }
        Command::Adopt {
            name,
            token,
            socket,
            reply,
        } => {
            // Another connection may have taken it here while the lease was asked for.
            let result = held.share(&name, Some(&token), socket).unwrap_or_else(|| {
                held.insert(Holder {
                    name: name.clone(),
                    token: token.clone(),
                    sockets: HashSet::from([socket]),
                    release_at: None,
                });
                Ok(Claimed { name, token })
            });
            let _ = reply.send(result);
        }
        Command::Release { name, socket } => {
            if let Some(h) = held.holders.get_mut(&primary_key(&name)) {
                h.sockets.remove(&socket);
                if h.sockets.is_empty() {
                    h.release_at = Some(Instant::now() + grace);
                }
            }
        }
        Command::Online { name, reply } => {
            // This very name (case aside), not a look-alike: it addresses direct messages.
            let online = held
                .holders
                .get(&primary_key(&name))
                .is_some_and(|h| h.name.to_lowercase() == name.to_lowercase());
            let _ = reply.send(online);
        }
        Command::Count { reply } => {
            let _ = reply.send(held.holders.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[tokio::test]
    async fn a_full_mailbox_answers_overloaded() {
        // On this single-threaded runtime the actor does not run until the test awaits.
        let ids = Identities::start_with(Duration::from_secs(5), 2, None);
        for name in ["aa", "bb"] {
            assert!(ids
                .claim(name, None, Sid::random())
                .now_or_never()
                .is_none());
        }
        let err = ids.claim("cc", None, Sid::random()).await.unwrap_err();
        assert_eq!(err.code, Code::Overloaded);
        assert_eq!(
            ids.is_online("aa").await.unwrap_err().code,
            Code::Overloaded
        );
        // Once the actor caught up, requests are served again.
        tokio::task::yield_now().await;
        assert!(ids.is_online("aa").await.unwrap());
        assert_eq!(ids.count().await.unwrap(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn names_are_unique_and_come_back_with_the_token() {
        let ids = Identities::start(Duration::from_secs(5));
        let (s1, s2, s3) = (Sid::random(), Sid::random(), Sid::random());
        let alice = ids.claim("Alice", None, s1).await.unwrap();
        assert_eq!(alice.name, "Alice");
        assert_eq!(
            ids.claim("alice", None, s2).await.unwrap_err().code,
            Code::NameTaken
        );
        // A second tab with the token shares the name.
        assert_eq!(
            ids.claim("ALICE", Some(alice.token.clone()), s2)
                .await
                .unwrap(),
            alice
        );
        ids.release("alice", s1).await;
        ids.release("alice", s2).await;
        // Within the grace period only the token holder gets it back.
        assert_eq!(
            ids.claim("alice", None, s3).await.unwrap_err().code,
            Code::NameTaken
        );
        assert_eq!(
            ids.claim("alice", Some(alice.token.clone()), s3)
                .await
                .unwrap(),
            alice
        );
        ids.release("alice", s3).await;
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(!ids.is_online("alice").await.unwrap());
        let other = ids.claim("alice", None, s1).await.unwrap();
        assert_ne!(other.token, alice.token);
    }

    #[tokio::test(start_paused = true)]
    async fn look_alike_names_are_taken() {
        let ids = Identities::start(Duration::from_secs(5));
        let alice = ids.claim("alice", None, Sid::random()).await.unwrap();
        for look_alike in [
            "\u{430}lice",         // Cyrillic a
            "ALIC\u{415}",         // Cyrillic capital E
            "\u{ff41}\u{ff4c}ice", // fullwidth a, l
            "aIice",               // capital I for l
            "a1ice",               // digit one for l
        ] {
            let err = ids
                .claim(look_alike, None, Sid::random())
                .await
                .unwrap_err();
            assert_eq!(err.code, Code::NameTaken, "{look_alike}");
        }
        // Its token takes the name back whatever look-alike it is spelled with.
        let again = ids
            .claim("\u{430}lice", Some(alice.token.clone()), Sid::random())
            .await
            .unwrap();
        assert_eq!(again, alice);
        // Capital I before lowercasing: `Ian` and `lan` look the same, both ways round.
        ids.claim("Ian", None, Sid::random()).await.unwrap();
        assert_eq!(
            ids.claim("lan", None, Sid::random())
                .await
                .unwrap_err()
                .code,
            Code::NameTaken
        );
        ids.claim("rnary", None, Sid::random()).await.unwrap();
        assert_eq!(
            ids.claim("mary", None, Sid::random())
                .await
                .unwrap_err()
                .code,
            Code::NameTaken
        );
        // Different names stay different; a look-alike is not "online" for direct messages.
        ids.claim("bob", None, Sid::random()).await.unwrap();
        assert!(ids.is_online("ALICE").await.unwrap());
        assert!(!ids.is_online("\u{430}lice").await.unwrap());
        assert_eq!(ids.count().await.unwrap(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_name_frees_its_look_alikes() {
        let ids = Identities::start(Duration::from_secs(5));
        let s1 = Sid::random();
        let ian = ids.claim("Ian", None, s1).await.unwrap();
        ids.release(&ian.name, s1).await;
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(ids.count().await.unwrap(), 0);
        ids.claim("lan", None, Sid::random()).await.unwrap();
    }
}
