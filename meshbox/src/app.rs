//! The pod's application: an HTTP/1.1 keepalive server whose response
//! delay, size and framing are set on the command line. The framing sets
//! how many writes a response takes, so how many chunks a proxy in front of
//! it reads: one (`one-write`), two with the kernel holding the second
//! (`split`), or N spaced in time (`chunked`).
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::Arc,
    time::Duration,
};

/// How a response is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AppResponse {
    /// Head and body in one write, TCP_NODELAY on.
    #[default]
    OneWrite,
    /// Head in one write, body in a second, with Nagle on: the kernel holds
    /// the body's last (sub-MSS) segment until the head is acknowledged,
    /// which the peer's delayed ACK can put off by ~40 ms.
    Split,
    /// `Transfer-Encoding: chunked`: the body in `chunks` chunks of at least
    /// a byte each (fewer if the body is smaller), written `gap` apart,
    /// TCP_NODELAY on. The head goes with the first chunk and the
    /// terminating zero-size chunk with the last, so a response is exactly
    /// one write per chunk (one write for an empty body).
    Chunked { chunks: usize, gap: Duration },
}

/// `--response` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ResponseName {
    OneWrite,
    Split,
    Chunked,
}

impl AppResponse {
    pub fn from_flags(
        name: ResponseName,
        chunks: usize,
        gap: Duration,
    ) -> std::io::Result<AppResponse> {
        Ok(match name {
            ResponseName::OneWrite => AppResponse::OneWrite,
            ResponseName::Split => AppResponse::Split,
            ResponseName::Chunked if chunks == 0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "--chunks must be at least 1",
                ));
            }
            ResponseName::Chunked => AppResponse::Chunked { chunks, gap },
        })
    }

    /// The app's flags that select this framing.
    pub fn args(&self) -> Vec<String> {
        match self {
            AppResponse::OneWrite => vec!["--response".into(), "one-write".into()],
            AppResponse::Split => vec!["--response".into(), "split".into()],
            AppResponse::Chunked { chunks, gap } => vec![
                "--response".into(),
                "chunked".into(),
                "--chunks".into(),
                chunks.to_string(),
                "--chunk-gap-us".into(),
                gap.as_micros().to_string(),
            ],
        }
    }

    /// The writes of one response with a `size`-byte body, in order.
    fn writes(&self, size: usize) -> Vec<Vec<u8>> {
        let body = vec![b'x'; size];
        let head = |framing: &str| {
            format!("HTTP/1.1 200 OK\r\n{framing}\r\nContent-Type: text/plain\r\n\r\n").into_bytes()
        };
        let length = format!("Content-Length: {size}");
        match self {
            AppResponse::OneWrite => vec![[head(&length), body].concat()],
            AppResponse::Split if size == 0 => vec![head(&length)],
            AppResponse::Split => vec![head(&length), body],
            AppResponse::Chunked { chunks, .. } => {
                let n = (*chunks).min(size);
                let mut writes: Vec<Vec<u8>> = (0..n)
                    .map(|i| {
                        // The first size % n chunks carry one byte more.
                        let len = size / n + usize::from(i < size % n);
                        [format!("{len:x}\r\n").as_bytes(), &body[..len], b"\r\n"].concat()
                    })
                    .collect();
                if writes.is_empty() {
                    writes.push(Vec::new());
                }
                writes[0].splice(0..0, head("Transfer-Encoding: chunked"));
                if let Some(last) = writes.last_mut() {
                    last.extend_from_slice(b"0\r\n\r\n");
                }
                writes
            }
        }
    }

    /// Nagle stays on only where holding the second write is the point.
    fn nodelay(&self) -> bool {
        *self != AppResponse::Split
    }

    fn gap(&self) -> Duration {
        match self {
            AppResponse::Chunked { gap, .. } => *gap,
            _ => Duration::ZERO,
        }
    }
}

pub fn serve(
    port: u16,
    delay: Duration,
    size: usize,
    response: AppResponse,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port))
        .map_err(|e| std::io::Error::new(e.kind(), format!("listening on port {port}: {e}")))?;
    let writes = Arc::new(response.writes(size));
    for conn in listener.incoming() {
        let conn = conn?;
        let writes = writes.clone();
        std::thread::spawn(move || {
            let _ = handle(conn, delay, response, &writes);
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

fn handle(
    conn: TcpStream,
    delay: Duration,
    response: AppResponse,
    writes: &[Vec<u8>],
) -> std::io::Result<()> {
    conn.set_nodelay(response.nodelay())?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    while let Some(body) = read_request(&mut r)? {
        std::io::copy(&mut (&mut r).take(body as u64), &mut std::io::sink())?;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        for (i, bytes) in writes.iter().enumerate() {
            if i > 0 && !response.gap().is_zero() {
                std::thread::sleep(response.gap());
            }
            w.write_all(bytes)?;
        }
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

    /// Parse a response's head, then its body by Content-Length or chunks;
    /// returns the body and the sizes of the chunks.
    fn parse(raw: &[u8]) -> (Vec<u8>, Vec<usize>) {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of head")
            + 4;
        let head = std::str::from_utf8(&raw[..split]).expect("ascii head");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let mut rest = &raw[split..];
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
        {
            let len: usize = len.parse().expect("length");
            assert_eq!(rest.len(), len, "body length");
            return (rest.to_vec(), vec![]);
        }
        assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
        let (mut body, mut sizes) = (Vec::new(), Vec::new());
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("size line");
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).expect("hex"), 16)
                .expect("chunk size");
            rest = &rest[eol + 2..];
            if size == 0 {
                assert_eq!(rest, b"\r\n", "nothing after the last chunk");
                return (body, sizes);
            }
            body.extend_from_slice(&rest[..size]);
            assert_eq!(&rest[size..size + 2], b"\r\n", "chunk end");
            rest = &rest[size + 2..];
            sizes.push(size);
        }
    }

    #[test]
    fn chunked_responses_parse_back_to_the_body_one_write_per_chunk() {
        let gap = Duration::from_millis(10);
        for (size, chunks, want) in [
            (100, 5, vec![20, 20, 20, 20, 20]),
            (7, 3, vec![3, 2, 2]),
            (2, 5, vec![1, 1]),
            (0, 5, vec![]),
        ] {
            let writes = AppResponse::Chunked { chunks, gap }.writes(size);
            assert_eq!(
                writes.len(),
                want.len().max(1),
                "size {size}, {chunks} chunks"
            );
            // The terminator rides with the last chunk and nowhere else.
            for w in &writes[..writes.len() - 1] {
                assert!(!w.ends_with(b"0\r\n\r\n"));
            }
            let (body, sizes) = parse(&writes.concat());
            assert_eq!(body, vec![b'x'; size]);
            assert_eq!(sizes, want);
        }
    }

    #[test]
    fn split_sends_head_then_body_and_one_write_sends_both() {
        let split = AppResponse::Split.writes(300);
        assert_eq!(split.len(), 2);
        assert!(split[0].ends_with(b"\r\n\r\n"));
        assert_eq!(split[1], vec![b'x'; 300]);
        assert_eq!(parse(&split.concat()).0, vec![b'x'; 300]);
        let one = AppResponse::OneWrite.writes(128);
        assert_eq!(one.len(), 1);
        assert_eq!(one, vec![one_write_response(128)]);
        assert!(!AppResponse::Split.nodelay());
        assert!(AppResponse::OneWrite.nodelay());
    }

    fn one_write_response(size: usize) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nContent-Type: text/plain\r\n\r\n"
        )
        .into_bytes();
        r.extend(vec![b'x'; size]);
        r
    }

    #[test]
    fn framings_round_trip_through_the_command_line() {
        let gap = Duration::from_micros(2500);
        for resp in [
            AppResponse::OneWrite,
            AppResponse::Split,
            AppResponse::Chunked { chunks: 3, gap },
        ] {
            let mut argv: Vec<String> = ["profiler", "testbed", "app"].map(String::from).into();
            argv.extend(resp.args());
            if let Err(e) = <crate::cli::Cli as clap::Parser>::try_parse_from(&argv) {
                panic!("{argv:?}: {e}");
            }
        }
        assert_eq!(
            AppResponse::from_flags(ResponseName::Chunked, 3, gap).expect("valid"),
            AppResponse::Chunked { chunks: 3, gap }
        );
        assert!(AppResponse::from_flags(ResponseName::Chunked, 0, gap).is_err());
    }

    #[test]
    fn serves_every_framing_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let framings = [
            AppResponse::OneWrite,
            AppResponse::Split,
            AppResponse::Chunked {
                chunks: 4,
                gap: Duration::from_millis(1),
            },
        ];
        let server = std::thread::spawn(move || {
            for resp in framings {
                let (conn, _) = listener.accept().expect("accept");
                let writes = resp.writes(1000);
                // Ends when the client closes.
                handle(conn, Duration::ZERO, resp, &writes).expect("serve");
            }
        });
        for resp in framings {
            let mut c = TcpStream::connect(addr).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let want = resp.writes(1000).concat();
            for _ in 0..2 {
                c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                    .expect("request");
                let mut got = vec![0u8; want.len()];
                c.read_exact(&mut got).expect("response");
                assert_eq!(parse(&got).0, vec![b'x'; 1000], "{resp:?}");
            }
        }
        server.join().expect("server");
    }
}
