//! HTTP/1.1 keepalive clients through the fixture: `conns` connections,
//! each sending `per_conn` requests one after another, every read bounded
//! by a timeout.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// One response's Content-Length from its head (None: head incomplete).
fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })
}

fn one_connection(addr: SocketAddr, requests: u64) -> Result<u64, String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .and_then(|()| s.set_nodelay(true))
        .map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut done = 0;
    let mut line = String::new();
    let mut body = Vec::new();
    while done < requests {
        w.write_all(b"GET / HTTP/1.1\r\nHost: fixture\r\n\r\n")
            .map_err(|e| format!("request {done}: {e}"))?;
        let mut head = String::new();
        loop {
            line.clear();
            let n = r
                .read_line(&mut line)
                .map_err(|e| format!("response {done}: {e}"))?;
            if n == 0 {
                return Err(format!("response {done}: connection closed"));
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("response {done}: {head:?}"));
        }
        let len = content_length(&head).ok_or_else(|| format!("no Content-Length in {head:?}"))?;
        body.resize(len, 0);
        r.read_exact(&mut body)
            .map_err(|e| format!("response {done} body: {e}"))?;
        done += 1;
    }
    Ok(done)
}

/// Requests completed over all connections, or the first error. Every
/// connection starts at once: the event-loop fixture then reads many new
/// connections' first requests in one turn before it connects upstreams.
pub fn run(addr: SocketAddr, conns: usize, per_conn: u64) -> Result<u64, String> {
    let start = std::sync::Barrier::new(conns);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..conns)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    one_connection(addr, per_conn)
                })
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h.join().map_err(|_| "a client thread panicked")??;
        }
        Ok(total)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_found_in_any_case() {
        assert_eq!(
            content_length("HTTP/1.1 200 OK\r\ncontent-length: 128\r\n"),
            Some(128)
        );
        assert_eq!(content_length("HTTP/1.1 200 OK\r\n"), None);
    }
}
