//! The webhook queue and token revocations, alike on both stores.

use std::time::Duration;

use bytes::Bytes;
use chorus_backplane::{HistorySettings, Revocation};

use crate::harness::{Cluster, Store};

/// Events keep their partition's order; one node holds a lease at a time;
/// only the holder moves a cursor; dead letters are bounded, listed and
/// taken out oldest first.
pub async fn the_webhook_queue_keeps_order_leases_and_dead_letters(store: Store) {
    let cluster = Cluster::start(store, 2, HistorySettings::default()).await;
    let (a, b) = (&cluster.nodes[0].0.webhooks, &cluster.nodes[1].0.webhooks);
    for i in 0..5 {
        a.append(3, Bytes::from(format!("e{i}")), None)
            .await
            .unwrap();
    }
    b.append(3, Bytes::from("only"), Some("shop"))
        .await
        .unwrap();
    let all = b.read(3, "0", 10).await.unwrap();
    let bodies: Vec<&[u8]> = all.iter().map(|e| e.event.as_ref()).collect();
    assert_eq!(
        bodies,
        vec![&b"e0"[..], b"e1", b"e2", b"e3", b"e4", b"only"]
    );
    assert_eq!(all[5].only.as_deref(), Some("shop"));
    assert!(all.iter().take(5).all(|e| e.only.is_none()));
    let after = a.read(3, &all[1].id, 2).await.unwrap();
    assert_eq!(after, all[2..4].to_vec());
    assert_eq!(a.behind(3, &all[3].id).await.unwrap(), 2);
    assert!(a.read(4, "0", 10).await.unwrap().is_empty());

    let ttl = Duration::from_secs(30);
    assert!(a.lease(3, "node-a", ttl).await.unwrap());
    assert!(a.lease(3, "node-a", ttl).await.unwrap(), "a holder renews");
    assert!(!b.lease(3, "node-b", ttl).await.unwrap(), "held by another");
    assert!(
        b.lease(4, "node-b", ttl).await.unwrap(),
        "another partition is free"
    );
    assert_eq!(a.cursor(3, "shop").await.unwrap(), "0");
    assert!(a.advance(3, "shop", ("node-a", &all[2].id)).await.unwrap());
    assert!(
        !b.advance(3, "shop", ("node-b", &all[4].id)).await.unwrap(),
        "fenced"
    );
    assert_eq!(b.cursor(3, "shop").await.unwrap(), all[2].id);
    assert_eq!(b.cursor(3, "other").await.unwrap(), "0");

    for i in 0..3 {
        a.bury("shop", Bytes::from(format!("d{i}"))).await.unwrap();
    }
    let dead = b.dead_letters("shop", 2).await.unwrap();
    assert_eq!(dead, vec![Bytes::from("d0"), Bytes::from("d1")]);
    assert_eq!(b.exhume("shop", 2).await.unwrap(), dead);
    assert_eq!(
        b.dead_letters("shop", 10).await.unwrap(),
        vec![Bytes::from("d2")]
    );
    assert!(b.exhume("other", 10).await.unwrap().is_empty());
}

/// A revocation is seen by every node with a new version; ended ones are
/// forgotten at the next revocation.
pub async fn revocations_are_shared_and_versioned(store: Store) {
    let cluster = Cluster::start(store, 2, HistorySettings::default()).await;
    let (a, b) = (&cluster.nodes[0].0.users, &cluster.nodes[1].0.users);
    let before = b.revocations_version().await.unwrap();
    let soon = Revocation {
        issued_before: 1_000,
        until: 2_000,
    };
    assert!(a.revoke("ann", soon, 1_500).await.unwrap());
    let after = b.revocations_version().await.unwrap();
    assert_ne!(before, after);
    let (version, list) = b.revocations().await.unwrap();
    assert_eq!((version, list), (after, vec![("ann".to_owned(), soon)]));
    let later = Revocation {
        issued_before: 5_000,
        until: 9_000,
    };
    // At 3,000 ann's has ended: it is forgotten when bob's is recorded.
    assert!(a.revoke("bob", later, 3_000).await.unwrap());
    let (_, list) = b.revocations().await.unwrap();
    assert_eq!(list, vec![("bob".to_owned(), later)]);
}
