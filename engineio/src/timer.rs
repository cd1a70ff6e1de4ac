//! One timer task for the heartbeats of all sessions, instead of a task or timer per session.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Weak;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::session::Session;

struct Entry {
    at: Instant,
    session: Weak<Session>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: the heap's top is the earliest instant.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

/// Entries below which the heap is never compacted.
const MIN_COMPACT: usize = 1024;

/// The pending entries. An entry holds its session by a `Weak`, which keeps the session's
/// allocation (not its contents) until the entry is due, a ping interval later: with thousands
/// of sessions opening and closing a second, that is tens of megabytes held for nothing. So
/// once the heap has doubled since it was last compacted, entries of sessions already freed are
/// dropped (amortised: each entry is looked at a constant number of times).
struct Entries {
    heap: BinaryHeap<Entry>,
    compact_at: usize,
}

impl Entries {
    fn new() -> Self {
        Entries {
            heap: BinaryHeap::new(),
            compact_at: MIN_COMPACT,
        }
    }

    fn push(&mut self, entry: Entry) {
        self.heap.push(entry);
        if self.heap.len() >= self.compact_at {
            self.heap.retain(|e| e.session.strong_count() > 0);
            self.compact_at = (self.heap.len() * 2).max(MIN_COMPACT);
        }
    }
}

/// Handle to the timer task. The task ends when the handle is dropped.
pub(crate) struct Timer {
    tx: mpsc::UnboundedSender<Entry>,
}

impl Timer {
    pub(crate) fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx));
        Timer { tx }
    }

    pub(crate) fn schedule(&self, at: Instant, session: Weak<Session>) {
        let _ = self.tx.send(Entry { at, session });
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Entry>) {
    let mut entries = Entries::new();
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    loop {
        if let Some(next) = entries.heap.peek() {
            sleep.as_mut().reset(next.at);
        }
        tokio::select! {
            entry = rx.recv() => match entry {
                Some(entry) => entries.push(entry),
                None => return,
            },
            () = &mut sleep, if !entries.heap.is_empty() => {
                let now = Instant::now();
                while entries.heap.peek().is_some_and(|e| e.at <= now) {
                    let Some(entry) = entries.heap.pop() else { break };
                    let Some(session) = entry.session.upgrade() else { continue };
                    if let Some(at) = session.on_timer(entry.at, now) {
                        entries.push(Entry { at, session: entry.session });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Weak;
    use std::time::Duration;

    #[test]
    fn entries_of_freed_sessions_do_not_pile_up() {
        let mut entries = Entries::new();
        let far = Instant::now() + Duration::from_secs(25);
        // Sessions opened and closed long before their entries are due.
        for _ in 0..100_000 {
            entries.push(Entry {
                at: far,
                session: Weak::new(),
            });
        }
        assert!(
            entries.heap.len() < MIN_COMPACT,
            "{} kept",
            entries.heap.len()
        );
    }
}
