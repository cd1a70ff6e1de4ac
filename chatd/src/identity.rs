//! The identity actor: which names are online, held by which connections, with which resume
//! token. A name is unique among online users (case-insensitive). When a user's last
//! connection goes, the name stays reserved for the grace period, and the resume token takes it
//! back; several tabs with the same token share one identity.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use engineio::Sid;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::protocol::{ChatError, Code};

/// An identity granted to a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The name as the user spelled it.
    pub name: String,
    /// The secret that takes the name back after a reconnect.
    pub token: String,
}

enum Command {
    Claim {
        name: String,
        token: Option<String>,
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

struct Holder {
    name: String,
    token: String,
    sockets: HashSet<Sid>,
    release_at: Option<Instant>,
}

/// A handle to the identity actor.
#[derive(Clone)]
pub struct Identities {
    tx: mpsc::UnboundedSender<Command>,
}

impl Identities {
    /// Starts the actor.
    pub fn start(grace: Duration) -> Identities {
        let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
        tokio::spawn(async move {
            let mut holders: HashMap<String, Holder> = HashMap::new();
            loop {
                let next = holders.values().filter_map(|h| h.release_at).min();
                let command = tokio::select! {
                    command = rx.recv() => command,
                    () = async {
                        match next {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => {
                        let now = Instant::now();
                        holders.retain(|_, h| h.release_at.is_none_or(|t| t > now));
                        continue;
                    }
                };
                let Some(command) = command else { return };
                handle(&mut holders, command, grace);
            }
        });
        Identities { tx }
    }

    /// Claims a name for a connection.
    pub async fn claim(
        &self,
        name: &str,
        token: Option<String>,
        socket: Sid,
    ) -> Result<Claimed, ChatError> {
        let (reply, rx) = oneshot::channel();
        let closed = || ChatError::new(Code::Unavailable, "server is shutting down");
        self.tx
            .send(Command::Claim {
                name: name.to_owned(),
                token,
                socket,
                reply,
            })
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// A connection that held `name` is gone.
    pub fn release(&self, name: &str, socket: Sid) {
        let _ = self.tx.send(Command::Release {
            name: name.to_owned(),
            socket,
        });
    }

    /// Whether someone holds this name (online, or within the grace period).
    pub async fn is_online(&self, name: &str) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::Online {
                name: name.to_owned(),
                reply,
            })
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Number of names held.
    pub async fn count(&self) -> usize {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Count { reply }).is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }
}

fn handle(holders: &mut HashMap<String, Holder>, command: Command, grace: Duration) {
    match command {
        Command::Claim {
            name,
            token,
            socket,
            reply,
        } => {
            let key = name.to_lowercase();
            let result = match holders.get_mut(&key) {
                Some(h) if token.as_deref() == Some(h.token.as_str()) => {
                    h.sockets.insert(socket);
                    h.release_at = None;
                    Ok(Claimed {
                        name: h.name.clone(),
                        token: h.token.clone(),
                    })
                }
                Some(_) => Err(ChatError::new(Code::NameTaken, "this name is in use")),
                None => {
                    let token = token
                        .filter(|t| (16..=64).contains(&t.len()))
                        .unwrap_or_else(|| Sid::random().to_string());
                    holders.insert(
                        key,
                        Holder {
                            name: name.clone(),
                            token: token.clone(),
                            sockets: HashSet::from([socket]),
                            release_at: None,
                        },
                    );
                    Ok(Claimed { name, token })
                }
            };
            let _ = reply.send(result);
        }
        Command::Release { name, socket } => {
            if let Some(h) = holders.get_mut(&name.to_lowercase()) {
                h.sockets.remove(&socket);
                if h.sockets.is_empty() {
                    h.release_at = Some(Instant::now() + grace);
                }
            }
        }
        Command::Online { name, reply } => {
            let _ = reply.send(holders.contains_key(&name.to_lowercase()));
        }
        Command::Count { reply } => {
            let _ = reply.send(holders.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ids.release("alice", s1);
        ids.release("alice", s2);
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
        ids.release("alice", s3);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(!ids.is_online("alice").await);
        let other = ids.claim("alice", None, s1).await.unwrap();
        assert_ne!(other.token, alice.token);
    }
}
