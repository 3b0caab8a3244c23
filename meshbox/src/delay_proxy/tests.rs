//! The fixture on loopback, in-process: clients through both listeners to
//! an echo server, checking that every byte arrives in order, that every
//! chunk read is forwarded and counted once, and the event-loop holds.
use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Mutex, PoisonError, mpsc},
    thread::JoinHandle,
    time::Duration,
};

use super::*;

const IO_TIMEOUT: Duration = Duration::from_secs(5);
const HOLD_MIN: Duration = Duration::from_micros(200);
const HOLD_MAX: Duration = Duration::from_micros(1500);
/// Beyond the longest hold: the loop's own latency on a busy test machine.
const HOLD_SLACK: Duration = Duration::from_millis(30);

/// An upstream that echoes every byte back and passes end of stream on.
struct Echo {
    addr: SocketAddr,
    stop: Stop,
    acceptor: JoinHandle<Vec<JoinHandle<()>>>,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the echo server");
        listener
            .set_nonblocking(true)
            .expect("non-blocking echo listener");
        let addr = listener.local_addr().expect("echo address");
        let stop = Stop::default();
        let stop2 = stop.clone();
        let acceptor = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop2.requested() {
                match listener.accept() {
                    Ok((s, _)) => conns.push(std::thread::spawn(move || echo(s))),
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            conns
        });
        Echo {
            addr,
            stop,
            acceptor,
        }
    }

    /// Ends once the fixture closed every upstream connection.
    fn finish(self) {
        self.stop.request();
        for c in self.acceptor.join().expect("echo acceptor") {
            c.join().expect("echo connection");
        }
    }
}

fn echo(mut s: TcpStream) {
    s.set_nonblocking(false).expect("blocking echo socket");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("echo timeout");
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || s.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = s.shutdown(Shutdown::Write);
}

/// Message `m` of client `c`: sizes from a byte to 120 KiB (bigger than
/// the fixture's read buffer), bytes that differ by position.
fn message(c: usize, m: usize) -> Vec<u8> {
    let size = match (c * 31 + m * 17) % 10 {
        0 => 120_000,
        1..=3 => 1 + (c * 7919 + m * 104_729) % 40_000,
        _ => 1 + (c * 131 + m * 613) % 1500,
    };
    let seed = ((c as u64) << 32) ^ (m as u64);
    (0..size as u64)
        .map(|i| ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed) >> 56) as u8)
        .collect()
}

/// Client `c`: send its messages one at a time, each after the echo of the
/// one before, check every echo, then half-close and expect end of stream.
/// Returns the bytes sent.
fn client(addr: SocketAddr, c: usize, messages: &[Vec<u8>]) -> u64 {
    let mut s = TcpStream::connect(addr).expect("connect to the fixture");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    let mut w = s.try_clone().expect("clone the client socket");
    let (echoed, next) = mpsc::channel::<()>();
    std::thread::scope(|sc| {
        // A writer of its own, so a large message can't deadlock against its echo.
        sc.spawn(move || {
            for m in messages {
                w.write_all(m).expect("send a message");
                next.recv_timeout(IO_TIMEOUT).expect("the echo in time");
            }
            w.shutdown(Shutdown::Write).expect("half-close");
        });
        let mut sent = 0;
        for (m, want) in messages.iter().enumerate() {
            let mut got = vec![0u8; want.len()];
            s.read_exact(&mut got)
                .unwrap_or_else(|e| panic!("client {c} message {m}: echo: {e}"));
            assert!(
                got == *want,
                "client {c} message {m}: bytes out of order or changed"
            );
            sent += want.len() as u64;
            let _ = echoed.send(());
        }
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("end of stream");
        assert!(
            rest.is_empty(),
            "client {c}: {} bytes after the last echo",
            rest.len()
        );
        sent
    })
}

/// Run `clients` connections with `total` messages in all through `mode`;
/// returns the fixture's counts per key and the bytes sent per direction.
fn run_through(mode: ProxyMode, clients: usize, total: usize) -> (Arc<Recorder>, [u64; 2]) {
    // One fixture at a time, so the holds measure the fixture rather than
    // a fight for the CPU with the other fixtures' clients.
    static SERIAL: Mutex<()> = Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let per_client = (total / clients).max(1);
    // Made up front: the clients only do I/O while the fixture runs.
    let messages: Vec<Vec<Vec<u8>>> = (0..clients)
        .map(|c| (0..per_client).map(|m| message(c, m)).collect())
        .collect();
    let echo = Echo::start();
    let listen = || TcpListener::bind("127.0.0.1:0").expect("bind a fixture listener");
    let (inbound, outbound) = (listen(), listen());
    let addrs = [
        inbound.local_addr().expect("inbound address"),
        outbound.local_addr().expect("outbound address"),
    ];
    let routes = vec![
        Route {
            listener: inbound,
            direction: Direction::Inbound,
            upstream: echo.addr,
        },
        Route {
            listener: outbound,
            direction: Direction::Outbound,
            upstream: echo.addr,
        },
    ];
    let rec = Arc::new(Recorder::default());
    let stop = Stop::default();
    let fixture = {
        let (rec, stop) = (rec.clone(), stop.clone());
        std::thread::spawn(move || serve(mode, Duration::ZERO, routes, &rec, &stop))
    };
    // Even clients go inbound, odd ones outbound.
    let sent: Vec<(usize, u64)> = std::thread::scope(|sc| {
        let handles: Vec<_> = messages
            .iter()
            .enumerate()
            .map(|(c, msgs)| sc.spawn(move || (c % 2, client(addrs[c % 2], c, msgs))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client failed"))
            .collect()
    });
    stop.request();
    fixture
        .join()
        .expect("the fixture panicked")
        .expect("the fixture failed");
    echo.finish();
    let mut bytes = [0u64; 2];
    for (dir, b) in sent {
        bytes[dir] += b;
    }
    (rec, bytes)
}

/// Every chunk read was written once and counted once, with every byte.
fn check_counts(rec: &Recorder, bytes: [u64; 2], clients: usize, total: usize) {
    let per_client = (total / clients).max(1);
    // Even clients went inbound, odd ones outbound.
    let dirs = [
        (Direction::Inbound, clients.div_ceil(2)),
        (Direction::Outbound, clients / 2),
    ];
    for (dir, (d, n)) in dirs.into_iter().enumerate() {
        let messages = (per_client * n) as u64;
        for request in [true, false] {
            let key = d.key(request);
            let c = rec.counts(key);
            assert_eq!(c.forwards, c.reads, "{key}: chunks read {c:?} vs forwarded");
            assert_eq!(c.bytes_read, bytes[dir], "{key}: bytes read");
            assert_eq!(c.bytes_written, bytes[dir], "{key}: bytes written");
            // Lockstep messages can't share a chunk.
            assert!(
                c.forwards >= messages,
                "{key}: {} chunks for {messages} messages",
                c.forwards
            );
        }
    }
}

fn event_loop() -> ProxyMode {
    ProxyMode::EventLoop {
        hold_min: HOLD_MIN,
        hold_max: HOLD_MAX,
    }
}

fn check_holds(rec: &Recorder) {
    let (lo, hi) = (
        HOLD_MIN.as_nanos() as u64,
        (HOLD_MAX + HOLD_SLACK).as_nanos() as u64,
    );
    let (mut min, mut max) = (u64::MAX, 0);
    for d in [Direction::Inbound, Direction::Outbound] {
        for request in [true, false] {
            let c = rec.counts(d.key(request));
            if c.forwards == 0 {
                continue;
            }
            assert!(
                c.min_ns >= lo,
                "{}: a hold of {} ns, under {lo}",
                d.key(request),
                c.min_ns
            );
            assert!(
                c.max_ns <= hi,
                "{}: a hold of {} ns, over {hi}",
                d.key(request),
                c.max_ns
            );
            min = min.min(c.min_ns);
            max = max.max(c.max_ns);
        }
    }
    // The holds are drawn, not fixed: they cover half of [A, B] at least.
    let span = (HOLD_MAX - HOLD_MIN).as_nanos() as u64;
    assert!(max - min > span / 2, "holds from {min} to {max} ns");
}

#[test]
fn event_loop_one_connection() {
    let (rec, bytes) = run_through(event_loop(), 1, 96);
    check_counts(&rec, bytes, 1, 96);
    check_holds(&rec);
}

#[test]
fn event_loop_16_connections() {
    let (rec, bytes) = run_through(event_loop(), 16, 128);
    check_counts(&rec, bytes, 16, 128);
    check_holds(&rec);
}

#[test]
fn event_loop_64_connections() {
    let (rec, bytes) = run_through(event_loop(), 64, 128);
    check_counts(&rec, bytes, 64, 128);
    check_holds(&rec);
}

#[test]
fn batch_one_connection() {
    let (rec, bytes) = run_through(ProxyMode::Batch, 1, 96);
    check_counts(&rec, bytes, 1, 96);
}

#[test]
fn batch_16_connections() {
    let (rec, bytes) = run_through(ProxyMode::Batch, 16, 128);
    check_counts(&rec, bytes, 16, 128);
}

#[test]
fn batch_64_connections() {
    let (rec, bytes) = run_through(ProxyMode::Batch, 64, 128);
    check_counts(&rec, bytes, 64, 128);
}

#[test]
fn threads_16_connections() {
    let (rec, bytes) = run_through(ProxyMode::Threads, 16, 64);
    check_counts(&rec, bytes, 16, 64);
}

#[test]
fn modes_round_trip_through_the_command_line() {
    for mode in [ProxyMode::Threads, ProxyMode::Batch, event_loop()] {
        let mut argv: Vec<String> = [
            "profiler",
            "testbed",
            "delay-proxy",
            "--inbound-to",
            "127.0.0.1:1",
            "--outbound-to",
            "127.0.0.1:2",
            "--stats",
            "/tmp/x.json",
        ]
        .map(String::from)
        .into();
        argv.extend(mode.args());
        if let Err(e) = <crate::cli::Cli as clap::Parser>::try_parse_from(&argv) {
            panic!("{argv:?}: {e}");
        }
    }
    let us = Duration::from_micros;
    assert_eq!(
        ProxyMode::from_flags(ModeName::EventLoop, us(5), us(9)).expect("valid"),
        ProxyMode::EventLoop {
            hold_min: us(5),
            hold_max: us(9)
        }
    );
    assert!(ProxyMode::from_flags(ModeName::EventLoop, us(9), us(5)).is_err());
}
