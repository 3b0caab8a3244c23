//! Effective capabilities, from /proc/self/status.

/// The capabilities the profiler may need, with their bit numbers.
pub const WANTED: [(&str, u32); 5] = [
    ("CAP_BPF", 39),
    ("CAP_PERFMON", 38),
    ("CAP_NET_ADMIN", 12),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_SYS_RESOURCE", 24),
];

/// The CapEff mask from the text of /proc/<pid>/status.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

pub fn effective() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    parse_cap_eff(&status)
        .ok_or_else(|| std::io::Error::other("no CapEff line in /proc/self/status"))
}

pub fn has(mask: u64, bit: u32) -> bool {
    mask & (1u64 << bit) != 0
}

/// Names of the wanted capabilities held and missing.
pub fn split(mask: u64) -> (Vec<&'static str>, Vec<&'static str>) {
    let (held, missing): (Vec<_>, Vec<_>) = WANTED.iter().partition(|(_, bit)| has(mask, *bit));
    let names = |v: Vec<&(&'static str, u32)>| v.into_iter().map(|(n, _)| *n).collect();
    (names(held), names(missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cap_eff_and_names_bits() {
        // Root on this VM: everything but CAP_SYS_RESOURCE (bit 24).
        let status = "Name:\tprofiler\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n";
        let mask = parse_cap_eff(status).expect("CapEff");
        assert_eq!(mask, 0x1fffeffffff);
        let (held, missing) = split(mask);
        assert_eq!(
            held,
            ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
        );
        assert_eq!(missing, ["CAP_SYS_RESOURCE"]);
        assert_eq!(parse_cap_eff("Name: x\n"), None);
    }
}
