//! The whole-sidecar A/B: what the sidecars add to the client's latency
//! (the same load through the mesh with interception, and without: the
//! baseline, traffic straight to the app), beside what the profiler
//! accounts for in the same mesh run (each traversal's sidecar_total).
use profiler::{
    classify::{Direction, Leg},
    report::Snapshot,
};

/// The profiler's account of one request's way through both sidecars, at
/// p50: the four traversals' sidecar_total p50s summed (total where a
/// traversal has no kernel stamp), and that split into the kernel's part
/// (kernel_in: from the pod edge or the app's send to readable at the
/// proxy's socket; kernel_out: from TCP sending the proxy's write to its
/// leaving the pod or reaching the app) and the proxies' (the rest: queue,
/// and the proxy's work until TCP sent its write).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Account {
    /// The traversals' sidecar_total p50s, summed.
    pub sidecars_us: f64,
    /// Their means, summed: means add up along the path, where p50s need
    /// not (the p50 of a sum is not the sum of p50s).
    pub sidecars_mean_us: f64,
    pub proxies_us: f64,
    pub kernel_us: f64,
    /// Traversals found with forwards (4 when both sidecars were seen).
    pub traversals: usize,
}

/// The four traversals: the client's outbound hop and the server's inbound
/// hop, each leg.
pub const TRAVERSALS: [(&str, Direction, Leg); 4] = [
    ("client-", Direction::Outbound, Leg::Request),
    ("server-", Direction::Inbound, Leg::Request),
    ("server-", Direction::Inbound, Leg::Response),
    ("client-", Direction::Outbound, Leg::Response),
];

pub fn account(snap: &Snapshot) -> Account {
    let mut a = Account::default();
    for (pod, d, leg) in TRAVERSALS {
        let Some(h) = snap
            .sidecar(pod)
            .and_then(|s| s.hops.iter().find(|h| h.direction == d && h.leg == leg))
        else {
            continue;
        };
        a.traversals += 1;
        let (whole, mean) = if h.sidecar_total_forwards > 0 {
            (h.sidecar_total_us.p50, h.sidecar_total_us.mean)
        } else {
            (h.total_us.p50, h.total_us.mean)
        };
        a.sidecars_mean_us += mean;
        let stamped = |n: u64, p50: f64| if n > 0 { p50 } else { 0.0 };
        let kernel = (stamped(h.kernel_in_forwards, h.kernel_in_us.p50)
            + stamped(h.kernel_out_forwards, h.kernel_out_us.p50))
        .min(whole);
        a.sidecars_us += whole;
        a.proxies_us += whole - kernel;
        a.kernel_us += kernel;
    }
    a
}

/// The demo's line: what the sidecars added by A/B against what the
/// profiler accounts for.
pub fn summary(baseline_p50_us: f64, mesh_p50_us: f64, a: &Account) -> String {
    let added = mesh_p50_us - baseline_p50_us;
    format!(
        "sidecars added {added:.0} us per request at p50 (client A/B: {mesh_p50_us:.0} with, \
         {baseline_p50_us:.0} without); the profiler accounts for {:.0} us: proxies {:.0} \
         (until TCP sent their writes), kernel {:.0} (into the proxies' sockets and out to the \
         next hop); {}",
        a.sidecars_us,
        a.proxies_us,
        a.kernel_us,
        match off_by(added, a.sidecars_us) {
            Some(pct) => format!("{pct} of the A/B"),
            None => "no A/B difference to compare with".into(),
        }
    )
}

/// The same comparison by means: "by means, sidecars added 380 us, the
/// profiler accounts for 353 (-7%)".
pub fn means(baseline_mean_us: f64, mesh_mean_us: f64, a: &Account) -> String {
    let added = mesh_mean_us - baseline_mean_us;
    format!(
        "by means, sidecars added {added:.0} us, the profiler accounts for {:.0} ({})",
        a.sidecars_mean_us,
        off_by(added, a.sidecars_mean_us).unwrap_or_else(|| "no A/B difference".into())
    )
}

/// How far the account is off the A/B difference, "-7%" (None: no
/// difference to compare).
fn off_by(added_us: f64, accounted_us: f64) -> Option<String> {
    agreement(added_us, accounted_us).map(|r| format!("{:+.0}%", (r - 1.0) * 100.0))
}

/// The account over the A/B difference (None: no difference to compare).
pub fn agreement(added_us: f64, accounted_us: f64) -> Option<f64> {
    (added_us > 0.0).then(|| accounted_us / added_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_both_figures_and_their_ratio() {
        let a = Account {
            sidecars_us: 318.0,
            sidecars_mean_us: 353.0,
            proxies_us: 156.0,
            kernel_us: 162.0,
            traversals: 4,
        };
        let s = summary(200.0, 541.0, &a);
        assert!(
            s.starts_with("sidecars added 341 us per request at p50"),
            "{s}"
        );
        assert!(
            s.contains(
                "accounts for 318 us: proxies 156 (until TCP sent their writes), kernel 162"
            ),
            "{s}"
        );
        assert!(s.ends_with("-7% of the A/B"), "{s}");
        assert_eq!(agreement(0.0, 10.0), None);
        assert_eq!(
            means(600.0, 980.0, &a),
            "by means, sidecars added 380 us, the profiler accounts for 353 (-7%)"
        );
    }
}
