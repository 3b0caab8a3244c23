//! The single-thread modes: one thread, one epoll (through mio), every
//! listener and connection on it. Each turn waits for readiness, reads
//! every socket that has something once (one chunk each), then writes:
//! in event-loop mode the chunks whose random hold has passed, in batch
//! mode every chunk read in the turn, in the order read.
use std::{io, net::SocketAddr, time::Duration};

use mio::{Events, Interest, Poll, Token, net::TcpListener};

use super::{
    Direction, Recorder, Route, Stop,
    conn::{Conn, DOWN, UP},
    monotonic_ns,
    rng::Rng,
    timer::Timer,
};

pub enum Schedule {
    /// Each chunk waits a time drawn uniformly in [min_ns, max_ns].
    Hold { min_ns: u64, max_ns: u64 },
    /// Reads first, then the writes of the chunks read, in order.
    Batch,
}

const TIMER: Token = Token(0);
const LISTENER_BASE: usize = 1;
/// Connection `slot` has tokens CONN_BASE + 2 * slot + side.
const CONN_BASE: usize = 1 << 16;
/// The longest wait, so a stop request is seen.
const STOP_CHECK: Duration = Duration::from_millis(50);
const READ_BUF: usize = 64 * 1024;

struct Listener {
    sock: TcpListener,
    direction: Direction,
    upstream: SocketAddr,
}

struct Reactor<'a> {
    poll: Poll,
    listeners: Vec<Listener>,
    conns: Vec<Option<Conn>>,
    /// Where each connection slot's upstream is.
    upstreams: Vec<SocketAddr>,
    free: Vec<usize>,
    buf: Vec<u8>,
    schedule: Schedule,
    rng: Rng,
    timer: Option<Timer>,
    rec: &'a Recorder,
}

fn context(what: &'static str) -> impl Fn(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

pub fn serve(
    routes: Vec<Route>,
    schedule: Schedule,
    rec: &Recorder,
    stop: &Stop,
) -> io::Result<()> {
    let poll = Poll::new().map_err(context("creating the event loop's epoll"))?;
    let mut listeners = Vec::new();
    for (i, r) in routes.into_iter().enumerate() {
        r.listener
            .set_nonblocking(true)
            .map_err(context("making a listener non-blocking"))?;
        let mut sock = TcpListener::from_std(r.listener);
        poll.registry()
            .register(&mut sock, Token(LISTENER_BASE + i), Interest::READABLE)
            .map_err(context("registering a listener"))?;
        listeners.push(Listener {
            sock,
            direction: r.direction,
            upstream: r.upstream,
        });
    }
    let timer = match schedule {
        Schedule::Hold { .. } => {
            Some(Timer::new(poll.registry(), TIMER).map_err(context("creating the hold timer"))?)
        }
        Schedule::Batch => None,
    };
    let mut reactor = Reactor {
        poll,
        listeners,
        conns: Vec::new(),
        upstreams: Vec::new(),
        free: Vec::new(),
        buf: vec![0; READ_BUF],
        schedule,
        rng: Rng::from_time(),
        timer,
        rec,
    };
    let mut events = Events::with_capacity(1024);
    while !stop.requested() {
        reactor.turn(&mut events)?;
    }
    Ok(())
}

impl Reactor<'_> {
    fn turn(&mut self, events: &mut Events) -> io::Result<()> {
        let timeout = self.timeout()?;
        match self.poll.poll(events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            r => r.map_err(context("waiting for readiness"))?,
        }
        for ev in events.iter() {
            match ev.token() {
                TIMER => {
                    if let Some(t) = &mut self.timer {
                        t.fired();
                    }
                }
                Token(t) if t >= CONN_BASE => {
                    let (slot, side) = ((t - CONN_BASE) / 2, (t - CONN_BASE) % 2);
                    if let Some(Some(c)) = self.conns.get_mut(slot) {
                        c.on_event(side, ev);
                    }
                }
                Token(t) => self.accept(t - LISTENER_BASE),
            }
        }
        let order = self.read_all();
        self.connect_upstreams();
        self.write_chunks(&order);
        self.reap();
        Ok(())
    }

    /// No wait while a read or a due write is pending; otherwise until the
    /// next hold ends (the timer wakes the loop) or the stop check.
    fn timeout(&mut self) -> io::Result<Duration> {
        let live = || self.conns.iter().flatten();
        if live().any(|c| c.wants_read(DOWN) || c.wants_read(UP)) {
            return Ok(Duration::ZERO);
        }
        let next = live()
            .flat_map(|c| [c.due_ns(DOWN), c.due_ns(UP)])
            .flatten()
            .min();
        match next {
            Some(due) if due <= monotonic_ns() => Ok(Duration::ZERO),
            Some(due) => {
                if let Some(t) = &mut self.timer {
                    t.arm_at(due).map_err(context("arming the hold timer"))?;
                }
                Ok(STOP_CHECK)
            }
            None => Ok(STOP_CHECK),
        }
    }

    /// Accept every pending connection of listener `i`; its upstream is
    /// connected when its first data arrives.
    fn accept(&mut self, i: usize) {
        let Some(l) = self.listeners.get(i) else {
            return;
        };
        let (direction, upstream) = (l.direction, l.upstream);
        loop {
            match self.listeners[i].sock.accept() {
                Ok((down, _)) => {
                    if let Err(e) = self.open(down, direction, upstream) {
                        eprintln!("delay-proxy: forwarding a new connection to {upstream}: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // E.g. out of descriptors: try again on the next connection.
                    eprintln!("delay-proxy: accepting a connection: {e}");
                    break;
                }
            }
        }
    }

    fn open(
        &mut self,
        down: mio::net::TcpStream,
        direction: Direction,
        upstream: SocketAddr,
    ) -> io::Result<()> {
        down.set_nodelay(true)?;
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.conns.push(None);
                self.upstreams.push(upstream);
                self.conns.len() - 1
            }
        };
        self.upstreams[slot] = upstream;
        let mut conn = Conn::new(down, direction);
        if let Err(e) = self.register(&mut conn, slot, DOWN) {
            self.close(slot, Some(conn));
            return Err(e);
        }
        self.conns[slot] = Some(conn);
        Ok(())
    }

    fn register(&mut self, conn: &mut Conn, slot: usize, side: usize) -> io::Result<()> {
        let token = Token(CONN_BASE + 2 * slot + side);
        let Some(sock) = conn.sock_mut(side) else {
            return Ok(());
        };
        self.poll
            .registry()
            .register(sock, token, Interest::READABLE | Interest::WRITABLE)
    }

    /// Connect the upstream of every connection whose first data was just
    /// read (right after the read, in the same thread, as an HTTP proxy).
    fn connect_upstreams(&mut self) {
        for slot in 0..self.conns.len() {
            let Some(mut conn) = self.conns[slot].take() else {
                continue;
            };
            if conn.needs_upstream() {
                let r = mio::net::TcpStream::connect(self.upstreams[slot]).and_then(|up| {
                    up.set_nodelay(true)?;
                    conn.set_upstream(up);
                    self.register(&mut conn, slot, UP)
                });
                if let Err(e) = r {
                    eprintln!("delay-proxy: connecting to {}: {e}", self.upstreams[slot]);
                    conn.failed = true;
                }
            }
            self.conns[slot] = Some(conn);
        }
    }

    /// One read of every socket that has something; returns the flows that
    /// read a chunk, in the order read.
    fn read_all(&mut self) -> Vec<(usize, usize)> {
        let Reactor {
            conns,
            buf,
            schedule,
            rng,
            rec,
            ..
        } = self;
        let mut order = Vec::new();
        for (slot, c) in conns.iter_mut().enumerate() {
            let Some(c) = c else { continue };
            for f in [DOWN, UP] {
                if !c.wants_read(f) {
                    continue;
                }
                let hold_ns = match schedule {
                    Schedule::Hold { min_ns, max_ns } => rng.between(*min_ns, *max_ns),
                    Schedule::Batch => 0,
                };
                match c.read_once(f, buf, hold_ns, rec) {
                    Ok(true) => order.push((slot, f)),
                    Ok(false) => {}
                    Err(_) => c.failed = true,
                }
            }
        }
        order
    }

    fn write_chunks(&mut self, order: &[(usize, usize)]) {
        let first: Vec<(usize, usize)> = match self.schedule {
            // As an Envoy worker: the writes the reads activated run after
            // all of them, in order.
            Schedule::Batch => order.to_vec(),
            // The holds that ended, earliest first.
            Schedule::Hold { .. } => {
                let now = monotonic_ns();
                let mut due: Vec<(u64, usize, usize)> = Vec::new();
                for (slot, c) in self.conns.iter().enumerate() {
                    let Some(c) = c else { continue };
                    for f in [DOWN, UP] {
                        if let Some(d) = c.due_ns(f).filter(|d| *d <= now) {
                            due.push((d, slot, f));
                        }
                    }
                }
                due.sort_unstable();
                due.into_iter().map(|(_, slot, f)| (slot, f)).collect()
            }
        };
        for (slot, f) in first {
            self.flush(slot, f);
        }
        // Then the rest: chunks left by a write that would block (their
        // socket may be writable again) and ends of stream to pass on.
        for slot in 0..self.conns.len() {
            for f in [DOWN, UP] {
                self.flush(slot, f);
            }
        }
    }

    fn flush(&mut self, slot: usize, f: usize) {
        if let Some(Some(c)) = self.conns.get_mut(slot)
            && c.flush(f, self.rec).is_err()
        {
            c.failed = true;
        }
    }

    /// Close connections that failed or ended both ways.
    fn reap(&mut self) {
        for slot in 0..self.conns.len() {
            if self.conns[slot]
                .as_ref()
                .is_some_and(|c| c.failed || c.done())
            {
                let conn = self.conns[slot].take();
                self.close(slot, conn);
            }
        }
    }

    fn close(&mut self, slot: usize, conn: Option<Conn>) {
        if let Some(mut c) = conn {
            for side in [DOWN, UP] {
                // Closing the socket removes it from epoll anyway.
                if let Some(sock) = c.sock_mut(side) {
                    let _ = self.poll.registry().deregister(sock);
                }
            }
        }
        self.free.push(slot);
    }
}
