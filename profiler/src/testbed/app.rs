//! The pod's application: an HTTP/1.1 keepalive server whose response delay
//! and size are set on the command line.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    time::Duration,
};

pub fn serve(port: u16, delay: Duration, size: usize) -> std::io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    let body = vec![b'x'; size];
    let head =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nContent-Type: text/plain\r\n\r\n");
    let mut response = head.into_bytes();
    response.extend_from_slice(&body);
    let response: &'static [u8] = Box::leak(response.into_boxed_slice());
    for conn in listener.incoming() {
        let conn = conn?;
        std::thread::spawn(move || {
            let _ = handle(conn, delay, response);
        });
    }
    Ok(())
}

/// Request headers up to the blank line; returns the Content-Length, or
/// None at end of stream.
fn read_request(r: &mut impl BufRead) -> std::io::Result<Option<usize>> {
    let mut len = 0;
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if line == "\r\n" || line == "\n" {
            if first {
                continue;
            }
            return Ok(Some(len));
        }
        first = false;
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
}

fn handle(conn: TcpStream, delay: Duration, response: &[u8]) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    while let Some(body) = read_request(&mut r)? {
        std::io::copy(&mut (&mut r).take(body as u64), &mut std::io::sink())?;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        w.write_all(response)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pipelined_requests_and_their_bodies() {
        let raw =
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        let mut r = BufReader::new(&raw[..]);
        assert_eq!(read_request(&mut r).expect("io"), Some(0));
        assert_eq!(read_request(&mut r).expect("io"), Some(3));
        let mut body = [0u8; 3];
        r.read_exact(&mut body).expect("body");
        assert_eq!(&body, b"abc");
        assert_eq!(read_request(&mut r).expect("io"), None);
    }
}
