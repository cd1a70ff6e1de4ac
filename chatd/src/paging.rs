//! Caps on history-like replies (`room:join` catch-up, `history`, `dm:history`): at most
//! [`PAGE`] messages and [`PAGE_BYTES`] of them as JSON, whichever comes first; the reply says
//! `more` and the client continues from where it stopped (docs/protocol.md).

use crate::store::StoredMessage;

/// Most messages in one reply.
pub const PAGE: usize = 100;
/// Most bytes of messages (as JSON) in one reply.
pub const PAGE_BYTES: usize = 256 * 1024;

/// Counts the bytes written through it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The size of a message in a reply: its JSON, and a separating comma.
pub fn json_size(message: &StoredMessage) -> usize {
    let mut counter = Counter(0);
    // Writing to a counter cannot fail, nor can serialising a message.
    let _ = serde_json::to_writer(&mut counter, message);
    counter.0 + 1
}

/// How many messages, taken in the order of `sizes`, fit in `max_count` and `max_bytes`; at
/// least one (if there is one), so that a continuation always makes progress.
fn fitting(sizes: impl Iterator<Item = usize>, max_count: usize, max_bytes: usize) -> usize {
    let mut total = 0;
    let mut n = 0;
    for size in sizes.take(max_count.max(1)) {
        total += size;
        if n > 0 && total > max_bytes {
            break;
        }
        n += 1;
    }
    n
}

/// Keeps the oldest messages of `messages` (oldest first) that fit; true when some were cut.
pub fn keep_oldest(messages: &mut Vec<StoredMessage>, max_count: usize, max_bytes: usize) -> bool {
    let n = fitting(messages.iter().map(json_size), max_count, max_bytes);
    let cut = n < messages.len();
    messages.truncate(n);
    cut
}

/// Keeps the newest messages of `messages` (oldest first) that fit; true when some were cut.
pub fn keep_newest(messages: &mut Vec<StoredMessage>, max_count: usize, max_bytes: usize) -> bool {
    let n = fitting(messages.iter().rev().map(json_size), max_count, max_bytes);
    let cut = n < messages.len();
    messages.drain(..messages.len() - n);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(n: u64, text_len: usize) -> Vec<StoredMessage> {
        (1..=n)
            .map(|seq| StoredMessage {
                room: "big".into(),
                seq,
                id: format!("c-{seq}"),
                user: "alice".into(),
                text: "x".repeat(text_len),
                ts: 1,
            })
            .collect()
    }

    fn seqs(m: &[StoredMessage]) -> Vec<u64> {
        m.iter().map(|m| m.seq).collect()
    }

    fn bytes(m: &[StoredMessage]) -> usize {
        m.iter().map(json_size).sum()
    }

    #[test]
    fn the_size_is_the_json_size() {
        let m = &messages(1, 10)[0];
        let json = serde_json::to_string(m).unwrap();
        assert_eq!(json_size(m), json.len() + 1);
        // Escapes count as sent.
        let mut quoted = m.clone();
        quoted.text = "\"\u{1}".repeat(10);
        assert_eq!(
            json_size(&quoted),
            serde_json::to_string(&quoted).unwrap().len() + 1
        );
    }

    #[test]
    fn the_count_cap_applies_to_small_messages() {
        let mut m = messages(250, 10);
        assert!(keep_oldest(&mut m, PAGE, PAGE_BYTES));
        assert_eq!(seqs(&m), (1..=100).collect::<Vec<_>>());
        let mut m = messages(250, 10);
        assert!(keep_newest(&mut m, PAGE, PAGE_BYTES));
        assert_eq!(seqs(&m), (151..=250).collect::<Vec<_>>());
        let mut m = messages(100, 10);
        assert!(!keep_oldest(&mut m, PAGE, PAGE_BYTES));
        assert_eq!(m.len(), 100);
    }

    #[test]
    fn the_byte_cap_applies_to_large_messages() {
        let mut m = messages(100, 4096);
        assert!(keep_oldest(&mut m, PAGE, PAGE_BYTES));
        assert!(bytes(&m) <= PAGE_BYTES);
        assert!(m.len() > 50 && m.len() < 100, "{}", m.len());
        assert_eq!(m[0].seq, 1);
        let mut m = messages(100, 4096);
        assert!(keep_newest(&mut m, PAGE, PAGE_BYTES));
        assert!(bytes(&m) <= PAGE_BYTES);
        assert_eq!(m.last().map(|m| m.seq), Some(100));
        // One message over the cap on its own still goes out, alone.
        let mut m = messages(3, PAGE_BYTES);
        assert!(keep_oldest(&mut m, PAGE, PAGE_BYTES));
        assert_eq!(seqs(&m), vec![1]);
        let mut none = Vec::new();
        assert!(!keep_newest(&mut none, PAGE, PAGE_BYTES));
    }
}
