//! One proxied connection of the single-thread modes: the accepted
//! (downstream) and connected (upstream) sockets, and per direction the
//! chunks read and not yet written, oldest first, so a chunk is never
//! written before an earlier one of its direction. The upstream is
//! connected when the first data arrives, as HTTP proxies do.
use std::{
    collections::VecDeque,
    io::{self, Read, Write},
    net::Shutdown,
};

use mio::{event::Event, net::TcpStream};

use super::{Direction, Recorder, monotonic_ns};

/// Socket and flow indices: flow `f` reads socket `f` and writes socket `1 - f`.
pub const DOWN: usize = 0;
pub const UP: usize = 1;

/// Stop reading a source while this much of it waits to be written.
const MAX_QUEUED: usize = 1 << 20;

struct Chunk {
    data: Vec<u8>,
    written: usize,
    read_ns: u64,
    /// Not written before this time (CLOCK_MONOTONIC ns).
    due_ns: u64,
    /// When the first write of it was called (0: not yet).
    write_ns: u64,
}

struct Flow {
    key: &'static str,
    chunks: VecDeque<Chunk>,
    queued: usize,
    /// The source reached end of stream.
    eof: bool,
    /// End of stream passed on to the destination.
    shut: bool,
}

pub struct Conn {
    /// The upstream is None until the first chunk from downstream is read.
    socks: [Option<TcpStream>; 2],
    flows: [Flow; 2],
    /// The upstream connect completed.
    connected: bool,
    /// Readiness seen and not yet used up (a read or write would-blocked):
    /// mio is edge-triggered, and the modes read once per socket per turn.
    readable: [bool; 2],
    writable: [bool; 2],
    /// An error on either socket: the connection is closed at the end of the turn.
    pub failed: bool,
}

impl Conn {
    pub fn new(down: TcpStream, direction: Direction) -> Conn {
        let flow = |request| Flow {
            key: direction.key(request),
            chunks: VecDeque::new(),
            queued: 0,
            eof: false,
            shut: false,
        };
        Conn {
            socks: [Some(down), None],
            flows: [flow(true), flow(false)],
            connected: false,
            readable: [false; 2],
            writable: [false; 2],
            failed: false,
        }
    }

    pub fn sock_mut(&mut self, side: usize) -> Option<&mut TcpStream> {
        self.socks[side].as_mut()
    }

    /// Data came from downstream and there is no upstream yet.
    pub fn needs_upstream(&self) -> bool {
        self.socks[UP].is_none() && !self.flows[DOWN].chunks.is_empty()
    }

    pub fn set_upstream(&mut self, up: TcpStream) {
        self.socks[UP] = Some(up);
    }

    pub fn on_event(&mut self, side: usize, ev: &Event) {
        // Closed or failed sockets count as ready: the next read or write
        // reports what happened.
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.readable[side] = true;
        }
        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
            self.writable[side] = true;
        }
        if side == UP && !self.connected && self.writable[UP] {
            self.finish_connect();
        }
    }

    /// The non-blocking connect reported writable: connected, failed, or not yet.
    fn finish_connect(&mut self) {
        let Some(up) = &self.socks[UP] else {
            return;
        };
        match up.take_error() {
            Ok(None) => match up.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => self.writable[UP] = false,
                Err(_) => self.failed = true,
            },
            Ok(Some(_)) | Err(_) => self.failed = true,
        }
    }

    /// Whether flow `f` has a read to do: readiness not used up, a socket
    /// to read (the upstream, once connected) and room in the queue.
    pub fn wants_read(&self, f: usize) -> bool {
        let flow = &self.flows[f];
        !self.failed
            && (f == DOWN || self.connected)
            && self.readable[f]
            && !flow.eof
            && flow.queued < MAX_QUEUED
    }

    /// One read of flow `f`'s source; the chunk, if any, is due `hold_ns`
    /// after the read returned (and never before the chunk ahead of it).
    /// True when a chunk was read.
    pub fn read_once(
        &mut self,
        f: usize,
        buf: &mut [u8],
        hold_ns: u64,
        rec: &Recorder,
    ) -> io::Result<bool> {
        let Some(sock) = &self.socks[f] else {
            return Ok(false);
        };
        match (&*sock).read(buf) {
            Ok(0) => {
                self.flows[f].eof = true;
                self.readable[f] = false;
                Ok(false)
            }
            Ok(n) => {
                let read_ns = monotonic_ns();
                let flow = &mut self.flows[f];
                let behind = flow.chunks.back().map_or(0, |c| c.due_ns);
                flow.chunks.push_back(Chunk {
                    data: buf[..n].to_vec(),
                    written: 0,
                    read_ns,
                    due_ns: (read_ns + hold_ns).max(behind),
                    write_ns: 0,
                });
                flow.queued += n;
                rec.read(flow.key, n);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.readable[f] = false;
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// When flow `f`'s oldest chunk is due, if it could be written now.
    pub fn due_ns(&self, f: usize) -> Option<u64> {
        if self.failed || !self.connected || !self.writable[1 - f] {
            return None;
        }
        self.flows[f].chunks.front().map(|c| c.due_ns)
    }

    /// Write flow `f`'s chunks that are due, oldest first, until one would
    /// block (the rest of it is kept for the next writable event); then,
    /// once the source ended and everything is written, pass the end on.
    pub fn flush(&mut self, f: usize, rec: &Recorder) -> io::Result<()> {
        if self.failed || !self.connected {
            return Ok(());
        }
        let dest = 1 - f;
        let flow = &mut self.flows[f];
        while self.writable[dest] {
            let Some(chunk) = flow.chunks.front_mut() else {
                break;
            };
            if chunk.due_ns > monotonic_ns() {
                break;
            }
            let Some(sock) = &self.socks[dest] else {
                break;
            };
            if chunk.write_ns == 0 {
                chunk.write_ns = monotonic_ns();
            }
            match (&*sock).write(&chunk.data[chunk.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    let write_ns = monotonic_ns();
                    chunk.written += n;
                    if chunk.written == chunk.data.len() {
                        let len = chunk.data.len();
                        rec.forward(
                            flow.key,
                            len,
                            write_ns.saturating_sub(chunk.read_ns),
                            chunk.write_ns.saturating_sub(chunk.read_ns),
                        );
                        flow.queued -= len;
                        flow.chunks.pop_front();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable[dest] = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if flow.eof && flow.chunks.is_empty() && !flow.shut {
            flow.shut = true;
            if let Some(sock) = &self.socks[dest] {
                match sock.shutdown(Shutdown::Write) {
                    Err(e) if e.kind() != io::ErrorKind::NotConnected => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Both directions ended and were passed on.
    pub fn done(&self) -> bool {
        self.flows.iter().all(|f| f.shut)
    }
}
