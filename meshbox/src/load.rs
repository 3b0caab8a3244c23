//! Load from real load generators (oha, wrk, h2load) run inside the client
//! pod, parsed into completed requests and latency percentiles.
pub mod h2load;

use std::time::Duration;

use serde::Serialize;

use super::{TestbedError, netns};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadGen {
    Oha,
    Wrk,
    /// HTTP/2 (h2c, prior knowledge) with `LoadSpec::streams` concurrent
    /// streams per connection; needs an HTTP/2 mesh.
    H2load,
}

/// Concurrent streams per connection for h2load unless a test asks otherwise.
pub const DEFAULT_STREAMS: u32 = 10;

#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub generator: LoadGen,
    pub duration: Duration,
    pub connections: u32,
    /// Requests per second in total (oha; h2load, rounded to a multiple of
    /// `connections`; wrk runs open-throttle).
    pub rate: Option<u32>,
    /// Concurrent requests per connection: h2load's streams (`-m`); with
    /// oha, above 1 it speaks HTTP/2 with that many parallel requests per
    /// connection (`--http2 -p`). wrk ignores it.
    pub streams: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LoadResult {
    pub completed: u64,
    pub errors: u64,
    /// What the errors were, as the generator names them (an HTTP status,
    /// "aborted due to deadline", a socket error), with their counts.
    pub error_kinds: Vec<(String, u64)>,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    /// Mean latency of the requests (oha: its summary's average; wrk: its
    /// "Latency" average; h2load: of its request log's 2xx requests).
    pub mean_us: f64,
}

impl LoadResult {
    /// "3 errors: 2 aborted due to deadline, 1 HTTP 503", or "no errors".
    pub fn errors_explained(&self) -> String {
        if self.errors == 0 {
            return "no errors".into();
        }
        let kinds: Vec<String> = self
            .error_kinds
            .iter()
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        let plural = if self.errors == 1 { "" } else { "s" };
        if kinds.is_empty() {
            format!("{} error{plural}", self.errors)
        } else {
            format!("{} error{plural}: {}", self.errors, kinds.join(", "))
        }
    }
}

/// Run the generator in `client_ns` against `url`; the caller's duration
/// bounds it, and a timeout of twice that kills it.
pub fn run(client_ns: &str, url: &str, spec: &LoadSpec) -> Result<LoadResult, TestbedError> {
    let secs = format!("{}s", spec.duration.as_secs().max(1));
    let conns = spec.connections.to_string();
    let limit = format!("{}", spec.duration.as_secs() * 2 + 10);
    let mut cmd = netns::exec_in(client_ns, "timeout");
    match spec.generator {
        LoadGen::Oha => {
            cmd.args([
                &limit,
                "oha",
                "-z",
                &secs,
                // Requests in flight at the deadline finish and count, so
                // every request the proxies forwarded is a completed one.
                "-w",
                "-c",
                &conns,
                "--no-tui",
                "--output-format",
                "json",
            ]);
            if let Some(q) = spec.rate {
                cmd.args(["-q", &q.to_string()]);
            }
            // Several streams per connection: HTTP/2 (prior knowledge on
            // http://), that many requests in parallel on each connection,
            // paced evenly by -q (h2load's --rps fires every connection at
            // once).
            if spec.streams > 1 {
                cmd.args(["--http2", "-p", &spec.streams.to_string()]);
            }
            cmd.arg(url);
            parse_oha(&netns::run(&mut cmd)?)
        }
        LoadGen::Wrk => {
            cmd.args([
                &limit,
                "wrk",
                "-t1",
                "-c",
                &conns,
                "-d",
                &secs,
                "--latency",
                url,
            ]);
            parse_wrk(&netns::run(&mut cmd)?)
        }
        LoadGen::H2load => {
            cmd.arg(&limit);
            h2load::run(&mut cmd, url, spec)
        }
    }
}

fn bad(what: &str, text: &str) -> TestbedError {
    TestbedError::Parse(format!(
        "{what}: {}",
        text.chars().take(400).collect::<String>()
    ))
}

/// oha's JSON: latencies in seconds; completed = 2xx responses; errors =
/// other statuses plus transport errors.
pub fn parse_oha(text: &str) -> Result<LoadResult, TestbedError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|_| bad("oha output is not JSON", text))?;
    let statuses = v["statusCodeDistribution"]
        .as_object()
        .ok_or_else(|| bad("oha JSON has no statusCodeDistribution", text))?;
    let (mut completed, mut errors) = (0, 0);
    let mut error_kinds = Vec::new();
    for (code, n) in statuses {
        let n = n.as_u64().unwrap_or(0);
        if code.starts_with('2') {
            completed += n;
        } else {
            errors += n;
            error_kinds.push((format!("HTTP {code}"), n));
        }
    }
    // Requests still in flight when the duration ends are "aborted due to
    // deadline": the run's edge, not the mesh's fault.
    for (what, n) in v["errorDistribution"].as_object().into_iter().flatten() {
        let n = n.as_u64().unwrap_or(0);
        errors += n;
        error_kinds.push((what.clone(), n));
    }
    let pct = |k: &str| v["latencyPercentiles"][k].as_f64().unwrap_or(f64::NAN) * 1e6;
    Ok(LoadResult {
        completed,
        errors,
        error_kinds,
        p50_us: pct("p50"),
        p90_us: pct("p90"),
        p99_us: pct("p99"),
        mean_us: v["summary"]["average"].as_f64().unwrap_or(f64::NAN) * 1e6,
    })
}

fn wrk_duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

/// wrk's text: "Latency Distribution" percentiles and "N requests in";
/// completed excludes non-2xx/3xx responses, which count as errors.
pub fn parse_wrk(text: &str) -> Result<LoadResult, TestbedError> {
    let mut r = LoadResult::default();
    let mut found = false;
    let mut non_2xx = 0;
    for line in text.lines() {
        let t = line.trim();
        if let Some((n, _)) = t.split_once(" requests in ") {
            r.completed = n
                .trim()
                .parse()
                .map_err(|_| bad("wrk request count", text))?;
            found = true;
        } else if let Some(rest) = t.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest.trim().parse::<u64>().unwrap_or(0);
            r.errors += non_2xx;
            r.error_kinds
                .push(("non-2xx or 3xx responses".into(), non_2xx));
        } else if let Some(rest) = t.strip_prefix("Socket errors:") {
            for part in rest.split(',') {
                let mut words = part.split_whitespace();
                if let (Some(what), Some(Ok(n))) = (words.next(), words.next().map(str::parse))
                    && n > 0
                {
                    r.errors += n;
                    r.error_kinds.push((format!("socket {what} errors"), n));
                }
            }
        } else if let Some(rest) = t.strip_prefix("Latency ")
            && !rest.trim_start().starts_with("Distribution")
        {
            // "Latency   412.00us  120.00us   3.10ms   80.00%": avg, stdev, max.
            r.mean_us = rest
                .split_whitespace()
                .next()
                .and_then(wrk_duration_us)
                .unwrap_or(f64::NAN);
        } else if let Some((p, v)) = t.split_once("%  ") {
            let v = wrk_duration_us(v);
            match p.trim() {
                "50" => r.p50_us = v.unwrap_or(f64::NAN),
                "90" => r.p90_us = v.unwrap_or(f64::NAN),
                "99" => r.p99_us = v.unwrap_or(f64::NAN),
                _ => {}
            }
        }
    }
    if !found {
        return Err(bad("wrk printed no request count", text));
    }
    r.completed = r.completed.saturating_sub(non_2xx);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_latency_output() {
        let out = "Running 5s test @ http://10.244.0.11:8080/\n  1 threads and 4 connections\n\
            \x20 Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
            \x20   Latency   530.50us  120.00us   3.10ms   80.00%\n\
            \x20 Latency Distribution\n     50%  412.00us\n     75%  600.00us\n     90%    1.20ms\n     99%    3.10ms\n\
            \x20 40123 requests in 5.00s, 5.2MB read\n  Socket errors: connect 0, read 1, write 0, timeout 2\n\
            \x20 Non-2xx or 3xx responses: 23\n\
            Requests/sec:   8024.60\n";
        let r = parse_wrk(out).expect("parse");
        assert_eq!(r.completed, 40100);
        assert_eq!(r.errors, 26);
        assert_eq!(
            r.error_kinds,
            [
                ("socket read errors".to_string(), 1),
                ("socket timeout errors".to_string(), 2),
                ("non-2xx or 3xx responses".to_string(), 23)
            ]
        );
        assert_eq!(r.p50_us, 412.0);
        assert_eq!(r.p90_us, 1200.0);
        assert_eq!(r.p99_us, 3100.0);
        assert_eq!(r.mean_us, 530.5);
        assert!(parse_wrk("garbage").is_err());
    }

    #[test]
    fn parses_oha_json() {
        let out = r#"{"summary":{"successRate":1.0,"average":0.0006},"latencyPercentiles":{"p50":0.0005,"p90":0.001,"p99":0.0025},
            "statusCodeDistribution":{"200":990,"503":10},"errorDistribution":{"connection reset":2}}"#;
        let r = parse_oha(out).expect("parse");
        assert_eq!(r.completed, 990);
        assert_eq!(r.errors, 12);
        assert_eq!(
            r.error_kinds,
            [
                ("HTTP 503".to_string(), 10),
                ("connection reset".to_string(), 2)
            ]
        );
        assert!((r.p50_us - 500.0).abs() < 1e-6);
        assert!((r.p99_us - 2500.0).abs() < 1e-6);
        assert!((r.mean_us - 600.0).abs() < 1e-6);
        assert!(parse_oha("{}").is_err());
        assert_eq!(
            r.errors_explained(),
            "12 errors: 10 HTTP 503, 2 connection reset"
        );
        assert_eq!(LoadResult::default().errors_explained(), "no errors");
    }
}
