//! The dispatcher: one task that reads what other nodes publish, keeps the list of live
//! nodes, and hands room events to the registry.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::{PushInfo, PushKind};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Cluster, Envelope, Event, RoomEvent};
use crate::registry::Registry;

struct Node {
    instance: String,
    seen: Instant,
}

/// Who is in which room on the other nodes, for every room (a node runs actors only for the
/// rooms its own clients are in): room, lowercased user, nodes.
#[derive(Default)]
struct Directory(HashMap<String, HashMap<String, HashSet<String>>>);

impl Directory {
    fn presence(&mut self, room: &str, node: &str, user: &str, online: bool) {
        let users = self.0.entry(room.to_owned()).or_default();
        let key = user.to_lowercase();
        if online {
            users.entry(key).or_default().insert(node.to_owned());
        } else if let Some(nodes) = users.get_mut(&key) {
            nodes.remove(node);
            if nodes.is_empty() {
                users.remove(&key);
            }
        }
        if users.is_empty() {
            self.0.remove(room);
        }
    }

    fn members(&mut self, room: &str, node: &str, list: &[String]) {
        self.forget_in(room, node);
        for user in list {
            self.presence(room, node, user, true);
        }
    }

    fn forget_in(&mut self, room: &str, node: &str) {
        if let Some(users) = self.0.get_mut(room) {
            users.retain(|_, nodes| {
                nodes.remove(node);
                !nodes.is_empty()
            });
            if users.is_empty() {
                self.0.remove(room);
            }
        }
    }

    fn forget(&mut self, node: &str) {
        let rooms: Vec<String> = self.0.keys().cloned().collect();
        for room in rooms {
            self.forget_in(&room, node);
        }
    }

    fn counts(&self) -> HashMap<String, usize> {
        self.0.iter().map(|(r, u)| (r.clone(), u.len())).collect()
    }
}

/// Asks the dispatcher for the member count of every room on the other nodes.
pub(super) type CountsRequest = oneshot::Sender<HashMap<String, usize>>;

pub(super) async fn run(
    cluster: Arc<Cluster>,
    registry: Registry,
    mut incoming: mpsc::UnboundedReceiver<PushInfo>,
    mut alive: mpsc::Receiver<bool>,
    mut questions: mpsc::Receiver<CountsRequest>,
) {
    let mut nodes: HashMap<String, Node> = HashMap::new();
    let mut directory = Directory::default();
    let mut connected = true;
    let mut beat = tokio::time::interval(cluster.settings.beat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            push = incoming.recv() => {
                let Some(push) = push else { return };
                let Some(envelope) = decode(&push) else { continue };
                if envelope.node == cluster.settings.node {
                    continue;
                }
                handle(&cluster, &registry, &mut nodes, &mut directory, envelope).await;
            }
            Some(reply) = questions.recv() => {
                let _ = reply.send(directory.counts());
            }
            up = alive.recv() => {
                let Some(up) = up else { return };
                connected = up;
                cluster.stats.connected.store(up, Ordering::Relaxed);
                if up {
                    cluster.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("redis is back: resynchronising with the other nodes");
                    // Nobody was heard meanwhile: count from now.
                    let now = Instant::now();
                    for node in nodes.values_mut() {
                        node.seen = now;
                    }
                    cluster.publish(Event::Hello);
                    registry.cluster_state().await;
                    registry.cluster_resync().await;
                } else {
                    tracing::warn!("redis is unreachable: this node serves only its own clients until it is back");
                }
            }
            _ = beat.tick() => {
                cluster.publish(Event::Beat);
                // While Redis is away, silence says nothing about the others.
                if connected {
                    let timeout = cluster.settings.node_timeout;
                    let now = Instant::now();
                    let gone: Vec<String> = nodes
                        .iter()
                        .filter(|(_, n)| now.duration_since(n.seen) > timeout)
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in gone {
                        nodes.remove(&id);
                        directory.forget(&id);
                        tracing::warn!(node = %id, "node silent: its members leave");
                        registry.cluster_node_gone(id).await;
                    }
                }
                cluster.stats.nodes.store(nodes.len() as u64 + 1, Ordering::Relaxed);
            }
        }
    }
}

fn decode(push: &PushInfo) -> Option<Envelope> {
    let payload = match (&push.kind, push.data.as_slice()) {
        (PushKind::Message, [_channel, payload]) => payload,
        _ => return None,
    };
    let bytes = match payload {
        redis::Value::BulkString(b) => b.as_slice(),
        redis::Value::SimpleString(s) => s.as_bytes(),
        _ => return None,
    };
    match serde_json::from_slice(bytes) {
        Ok(envelope) => Some(envelope),
        Err(e) => {
            tracing::warn!(error = %e, "undecodable cluster event ignored");
            None
        }
    }
}

async fn handle(
    cluster: &Cluster,
    registry: &Registry,
    nodes: &mut HashMap<String, Node>,
    directory: &mut Directory,
    envelope: Envelope,
) {
    let Envelope {
        node,
        instance,
        event,
    } = envelope;
    let now = Instant::now();
    let known = nodes.get(&node).map(|n| n.instance == instance);
    match event {
        Event::Hello => {
            if known.is_some() {
                // Restarted, or back from an outage: what we knew of it is stale.
                directory.forget(&node);
                registry.cluster_node_gone(node.clone()).await;
            }
            nodes.insert(
                node,
                Node {
                    instance,
                    seen: now,
                },
            );
            // It may have forgotten us too.
            registry.cluster_state().await;
        }
        Event::Beat => {
            match known {
                Some(true) => {}
                Some(false) => {
                    directory.forget(&node);
                    registry.cluster_node_gone(node.clone()).await;
                    cluster.publish(Event::Sync { to: node.clone() });
                }
                // New to us (we started, or it was silent too long): ask for its members.
                None => cluster.publish(Event::Sync { to: node.clone() }),
            }
            nodes.insert(
                node,
                Node {
                    instance,
                    seen: now,
                },
            );
        }
        Event::Sync { to } => {
            if to == cluster.settings.node {
                registry.cluster_state().await;
            }
        }
        Event::Resync => registry.cluster_resync().await,
        Event::Bye => {
            nodes.remove(&node);
            directory.forget(&node);
            registry.cluster_node_gone(node).await;
        }
        Event::Room { room, event } => {
            if let Some(n) = nodes.get_mut(&node) {
                n.seen = now;
            }
            match &event {
                RoomEvent::Presence { user, online } => {
                    directory.presence(&room, &node, user, *online);
                }
                RoomEvent::Members { users } => directory.members(&room, &node, users),
                _ => {}
            }
            registry.cluster_event(room, node, event).await;
        }
    }
    cluster
        .stats
        .nodes
        .store(nodes.len() as u64 + 1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::Directory;

    #[test]
    fn the_directory_counts_users_once_and_forgets_gone_nodes() {
        let mut d = Directory::default();
        d.presence("general", "a", "Alice", true);
        d.presence("general", "b", "alice", true);
        d.members("general", "c", &["bob".into(), "carol".into()]);
        assert_eq!(d.counts().get("general"), Some(&3));
        d.members("general", "c", &["bob".into()]);
        assert_eq!(d.counts().get("general"), Some(&2));
        d.presence("general", "a", "alice", false);
        assert_eq!(d.counts().get("general"), Some(&2));
        d.forget("b");
        d.forget("c");
        assert_eq!(d.counts().get("general"), None);
    }
}
