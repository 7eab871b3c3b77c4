//! The node's listener: every accepted TCP stream is shared (`Arc`), so that
//! once a connection is upgraded the node's flushers can write its live
//! frames ([`crate::chat::outbox::Outbox`]) without waking the connection's
//! task for every message.
//!
//! HTTP (hyper) reads and writes through [`SharedStream`] like through a plain
//! `TcpStream`; the upgrade handler finds the same stream in the request's
//! [`ConnectInfo`](axum::extract::ConnectInfo) as a [`StreamHandle`].

use std::{
    io,
    net::{Shutdown, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use axum::{
    extract::connect_info::Connected,
    serve::{IncomingStream, Listener},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};

/// A TCP listener whose streams can be shared after the upgrade.
pub struct SharedListener(
    /// The bound listener.
    pub TcpListener,
);

impl Listener for SharedListener {
    type Io = SharedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (SharedStream, SocketAddr) {
        // axum's accept retries transient errors (out of files) with a pause.
        let (stream, addr) = Listener::accept(&mut self.0).await;
        // Chat frames are small and latency matters: no Nagle delay.
        let _ = stream.set_nodelay(true);
        (SharedStream(Arc::new(stream)), addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A client's TCP stream, shared between hyper (HTTP, then the upgraded
/// connection's reads) and the fan-out's writes.
pub struct SharedStream(
    /// The stream; tokio's `TcpStream` reads and writes through `&self`.
    Arc<TcpStream>,
);

/// The stream of the connection a request came on (its `ConnectInfo`).
#[derive(Clone)]
pub struct StreamHandle(
    /// The same stream the request's connection reads and writes.
    pub Arc<TcpStream>,
);

impl Connected<IncomingStream<'_, SharedListener>> for StreamHandle {
    fn connect_info(stream: IncomingStream<'_, SharedListener>) -> Self {
        Self(stream.io().0.clone())
    }
}

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(read) => {
                    buf.advance(read);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale: wait for the next.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl SharedStream {
    /// Runs `write` once the stream is writable, until it is not refused for
    /// stale readiness.
    fn poll_writing(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match write(&self.0) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                written => return Poll::Ready(written),
            }
        }
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_writing(cx, |stream| stream.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_writing(cx, |stream| stream.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.0).shutdown(Shutdown::Write))
    }
}
