//! A TCP proxy that delays everything a client sends upstream, to make a slow
//! link between a node and Redis reproducible on loopback; it can also freeze,
//! holding everything while connections stay open (a link that silently died).

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
    task::JoinHandle,
    time::{Instant, sleep_until},
};

/// A running proxy; stops when dropped.
pub struct DelayProxy {
    /// Where clients connect instead of the upstream.
    pub addr: SocketAddr,
    /// The accept loop (and, through it, every connection's tasks).
    task: JoinHandle<()>,
    /// True while frozen: nothing is forwarded upstream.
    frozen: watch::Sender<bool>,
}

impl DelayProxy {
    /// Proxies to `upstream`, holding each chunk a client sends for `delay` (order kept).
    pub async fn start(upstream: SocketAddr, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let addr = listener.local_addr().unwrap();
        let (frozen, watch_frozen) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(relay(client, upstream, delay, watch_frozen.clone()));
            }
        });
        Self { addr, task, frozen }
    }

    /// Stops forwarding anything upstream; connections stay open.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Forwards again, starting with what was held.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    /// `redis://<addr>`, for a proxied Redis.
    pub fn redis_url(&self) -> String {
        format!(
            "redis://{}:{}@{}",
            crate::APP_USER,
            crate::APP_PASSWORD,
            self.addr
        )
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    delay: Duration,
    mut frozen: watch::Receiver<bool>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (chunks, mut delayed) = mpsc::unbounded_channel::<(Instant, Bytes)>();
    let upstream_reader = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = client_read.read(&mut buffer).await {
            if chunks
                .send((Instant::now() + delay, Bytes::copy_from_slice(&buffer[..n])))
                .is_err()
            {
                break;
            }
        }
    };
    let upstream_writer = async move {
        while let Some((due, chunk)) = delayed.recv().await {
            sleep_until(due).await;
            if frozen.wait_for(|frozen| !frozen).await.is_err() {
                break;
            }
            if server_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        _ = async { tokio::join!(upstream_reader, upstream_writer) } => {}
        _ = downstream => {}
    }
}
