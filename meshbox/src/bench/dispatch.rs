//! What a process the profiler does not follow pays on each send and
//! receive, as that process sees it: loopback round trips (one send, one
//! receive) timed in this process with nothing on the hooks, with empty
//! programs there (classic tracepoints, and the kind the hook set uses),
//! and with the profiler's own programs. Program run time leaves out the
//! hook's dispatch (for a classic tracepoint, the record the kernel fills
//! before any program runs); this figure includes it.
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    time::Instant,
};

use profiler::ebpf::{Attach, Hook, HookSet};

use super::ratios::Spread;

/// The arms, in the order each round measures them.
pub const ARMS: [&str; 4] = [
    "nothing attached",
    "empty classic tracepoints",
    "empty programs where the profiler's go",
    "the profiler's programs",
];

#[derive(Clone, Debug, Default)]
pub struct Dispatch {
    /// Where the profiler's send and receive programs go here.
    pub hooks: Vec<String>,
    pub round_trips: usize,
    pub rounds: usize,
    /// ns per round trip, per arm (in [`ARMS`] order), over rounds.
    pub per_round_trip: Vec<Spread>,
}

impl Dispatch {
    /// The median ns per send or receive arm `i` adds to nothing attached.
    pub fn per_call_ns(&self, i: usize) -> Option<f64> {
        let base = self.per_round_trip.first()?.median;
        Some((self.per_round_trip.get(i)?.median - base) / 2.0)
    }
}

/// A connected loopback pair, Nagle off (each send goes at once).
fn pair() -> std::io::Result<(TcpStream, TcpStream)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let a = TcpStream::connect(l.local_addr()?)?;
    let (b, _) = l.accept()?;
    a.set_nodelay(true)?;
    b.set_nodelay(true)?;
    Ok((a, b))
}

/// Mean ns per round trip of `n` 32-byte sends from one end, each received
/// at the other.
fn round_trips(n: usize) -> std::io::Result<f64> {
    let (mut a, mut b) = pair()?;
    let mut buf = [0u8; 32];
    let t = Instant::now();
    for _ in 0..n {
        a.write_all(&buf)?;
        b.read_exact(&mut buf)?;
    }
    Ok(t.elapsed().as_nanos() as f64 / n as f64)
}

/// `hooks` attached while `n` round trips run.
fn timed(hooks: &[Hook], n: usize) -> Result<f64, super::BoxError> {
    let _held = super::attach_each(hooks.iter().copied())?;
    Ok(round_trips(n)?)
}

/// A tracepoint set's send and receive hooks (its arrival hook does not
/// fire on the sender's or the receiver's call).
fn send_receive(set: &[Hook]) -> Vec<Hook> {
    set.iter()
        .filter(|h| {
            matches!(
                h.attach,
                Attach::Tracepoint {
                    name: "sock_send_length" | "sock_recv_length",
                    ..
                } | Attach::RawTracepoint {
                    name: "sock_send_length" | "sock_recv_length"
                }
            )
        })
        .copied()
        .collect()
}

/// `rounds` rounds of every arm, `n` round trips each. No process is
/// tracked, so the profiler's programs take their untracked exit.
pub fn measure(n: usize, rounds: usize) -> Result<Dispatch, super::BoxError> {
    let ours = send_receive(HookSet::Tracepoints.hooks());
    let empty: Vec<Hook> = ours.iter().map(Hook::trivial).collect();
    let classic: Vec<Hook> = send_receive(HookSet::tracepoints(false))
        .iter()
        .map(Hook::trivial)
        .collect();
    let arms: [&[Hook]; 4] = [&[], &classic, &empty, &ours];
    // Warm up: the first connection and pages of a run cost more.
    round_trips(n / 4)?;
    let mut per_arm = vec![Vec::new(); arms.len()];
    for _ in 0..rounds {
        for (i, hooks) in arms.iter().enumerate() {
            per_arm[i].push(timed(hooks, n)?);
        }
    }
    Ok(Dispatch {
        hooks: ours.iter().map(Hook::describe).collect(),
        round_trips: n,
        rounds,
        per_round_trip: per_arm
            .iter()
            .map(|v| Spread::of(v).ok_or("no round-trip timing"))
            .collect::<Result<_, _>>()?,
    })
}
