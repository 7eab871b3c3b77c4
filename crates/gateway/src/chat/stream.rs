//! A client's TCP stream shared between its readers and writers: hyper
//! (HTTP, and an upgraded connection's reads) or the connection's task, and
//! the flushers' vectored writes of live frames. tokio's `TcpStream` reads and
//! writes through `&self`, so sharing it is an `Arc`.

use std::{
    io,
    net::Shutdown,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

/// A client's TCP stream, shared between hyper (HTTP, then the upgraded
/// connection's reads) and the fan-out's writes.
pub struct SharedStream {
    /// The stream; tokio's `TcpStream` reads and writes through `&self`.
    stream: Arc<TcpStream>,
    /// Bytes read from it before it was handed here, read again first
    /// (empty, without an allocation, almost always).
    unread: Bytes,
}

/// The stream of the connection a request came on (its `ConnectInfo`).
#[derive(Clone)]
pub struct StreamHandle(
    /// The same stream the request's connection reads and writes.
    pub Arc<TcpStream>,
);

impl SharedStream {
    /// `stream`, whose reads return `unread` first.
    pub fn new(stream: Arc<TcpStream>, unread: Bytes) -> Self {
        Self { stream, unread }
    }

    /// The TCP stream itself, for the flushers' writes.
    pub fn tcp(&self) -> &Arc<TcpStream> {
        &self.stream
    }
}

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.unread.is_empty() {
            let this = self.get_mut();
            let take = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread[..take]);
            if take == this.unread.len() {
                // An empty slice would still hold the whole buffer it came from.
                this.unread = Bytes::new();
            } else {
                this.unread.advance(take);
            }
            return Poll::Ready(Ok(()));
        }
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read(buf.initialize_unfilled()) {
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
            ready!(self.stream.poll_write_ready(cx))?;
            match write(&self.stream) {
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
        Poll::Ready(socket2::SockRef::from(&*self.stream).shutdown(Shutdown::Write))
    }
}
