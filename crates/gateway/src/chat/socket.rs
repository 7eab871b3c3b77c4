//! One client's upgraded connection, spoken to in WebSocket frames with
//! nothing kept per connection that an idle client does not need.
//!
//! Reads land in one scratch buffer per worker thread and are decoded at once
//! ([`chorus_protocol::websocket::Decoder`] keeps only an incomplete frame's
//! bytes). Writes hand the queued frames, shared with every other recipient,
//! to the kernel as they are: one vectored write (`writev`) per wake-up for up
//! to [`MAX_SLICES`] frames, with no copy into a per-connection buffer.

use std::{
    cell::RefCell,
    collections::VecDeque,
    future::poll_fn,
    io::{self, IoSlice},
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use chorus_protocol::websocket::{Decoder, FrameError, Incoming};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::outbox::Queued;
use super::stream::SharedStream;

/// Size of each worker thread's read buffer: a read takes at most this much.
const SCRATCH_BYTES: usize = 16 * 1024;
/// Frames handed to one vectored write (Linux takes up to 1024 slices).
const MAX_SLICES: usize = 64;

thread_local! {
    /// Where every connection served by this thread reads into before decoding.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice());
}

/// Why reading from a client stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The connection failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// The client broke a framing rule or sent too much at once.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// The connection a socket speaks over.
pub enum SocketIo {
    /// What hyper handed over after a `101` it sent.
    Upgraded(TokioIo<Upgraded>),
    /// The TCP stream itself, upgraded by the node's first-request reader.
    Direct(SharedStream),
}

/// An upgraded WebSocket connection.
pub struct Socket {
    /// The upgraded connection.
    io: SocketIo,
    /// The client's bytes that are not a whole frame yet.
    decoder: Decoder,
    /// Bytes of the first queued frame already written, when a write was cut short.
    written: usize,
}

impl Socket {
    /// A socket that takes client messages of at most `max_message` bytes.
    pub fn new(io: SocketIo, max_message: usize) -> Self {
        Self {
            io,
            decoder: Decoder::new(max_message),
            written: 0,
        }
    }

    /// Waits for the client's next bytes and returns the whole messages they
    /// complete (possibly none). `Ok(None)`: the client is gone. Safe to
    /// cancel: bytes are read and decoded in one step.
    pub async fn read(&mut self) -> Result<Option<Vec<Incoming>>, ReadError> {
        poll_fn(|cx| {
            SCRATCH.with_borrow_mut(|scratch| {
                let mut buf = ReadBuf::new(scratch);
                match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(error)) => Poll::Ready(Err(error.into())),
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Ok(None)),
                    Poll::Ready(Ok(())) => {
                        let mut out = Vec::new();
                        let fed = self.decoder.feed(buf.filled(), &mut out);
                        Poll::Ready(fed.map(|()| Some(out)).map_err(Into::into))
                    }
                }
            })
        })
        .await
    }

    /// Writes the queued frames, dropping each from `frames` once it is all
    /// written: one vectored write per wake-up. The first `head_written`
    /// bytes of the first frame are already on the wire.
    pub async fn write(
        &mut self,
        frames: &mut VecDeque<Queued>,
        head_written: usize,
    ) -> io::Result<()> {
        self.written += head_written;
        while !frames.is_empty() {
            let mut sent = poll_fn(|cx| {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut count = 0;
                for (slice, queued) in slices.iter_mut().zip(frames.iter()) {
                    let from = if count == 0 { self.written } else { 0 };
                    *slice = IoSlice::new(&queued.frame[from..]);
                    count += 1;
                }
                Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count])
            })
            .await?;
            if sent == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while let Some(first) = frames.front() {
                let left = first.frame.len() - self.written;
                if sent < left {
                    self.written += sent;
                    break;
                }
                sent -= left;
                self.written = 0;
                frames.pop_front();
            }
        }
        self.io.flush().await
    }

    /// Writes one frame of our own (a ping, a pong, a close).
    pub async fn send(&mut self, frame: &Bytes) -> io::Result<()> {
        if self.mid_frame() {
            // A batch's write was cut short: another frame would garble the stream.
            return Err(io::ErrorKind::InvalidData.into());
        }
        self.io.write_all(frame).await?;
        self.io.flush().await
    }

    /// True while a frame is half written (a write was cancelled).
    pub fn mid_frame(&self) -> bool {
        self.written != 0
    }

    /// Ends the sending direction (TCP FIN), once the close frame is out.
    pub async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }
}

impl AsyncRead for SocketIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_read(cx, buf),
            Self::Direct(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for SocketIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_write(cx, buf),
            Self::Direct(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Self::Direct(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Upgraded(io) => io.is_write_vectored(),
            Self::Direct(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_flush(cx),
            Self::Direct(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_shutdown(cx),
            Self::Direct(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}
