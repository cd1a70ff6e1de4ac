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
    let mut heap: BinaryHeap<Entry> = BinaryHeap::new();
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    loop {
        if let Some(next) = heap.peek() {
            sleep.as_mut().reset(next.at);
        }
        tokio::select! {
            entry = rx.recv() => match entry {
                Some(entry) => heap.push(entry),
                None => return,
            },
            () = &mut sleep, if !heap.is_empty() => {
                let now = Instant::now();
                while heap.peek().is_some_and(|e| e.at <= now) {
                    let Some(entry) = heap.pop() else { break };
                    let Some(session) = entry.session.upgrade() else { continue };
                    if let Some(at) = session.on_timer(entry.at, now) {
                        heap.push(Entry { at, session: entry.session });
                    }
                }
            }
        }
    }
}
