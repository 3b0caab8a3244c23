//! The ground-truth proxy fixture: a TCP proxy that holds every forwarded
//! chunk for a set delay and times its own read-to-write with
//! CLOCK_MONOTONIC, the clock bpf_ktime_get_ns reads. Each direction of a
//! connection runs on one thread, so a read and the write it feeds happen on
//! the same thread, as in an event-loop proxy.
use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::intercept::{INBOUND_PORT, OUTBOUND_PORT};

/// CLOCK_MONOTONIC in ns.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The fixture's own account of one (direction, leg): read-to-write in µs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LegStats {
    pub forwards: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// Keyed "inbound/request", "outbound/response", ...
pub type Stats = BTreeMap<String, LegStats>;

type Hists = Arc<Mutex<BTreeMap<String, Histogram<u64>>>>;

pub fn run(
    inbound_to: SocketAddr,
    outbound_to: SocketAddr,
    delay: Duration,
    stats: PathBuf,
) -> std::io::Result<()> {
    let hists: Hists = Arc::default();
    for (port, dir, to) in [
        (INBOUND_PORT, "inbound", inbound_to),
        (OUTBOUND_PORT, "outbound", outbound_to),
    ] {
        let listener = TcpListener::bind(("0.0.0.0", port))?;
        let hists = hists.clone();
        std::thread::spawn(move || {
            for down in listener.incoming().flatten() {
                let hists = hists.clone();
                std::thread::spawn(move || {
                    let _ = connect_pair(down, to, dir, delay, hists);
                });
            }
        });
    }
    // Publish the fixture's own percentiles continuously; the file is
    // replaced atomically so a reader never sees half of it.
    loop {
        std::thread::sleep(Duration::from_millis(100));
        write_stats(&hists, &stats)?;
    }
}

fn connect_pair(
    down: TcpStream,
    to: SocketAddr,
    dir: &'static str,
    delay: Duration,
    hists: Hists,
) -> std::io::Result<()> {
    let up = TcpStream::connect(to)?;
    down.set_nodelay(true)?;
    up.set_nodelay(true)?;
    let (down2, up2) = (down.try_clone()?, up.try_clone()?);
    let h2 = hists.clone();
    std::thread::spawn(move || pump(up2, down2, format!("{dir}/response"), delay, h2));
    pump(down, up, format!("{dir}/request"), delay, hists);
    Ok(())
}

fn pump(mut from: TcpStream, mut to: TcpStream, key: String, delay: Duration, hists: Hists) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let read_ns = monotonic_ns();
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        let took_ns = monotonic_ns() - read_ns;
        if let Ok(mut h) = hists.lock() {
            let hist = h.entry(key.clone()).or_insert_with(|| {
                Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static bounds")
            });
            let _ = hist.record(took_ns.max(1));
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn write_stats(hists: &Hists, path: &Path) -> std::io::Result<()> {
    let snapshot: Stats = match hists.lock() {
        Ok(h) => h
            .iter()
            .map(|(k, h)| {
                let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
                (
                    k.clone(),
                    LegStats {
                        forwards: h.len(),
                        p50_us: us(0.5),
                        p90_us: us(0.9),
                        p99_us: us(0.99),
                        max_us: h.max() as f64 / 1000.0,
                    },
                )
            })
            .collect(),
        Err(_) => return Ok(()),
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, path)
}

pub fn read_stats(path: &Path) -> std::io::Result<Stats> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}
