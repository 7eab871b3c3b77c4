//! The backplane contract: the same cases run against the in-process bus and
//! a real `redis-server`, so the two implementations cannot drift apart
//! (ordering, dedup, trimming by length and age, epochs, overlays, read
//! markers, presence expiry, drafts, statuses, the node registry, signals).
//!
//! Each case is an `async fn(Store)`; `contract!` runs it on both.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use chorus_backplane::{
    Backplane, Change, ChangeOp, ChangeRefusal, Changed, Dedup, Delivery, HistorySettings, Inbound,
    Marked, MemoryBus, Outgoing, PresenceEntry, Published, Read,
};
use chorus_protocol::RoomName;
use chorus_testkit::{RedisServer, eventually, redis_settings};
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Where a case runs.
#[derive(Clone, Copy, Debug)]
enum Store {
    /// The in-process bus.
    Memory,
    /// A real Redis.
    Redis,
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::Store::Memory).await })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::Store::Redis).await })*
        }
    };
}

contract!(
    publishes_are_numbered_once_in_one_order_that_every_node_hears,
    a_retry_within_the_dedup_window_is_answered_with_the_original,
    history_keeps_the_newest_up_to_the_length_bound,
    messages_older_than_the_age_bound_leave_the_history,
    pages_read_backwards_by_message_and_forwards_by_entry,
    an_idle_room_forgets_its_history_and_starts_a_new_epoch,
    changes_overlay_their_message_and_take_their_own_number,
    read_markers_move_forward_only_and_count_unread_messages,
    presence_joins_once_per_user_and_expires_with_its_node,
    members_lists_are_capped_but_count_everyone,
    drafts_are_bounded_per_user_and_statuses_are_kept,
    nodes_announce_with_a_ttl_and_withdraw,
    signals_are_relayed_unnumbered_and_only_to_subscribers,
);

/// What a node heard, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Heard {
    /// A numbered entry.
    Message {
        room: String,
        epoch: u64,
        seq: u64,
        payload: Bytes,
    },
    /// A signal.
    Signal { room: String, payload: Bytes },
}

/// An [`Inbound`] that records everything, with a way to wait for it.
#[derive(Default)]
struct Ear {
    /// Everything heard so far.
    heard: Mutex<Vec<Heard>>,
    /// Woken on each arrival.
    arrived: Notify,
}

impl Inbound for Ear {
    fn deliver(&self, room: &RoomName, delivery: Delivery) {
        self.heard.lock().push(Heard::Message {
            room: room.to_string(),
            epoch: delivery.epoch,
            seq: delivery.seq,
            payload: delivery.payload,
        });
        self.arrived.notify_waiters();
    }

    fn signal(&self, room: &RoomName, payload: Bytes) {
        self.heard.lock().push(Heard::Signal {
            room: room.to_string(),
            payload,
        });
        self.arrived.notify_waiters();
    }
}

impl Ear {
    /// Waits until at least `n` things were heard; returns all of them.
    async fn wait_for(&self, n: usize) -> Vec<Heard> {
        tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                let arrived = self.arrived.notified();
                tokio::pin!(arrived);
                arrived.as_mut().enable();
                {
                    let heard = self.heard.lock();
                    if heard.len() >= n {
                        return heard.clone();
                    }
                }
                arrived.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("heard {:?}, waited for {n}", self.heard.lock()))
    }

    /// The sequence numbers of the messages heard.
    fn seqs(&self) -> Vec<u64> {
        self.heard
            .lock()
            .iter()
            .filter_map(|h| match h {
                Heard::Message { seq, .. } => Some(*seq),
                Heard::Signal { .. } => None,
            })
            .collect()
    }
}

/// A shared store and the nodes attached to it.
struct Cluster {
    /// Each node's backplane and what it heard.
    nodes: Vec<(Backplane, Arc<Ear>)>,
    /// The Redis server, for [`Store::Redis`].
    _redis: Option<RedisServer>,
}

impl Cluster {
    /// `n` nodes sharing one store with these history bounds.
    async fn start(store: Store, n: usize, history: HistorySettings) -> Self {
        let mut nodes = Vec::new();
        let redis = match store {
            Store::Memory => {
                let bus = MemoryBus::with_history(history);
                for _ in 0..n {
                    let ear = Arc::new(Ear::default());
                    nodes.push((bus.attach(ear.clone()), ear));
                }
                None
            }
            Store::Redis => {
                let redis = RedisServer::start().await;
                let settings = redis_settings(&redis.url());
                for _ in 0..n {
                    let ear = Arc::new(Ear::default());
                    let registry = prometheus::Registry::new();
                    let backplane = settings
                        .connect(history, ear.clone(), &registry)
                        .await
                        .expect("connects to Redis");
                    eventually("the backplane to be ready", || {
                        let ready = backplane.pubsub.is_ready();
                        async move { ready.then_some(()) }
                    })
                    .await;
                    nodes.push((backplane, ear));
                }
                Some(redis)
            }
        };
        Self {
            nodes,
            _redis: redis,
        }
    }

    /// One node with the default bounds.
    async fn one(store: Store) -> (Self, Backplane, Arc<Ear>) {
        Self::one_with(store, HistorySettings::default()).await
    }

    /// One node with these bounds.
    async fn one_with(store: Store, history: HistorySettings) -> (Self, Backplane, Arc<Ear>) {
        let cluster = Self::start(store, 1, history).await;
        let (backplane, ear) = cluster.nodes[0].clone();
        (cluster, backplane, ear)
    }
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A message `text` from `sender` accepted at `ts`, with an optional dedup key.
fn message(text: &str, sender: &str, ts: u64, dedup: Option<&str>) -> Outgoing {
    Outgoing {
        payload: Bytes::from(text.to_owned()),
        id: format!("id-{text}"),
        ts,
        sender: sender.into(),
        dedup: dedup.map(|key| Dedup {
            key: key.into(),
            reply: Bytes::from(format!("reply-{text}")),
        }),
    }
}

async fn publish(backplane: &Backplane, room: &RoomName, text: &str) -> u64 {
    match backplane
        .log
        .publish(room, message(text, "ann", now_ms(), None))
        .await
        .unwrap()
    {
        Published::New(position) => position.seq,
        other => panic!("expected a new message, got {other:?}"),
    }
}

fn payloads(page: &chorus_backplane::Page) -> Vec<String> {
    page.entries
        .iter()
        .map(|e| String::from_utf8(e.payload.to_vec()).unwrap())
        .collect()
}

fn seqs(page: &chorus_backplane::Page) -> Vec<u64> {
    page.entries.iter().map(|e| e.seq).collect()
}

async fn publishes_are_numbered_once_in_one_order_that_every_node_hears(store: Store) {
    let cluster = Cluster::start(store, 2, HistorySettings::default()).await;
    let lobby = room("lobby");
    for (node, _) in &cluster.nodes {
        node.pubsub.subscribe(&lobby).await.unwrap();
    }
    // Both nodes publish at once, 40 messages each.
    let sends = cluster.nodes.iter().enumerate().flat_map(|(n, (node, _))| {
        let lobby = lobby.clone();
        (0..40).map(move |i| {
            let node = node.clone();
            let lobby = lobby.clone();
            async move { publish(&node, &lobby, &format!("{n}-{i}")).await }
        })
    });
    let mut numbers = futures_util::future::join_all(sends).await;
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=80).collect::<Vec<_>>(), "each number once");
    let history = cluster.nodes[0]
        .0
        .log
        .read(&lobby, Read::After { seq: 0, limit: 100 })
        .await
        .unwrap();
    assert_eq!(seqs(&history), (1..=80).collect::<Vec<_>>());
    for (_, ear) in &cluster.nodes {
        let heard = ear.wait_for(80).await;
        // Every node hears the stored order: the same payload at each number.
        for (heard, stored) in heard.iter().zip(&history.entries) {
            let Heard::Message {
                room, seq, payload, ..
            } = heard
            else {
                panic!("unexpected {heard:?}");
            };
            assert_eq!((room.as_str(), *seq), ("lobby", stored.seq));
            assert_eq!(payload, &stored.payload);
        }
    }
}

async fn a_retry_within_the_dedup_window_is_answered_with_the_original(store: Store) {
    let history = HistorySettings {
        dedup_window: Duration::from_millis(300),
        ..HistorySettings::default()
    };
    let (_cluster, node, ear) = Cluster::one_with(store, history).await;
    let lobby = room("lobby");
    node.pubsub.subscribe(&lobby).await.unwrap();
    let first = node
        .log
        .publish(&lobby, message("a", "ann", now_ms(), Some("k1")))
        .await
        .unwrap();
    let Published::New(at) = first else {
        panic!("{first:?}")
    };
    let again = node
        .log
        .publish(&lobby, message("b", "ann", now_ms(), Some("k1")))
        .await
        .unwrap();
    assert_eq!(
        again,
        Published::Duplicate {
            epoch: at.epoch,
            seq: at.seq,
            reply: Bytes::from_static(b"reply-a"),
        }
    );
    // Another key is another message.
    assert!(matches!(
        node.log
            .publish(&lobby, message("c", "ann", now_ms(), Some("k2")))
            .await
            .unwrap(),
        Published::New(p) if p.seq == 2
    ));
    // Past the window the key is forgotten: the same key stores a new message.
    let later = eventually("the dedup key to expire", || {
        let node = node.clone();
        let lobby = lobby.clone();
        async move {
            match node
                .log
                .publish(&lobby, message("d", "ann", now_ms(), Some("k1")))
                .await
                .unwrap()
            {
                Published::New(p) => Some(p.seq),
                Published::Duplicate { .. } => None,
            }
        }
    })
    .await;
    assert_eq!(later, 3);
    assert_eq!(ear.wait_for(3).await.len(), 3);
    assert_eq!(ear.seqs(), [1, 2, 3], "a duplicate is never relayed");
}

async fn history_keeps_the_newest_up_to_the_length_bound(store: Store) {
    let history = HistorySettings {
        max_len: 10,
        ..HistorySettings::default()
    };
    let (_cluster, node, _) = Cluster::one_with(store, history).await;
    let lobby = room("lobby");
    for i in 1..=300 {
        publish(&node, &lobby, &i.to_string()).await;
    }
    let all = node
        .log
        .read(
            &lobby,
            Read::After {
                seq: 0,
                limit: 1000,
            },
        )
        .await
        .unwrap();
    // Redis trims whole stream nodes (MAXLEN ~): at least the bound is kept,
    // and at most one node (100 entries) more.
    let kept = all.entries.len();
    assert!((10..=110).contains(&kept), "kept {kept}");
    assert_eq!(all.entries.last().unwrap().seq, 300);
    assert_eq!(
        seqs(&all),
        ((301 - kept as u64)..=300).collect::<Vec<_>>(),
        "the newest, contiguous"
    );
    assert_eq!(all.position.seq, 300, "numbering goes on past the trim");
}

async fn messages_older_than_the_age_bound_leave_the_history(store: Store) {
    let history = HistorySettings {
        max_age: Duration::from_secs(3600),
        ..HistorySettings::default()
    };
    let (_cluster, node, _) = Cluster::one_with(store, history).await;
    let lobby = room("lobby");
    let two_hours_ago = now_ms() - 2 * 3600 * 1000;
    for i in 1..=10 {
        let old = message(&format!("old-{i}"), "ann", two_hours_ago, None);
        node.log.publish(&lobby, old).await.unwrap();
    }
    // Redis trims by age every 32nd message; the in-process bus on every call.
    for i in 11..=42 {
        publish(&node, &lobby, &i.to_string()).await;
    }
    let page = node
        .log
        .read(&lobby, Read::Latest { limit: 100 })
        .await
        .unwrap();
    assert_eq!(seqs(&page), (11..=42).collect::<Vec<_>>());
    assert!(!page.more);
}

async fn pages_read_backwards_by_message_and_forwards_by_entry(store: Store) {
    let (_cluster, node, _) = Cluster::one(store).await;
    let lobby = room("lobby");
    for i in 1..=8 {
        publish(&node, &lobby, &i.to_string()).await;
    }
    let latest = node
        .log
        .read(&lobby, Read::Latest { limit: 3 })
        .await
        .unwrap();
    assert_eq!((seqs(&latest), latest.more), (vec![6, 7, 8], true));
    assert_eq!(payloads(&latest), ["6", "7", "8"]);
    assert_eq!(latest.position.seq, 8);
    let before = node
        .log
        .read(&lobby, Read::Before { seq: 3, limit: 5 })
        .await
        .unwrap();
    assert_eq!((seqs(&before), before.more), (vec![1, 2], false));
    let by_id = Read::BeforeId {
        id: "id-7".into(),
        limit: 2,
    };
    let by_id = node.log.read(&lobby, by_id).await.unwrap();
    assert_eq!((seqs(&by_id), by_id.more), (vec![5, 6], true));
    let after = node
        .log
        .read(&lobby, Read::After { seq: 5, limit: 2 })
        .await
        .unwrap();
    assert_eq!((seqs(&after), after.more), (vec![6, 7], true));
    let unknown = Read::BeforeId {
        id: "id-nope".into(),
        limit: 2,
    };
    assert!(matches!(
        node.log.read(&lobby, unknown).await,
        Err(chorus_backplane::BackplaneError::UnknownMessage)
    ));
    let empty = node
        .log
        .read(&room("empty"), Read::Latest { limit: 5 })
        .await
        .unwrap();
    assert_eq!(
        (empty.entries.len(), empty.more, empty.position.seq),
        (0, false, 0)
    );
}

async fn an_idle_room_forgets_its_history_and_starts_a_new_epoch(store: Store) {
    let history = HistorySettings {
        max_age: Duration::from_millis(300),
        state_ttl: Duration::from_millis(300),
        ..HistorySettings::default()
    };
    let (_cluster, node, _) = Cluster::one_with(store, history).await;
    let lobby = room("lobby");
    for i in 1..=3 {
        publish(&node, &lobby, &i.to_string()).await;
    }
    let before = node
        .log
        .positions(std::slice::from_ref(&lobby))
        .await
        .unwrap()[0];
    assert_eq!(before.seq, 3);
    let after = eventually("the room's state to expire", || {
        let node = node.clone();
        let lobby = lobby.clone();
        async move {
            let now = node.log.positions(&[lobby]).await.unwrap()[0];
            (now.epoch != before.epoch).then_some(now)
        }
    })
    .await;
    assert!(after.epoch > before.epoch, "epochs only grow");
    assert_eq!(after.seq, 0, "numbering restarts");
    assert_eq!(publish(&node, &lobby, "new").await, 1);
    let page = node
        .log
        .read(&lobby, Read::Latest { limit: 10 })
        .await
        .unwrap();
    assert_eq!(payloads(&page), ["new"], "the old history is gone");
}

/// A change by `by` of message `target`.
fn change(target: u64, by: &str, moderator: bool, op: ChangeOp) -> Change {
    Change {
        target,
        target_id: None,
        by: by.into(),
        moderator,
        op,
        payload: Bytes::from_static(b"change"),
        id: uuid_like(by, target),
        ts: now_ms(),
    }
}

fn uuid_like(by: &str, target: u64) -> String {
    format!("change-{by}-{target}-{}", now_ms())
}

async fn changes_overlay_their_message_and_take_their_own_number(store: Store) {
    let (_cluster, node, ear) = Cluster::one(store).await;
    let lobby = room("lobby");
    node.pubsub.subscribe(&lobby).await.unwrap();
    assert_eq!(publish(&node, &lobby, "hello").await, 1);
    let edit = change(1, "ann", false, ChangeOp::Edit("hello, fixed".into()));
    let applied = node.log.change(&lobby, edit).await.unwrap();
    assert!(matches!(applied, Changed::Applied(p) if p.seq == 2));
    let thumbs = ChangeOp::React("👍".into());
    let react = node
        .log
        .change(&lobby, change(1, "bob", false, thumbs.clone()));
    assert!(matches!(react.await.unwrap(), Changed::Applied(p) if p.seq == 3));
    let again = node.log.change(&lobby, change(1, "bob", false, thumbs));
    assert_eq!(again.await.unwrap(), Changed::Unchanged);
    let unreact = node.log.change(
        &lobby,
        change(1, "cid", false, ChangeOp::Unreact("👍".into())),
    );
    assert_eq!(unreact.await.unwrap(), Changed::Unchanged);
    // Only the sender or a moderator rewrites a message.
    let theirs = change(1, "bob", false, ChangeOp::Edit("mine now".into()));
    assert_eq!(
        node.log.change(&lobby, theirs).await.unwrap(),
        Changed::Refused(ChangeRefusal::NotYours)
    );
    let not_a_message = change(2, "ann", false, ChangeOp::Delete);
    assert_eq!(
        node.log.change(&lobby, not_a_message).await.unwrap(),
        Changed::Refused(ChangeRefusal::NotAMessage)
    );
    let unknown = change(99, "ann", false, ChangeOp::Delete);
    assert_eq!(
        node.log.change(&lobby, unknown).await.unwrap(),
        Changed::Refused(ChangeRefusal::UnknownMessage)
    );
    let mut wrong_id = change(1, "ann", false, ChangeOp::Delete);
    wrong_id.target_id = Some("id-other".into());
    assert_eq!(
        node.log.change(&lobby, wrong_id).await.unwrap(),
        Changed::Refused(ChangeRefusal::UnknownMessage)
    );

    // Backwards, the message carries its overlay; forwards, every entry comes.
    let latest = node
        .log
        .read(&lobby, Read::Latest { limit: 10 })
        .await
        .unwrap();
    assert_eq!(seqs(&latest), [1]);
    let overlay = latest.entries[0].overlay.clone().expect("an overlay");
    assert_eq!(overlay.body.as_deref(), Some("hello, fixed"));
    assert_eq!(
        overlay.reactions,
        vec![("👍".to_owned(), vec!["bob".to_owned()])]
    );
    let forwards = node
        .log
        .read(&lobby, Read::After { seq: 0, limit: 10 })
        .await
        .unwrap();
    assert_eq!(seqs(&forwards), [1, 2, 3]);
    assert_eq!(ear.wait_for(3).await.len(), 3, "changes are relayed");

    // A moderator may delete anyone's message; a deleted message takes no more changes.
    let delete = change(1, "mod", true, ChangeOp::Delete);
    assert!(matches!(
        node.log.change(&lobby, delete).await.unwrap(),
        Changed::Applied(p) if p.seq == 4
    ));
    let late = change(1, "bob", false, ChangeOp::React("🎉".into()));
    assert_eq!(
        node.log.change(&lobby, late).await.unwrap(),
        Changed::Refused(ChangeRefusal::Deleted)
    );
    let page = node
        .log
        .read(&lobby, Read::Latest { limit: 10 })
        .await
        .unwrap();
    let tombstone = page.entries[0].overlay.clone().unwrap();
    assert!(tombstone.deleted.is_some());
    assert_eq!((tombstone.body, tombstone.reactions.len()), (None, 0));
}

async fn read_markers_move_forward_only_and_count_unread_messages(store: Store) {
    let (_cluster, node, ear) = Cluster::one(store).await;
    let lobby = room("lobby");
    node.pubsub.subscribe(&lobby).await.unwrap();
    for i in 1..=5 {
        publish(&node, &lobby, &i.to_string()).await;
    }
    let react = change(5, "bob", false, ChangeOp::React("x".into()));
    node.log.change(&lobby, react).await.unwrap();
    let head = node
        .log
        .positions(std::slice::from_ref(&lobby))
        .await
        .unwrap()[0];
    assert_eq!(head.seq, 6);
    let at = |seq| chorus_backplane::Position {
        epoch: head.epoch,
        seq,
    };
    let receipt = Bytes::from_static(b"receipt");
    let mark = |user: &'static str, seq| {
        let node = node.clone();
        let lobby = lobby.clone();
        let receipt = receipt.clone();
        async move {
            node.markers
                .mark(&lobby, user, at(seq), receipt)
                .await
                .unwrap()
        }
    };
    assert_eq!(mark("ann", 3).await, Marked::Moved(3));
    assert_eq!(mark("ann", 2).await, Marked::Unchanged(3));
    assert_eq!(mark("ann", 7).await, Marked::BeyondHead(head));
    assert_eq!(mark("bob", 5).await, Marked::Moved(5));
    let other_epoch = node
        .markers
        .mark(
            &lobby,
            "ann",
            chorus_backplane::Position {
                epoch: head.epoch - 1,
                seq: 1,
            },
            receipt.clone(),
        )
        .await
        .unwrap();
    assert_eq!(other_epoch, Marked::OtherEpoch(head));
    // Two markers moved: two receipts relayed, after the six entries.
    let heard = ear.wait_for(8).await;
    let signals = heard
        .iter()
        .filter(|h| matches!(h, Heard::Signal { payload, .. } if payload == &receipt))
        .count();
    assert_eq!(signals, 2);

    assert_eq!(
        node.markers.marker(&lobby, "ann").await.unwrap(),
        Some(at(3))
    );
    assert_eq!(node.markers.marker(&lobby, "cid").await.unwrap(), None);
    assert_eq!(
        node.markers.markers(&lobby).await.unwrap(),
        vec![("bob".to_owned(), at(5)), ("ann".to_owned(), at(3))]
    );
    // Unread: messages after the marker, not changes to them.
    let page = node
        .log
        .read_as(&lobby, Read::Latest { limit: 1 }, "ann")
        .await
        .unwrap();
    let reader = page
        .reader
        .expect("a read made for a user says where they are");
    assert_eq!((reader.marker, reader.unread), (Some(at(3)), 2));
    let stranger = node
        .log
        .read_as(&lobby, Read::Latest { limit: 1 }, "cid")
        .await
        .unwrap()
        .reader
        .unwrap();
    assert_eq!((stranger.marker, stranger.unread), (None, 5));
}

/// The entry of `user` in `room`, with recognisable signals.
fn present(user: &str) -> PresenceEntry {
    PresenceEntry {
        user: user.into(),
        join: Bytes::from(format!("join-{user}")),
        leave: Bytes::from(format!("leave-{user}")),
    }
}

/// The signals `ear` heard, as text.
fn signals(ear: &Ear) -> Vec<String> {
    ear.heard
        .lock()
        .iter()
        .filter_map(|h| match h {
            Heard::Signal { payload, .. } => Some(String::from_utf8(payload.to_vec()).unwrap()),
            Heard::Message { .. } => None,
        })
        .collect()
}

async fn presence_joins_once_per_user_and_expires_with_its_node(store: Store) {
    let cluster = Cluster::start(store, 2, HistorySettings::default()).await;
    let (a, ear) = cluster.nodes[0].clone();
    let (b, _) = cluster.nodes[1].clone();
    let lobby = room("lobby");
    a.pubsub.subscribe(&lobby).await.unwrap();
    let long = Duration::from_secs(30);
    let up = |node: &Backplane, name: &'static str, user: &'static str, ttl| {
        let node = node.clone();
        let lobby = lobby.clone();
        async move {
            node.presence
                .up(&lobby, name, vec![present(user)], ttl)
                .await
                .unwrap()
        }
    };
    // ann on two nodes is one member: one join, one leave.
    up(&a, "a", "ann", long).await;
    up(&b, "b", "ann", long).await;
    up(&a, "a", "ann", long).await; // a refresh
    assert_eq!(a.presence.list(&lobby, 10).await.unwrap().0, 1);
    a.presence
        .down(&lobby, "a", vec!["ann".into()])
        .await
        .unwrap();
    assert_eq!(a.presence.list(&lobby, 10).await.unwrap().0, 1);
    b.presence
        .down(&lobby, "b", vec!["ann".into()])
        .await
        .unwrap();
    ear.wait_for(2).await;
    assert_eq!(signals(&ear), ["join-ann", "leave-ann"]);
    assert_eq!(a.presence.list(&lobby, 10).await.unwrap().0, 0);

    // bob's node stops refreshing (it died): any later call ends his entry
    // and relays his leave.
    up(&a, "a", "cid", long).await;
    up(&b, "b", "bob", Duration::from_millis(200)).await;
    ear.wait_for(4).await;
    let (total, _) = eventually("bob's entry to expire", || {
        let a = a.clone();
        let lobby = lobby.clone();
        async move {
            let listed = a.presence.list(&lobby, 10).await.unwrap();
            (listed.0 == 1).then_some(listed)
        }
    })
    .await;
    assert_eq!(total, 1);
    ear.wait_for(5).await;
    assert_eq!(
        signals(&ear),
        ["join-ann", "leave-ann", "join-cid", "join-bob", "leave-bob"]
    );
}

async fn members_lists_are_capped_but_count_everyone(store: Store) {
    let (_cluster, node, _) = Cluster::one(store).await;
    let lobby = room("lobby");
    let entries: Vec<PresenceEntry> = (0..1500).map(|i| present(&format!("u{i}"))).collect();
    node.presence
        .up(&lobby, "a", entries, Duration::from_secs(30))
        .await
        .unwrap();
    let (total, leaves) = node.presence.list(&lobby, 1000).await.unwrap();
    assert_eq!((total, leaves.len()), (1500, 1000));
    let mut distinct = leaves.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 1000, "one signal per user");
    assert!(
        leaves.iter().all(|l| l.starts_with(b"leave-u")),
        "leave signals"
    );
    let (total, all) = node.presence.list(&lobby, 2000).await.unwrap();
    assert_eq!((total, all.len()), (1500, 1500));
}

async fn drafts_are_bounded_per_user_and_statuses_are_kept(store: Store) {
    let (_cluster, node, _) = Cluster::one(store).await;
    let users = &node.users;
    assert!(users.save_draft("ann", &room("b"), "two", 2).await.unwrap());
    assert!(users.save_draft("ann", &room("a"), "one", 2).await.unwrap());
    assert!(
        !users
            .save_draft("ann", &room("c"), "three", 2)
            .await
            .unwrap()
    );
    assert!(
        users
            .save_draft("ann", &room("a"), "one, longer", 2)
            .await
            .unwrap()
    );
    assert!(
        users
            .save_draft("bob", &room("c"), "bob's", 2)
            .await
            .unwrap()
    );
    let drafts = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(r, t)| (r.to_string(), t.to_string()))
            .collect()
    };
    assert_eq!(
        users.drafts("ann").await.unwrap(),
        drafts(&[("a", "one, longer"), ("b", "two")])
    );
    assert!(users.save_draft("ann", &room("a"), "", 2).await.unwrap());
    assert_eq!(users.drafts("ann").await.unwrap(), drafts(&[("b", "two")]));
    assert!(users.drafts("nobody").await.unwrap().is_empty());

    users.set_status("ann", "away").await.unwrap();
    users.set_status("bob", "online").await.unwrap();
    users.set_status("ann", "online").await.unwrap();
    let asked = ["bob".to_owned(), "nobody".to_owned(), "ann".to_owned()];
    assert_eq!(
        users.statuses(&asked).await.unwrap(),
        [Some("online".to_owned()), None, Some("online".to_owned())]
    );
}

async fn nodes_announce_with_a_ttl_and_withdraw(store: Store) {
    let (_cluster, node, _) = Cluster::one(store).await;
    let registry = &node.registry;
    registry
        .announce("a", "{\"id\":\"a\"}".into(), Duration::from_secs(30))
        .await
        .unwrap();
    registry
        .announce("b", "{\"id\":\"b\"}".into(), Duration::from_millis(200))
        .await
        .unwrap();
    let mut listed = registry.nodes().await.unwrap();
    listed.sort();
    assert_eq!(listed, ["{\"id\":\"a\"}", "{\"id\":\"b\"}"]);
    eventually("b's announcement to run out", || {
        let node = node.clone();
        async move { (node.registry.nodes().await.unwrap().len() == 1).then_some(()) }
    })
    .await;
    registry.withdraw("a").await.unwrap();
    assert!(registry.nodes().await.unwrap().is_empty());
}

async fn signals_are_relayed_unnumbered_and_only_to_subscribers(store: Store) {
    let (_cluster, node, ear) = Cluster::one(store).await;
    let lobby = room("lobby");
    node.pubsub.subscribe(&lobby).await.unwrap();
    node.pubsub
        .signal(&lobby, Bytes::from_static(b"typing"))
        .await
        .unwrap();
    publish(&node, &lobby, "1").await;
    let heard = ear.wait_for(2).await;
    assert_eq!(
        heard[0],
        Heard::Signal {
            room: "lobby".into(),
            payload: Bytes::from_static(b"typing")
        }
    );
    assert!(
        matches!(heard[1], Heard::Message { seq: 1, .. }),
        "a signal takes no number"
    );
    let stored = node
        .log
        .read(&lobby, Read::After { seq: 0, limit: 10 })
        .await
        .unwrap();
    assert_eq!(seqs(&stored), [1], "signals are not stored");

    // Unsubscribed, the node hears nothing of the room; subscribed again, it
    // hears what comes after: the next thing it hears is message 3.
    node.pubsub.unsubscribe(&lobby).await.unwrap();
    node.pubsub
        .signal(&lobby, Bytes::from_static(b"unheard"))
        .await
        .unwrap();
    publish(&node, &lobby, "2").await;
    node.pubsub.subscribe(&lobby).await.unwrap();
    publish(&node, &lobby, "3").await;
    let heard = ear.wait_for(3).await;
    assert!(
        matches!(heard[2], Heard::Message { seq: 3, .. }),
        "{heard:?}"
    );
}
