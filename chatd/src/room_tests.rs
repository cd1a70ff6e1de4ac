//! Room and registry actors, driven through their handles with a recording fanout.

use std::sync::Arc;
use std::time::Duration;

use engineio::Sid;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::room::{Fanout, Group, RoomHandle, RoomSettings};
use crate::store::{now_ms, MemoryStore, RoomInfo, RoomKind, Store, StoredMessage};

#[derive(Debug, PartialEq)]
pub(crate) enum Out {
    Join(Sid, Group),
    Leave(Sid, Group),
    CatchUp(Sid, Vec<u64>),
    Message(u64, Option<Sid>),
    Presence(String, bool),
    Typing(String, bool),
    Topic(String),
}

pub(crate) struct Recorder(pub(crate) mpsc::UnboundedSender<Out>);

impl Fanout for Recorder {
    fn join_socket(&self, _: &RoomInfo, socket: Sid, group: Group) {
        let _ = self.0.send(Out::Join(socket, group));
    }
    fn leave_socket(&self, _: &RoomInfo, socket: Sid, group: Group) {
        let _ = self.0.send(Out::Leave(socket, group));
    }
    fn catch_up(&self, _: &RoomInfo, socket: Sid, _: Group, messages: &[StoredMessage]) {
        let _ = self.0.send(Out::CatchUp(
            socket,
            messages.iter().map(|m| m.seq).collect(),
        ));
    }
    fn message(&self, _: &RoomInfo, m: &StoredMessage, except: Option<Sid>) {
        let _ = self.0.send(Out::Message(m.seq, except));
    }
    fn presence(&self, _: &RoomInfo, user: &str, online: bool) {
        let _ = self.0.send(Out::Presence(user.into(), online));
    }
    fn typing(&self, _: &RoomInfo, user: &str, typing: bool, _: Option<Sid>) {
        let _ = self.0.send(Out::Typing(user.into(), typing));
    }
    fn topic(&self, room: &RoomInfo, _: &str) {
        let _ = self.0.send(Out::Topic(room.topic.clone()));
    }
    fn has_recipients(&self, _: &RoomInfo) -> bool {
        true
    }
}

pub(crate) const GRACE: Duration = Duration::from_secs(5);
const TYPING: Duration = Duration::from_secs(4);

pub(crate) fn settings() -> RoomSettings {
    RoomSettings {
        window: 5,
        presence_grace: GRACE,
        typing_timeout: TYPING,
        typing_throttle: Duration::from_secs(2),
        typing_interval: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(60),
        max_pending_writes: 1024,
    }
}

pub(crate) struct Fixture {
    pub(crate) registry: Registry,
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) out: mpsc::UnboundedReceiver<Out>,
}

pub(crate) async fn fixture(settings: RoomSettings) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    store
        .create_room(RoomInfo {
            name: "lobby".into(),
            topic: String::new(),
            kind: RoomKind::Room,
            created_at: now_ms(),
        })
        .await
        .unwrap();
    let (tx, out) = mpsc::unbounded_channel();
    let registry = Registry::start(
        store.clone(),
        Arc::new(Recorder(tx)),
        Arc::new(Metrics::default()),
        settings,
        None,
    );
    Fixture {
        registry,
        store,
        out,
    }
}

impl Fixture {
    pub(crate) async fn lobby(&self) -> RoomHandle {
        self.registry.get("lobby").await.unwrap()
    }

    /// Everything the fanout saw so far; `barrier` makes sure the actor handled earlier commands.
    pub(crate) async fn drain(&mut self, barrier: &RoomHandle) -> Vec<Out> {
        barrier.summary().await.unwrap();
        let mut all = Vec::new();
        while let Ok(o) = self.out.try_recv() {
            all.push(o);
        }
        all
    }
}

async fn post(room: &RoomHandle, user: &str, id: &str) -> crate::store::Appended {
    room.post(user, id.into(), format!("text {id}"), None)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn messages_are_stored_broadcast_and_acked_in_sequence() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    let sender = Sid::random();
    // Concurrent senders: whatever order the posts reach the actor in, sequence numbers are
    // unique and gap-free, and broadcasts go out in sequence order.
    let posts: Vec<_> = (0..30)
        .map(|i| {
            let room = room.clone();
            tokio::spawn(async move {
                room.post("alice", format!("m{i}"), "x".into(), Some(sender))
                    .await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for p in posts {
        seqs.push(p.await.unwrap().unwrap().unwrap().message.seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>());
    let out = f.drain(&room).await;
    assert_eq!(
        out,
        (1..=30)
            .map(|s| Out::Message(s, Some(sender)))
            .collect::<Vec<_>>()
    );
    assert_eq!(f.store.last_seq("lobby").await.unwrap(), 30);
}

#[tokio::test(start_paused = true)]
async fn a_resend_is_acknowledged_but_not_stored_or_broadcast_twice() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    let first = post(&room, "alice", "m1").await;
    let again = post(&room, "ALICE", "m1").await;
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.message, first.message);
    // Another user's id is their own.
    assert_eq!(post(&room, "bob", "m1").await.message.seq, 2);
    assert_eq!(
        f.drain(&room).await,
        vec![Out::Message(1, None), Out::Message(2, None)]
    );
}

#[tokio::test(start_paused = true)]
async fn presence_counts_tabs_once_and_waits_out_the_grace_period() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    let (tab1, tab2, tab3) = (Sid::random(), Sid::random(), Sid::random());
    room.join("Alice", tab1, None).await.unwrap().unwrap();
    let joined = room.join("alice", tab2, None).await.unwrap().unwrap();
    assert_eq!(joined.members, vec!["Alice".to_string()]);
    assert_eq!(room.summary().await.unwrap().members, 1);
    assert_eq!(
        f.drain(&room).await,
        vec![
            Out::Join(tab1, Group::Chat),
            Out::Presence("Alice".into(), true),
            Out::Join(tab2, Group::Chat)
        ]
    );
    // Both tabs drop; the user comes back within the grace period: no leave, no join.
    room.socket_gone(tab1).await.unwrap();
    room.socket_gone(tab2).await.unwrap();
    tokio::time::sleep(GRACE - Duration::from_millis(10)).await;
    room.join("alice", tab3, None).await.unwrap().unwrap();
    assert_eq!(
        f.drain(&room).await,
        vec![
            Out::Leave(tab1, Group::Chat),
            Out::Leave(tab2, Group::Chat),
            Out::Join(tab3, Group::Chat)
        ]
    );
    // Gone for good: announced once the grace period is over, not before.
    room.socket_gone(tab3).await.unwrap();
    tokio::time::sleep(GRACE - Duration::from_millis(10)).await;
    assert_eq!(f.drain(&room).await, vec![Out::Leave(tab3, Group::Chat)]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        f.drain(&room).await,
        vec![Out::Presence("Alice".into(), false)]
    );
    assert_eq!(room.members().await.unwrap(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn an_explicit_leave_is_announced_at_once() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    let tab = Sid::random();
    room.join("bob", tab, None).await.unwrap().unwrap();
    assert!(room.leave("bob", tab).await.unwrap());
    assert!(!room.leave("bob", tab).await.unwrap());
    assert_eq!(
        f.drain(&room).await,
        vec![
            Out::Join(tab, Group::Chat),
            Out::Presence("bob".into(), true),
            Out::Leave(tab, Group::Chat),
            Out::Presence("bob".into(), false)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn typing_is_throttled_and_expires() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    let tab = Sid::random();
    // Not a member: ignored.
    room.typing("bob", tab, true).await.unwrap();
    room.join("bob", tab, None).await.unwrap().unwrap();
    f.drain(&room).await;
    room.typing("bob", tab, true).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    room.typing("bob", tab, true).await.unwrap();
    assert_eq!(f.drain(&room).await, vec![Out::Typing("bob".into(), true)]);
    // Refreshed at t=1s: expires at t=5s, not at t=4s.
    tokio::time::sleep(TYPING - Duration::from_millis(1500)).await; // t = 3.5 s
    assert_eq!(f.drain(&room).await, vec![]);
    tokio::time::sleep(Duration::from_secs(2)).await; // t = 5.5 s
    assert_eq!(f.drain(&room).await, vec![Out::Typing("bob".into(), false)]);
    // Explicit stop, and a message ending typing silently. The expiry was relayed at t = 5 s:
    // the start at t = 5.5 s waits for the end of that interval (t = 6 s), the stop for the
    // next (t = 7 s); the start at t = 7.5 s would wait until t = 8 s, but the message ends it.
    room.typing("bob", tab, true).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    room.typing("bob", tab, false).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    room.typing("bob", tab, true).await.unwrap();
    post(&room, "bob", "m1").await;
    tokio::time::sleep(TYPING * 2).await;
    assert_eq!(
        f.drain(&room).await,
        vec![
            Out::Typing("bob".into(), true),
            Out::Typing("bob".into(), false),
            Out::Message(1, None)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_typing_storm_is_relayed_once_per_interval_with_the_final_state() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    let tab = Sid::random();
    room.join("bob", tab, None).await.unwrap().unwrap();
    f.drain(&room).await;
    // 5000 toggles in 2.5 s (one every half millisecond), ending on `false`.
    for i in 0..5000u64 {
        room.typing("bob", tab, i % 2 == 0).await.unwrap();
        if i % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let relays = f.drain(&room).await;
    // One relay per started interval of 1 s at most, alternating, the last one `false`.
    assert!(relays.len() <= 4, "{relays:?}");
    assert_eq!(relays.first(), Some(&Out::Typing("bob".into(), true)));
    assert_eq!(relays.last(), Some(&Out::Typing("bob".into(), false)));
    assert!(relays.windows(2).all(|w| w[0] != w[1]), "{relays:?}");
}

fn seqs(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

#[tokio::test(start_paused = true)]
async fn join_since_returns_every_missed_message_from_memory_and_store() {
    let f = fixture(settings()).await;
    let room = f.lobby().await;
    for i in 0..10 {
        post(&room, "alice", &format!("m{i}")).await;
    }
    // The window holds 6..=10.
    let joined = room
        .join("bob", Sid::random(), Some(7))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs(&joined.messages), vec![8, 9, 10]);
    assert_eq!(joined.cursor, Some(8));
    // Older than the window: 3..=5 come from the store.
    let joined = room
        .join("carol", Sid::random(), Some(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs(&joined.messages), (3..=10).collect::<Vec<_>>());
    assert_eq!(joined.cursor, Some(3));
    assert_eq!(joined.last_seq, 10);
    let joined = room
        .join("dave", Sid::random(), Some(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((joined.messages, joined.cursor), (vec![], None));
    let joined = room
        .join("erin", Sid::random(), Some(99))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((joined.messages, joined.cursor), (vec![], None));
}

#[tokio::test(start_paused = true)]
async fn join_since_returns_one_page_and_says_more_follow() {
    let f = fixture(settings()).await;
    let room = f.lobby().await;
    for i in 0..250 {
        post(&room, "alice", &format!("m{i}")).await;
    }
    let joined = room
        .join("bob", Sid::random(), Some(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs(&joined.messages), (1..=100).collect::<Vec<_>>());
    assert_eq!(
        (joined.cursor, joined.more, joined.last_seq),
        (Some(1), true, 250)
    );
    // From the window (5 messages) alone.
    let joined = room
        .join("carol", Sid::random(), Some(247))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs(&joined.messages), vec![248, 249, 250]);
    assert!(!joined.more);
    // Exactly a page left: no more.
    let joined = room
        .join("dave", Sid::random(), Some(150))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs(&joined.messages), (151..=250).collect::<Vec<_>>());
    assert!(!joined.more);
}

#[tokio::test(start_paused = true)]
async fn join_without_since_returns_the_latest_50_whatever_the_window() {
    let f = fixture(settings()).await;
    let room = f.lobby().await;
    let joined = room
        .join("bob", Sid::random(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (joined.messages, joined.cursor, joined.last_seq),
        (vec![], None, 0)
    );
    let mut sent = Vec::new();
    for i in 0..12 {
        sent.push(post(&room, "alice", &format!("m{i}")).await.message);
    }
    // A window of 5 holds 8..=12; the protocol promises the latest 50: all 12, in order.
    let joined = room
        .join("carol", Sid::random(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(joined.messages, sent);
    assert_eq!(joined.cursor, Some(1));
    assert_eq!(joined.last_seq, 12);
    // Past 50: exactly the latest 50, oldest first.
    for i in 12..70 {
        sent.push(post(&room, "alice", &format!("m{i}")).await.message);
    }
    let joined = room
        .join("dave", Sid::random(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs(&joined.messages), (21..=70).collect::<Vec<_>>());
    assert_eq!(joined.messages, sent[20..]);
    assert_eq!(joined.cursor, Some(21));
}

#[tokio::test(start_paused = true)]
async fn join_without_since_returns_no_more_than_50_of_a_larger_window() {
    let mut s = settings();
    s.window = 60;
    let f = fixture(s).await;
    let room = f.lobby().await;
    for i in 0..55 {
        post(&room, "alice", &format!("m{i}")).await;
    }
    let joined = room
        .join("bob", Sid::random(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs(&joined.messages), (6..=55).collect::<Vec<_>>());
    assert_eq!(joined.cursor, Some(6));
}

#[tokio::test(start_paused = true)]
async fn tutorial_sockets_catch_up_in_order_before_live_messages() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    for i in 0..8 {
        post(&room, "alice", &format!("m{i}")).await;
    }
    f.drain(&room).await;
    let (near, far) = (Sid::random(), Sid::random());
    room.attach(near, 6).await.unwrap();
    room.attach(far, 1).await.unwrap();
    post(&room, "alice", "live").await;
    assert_eq!(
        f.drain(&room).await,
        vec![
            Out::CatchUp(near, vec![7, 8]),
            Out::Join(near, Group::Tutorial),
            // Older than the window (4..=8): read from the store, then the window's rest.
            Out::CatchUp(far, vec![2, 3, 4, 5, 6, 7, 8]),
            Out::CatchUp(far, vec![]),
            Out::Join(far, Group::Tutorial),
            Out::Message(9, None),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn topic_changes_are_stored_and_announced() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    room.set_topic("Rust".into(), "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.drain(&room).await, vec![Out::Topic("Rust".into())]);
    assert_eq!(f.store.room("lobby").await.unwrap().unwrap().topic, "Rust");
}

#[tokio::test(start_paused = true)]
async fn idle_rooms_stop_and_come_back_from_the_store() {
    let mut s = settings();
    s.idle_timeout = Duration::from_secs(10);
    let f = fixture(s).await;
    let room = f.lobby().await;
    post(&room, "alice", "m1").await;
    assert_eq!(f.registry.running().await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(room.summary().await.is_err(), "the idle room stopped");
    assert!(f.registry.running().await.unwrap().is_empty());
    let again = f.lobby().await;
    assert_ne!(again.instance, room.instance);
    assert_eq!(again.summary().await.unwrap().last_seq, 1);
    assert_eq!(post(&again, "alice", "m2").await.message.seq, 2);
    // A room with members does not stop.
    again
        .join("alice", Sid::random(), None)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(again.summary().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn unknown_rooms_are_refused_and_direct_rooms_created_on_demand() {
    let f = fixture(settings()).await;
    let err = f.registry.get("nope").await.unwrap_err();
    assert_eq!(err.code, crate::protocol::Code::NoSuchRoom);
    let dm = RoomInfo {
        name: "@a:b".into(),
        topic: String::new(),
        kind: RoomKind::Direct,
        created_at: now_ms(),
    };
    let room = f.registry.get_or_create(dm.clone()).await.unwrap();
    assert_eq!(post(&room, "a", "x").await.message.seq, 1);
    assert_eq!(
        f.registry.get_or_create(dm).await.unwrap().instance,
        room.instance
    );
}

/// A store whose first `room` lookup answers what it read only once released, and which tells
/// when a room was created: for ordering a load against a concurrent create.
struct GatedStore {
    inner: Arc<MemoryStore>,
    looked_up: tokio::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    release: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    created: tokio::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Store for GatedStore {
    fn append(
        &self,
        m: crate::store::NewMessage,
    ) -> crate::store::BoxFuture<Result<crate::store::Appended, crate::store::StoreError>> {
        self.inner.append(m)
    }
    fn messages_after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> crate::store::BoxFuture<Result<Vec<StoredMessage>, crate::store::StoreError>> {
        self.inner.messages_after(room, after, limit)
    }
    fn messages_before(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> crate::store::BoxFuture<Result<Vec<StoredMessage>, crate::store::StoreError>> {
        self.inner.messages_before(room, before, limit)
    }
    fn last_seq(
        &self,
        room: &str,
    ) -> crate::store::BoxFuture<Result<u64, crate::store::StoreError>> {
        self.inner.last_seq(room)
    }
    fn rooms(&self) -> crate::store::BoxFuture<Result<Vec<RoomInfo>, crate::store::StoreError>> {
        self.inner.rooms()
    }
    fn room(
        &self,
        name: &str,
    ) -> crate::store::BoxFuture<Result<Option<RoomInfo>, crate::store::StoreError>> {
        let read = self.inner.room(name);
        let gate = self.looked_up.try_lock().ok().and_then(|mut g| g.take());
        let release = self.release.try_lock().ok().and_then(|mut r| r.take());
        Box::pin(async move {
            let found = read.await;
            if let (Some(gate), Some(release)) = (gate, release) {
                let _ = gate.send(());
                let _ = release.await;
            }
            found
        })
    }
    fn create_room(
        &self,
        info: RoomInfo,
    ) -> crate::store::BoxFuture<Result<bool, crate::store::StoreError>> {
        let create = self.inner.create_room(info);
        let told = self.created.try_lock().ok().and_then(|mut c| c.take());
        Box::pin(async move {
            let created = create.await;
            if let Some(told) = told {
                let _ = told.send(());
            }
            created
        })
    }
    fn set_topic(
        &self,
        room: &str,
        topic: &str,
    ) -> crate::store::BoxFuture<Result<(), crate::store::StoreError>> {
        self.inner.set_topic(room, topic)
    }
    fn health(&self) -> crate::store::BoxFuture<Result<(), crate::store::StoreError>> {
        self.inner.health()
    }
    fn close(&self) -> crate::store::BoxFuture<()> {
        self.inner.close()
    }
}

/// A join that looked the room up just before someone created it must not make the create
/// answer `no_such_room`: the creator gets its room, and so does the joiner.
#[tokio::test]
async fn a_create_racing_a_join_of_the_same_room_succeeds() {
    let (looked_up, on_lookup) = tokio::sync::oneshot::channel();
    let (release, gate) = tokio::sync::oneshot::channel();
    let (created, on_create) = tokio::sync::oneshot::channel();
    let store = Arc::new(GatedStore {
        inner: Arc::new(MemoryStore::new()),
        looked_up: tokio::sync::Mutex::new(Some(looked_up)),
        release: tokio::sync::Mutex::new(Some(gate)),
        created: tokio::sync::Mutex::new(Some(created)),
    });
    let (tx, _out) = mpsc::unbounded_channel();
    let registry = Registry::start(
        store.clone(),
        Arc::new(Recorder(tx)),
        Arc::new(Metrics::default()),
        settings(),
        None,
    );
    // The joiner's load reads "no such room" and is held before it reports.
    let join = tokio::spawn({
        let registry = registry.clone();
        async move { registry.get("new").await }
    });
    on_lookup.await.unwrap();
    let create = tokio::spawn({
        let (registry, store) = (registry.clone(), store.clone());
        async move { registry.create("new", "", store.as_ref()).await }
    });
    on_create.await.unwrap();
    // The creator's request is with the registry (commands are handled in order).
    registry.running().await.unwrap();
    release.send(()).unwrap();
    let created = create.await.unwrap().expect("the create succeeds");
    assert_eq!(created.summary().await.unwrap().info.name, "new");
    let joined = join.await.unwrap().expect("the join finds the room");
    assert_eq!(joined.instance, created.instance);
}

#[tokio::test]
async fn a_full_registry_mailbox_answers_overloaded() {
    use futures_util::FutureExt;
    let store = Arc::new(MemoryStore::new());
    let (tx, _out) = mpsc::unbounded_channel();
    let registry = Registry::start_with(
        store,
        Arc::new(Recorder(tx)),
        Arc::new(Metrics::default()),
        settings(),
        2,
    );
    // On this single-threaded runtime the actor does not run until the test awaits.
    for _ in 0..2 {
        assert!(registry.get("lobby").now_or_never().is_none());
    }
    let err = registry.get("lobby").await.unwrap_err();
    assert_eq!(err.code, crate::protocol::Code::Overloaded);
    assert_eq!(
        registry.running().await.unwrap_err().code,
        crate::protocol::Code::Overloaded
    );
    tokio::task::yield_now().await;
    assert!(registry.running().await.unwrap().is_empty());
}

/// A store whose appends never commit.
struct Stalled(MemoryStore);

impl Store for Stalled {
    fn append(
        &self,
        _: crate::store::NewMessage,
    ) -> crate::store::BoxFuture<Result<crate::store::Appended, crate::store::StoreError>> {
        Box::pin(std::future::pending())
    }
    fn messages_after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> crate::store::BoxFuture<Result<Vec<StoredMessage>, crate::store::StoreError>> {
        self.0.messages_after(room, after, limit)
    }
    fn messages_before(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> crate::store::BoxFuture<Result<Vec<StoredMessage>, crate::store::StoreError>> {
        self.0.messages_before(room, before, limit)
    }
    fn last_seq(
        &self,
        room: &str,
    ) -> crate::store::BoxFuture<Result<u64, crate::store::StoreError>> {
        self.0.last_seq(room)
    }
    fn rooms(&self) -> crate::store::BoxFuture<Result<Vec<RoomInfo>, crate::store::StoreError>> {
        self.0.rooms()
    }
    fn room(
        &self,
        name: &str,
    ) -> crate::store::BoxFuture<Result<Option<RoomInfo>, crate::store::StoreError>> {
        self.0.room(name)
    }
    fn create_room(
        &self,
        info: RoomInfo,
    ) -> crate::store::BoxFuture<Result<bool, crate::store::StoreError>> {
        self.0.create_room(info)
    }
    fn set_topic(
        &self,
        room: &str,
        topic: &str,
    ) -> crate::store::BoxFuture<Result<(), crate::store::StoreError>> {
        self.0.set_topic(room, topic)
    }
    fn health(&self) -> crate::store::BoxFuture<Result<(), crate::store::StoreError>> {
        self.0.health()
    }
    fn close(&self) -> crate::store::BoxFuture<()> {
        self.0.close()
    }
}

#[tokio::test]
async fn appends_beyond_the_pending_bound_are_answered_overloaded() {
    const BOUND: usize = 3;
    let store = Stalled(MemoryStore::new());
    store
        .create_room(RoomInfo {
            name: "lobby".into(),
            topic: String::new(),
            kind: RoomKind::Room,
            created_at: now_ms(),
        })
        .await
        .unwrap();
    let (tx, _out) = mpsc::unbounded_channel();
    let registry = Registry::start(
        Arc::new(store),
        Arc::new(Recorder(tx)),
        Arc::new(Metrics::default()),
        RoomSettings {
            max_pending_writes: BOUND,
            ..settings()
        },
        None,
    );
    let room = registry.get("lobby").await.unwrap();
    // Appends that never commit: BOUND wait in the queue, one more in the store at most. Each
    // is handled by the room (its mailbox is in order) before the next is sent.
    let mut stuck = Vec::new();
    for i in 0..BOUND + 3 {
        let r = room.clone();
        stuck.push(tokio::spawn(async move {
            r.post("alice", format!("s{i}"), "x".into(), None).await
        }));
        tokio::task::yield_now().await;
        room.summary().await.unwrap();
    }
    let posted = tokio::time::timeout(
        Duration::from_secs(10),
        room.post("alice", "one more".into(), "x".into(), None),
    )
    .await
    .expect("an answer, not a wait")
    .unwrap();
    assert_eq!(posted.unwrap_err().code, crate::protocol::Code::Overloaded);
    // The room itself still answers.
    assert_eq!(room.summary().await.unwrap().last_seq, 0);
    for task in stuck {
        task.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_start_after_a_message_is_relayed_by_the_end_of_the_interval() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    let tab = Sid::random();
    room.join("bob", tab, None).await.unwrap().unwrap();
    f.drain(&room).await;
    room.typing("bob", tab, true).await.unwrap();
    post(&room, "bob", "m1").await;
    room.typing("bob", tab, true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        f.drain(&room).await,
        vec![
            Out::Typing("bob".into(), true),
            Out::Message(1, None),
            Out::Typing("bob".into(), true)
        ]
    );
}
