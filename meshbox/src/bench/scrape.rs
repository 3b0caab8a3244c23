//! One timed GET of the daemon's /metrics over loopback (the bench's own
//! scraper: a plain HTTP/1.1 request, as Prometheus sends).
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

pub struct Scrape {
    pub status: u16,
    pub body: String,
    pub took: Duration,
}

pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Scrape> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let took = t0.elapsed();
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    Ok(Scrape {
        status,
        body: body.to_string(),
        took,
    })
}

/// Sum of a metric's samples (every label set), and the number of series.
pub fn sum_of(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

pub fn series(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_metric_over_its_label_sets_only() {
        let t = "# TYPE sidecar_forwards counter\n\
                 sidecar_forwards_total{pod=\"a\"} 10\n\
                 sidecar_forwards_total{pod=\"b\"} 5\n\
                 sidecar_forwards_totalx 99\n\
                 profiler_sidecars_tracked 2\n# EOF\n";
        assert_eq!(sum_of(t, "sidecar_forwards_total"), 15.0);
        assert_eq!(sum_of(t, "profiler_sidecars_tracked"), 2.0);
        assert_eq!(series(t), 4);
    }
}
