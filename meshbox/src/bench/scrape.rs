//! Reading the daemon's exposition: a metric's total, the series count.
//! (The scrape itself is [`crate::http::get`].)

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
