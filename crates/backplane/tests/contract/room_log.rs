//! Cases of the room log: numbering, dedup, trimming, paging, epochs, changes.

use std::time::Duration;

use bytes::Bytes;
use chorus_backplane::{ChangeOp, ChangeRefusal, Changed, HistorySettings, Published, Read};
use chorus_testkit::eventually;

use super::harness::*;

pub async fn publishes_are_numbered_once_in_one_order_that_every_node_hears(store: Store) {
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

pub async fn a_retry_within_the_dedup_window_is_answered_with_the_original(store: Store) {
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

pub async fn history_keeps_the_newest_up_to_the_length_bound(store: Store) {
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

pub async fn messages_older_than_the_age_bound_leave_the_history(store: Store) {
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

pub async fn pages_read_backwards_by_message_and_forwards_by_entry(store: Store) {
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

pub async fn an_idle_room_forgets_its_history_and_starts_a_new_epoch(store: Store) {
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

pub async fn changes_overlay_their_message_and_take_their_own_number(store: Store) {
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
