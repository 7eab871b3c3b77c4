//! Cases of the other state: read markers, presence, drafts, statuses, the
//! node registry, and signals.

use std::time::Duration;

use bytes::Bytes;
use chorus_backplane::{Backplane, ChangeOp, HistorySettings, Marked, PresenceEntry, Read};
use chorus_testkit::eventually;

use super::harness::*;

pub async fn read_markers_move_forward_only_and_count_unread_messages(store: Store) {
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

pub async fn presence_joins_once_per_user_and_expires_with_its_node(store: Store) {
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
    // ann on two nodes is one member: one join, one leave, each returned by
    // the one call that relayed it.
    assert_eq!(
        up(&a, "a", "ann", long).await,
        vec![Bytes::from("join-ann")]
    );
    assert!(up(&b, "b", "ann", long).await.is_empty());
    assert!(up(&a, "a", "ann", long).await.is_empty()); // a refresh
    assert_eq!(a.presence.list(&lobby, 10).await.unwrap().0, 1);
    let relayed = a
        .presence
        .down(&lobby, "a", vec!["ann".into()])
        .await
        .unwrap();
    assert!(relayed.is_empty());
    assert_eq!(a.presence.list(&lobby, 10).await.unwrap().0, 1);
    let relayed = b
        .presence
        .down(&lobby, "b", vec!["ann".into()])
        .await
        .unwrap();
    assert_eq!(relayed, vec![Bytes::from("leave-ann")]);
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

pub async fn members_lists_are_capped_but_count_everyone(store: Store) {
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

pub async fn drafts_are_bounded_per_user_and_statuses_are_kept(store: Store) {
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

pub async fn nodes_announce_with_a_ttl_and_withdraw(store: Store) {
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

pub async fn signals_are_relayed_unnumbered_and_only_to_subscribers(store: Store) {
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
