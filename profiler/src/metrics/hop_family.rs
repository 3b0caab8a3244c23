//! Where the hop-duration histograms are written: by hand, not through
//! prometheus-client, which encodes a histogram's labels again on each of
//! its 29 lines. At 64 sidecars those repeated label encodings were most of
//! a scrape's CPU; here each series' labels are escaped once. The bytes are
//! prometheus-client's own, in both formats (`tests.rs` compares them).
use std::{fmt::Write as _, sync::LazyLock};

use super::{
    encode::Format,
    exposition::{Exposition, HopSeries},
    families::{dir, leg},
};
use crate::histogram::{Buckets, COMPONENTS, EXPORTED, POD_EDGE, buckets::BOUNDS_NS};

/// The family's name, its unit appended.
const NAME: &str = "sidecar_hop_duration_seconds";

pub const HELP: &str = "Time a sidecar took to forward data, per hop and component: total from the data's arrival at the proxy's socket to the proxy's write of it, queue from arrival to the proxy's read, process from read to write; of process, on_cpu (the writing thread ran) and runqueue (it was runnable, not running), over split forwards only; with --pod-edge, kernel_in (the pod edge or the app's send to readable at the proxy's socket), kernel_out (TCP sending the proxy's write to the pod edge or readable at the app) and sidecar_total (from where kernel_in starts to where the data left)";

/// Each bucket's `le` as the format writes it: OpenMetrics the shortest
/// float (`5e-6`, `1.0`), Prometheus text as Go does (`5e-06`, `1`); the
/// last is `+Inf` in both.
static LE_OPENMETRICS: LazyLock<Vec<String>> = LazyLock::new(|| les(openmetrics_float));
static LE_PROMETHEUS: LazyLock<Vec<String>> = LazyLock::new(|| les(go_float));

fn les(format: fn(f64) -> String) -> Vec<String> {
    BOUNDS_NS
        .iter()
        .map(|&b| format(b as f64 / 1e9))
        .chain(std::iter::once("+Inf".to_string()))
        .collect()
}

fn openmetrics_float(v: f64) -> String {
    dtoa::Buffer::new().format(v).to_string()
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)` for the positive finite
/// bounds here: whole numbers below 1e6 as integers, exponent notation
/// outside [1e-4, 1e6) with a sign and at least two digits.
fn go_float(v: f64) -> String {
    if v.fract() == 0.0 && v < 1e6 {
        return (v as i64).to_string();
    }
    if (1e-4..1e6).contains(&v) {
        return v.to_string();
    }
    let sci = format!("{v:e}");
    match sci.split_once('e') {
        Some((mantissa, exp)) => {
            let exp: i32 = exp.parse().unwrap_or(0);
            format!("{mantissa}e{exp:+03}")
        }
        None => sci,
    }
}

/// `v` as a label value: backslash, double quote and newline escaped.
fn push_escaped(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// namespace, pod, workload, direction, leg and component, as written
/// between the braces.
fn labels(out: &mut String, e: &Exposition, h: &HopSeries, component: &str) {
    let s = &e.sidecars[h.sidecar];
    for (key, value) in [
        ("namespace", s.namespace.as_str()),
        ("pod", s.pod.as_str()),
        ("workload", s.workload.as_str()),
        ("direction", dir(h)),
        ("leg", leg(h)),
        ("component", component),
    ] {
        if key != "namespace" {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        push_escaped(out, value);
        out.push('"');
    }
}

fn line(out: &mut String, suffix: &str, labels: &str, le: Option<(&str, bool)>, value: &str) {
    out.push_str(NAME);
    out.push_str(suffix);
    out.push('{');
    match le {
        // OpenMetrics puts `le` first, Prometheus text last.
        Some((le, true)) => {
            let _ = write!(out, "le=\"{le}\",{labels}");
        }
        Some((le, false)) => {
            let _ = write!(out, "{labels},le=\"{le}\"");
        }
        None => out.push_str(labels),
    }
    out.push_str("} ");
    out.push_str(value);
    out.push('\n');
}

fn series(out: &mut String, format: Format, labels: &str, b: &Buckets) {
    let sum = b.sum_ns as f64 / 1e9;
    let mut dtoa = dtoa::Buffer::new();
    let mut itoa = itoa::Buffer::new();
    let openmetrics = format == Format::OpenMetrics;
    let les: &[String] = if openmetrics {
        &LE_OPENMETRICS
    } else {
        &LE_PROMETHEUS
    };
    if openmetrics {
        line(out, "_sum", labels, None, dtoa.format(sum));
        line(out, "_count", labels, None, itoa.format(b.count));
    }
    let mut cumulative = 0;
    for (le, n) in les.iter().zip(b.counts) {
        cumulative += n;
        line(
            out,
            "_bucket",
            labels,
            Some((le, openmetrics)),
            itoa.format(cumulative),
        );
    }
    if !openmetrics {
        line(out, "_sum", labels, None, dtoa.format(sum));
        line(out, "_count", labels, None, itoa.format(b.count));
    }
}

/// The family, header and every series, appended to `out`; hops of a
/// sidecar not listed are left out.
pub fn write(e: &Exposition, format: Format, out: &mut String) {
    let help = match format {
        Format::Prometheus => HELP.replace('\\', "\\\\").replace('\n', "\\n"),
        Format::OpenMetrics => HELP.to_string(),
    };
    let _ = write!(out, "# HELP {NAME} {help}\n# TYPE {NAME} histogram\n");
    if format == Format::OpenMetrics {
        let _ = writeln!(out, "# UNIT {NAME} seconds");
    }
    let mut l = String::new();
    for h in e.listed_hops() {
        for i in EXPORTED {
            let b = &h.components[i];
            // The pod edge's components appear once they have an
            // observation: without --pod-edge, and on the legs an edge does
            // not end, they would only add empty series.
            if POD_EDGE.contains(&i) && b.count == 0 {
                continue;
            }
            l.clear();
            labels(&mut l, e, h, COMPONENTS[i]);
            series(out, format, &l, b);
        }
    }
}
