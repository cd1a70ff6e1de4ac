//! Room and registry actors in a cluster: events of other nodes, injected through the
//! registry as the cluster's dispatcher hands them over.

use engineio::Sid;

use crate::cluster::RoomEvent;
use crate::room::Remote;
use crate::room_tests::{fixture, settings, Out};
use crate::store::{now_ms, NewMessage, RoomInfo, RoomKind, Store, StoredMessage};

/// Appends as another node would: straight to the shared store.
async fn append_elsewhere(store: &dyn Store, room: &str, user: &str, id: &str) -> StoredMessage {
    store
        .append(NewMessage {
            room: room.into(),
            client_id: id.into(),
            user: user.into(),
            text: format!("text {id}"),
            ts: now_ms(),
        })
        .await
        .unwrap()
        .message
}

fn message(m: StoredMessage) -> RoomEvent {
    RoomEvent::Message {
        kind: RoomKind::Room,
        message: m,
    }
}

fn messages(out: &[Out]) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            Out::Message(seq, _) => Some(*seq),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn messages_of_other_nodes_are_delivered_in_sequence_order() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    let m1 = append_elsewhere(f.store.as_ref(), "lobby", "bob", "a").await;
    let m2 = append_elsewhere(f.store.as_ref(), "lobby", "bob", "b").await;
    let m3 = append_elsewhere(f.store.as_ref(), "lobby", "bob", "c").await;
    // 3 and 2 overtake 1 on the way; 2 comes twice.
    for m in [m3, m2.clone(), m2, m1] {
        room.remote(Remote::Event {
            node: "b".into(),
            event: message(m),
        });
    }
    let out = f.drain(&room).await;
    assert_eq!(messages(&out), vec![1, 2, 3]);
    // A local post after them takes the next number and follows them.
    let own = room
        .post("alice", "x".into(), "mine".into(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(own.message.seq, 4);
    assert_eq!(messages(&f.drain(&room).await), vec![4]);
}

#[tokio::test(start_paused = true)]
async fn a_message_whose_predecessor_never_comes_is_filled_from_the_store() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    // Two commits of another node whose events were lost, then a third that arrives.
    for id in ["a", "b"] {
        append_elsewhere(f.store.as_ref(), "lobby", "bob", id).await;
    }
    let third = append_elsewhere(f.store.as_ref(), "lobby", "bob", "c").await;
    room.remote(Remote::Event {
        node: "b".into(),
        event: message(third),
    });
    assert_eq!(messages(&f.drain(&room).await), Vec::<u64>::new());
    // The wait for the gap passes (paused clock: advances when every task is idle).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(messages(&f.drain(&room).await), vec![1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_resync_reads_what_was_missed() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    for id in ["a", "b"] {
        append_elsewhere(f.store.as_ref(), "lobby", "bob", id).await;
    }
    room.remote(Remote::Resync);
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    assert_eq!(messages(&f.drain(&room).await), vec![1, 2]);
}

#[tokio::test(start_paused = true)]
async fn presence_is_the_union_of_the_nodes() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    let tab = Sid::random();
    room.join("alice", tab, None).await.unwrap().unwrap();
    let presence = |out: Vec<Out>| -> Vec<(String, bool)> {
        out.into_iter()
            .filter_map(|o| match o {
                Out::Presence(u, on) => Some((u, on)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(presence(f.drain(&room).await), vec![("alice".into(), true)]);
    let remote = |node: &str, user: &str, online: bool| Remote::Event {
        node: node.into(),
        event: RoomEvent::Presence {
            user: user.into(),
            online,
        },
    };
    // Alice's second tab is on node b; Bob is on b and c.
    room.remote(remote("b", "alice", true));
    room.remote(remote("b", "bob", true));
    room.remote(remote("c", "Bob", true));
    assert_eq!(presence(f.drain(&room).await), vec![("bob".into(), true)]);
    assert_eq!(room.members().await.unwrap(), vec!["alice", "bob"]);
    assert_eq!(room.summary().await.unwrap().members, 2);
    // Bob leaves b: still on c. Node c dies: Bob is gone.
    room.remote(remote("b", "bob", false));
    assert_eq!(presence(f.drain(&room).await), vec![]);
    // Node c is gone: Bob leaves after the grace period unless he shows up elsewhere.
    room.remote(Remote::NodeGone("c".into()));
    assert_eq!(presence(f.drain(&room).await), vec![]);
    tokio::time::sleep(crate::room_tests::GRACE + std::time::Duration::from_millis(1)).await;
    assert_eq!(presence(f.drain(&room).await), vec![("bob".into(), false)]);
    // Carol's node goes, and she is back on another within the grace: no leave, no join.
    room.remote(remote("c", "carol", true));
    assert_eq!(presence(f.drain(&room).await), vec![("carol".into(), true)]);
    room.remote(Remote::NodeGone("c".into()));
    room.remote(remote("b", "carol", true));
    tokio::time::sleep(crate::room_tests::GRACE + std::time::Duration::from_millis(1)).await;
    assert_eq!(presence(f.drain(&room).await), vec![]);
    room.remote(remote("b", "carol", false));
    assert_eq!(
        presence(f.drain(&room).await),
        vec![("carol".into(), false)]
    );
    // Alice's local tab leaves: her tab on b keeps her present.
    room.leave("alice", tab).await.unwrap();
    assert_eq!(presence(f.drain(&room).await), vec![]);
    room.remote(remote("b", "alice", false));
    assert_eq!(
        presence(f.drain(&room).await),
        vec![("alice".into(), false)]
    );
    assert!(room.members().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_direct_message_from_another_node_starts_its_room_and_is_delivered() {
    let mut f = fixture(settings()).await;
    f.store
        .create_room(RoomInfo {
            name: "@alice:bob".into(),
            topic: String::new(),
            kind: RoomKind::Direct,
            created_at: now_ms(),
        })
        .await
        .unwrap();
    let first = append_elsewhere(f.store.as_ref(), "@alice:bob", "bob", "a").await;
    // The room is not running here: the event starts it, and the message still goes out,
    // though the store already holds it when the room loads.
    f.registry
        .cluster_event(
            "@alice:bob".into(),
            "b".into(),
            RoomEvent::Message {
                kind: RoomKind::Direct,
                message: first,
            },
        )
        .await;
    let room = f.registry.get("@alice:bob").await.unwrap();
    assert_eq!(messages(&f.drain(&room).await), vec![1]);
}

#[tokio::test(start_paused = true)]
async fn a_recovered_connection_gets_what_it_missed_then_goes_live() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    for id in ["a", "b", "c"] {
        room.post("bob", id.into(), "x".into(), None)
            .await
            .unwrap()
            .unwrap();
    }
    f.drain(&room).await;
    let tab = Sid::random();
    room.rejoin("alice", tab, 1).await.unwrap();
    let out = f.drain(&room).await;
    assert_eq!(
        out,
        vec![
            Out::Presence("alice".into(), true),
            Out::CatchUp(tab, vec![2, 3]),
            Out::Join(tab, crate::room::Group::Chat),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_recovered_ahead_of_this_node_goes_live_once_the_room_catches_up() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    let m1 = append_elsewhere(f.store.as_ref(), "lobby", "bob", "a").await;
    let m2 = append_elsewhere(f.store.as_ref(), "lobby", "bob", "b").await;
    // Its first node sent it 1 and 2; here they are still on their way.
    let tab = Sid::random();
    room.rejoin("alice", tab, 2).await.unwrap();
    room.remote(Remote::Event {
        node: "b".into(),
        event: message(m1),
    });
    room.remote(Remote::Event {
        node: "b".into(),
        event: message(m2),
    });
    let out = f.drain(&room).await;
    assert_eq!(
        out,
        vec![
            Out::Presence("alice".into(), true),
            Out::Message(1, None),
            Out::Message(2, None),
            Out::Join(tab, crate::room::Group::Chat),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_ack_waits_until_every_earlier_message_was_delivered() {
    let mut f = fixture(settings()).await;
    let room = f.lobby().await;
    // Another node committed 1; its event is still on the way.
    let first = append_elsewhere(f.store.as_ref(), "lobby", "bob", "a").await;
    let post = {
        let room = room.clone();
        tokio::spawn(async move { room.post("alice", "x".into(), "mine".into(), None).await })
    };
    // Committed as 2, but not acked: the sender would take 2 as "everything up to 2". (The
    // paused clock moves once every task is idle: all is done, short of the gap wait.)
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    assert_eq!(messages(&f.drain(&room).await), Vec::<u64>::new());
    assert!(!post.is_finished());
    room.remote(Remote::Event {
        node: "b".into(),
        event: message(first),
    });
    let acked = post.await.unwrap().unwrap().unwrap();
    assert_eq!(acked.message.seq, 2);
    assert_eq!(messages(&f.drain(&room).await), vec![1, 2]);
}
