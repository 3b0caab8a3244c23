//! The threads mode: a thread per connection direction, so a read and the
//! write it feeds happen on the same thread, one chunk at a time; each
//! chunk is held for a fixed delay, asleep or (spin) running.
use std::{
    io::{self, Read, Write},
    net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream},
    sync::Arc,
    thread::JoinHandle,
    time::Duration,
};

use super::{Direction, Recorder, Route, Stop, monotonic_ns};

pub fn serve(
    routes: Vec<Route>,
    delay: Duration,
    spin: bool,
    rec: &Arc<Recorder>,
    stop: &Stop,
) -> io::Result<()> {
    let mut acceptors: Vec<(SocketAddr, JoinHandle<()>)> = Vec::new();
    for r in routes {
        let addr = r.listener.local_addr()?;
        let (rec, stop) = (rec.clone(), stop.clone());
        let acceptor = std::thread::spawn(move || {
            for down in r.listener.incoming().flatten() {
                if stop.requested() {
                    break;
                }
                let rec = rec.clone();
                std::thread::spawn(move || {
                    let _ = connect_pair(down, r.upstream, r.direction, (delay, spin), rec);
                });
            }
        });
        acceptors.push((addr, acceptor));
    }
    while !stop.requested() {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Wake each acceptor out of accept() with a connection of our own.
    for (mut addr, acceptor) in acceptors {
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let _ = TcpStream::connect(addr);
        let _ = acceptor.join();
    }
    // Pumps end by themselves as their connections close.
    Ok(())
}

fn connect_pair(
    down: TcpStream,
    to: SocketAddr,
    dir: Direction,
    hold: (Duration, bool),
    rec: Arc<Recorder>,
) -> io::Result<()> {
    let up = TcpStream::connect(to)?;
    down.set_nodelay(true)?;
    up.set_nodelay(true)?;
    let (down2, up2) = (down.try_clone()?, up.try_clone()?);
    let rec2 = rec.clone();
    std::thread::spawn(move || pump(up2, down2, dir.key(false), hold, &rec2));
    pump(down, up, dir.key(true), hold, &rec);
    Ok(())
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    key: &'static str,
    (delay, spin): (Duration, bool),
    rec: &Recorder,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let read_ns = monotonic_ns();
        let read_cpu_ns = thread_cpu_ns();
        if spin {
            let until = read_ns + delay.as_nanos() as u64;
            while monotonic_ns() < until {
                std::hint::spin_loop();
            }
        } else if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let write_ns = monotonic_ns();
        let wrote = to.write_all(&buf[..n]).is_ok();
        let done_ns = monotonic_ns();
        let cpu_ns = thread_cpu_ns().saturating_sub(read_cpu_ns);
        // The read is counted only now: the recorder's lock, taken between
        // the read and the write (behind the publisher, or the other
        // direction's thread), made a spinning hold block, 97 us at p99 in
        // one run, 129 to 261 us under a 10% CPU quota; 1 us since.
        rec.read(key, n);
        if !wrote {
            break;
        }
        rec.forward(key, n, done_ns - read_ns, write_ns - read_ns);
        rec.on_cpu(key, cpu_ns);
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// This thread's CPU time in ns (CLOCK_THREAD_CPUTIME_ID).
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
