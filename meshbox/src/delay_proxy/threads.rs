//! The threads mode: a thread per connection direction, so a read and the
//! write it feeds happen on the same thread, one chunk at a time; each
//! chunk is held for a fixed delay.
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
                    let _ = connect_pair(down, r.upstream, r.direction, delay, rec);
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
    delay: Duration,
    rec: Arc<Recorder>,
) -> io::Result<()> {
    let up = TcpStream::connect(to)?;
    down.set_nodelay(true)?;
    up.set_nodelay(true)?;
    let (down2, up2) = (down.try_clone()?, up.try_clone()?);
    let rec2 = rec.clone();
    std::thread::spawn(move || pump(up2, down2, dir.key(false), delay, &rec2));
    pump(down, up, dir.key(true), delay, &rec);
    Ok(())
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    key: &'static str,
    delay: Duration,
    rec: &Recorder,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let read_ns = monotonic_ns();
        rec.read(key, n);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let write_ns = monotonic_ns();
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        rec.forward(key, n, monotonic_ns() - read_ns, write_ns - read_ns);
    }
    let _ = to.shutdown(Shutdown::Write);
}
