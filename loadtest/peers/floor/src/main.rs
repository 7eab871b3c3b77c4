//! The floor: the smallest broadcast server this machine can run, to measure
//! what the kernel alone costs per delivery on loopback (issue 20).
//!
//! One thread, epoll through `mio`, no framework and no async runtime. It
//! accepts the WebSocket handshake and broadcasts every text frame it receives
//! to every client as one pre-built frame, shared by reference count: at the
//! end of each loop turn every client with frames queued gets one vectored
//! write (`writev`) of all of them. An idle client holds a socket, an empty
//! queue and no buffers (reads go through one scratch buffer of the loop and
//! only an incomplete frame's bytes are kept). It speaks what the gorilla hub
//! speaks (`--set target=gorilla` in the load generator): one message per text
//! frame, every message to every client, the sender included.
//!
//!   cargo build --release -p chorus-floor
//!   ./target/release/chorus-floor --addr 127.0.0.1:8091

mod frame;

use std::{
    collections::VecDeque,
    io::{self, IoSlice, Read, Write},
    net::SocketAddr,
    process::ExitCode,
    rc::Rc,
};

use clap::Parser;
use mio::{
    Events, Interest, Poll, Token,
    net::{TcpListener, TcpStream},
};

use frame::{Parsed, accept_key, close_frame, server_frame};

/// The listener's token; clients use their slot index.
const LISTENER: Token = Token(usize::MAX);
/// Largest frame a client may send (the hub's read limit is 8 KiB).
const MAX_FRAME: usize = 64 * 1024;
/// Largest handshake request.
const MAX_REQUEST: usize = 8 * 1024;
/// Queued bytes beyond which a client that does not read is dropped.
const MAX_QUEUED: usize = 4 * 1024 * 1024;
/// Frames handed to one `writev` (the kernel's IOV_MAX is 1024).
const MAX_SLICES: usize = 64;

#[derive(Parser)]
#[command(about = "The floor broadcast server: one thread, epoll, one writev per client per turn")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8091")]
    addr: SocketAddr,
}

/// One client's connection.
struct Client {
    /// The socket, non-blocking, registered for reads and writes (edge-triggered).
    stream: TcpStream,
    /// False until the handshake's response has been queued.
    open: bool,
    /// Bytes of an incomplete handshake request or frame; empty when idle.
    partial: Vec<u8>,
    /// Frames to write, shared with every other recipient.
    queue: VecDeque<Rc<[u8]>>,
    /// Bytes of the queue's first frame already written.
    written: usize,
    /// Bytes queued and not yet written, for the slow-client bound.
    queued: usize,
    /// Set once the client should go when its queue is written (a close).
    closing: bool,
    /// Set while the client is on the loop's list of clients to write.
    dirty: bool,
}

impl Client {
    fn push(&mut self, frame: Rc<[u8]>) {
        self.queued += frame.len();
        self.queue.push_back(frame);
    }

    /// Writes queued frames with one `writev` per call until the queue is
    /// empty or the socket is full. `Err` means the client is gone.
    fn flush(&mut self) -> io::Result<()> {
        while !self.queue.is_empty() {
            // On the stack: nothing is allocated per client per turn.
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slice, frame) in slices.iter_mut().zip(self.queue.iter()) {
                let from = if count == 0 { self.written } else { 0 };
                *slice = IoSlice::new(&frame[from..]);
                count += 1;
            }
            let mut sent = match self.stream.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(sent) => sent,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            self.queued -= sent;
            while sent > 0 {
                let left = self.queue[0].len() - self.written;
                if sent >= left {
                    sent -= left;
                    self.written = 0;
                    self.queue.pop_front();
                } else {
                    self.written += sent;
                    sent = 0;
                }
            }
        }
        if self.queue.capacity() > 64 {
            self.queue = VecDeque::new();
        }
        if self.closing {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        Ok(())
    }
}

/// The loop's state: clients by slot, and what one turn produced.
struct Server {
    /// Clients by token; `None` slots are reused through `free`.
    clients: Vec<Option<Client>>,
    /// Free slots of `clients`.
    free: Vec<usize>,
    /// Clients with frames queued since the last write.
    dirty: Vec<usize>,
    /// Frames to broadcast at the end of this turn, in arrival order.
    broadcasts: Vec<Rc<[u8]>>,
    /// Where every read lands before it is parsed.
    scratch: Box<[u8]>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match serve(args.addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chorus-floor: {error}");
            ExitCode::FAILURE
        }
    }
}

fn serve(addr: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut server = Server {
        clients: Vec::new(),
        free: Vec::new(),
        dirty: Vec::new(),
        broadcasts: Vec::new(),
        scratch: vec![0; MAX_FRAME + MAX_REQUEST].into_boxed_slice(),
    };
    eprintln!("chorus-floor: listening on {}", listener.local_addr()?);
    loop {
        if let Err(error) = poll.poll(&mut events, None) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        for event in &events {
            if event.token() == LISTENER {
                server.accept(&poll, &listener)?;
                continue;
            }
            let slot = event.token().0;
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                server.read(slot);
            }
            if event.is_writable() {
                server.mark_dirty(slot);
            }
        }
        server.broadcast();
        server.write_all();
    }
}

impl Server {
    fn accept(&mut self, poll: &Poll, listener: &TcpListener) -> io::Result<()> {
        loop {
            let (mut stream, _) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                // Out of files or a connection reset before accept: try later.
                Err(error) => {
                    eprintln!("chorus-floor: accept: {error}");
                    return Ok(());
                }
            };
            stream.set_nodelay(true)?;
            let slot = self.free.pop().unwrap_or_else(|| {
                self.clients.push(None);
                self.clients.len() - 1
            });
            poll.registry().register(
                &mut stream,
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            self.clients[slot] = Some(Client {
                stream,
                open: false,
                partial: Vec::new(),
                queue: VecDeque::new(),
                written: 0,
                queued: 0,
                closing: false,
                dirty: false,
            });
        }
    }

    /// Reads everything the socket has and handles each complete request or frame.
    fn read(&mut self, slot: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.read_with(slot, &mut scratch);
        self.scratch = scratch;
    }

    fn read_with(&mut self, slot: usize, scratch: &mut [u8]) {
        loop {
            let Some(Some(client)) = self.clients.get_mut(slot) else {
                return;
            };
            let n = match client.stream.read(scratch) {
                Ok(0) => return self.drop_client(slot),
                Ok(n) => n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.drop_client(slot),
            };
            // Parse straight from the scratch buffer, or from the kept partial
            // bytes with this read appended; keep only what is incomplete.
            let mut partial = std::mem::take(&mut client.partial);
            let rest = if partial.is_empty() {
                let (used, ok) = self.handle(slot, &scratch[..n]);
                ok.then(|| scratch[used..n].to_vec())
            } else {
                partial.extend_from_slice(&scratch[..n]);
                let (used, ok) = self.handle(slot, &partial);
                ok.then(|| partial.split_off(used))
            };
            match (rest, self.clients.get_mut(slot)) {
                (Some(rest), Some(Some(client))) => client.partial = rest,
                _ => return self.drop_client(slot),
            }
        }
    }

    /// Handles the complete requests and frames at the start of `bytes`;
    /// returns how many bytes were used, and false when the client must go.
    fn handle(&mut self, slot: usize, bytes: &[u8]) -> (usize, bool) {
        let Some(Some(client)) = self.clients.get_mut(slot) else {
            return (0, false);
        };
        let mut used = 0;
        if !client.open {
            match frame::handshake(bytes) {
                Ok(Some((key, length))) => {
                    let response = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                         Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                        accept_key(&key)
                    );
                    client.push(Rc::from(response.into_bytes().into_boxed_slice()));
                    client.open = true;
                    used = length;
                    self.mark_dirty(slot);
                }
                Ok(None) if bytes.len() <= MAX_REQUEST => return (0, true),
                _ => return (0, false),
            }
        }
        loop {
            let Some(Some(client)) = self.clients.get_mut(slot) else {
                return (used, false);
            };
            match frame::parse(&bytes[used..], MAX_FRAME) {
                Parsed::Incomplete => return (used, true),
                Parsed::Text {
                    masked,
                    mask,
                    length,
                } => {
                    self.broadcasts
                        .push(server_frame(frame::TEXT, masked, mask));
                    used += length;
                }
                Parsed::Ping {
                    masked,
                    mask,
                    length,
                } => {
                    client.push(server_frame(frame::PONG, masked, mask));
                    used += length;
                    self.mark_dirty(slot);
                }
                Parsed::Ignored { length } => used += length,
                Parsed::Close { code } => {
                    client.push(close_frame(code));
                    client.closing = true;
                    self.mark_dirty(slot);
                    return (bytes.len(), true);
                }
            }
        }
    }

    /// Queues this turn's broadcasts for every open client.
    fn broadcast(&mut self) {
        if self.broadcasts.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut self.broadcasts);
        let mut slow = Vec::new();
        for (slot, client) in self.clients.iter_mut().enumerate() {
            let Some(client) = client.as_mut().filter(|c| c.open && !c.closing) else {
                continue;
            };
            for frame in &frames {
                client.push(frame.clone());
            }
            if client.queued > MAX_QUEUED {
                slow.push(slot);
            } else if !client.dirty {
                client.dirty = true;
                self.dirty.push(slot);
            }
        }
        for slot in slow {
            self.drop_client(slot);
        }
        self.broadcasts = frames;
        self.broadcasts.clear();
    }

    fn mark_dirty(&mut self, slot: usize) {
        if let Some(Some(client)) = self.clients.get_mut(slot)
            && !client.dirty
        {
            client.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// One vectored write per client with something queued.
    fn write_all(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            let Some(Some(client)) = self.clients.get_mut(slot) else {
                continue;
            };
            client.dirty = false;
            if client.flush().is_err() {
                self.drop_client(slot);
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    fn drop_client(&mut self, slot: usize) {
        if let Some(entry) = self.clients.get_mut(slot)
            && entry.take().is_some()
        {
            self.free.push(slot);
        }
    }
}
