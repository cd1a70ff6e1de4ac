//! Acknowledgements in both directions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::args::Args;
use crate::packet::Packet;
use crate::socket::Socket;

/// Why an acknowledgement the server waited for did not come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// No answer within the timeout.
    #[error("operation has timed out")]
    Timeout,
    /// The socket disconnected before answering.
    #[error("socket disconnected")]
    Disconnected,
    /// The packet could not be sent (connection closed or its queue full).
    #[error("could not send the packet")]
    NotSent,
}

pub(crate) type AckReply = oneshot::Sender<Args>;

/// Acks the server waits for on one socket, by id.
#[derive(Default)]
pub(crate) struct PendingAcks {
    inner: Mutex<PendingInner>,
}

#[derive(Default)]
struct PendingInner {
    next_id: u64,
    waiting: HashMap<u64, AckReply>,
    closed: bool,
}

impl PendingAcks {
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new ack id; `None` once the socket is gone.
    pub(crate) fn register(&self) -> Option<(u64, oneshot::Receiver<Args>)> {
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        let id = inner.next_id;
        inner.next_id = inner.next_id.wrapping_add(1);
        let (tx, rx) = oneshot::channel();
        inner.waiting.insert(id, tx);
        Some((id, rx))
    }

    pub(crate) fn forget(&self, id: u64) {
        self.lock().waiting.remove(&id);
    }

    /// Acks still awaited.
    pub(crate) fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    /// An ACK arrived; unknown ids are ignored.
    pub(crate) fn resolve(&self, id: u64, args: Args) {
        let reply = self.lock().waiting.remove(&id);
        if let Some(reply) = reply {
            let _ = reply.send(args);
        }
    }

    /// Fails every pending ack (their receivers see the sender dropped).
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.waiting.clear();
    }
}

/// A registered ack id, forgotten when its waiter goes away without an answer (timed out, or
/// its future dropped), so abandoned waits leave nothing behind.
pub(crate) struct Waiting {
    socket: Socket,
    id: u64,
}

impl Waiting {
    pub(crate) fn new(socket: Socket, id: u64) -> Self {
        Waiting { socket, id }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.socket.inner.acks.forget(self.id);
    }
}

/// Waits for one ack, with a timeout; the id is forgotten however the wait ends.
pub(crate) async fn wait(
    waiting: Waiting,
    rx: oneshot::Receiver<Args>,
    timeout: Duration,
) -> Result<Args, AckError> {
    let result = match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(args)) => Ok(args),
        Ok(Err(_)) => Err(AckError::Disconnected),
        Err(_) => Err(AckError::Timeout),
    };
    drop(waiting);
    result
}

/// The acknowledgement a client asked for with its event: answer it once with [`Ack::send`].
///
/// Dropping it without sending leaves the client's callback uncalled (its own timeout applies).
#[derive(Debug)]
pub struct Ack {
    pub(crate) socket: Socket,
    pub(crate) id: u64,
}

impl Ack {
    /// Sends the acknowledgement with these arguments (`43[<nsp>,]<id>[…]`, or a binary ack).
    pub fn send(self, args: impl Into<Args>) {
        let packet = Packet::ack(
            self.socket.inner.ns.name.as_str(),
            args.into().into_array(None),
            self.id,
        );
        self.socket.send_packet(packet);
    }

    /// The ack id chosen by the client.
    pub fn id(&self) -> u64 {
        self.id
    }
}
