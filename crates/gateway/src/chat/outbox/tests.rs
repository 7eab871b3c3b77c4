use super::*;

fn text(n: usize) -> Bytes {
    Bytes::from("x".repeat(n))
}

#[test]
fn queues_until_the_bound_then_overflows_for_good() {
    let outbox = Arc::new(Outbox::new(1000, None));
    assert_eq!(outbox.push(text(500)), Pushed::Queued);
    assert_eq!(outbox.push(text(500)), Pushed::Dropped);
    assert_eq!(outbox.push(text(1)), Pushed::Dropped);
    assert_eq!(outbox.take(&mut VecDeque::new()), Err(Overflowed(None)));
}

#[test]
fn take_empties_the_queue_and_frees_the_budget() {
    let outbox = Arc::new(Outbox::new(1000, None));
    for _ in 0..2 {
        assert_eq!(outbox.push(text(400)), Pushed::Queued);
        let mut batch = VecDeque::new();
        outbox.take(&mut batch).unwrap();
        assert_eq!(batch.len(), 1);
    }
}

#[test]
fn signals_are_dropped_first_and_never_overflow() {
    let outbox = Arc::new(Outbox::new(1000, None));
    assert_eq!(outbox.push_signal(text(100)), Pushed::Queued);
    assert_eq!(outbox.push(text(300)), Pushed::Queued);
    // Past a quarter of the bound: the signal goes, the client stays.
    assert_eq!(outbox.push_signal(text(10)), Pushed::Dropped);
    assert_eq!(outbox.push(text(300)), Pushed::Queued);
    let mut batch = VecDeque::new();
    outbox.take(&mut batch).unwrap();
    assert_eq!(batch.len(), 3);
}

/// An outbox whose live frames the flusher writes to a real socket, and the client's end.
async fn direct(max_bytes: usize) -> (Arc<Outbox>, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    let metrics = crate::metrics::Metrics::new("test");
    let flusher = Flusher::start(
        (metrics.bytes_sent.clone(), metrics.delivery_latency.clone()),
        tokio_util::sync::CancellationToken::new(),
    );
    let direct = Direct {
        stream: Arc::new(accepted.unwrap().0),
        flusher,
    };
    (
        Arc::new(Outbox::new(max_bytes, Some(direct))),
        client.unwrap(),
    )
}

async fn read_exactly(client: &mut tokio::net::TcpStream, len: usize) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut received = vec![0; len];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.read_exact(&mut received),
    )
    .await
    .expect("the frames arrive in time")
    .unwrap();
    received
}

#[tokio::test]
async fn the_flusher_writes_live_frames_after_replies_in_queue_order() {
    let (outbox, mut client) = direct(1 << 20).await;
    assert_eq!(outbox.push(Bytes::from_static(b"reply;")), Pushed::Queued);
    for live in [&b"one;"[..], b"two;", b"three;"] {
        assert_eq!(
            outbox.push_live(Bytes::from_static(live), 1),
            Pushed::Queued
        );
    }
    // No task takes anything here: only the flusher writes.
    assert_eq!(read_exactly(&mut client, 20).await, b"reply;one;two;three;");
    outbox.push_live(Bytes::from_static(b"four;"), 1);
    assert_eq!(read_exactly(&mut client, 5).await, b"four;");
}

#[tokio::test]
async fn a_full_socket_leaves_the_rest_to_the_task_from_where_the_flusher_stopped() {
    let (outbox, mut client) = direct(64 << 20).await;
    // The client reads nothing until its socket and ours are full.
    let frames: Vec<Bytes> = (0..64u8)
        .map(|i| Bytes::from(vec![i; 256 * 1024]))
        .collect();
    for frame in &frames {
        outbox.push_live(frame.clone(), 1);
    }
    tokio::time::timeout(std::time::Duration::from_secs(10), outbox.ready())
        .await
        .expect("the flusher hands what it cannot write to the task");
    let mut batch = VecDeque::new();
    let head_written = outbox.take(&mut batch).unwrap();
    assert!(!batch.is_empty() && batch.len() < frames.len());
    let expected: Vec<u8> = frames
        .iter()
        .flat_map(|frame| frame.iter().copied())
        .collect();
    let reader = tokio::spawn(async move {
        let received = read_exactly(&mut client, expected.len()).await;
        assert!(received == expected, "the bytes arrive whole and in order");
    });
    // What the task writes: the rest of the first frame, then the others.
    let stream = outbox.direct.as_ref().unwrap().stream.clone();
    let mut first = true;
    for queued in batch {
        let from = if std::mem::take(&mut first) {
            head_written
        } else {
            0
        };
        let mut rest = &queued.frame[from..];
        while !rest.is_empty() {
            stream.writable().await.unwrap();
            match stream.try_write(rest) {
                Ok(written) => rest = &rest[written..],
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => panic!("{error}"),
            }
        }
    }
    outbox.wrote();
    reader.await.unwrap();
}

#[tokio::test]
async fn an_overflow_wakes_a_writer_waiting_for_it() {
    let outbox = Arc::new(Outbox::new(1000, None));
    let waiter = tokio::spawn({
        let outbox = outbox.clone();
        async move { outbox.overflowed().await }
    });
    assert_eq!(outbox.push(text(500)), Pushed::Queued);
    assert_eq!(outbox.push(text(600)), Pushed::Dropped);
    tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    // And it stays overflowed: a later wait ends at once.
    outbox.overflowed().await;
}

#[tokio::test]
async fn wakes_the_reader_on_first_frame() {
    let outbox = Arc::new(Outbox::new(1000, None));
    let waiter = tokio::spawn({
        let outbox = outbox.clone();
        async move { outbox.ready().await }
    });
    outbox.push(text(1));
    tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_burst_written_by_the_flusher_leaves_no_large_buffer_behind() {
    let (outbox, mut client) = direct(1 << 20).await;
    // One flusher round's worth (one vectored write takes up to 64 frames).
    for _ in 0..60 {
        outbox.push_live(Bytes::from_static(b"x;"), 1);
    }
    assert!(outbox.state.lock().frames.capacity() >= 60);
    assert_eq!(read_exactly(&mut client, 120).await, b"x;".repeat(60));
    // The flusher writes and pops under the state's lock: once the bytes are
    // read, taking the lock sees the queue it left.
    let state = outbox.state.lock();
    assert!(state.frames.is_empty());
    assert!(
        state.frames.capacity() <= QUEUE_KEEP,
        "an idle connection keeps {} slots after a burst",
        state.frames.capacity()
    );
}
