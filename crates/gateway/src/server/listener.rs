//! The node's listener: every accepted TCP stream is shared (`Arc`), so that
//! once a connection is upgraded the node's flushers can write its live
//! frames ([`crate::chat::outbox::Outbox`]) without waking the connection's
//! task for every message.
//!
//! Each accepted stream's first request is read by
//! [`super::first_request`]: a WebSocket upgrade is answered there, without
//! hyper's per-connection buffers; anything else comes back here, with the
//! bytes already read, and is served by hyper, which reads and writes through
//! [`SharedStream`] like through a plain `TcpStream`. An upgrade on such a
//! connection finds the same stream in the request's
//! [`ConnectInfo`](axum::extract::ConnectInfo) as a [`StreamHandle`].

use std::{io, net::SocketAddr, sync::Arc};

use axum::{
    extract::connect_info::Connected,
    serve::{IncomingStream, Listener},
};
use tokio::{net::TcpListener, sync::mpsc};

use super::{first_request, node::Node};
use crate::chat::stream::{SharedStream, StreamHandle};

/// Connections whose first request is for hyper, waiting for the server to
/// take them (a bound: first-request readers wait when it is full).
const FOR_HTTP: usize = 256;

/// A TCP listener whose streams can be shared after the upgrade.
pub struct SharedListener {
    /// The bound listener.
    listener: TcpListener,
    /// The node that upgrades connections.
    node: Arc<Node>,
    /// Where first-request readers hand over connections for hyper.
    for_http: mpsc::Sender<(SharedStream, SocketAddr)>,
    /// The connections handed over, served next.
    to_http: mpsc::Receiver<(SharedStream, SocketAddr)>,
}

impl SharedListener {
    /// A listener for `node`'s connections.
    pub fn new(listener: TcpListener, node: Arc<Node>) -> Self {
        let (for_http, to_http) = mpsc::channel(FOR_HTTP);
        Self {
            listener,
            node,
            for_http,
            to_http,
        }
    }
}

impl Listener for SharedListener {
    type Io = SharedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (SharedStream, SocketAddr) {
        loop {
            tokio::select! {
                biased;
                Some(handed) = self.to_http.recv() => return handed,
                // axum's accept retries transient errors (out of files) with a pause.
                (stream, addr) = Listener::accept(&mut self.listener) => {
                    // Chat frames are small and latency matters: no Nagle delay.
                    let _ = stream.set_nodelay(true);
                    let read = first_request::read(
                        self.node.clone(),
                        Arc::new(stream),
                        addr,
                        self.for_http.clone(),
                    );
                    tokio::spawn(read);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Connected<IncomingStream<'_, SharedListener>> for StreamHandle {
    fn connect_info(stream: IncomingStream<'_, SharedListener>) -> Self {
        Self(stream.io().tcp().clone())
    }
}
