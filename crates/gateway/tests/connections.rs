//! Connection lifecycle: slow consumers, heartbeats, graceful shutdown.

use std::time::Duration;

use chorus_testkit::{
    BackplaneKind, Client, Cluster, Event, RawFrame, SilentClient, eventually, metric,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_nobody_else_waits() {
    stopped_reader_is_dropped(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_reader_is_dropped_when_its_outbox_overflows_not_at_the_write_timeout() {
    // The write to it blocks for good; only the overflow can end it in time
    // (the wait for the drop is bounded by testkit's WAIT, far below this).
    stopped_reader_is_dropped(Duration::from_secs(600)).await;
}

/// A member stops reading while a sender floods its room: it is closed as a
/// slow consumer (4001, or cut), and the others get everything.
async fn stopped_reader_is_dropped(write_timeout: Duration) {
    const MESSAGES: usize = 3_000;
    let cluster = Cluster::start_with(BackplaneKind::Redis, 1, |c| {
        c.outbox_bytes = 2 * c.max_frame_bytes;
        c.write_timeout = write_timeout;
    })
    .await;
    let addr = cluster.nodes[0].addr;
    let mut slow = Client::connect(&cluster.url(0)).await;
    let mut fast = Client::connect(&cluster.url(0)).await;
    let mut sender = Client::connect(&cluster.url(0)).await;
    for client in [&mut slow, &mut fast, &mut sender] {
        client.join("firehose").await;
    }
    // `slow` never reads from here on. The fast client reads as it goes, concurrently.
    let body = "x".repeat(4_000);
    let reader = tokio::spawn(async move {
        for n in 0..MESSAGES {
            let message = fast.message_in("firehose").await;
            assert_eq!(
                message["body"].as_str().map(str::len),
                Some(4_000),
                "message {n}"
            );
        }
        fast
    });
    for _ in 0..MESSAGES {
        sender.say_ok("firehose", &body).await;
    }
    let mut fast = reader.await.unwrap();
    eventually("the slow client to be dropped", || async {
        (metric(
            addr,
            "chorus_connections_closed_total{reason=\"slow_consumer\"}",
        )
        .await
            == 1.0)
            .then_some(())
    })
    .await;
    // The slow client finds the end of its stream: the close code if it still fit, else the cut.
    let end = slow.closed().await;
    assert!(matches!(end, Event::Closed(4001) | Event::Ended), "{end:?}");
    assert!(metric(addr, "chorus_outbox_drops_total").await >= 1.0);
    // And the room still works for everybody else.
    sender.say_ok("firehose", "after").await;
    assert_eq!(fast.message_in("firehose").await["body"], "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_closes_silent_clients_and_keeps_live_ones() {
    let cluster = Cluster::start_with(BackplaneKind::InProcess, 1, |c| {
        c.ping_interval = Duration::from_millis(200);
        c.pong_timeout = Duration::from_millis(300);
    })
    .await;
    let addr = cluster.nodes[0].addr;
    let mut live = Client::connect(&cluster.url(0)).await;
    // A client that writes nothing answers no ping.
    let silent = tokio::spawn(SilentClient::connect(addr).await.frames_until_closed());
    // The live client keeps reading (and so answering pings) for many intervals.
    let until = tokio::time::Instant::now() + Duration::from_millis(1_500);
    while tokio::time::Instant::now() < until {
        assert!(
            live.next_within(until - tokio::time::Instant::now())
                .await
                .is_none(),
            "no event expected"
        );
    }
    eventually("the silent client to time out", || async {
        (metric(
            addr,
            "chorus_connections_closed_total{reason=\"ping_timeout\"}",
        )
        .await
            == 1.0)
            .then_some(())
    })
    .await;
    let frames = silent.await.unwrap();
    assert!(
        frames.iter().any(|f| f.opcode == 9),
        "the server pinged: {frames:?}"
    );
    assert_eq!(
        frames.last().and_then(RawFrame::close_code),
        Some(4002),
        "{frames:?}"
    );
    live.sync().await;
    assert_eq!(metric(addr, "chorus_connections_open").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_client_with_going_away_and_returns() {
    let mut cluster = Cluster::start(BackplaneKind::Redis, 2).await;
    let mut leaving = Vec::new();
    for _ in 0..5 {
        let mut client = Client::connect(&cluster.url(0)).await;
        client.join("lobby").await;
        leaving.push(client);
    }
    let mut staying = Client::connect(&cluster.url(1)).await;
    staying.join("lobby").await;
    let node = cluster.nodes.remove(0);
    let stopping = tokio::spawn(node.stop());
    for client in &mut leaving {
        assert_eq!(client.closed().await, Event::Closed(4000));
    }
    stopping.await.unwrap().expect("serve returns cleanly");
    // The rest of the cluster is unaffected.
    staying.say_ok("lobby", "still here").await;
    assert_eq!(staying.message_in("lobby").await["body"], "still here");
}
