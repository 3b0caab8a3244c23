//! h2load (Debian's nghttp2-client): HTTP/2 load, h2c by prior knowledge
//! for http:// URLs, with many concurrent streams per connection. Counts
//! come from its summary; latency percentiles from its per-request log,
//! because the summary gives only min, max, mean and sd.
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use super::{LoadResult, LoadSpec, bad};
use crate::{TestbedError, netns};

static LOGS: AtomicU32 = AtomicU32::new(0);

/// h2load's arguments for `spec`, writing its request log to `log`.
/// A total rate becomes h2load's per-connection `--rps`, rounded, so the
/// rate held is a multiple of the connection count.
pub fn args(spec: &LoadSpec, log: &Path) -> Vec<String> {
    let conns = spec.connections.max(1);
    let mut a = vec![
        "-t1".to_string(),
        "-c".into(),
        conns.to_string(),
        "-m".into(),
        spec.streams.max(1).to_string(),
        "-D".into(),
        spec.duration.as_secs().max(1).to_string(),
        format!("--log-file={}", log.display()),
    ];
    if let Some(rate) = spec.rate {
        let per_conn = ((rate + conns / 2) / conns).max(1);
        a.push(format!("--rps={per_conn}"));
    }
    a
}

/// Run h2load with `cmd` as its prefix (namespace, timeout) against `url`.
pub fn run(cmd: &mut Command, url: &str, spec: &LoadSpec) -> Result<LoadResult, TestbedError> {
    let log: PathBuf = std::env::temp_dir().join(format!(
        "h2load-{}-{}.log",
        std::process::id(),
        LOGS.fetch_add(1, Ordering::Relaxed)
    ));
    cmd.arg("h2load").args(args(spec, &log)).arg(url);
    let out = netns::run(cmd);
    let requests = std::fs::read_to_string(&log);
    let _ = std::fs::remove_file(&log);
    let requests = requests.map_err(|source| TestbedError::Io {
        what: format!("reading h2load's request log {}", log.display()),
        source,
    })?;
    parse(&out?, &requests)
}

/// `N word, N word, ...` after `prefix` on one line of `text`.
fn counts<'a>(text: &'a str, prefix: &str) -> Option<Vec<(&'a str, u64)>> {
    let line = text.lines().find_map(|l| l.trim().strip_prefix(prefix))?;
    line.split(',')
        .map(|part| {
            let (n, word) = part.trim().split_once(' ')?;
            Some((word.trim(), n.parse().ok()?))
        })
        .collect()
}

fn get(counts: &[(&str, u64)], word: &str) -> Option<u64> {
    counts.iter().find(|(w, _)| *w == word).map(|(_, n)| *n)
}

/// completed = 2xx responses. errors = h2load's `failed` (non-2xx/3xx
/// statuses and transport errors such as streams reset or connections
/// closed) plus 3xx, which h2load counts as succeeded. Percentiles are over
/// the 2xx rows of the request log (status in column 2, microseconds from
/// request start to end of response in column 3), nearest rank; NaN when
/// there is none.
pub fn parse(summary: &str, log: &str) -> Result<LoadResult, TestbedError> {
    let requests = counts(summary, "requests:")
        .ok_or_else(|| bad("h2load printed no request counts", summary))?;
    let statuses = counts(summary, "status codes:")
        .ok_or_else(|| bad("h2load printed no status codes", summary))?;
    let field = |c: &[(&str, u64)], w: &str| {
        get(c, w).ok_or_else(|| bad(&format!("h2load's summary has no '{w}' count"), summary))
    };
    let completed = field(&statuses, "2xx")?;
    let errors = field(&requests, "failed")? + field(&statuses, "3xx")?;
    let mut us: Vec<u64> = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let (Some(_start), Some(status), Some(t)) = (cols.next(), cols.next(), cols.next()) else {
            return Err(bad("h2load's request log has a short row", line));
        };
        let status: i32 = status
            .trim()
            .parse()
            .map_err(|_| bad("h2load's request log has a bad status", line))?;
        if (200..300).contains(&status) {
            us.push(
                t.trim()
                    .parse()
                    .map_err(|_| bad("h2load's request log has a bad duration", line))?,
            );
        }
    }
    us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if us.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * us.len() as f64).ceil() as usize).clamp(1, us.len());
        us[rank - 1] as f64
    };
    let error_kinds = [
        ("failed requests", field(&requests, "failed")?),
        ("3xx responses", field(&statuses, "3xx")?),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(w, n)| (w.to_string(), n))
    .collect();
    Ok(LoadResult {
        completed,
        errors,
        error_kinds,
        p50_us: pct(0.50),
        p90_us: pct(0.90),
        p99_us: pct(0.99),
        mean_us: if us.is_empty() {
            f64::NAN
        } else {
            us.iter().sum::<u64>() as f64 / us.len() as f64
        },
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::LoadGen;

    /// Captured: h2load -t1 -c 4 -m 10 -D 2 through two haproxy h2c hops to
    /// the h2 app (delay 200 µs, 512 bytes), on loopback.
    const OK: &str = include_str!("testdata/h2load-summary-ok.txt");
    /// Captured: haproxy h2c frontend whose backend refuses connections;
    /// two 503s, then haproxy closed the connections under 18 more streams.
    const FAILED: &str = include_str!("testdata/h2load-summary-503.txt");

    #[test]
    fn counts_2xx_as_completed_and_percentiles_from_the_log() {
        let mut log = String::new();
        // 100 rows of 2xx at 1..=100 µs, one 503 and one broken stream that
        // must not count in the percentiles.
        for i in 1..=100 {
            log.push_str(&format!("1795732409953306\t200\t{i}\n"));
        }
        log.push_str("1795732658924758\t503\t3006583\n1795732658924758\t-1\t3006631\n");
        let r = parse(OK, &log).expect("parse");
        assert_eq!(r.completed, 49709);
        assert_eq!(r.errors, 0);
        assert_eq!((r.p50_us, r.p90_us, r.p99_us), (50.0, 90.0, 99.0));
        assert_eq!(r.mean_us, 50.5);
    }

    #[test]
    fn failed_streams_and_non_2xx_are_errors() {
        let log = "1795732658924758\t503\t3006583\n1795732658924758\t-1\t3006631\n";
        let r = parse(FAILED, log).expect("parse");
        assert_eq!(r.completed, 0);
        assert_eq!(r.errors, 20);
        assert!(r.p50_us.is_nan() && r.p99_us.is_nan() && r.mean_us.is_nan());
        let three_xx = OK.replace("0 3xx", "7 3xx");
        assert_eq!(parse(&three_xx, "").expect("parse").errors, 7);
    }

    #[test]
    fn refuses_output_without_counts_or_with_a_bad_log() {
        assert!(parse("starting benchmark...\n", "").is_err());
        assert!(parse(OK, "1795732409953306\t200\n").is_err());
        assert!(parse(OK, "1795732409953306\tok\t12\n").is_err());
    }

    #[test]
    fn streams_per_connection_and_rate_per_connection() {
        let spec = LoadSpec {
            generator: LoadGen::H2load,
            duration: Duration::from_secs(3),
            connections: 4,
            rate: Some(1000),
            streams: 16,
        };
        let a = args(&spec, Path::new("/tmp/l.log")).join(" ");
        assert_eq!(a, "-t1 -c 4 -m 16 -D 3 --log-file=/tmp/l.log --rps=250");
        let open = LoadSpec { rate: None, ..spec };
        assert!(
            !args(&open, Path::new("/tmp/l.log"))
                .join(" ")
                .contains("rps")
        );
    }

    /// The whole path on loopback: h2load against the h2 app, 20 streams on
    /// each of 2 connections for a second, with the app's 200 µs delay.
    /// Skipped where h2load is not installed (`cargo xtask setup` installs it).
    #[test]
    fn h2load_against_the_h2_app_on_loopback() {
        if Command::new("h2load").arg("--version").output().is_err() {
            eprintln!("h2load not installed (apt-get install nghttp2-client): skipped");
            return;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(256)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let delay = Duration::from_micros(200);
        rt.spawn(crate::h2app::serve_on(listener, delay, 256));
        let spec = LoadSpec {
            generator: LoadGen::H2load,
            duration: Duration::from_secs(1),
            connections: 2,
            rate: None,
            streams: 20,
        };
        let mut cmd = Command::new("timeout");
        cmd.arg("10");
        let r = run(&mut cmd, &format!("http://{addr}/"), &spec).expect("h2load run");
        assert!(r.completed > 100, "{r:?}");
        assert_eq!(r.errors, 0, "{r:?}");
        assert!(
            r.p50_us >= 200.0 && r.p50_us <= r.p90_us && r.p90_us <= r.p99_us,
            "{r:?}"
        );
    }
}
