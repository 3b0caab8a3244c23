//! Reading the daemon's exposition: a metric's total, the series count.
//! (The scrape itself is [`crate::http::get`].)

/// Sum of a metric's samples (every label set), and the number of series.
pub fn sum_of(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A metric's samples by the value of one label: `(value, sample)`.
pub fn by_label(text: &str, name: &str, label: &str) -> Vec<(String, f64)> {
    let key = format!("{label}=\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| {
            let (labels, v) = l.rsplit_once(' ')?;
            let at = labels.find(&key)? + key.len();
            let end = labels[at..].find('"')?;
            Some((labels[at..at + end].to_string(), v.parse().ok()?))
        })
        .collect()
}

/// `add` folded into `into` label by label (a running total per label).
pub fn accumulate(into: &mut Vec<(String, f64)>, add: &[(String, f64)], sign: f64) {
    for (label, v) in add {
        match into.iter_mut().find(|(l, _)| l == label) {
            Some((_, total)) => *total += sign * v,
            None => into.push((label.clone(), sign * v)),
        }
    }
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
        assert_eq!(
            by_label(t, "sidecar_forwards_total", "pod"),
            vec![("a".to_string(), 10.0), ("b".to_string(), 5.0)]
        );
        assert!(by_label(t, "sidecar_forwards_total", "hop").is_empty());
        // Before and after: the difference per label.
        let mut d = by_label(t, "sidecar_forwards_total", "pod");
        accumulate(&mut d, &[("a".into(), 4.0), ("c".into(), 1.0)], -1.0);
        assert_eq!(
            d,
            vec![("a".into(), 6.0), ("b".into(), 5.0), ("c".into(), -1.0)]
        );
    }
}
