//! The dispatcher: one task that reads what other nodes publish, keeps the list of live
//! nodes, and hands room events to the registry.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::{PushInfo, PushKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Cluster, Envelope, Event};
use crate::registry::Registry;

struct Node {
    instance: String,
    seen: Instant,
}

pub(super) async fn run(
    cluster: Arc<Cluster>,
    registry: Registry,
    mut incoming: mpsc::UnboundedReceiver<PushInfo>,
    mut alive: mpsc::Receiver<bool>,
) {
    let mut nodes: HashMap<String, Node> = HashMap::new();
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
                handle(&cluster, &registry, &mut nodes, envelope).await;
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
        Event::Room { room, event } => {
            if let Some(n) = nodes.get_mut(&node) {
                n.seen = now;
            }
            registry.cluster_event(room, node, event).await;
        }
    }
    cluster
        .stats
        .nodes
        .store(nodes.len() as u64 + 1, Ordering::Relaxed);
}
