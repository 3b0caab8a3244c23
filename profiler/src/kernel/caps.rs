//! Effective capabilities, from /proc/self/status.

/// The capabilities the profiler may need, with their bit numbers.
pub const WANTED: [(&str, u32); 7] = [
    ("CAP_BPF", 39),
    ("CAP_PERFMON", 38),
    ("CAP_NET_ADMIN", 12),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_DAC_READ_SEARCH", 2),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_SYS_RESOURCE", 24),
];

const BPF: u32 = 39;
const PERFMON: u32 = 38;
const SYS_PTRACE: u32 = 19;
const DAC_READ_SEARCH: u32 = 2;
const SYS_ADMIN: u32 = 21;

/// What a capture (snapshot or daemon) cannot do without, each with why;
/// empty when `mask` suffices. CAP_SYS_ADMIN stands in for CAP_BPF and
/// CAP_PERFMON (kernels before 5.8 know only it), never the other way.
pub fn missing_for_capture(mask: u64) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !has(mask, SYS_ADMIN) {
        if !has(mask, BPF) {
            out.push("CAP_BPF (create maps, load programs)");
        }
        if !has(mask, PERFMON) {
            out.push("CAP_PERFMON (attach tracepoints and kprobes, read kernel memory)");
        }
    }
    // /proc/<pid>/environ is mode 0400 and /proc/<pid>/fd 0500, owned by
    // the proxy's uid: the file check needs CAP_DAC_READ_SEARCH, then
    // environ's ptrace check CAP_SYS_PTRACE. Without them a sidecar's pod
    // and listening sockets would be guessed, not read.
    if !has(mask, SYS_PTRACE) {
        out.push("CAP_SYS_PTRACE (read the proxies' /proc/<pid>/environ for their pod)");
    }
    if !has(mask, DAC_READ_SEARCH) {
        out.push(
            "CAP_DAC_READ_SEARCH (open the proxies' /proc/<pid>/environ and /proc/<pid>/fd, owned by their uid)",
        );
    }
    out
}

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
            [
                "CAP_BPF",
                "CAP_PERFMON",
                "CAP_NET_ADMIN",
                "CAP_SYS_PTRACE",
                "CAP_DAC_READ_SEARCH",
                "CAP_SYS_ADMIN"
            ]
        );
        assert_eq!(missing, ["CAP_SYS_RESOURCE"]);
        assert_eq!(parse_cap_eff("Name: x\n"), None);
        assert!(missing_for_capture(mask).is_empty());
    }

    #[test]
    fn a_capture_needs_bpf_perfmon_and_ptrace_or_sys_admin_for_the_first_two() {
        let bits = |b: &[u32]| b.iter().fold(0u64, |m, b| m | 1 << b);
        // The DaemonSet's set.
        let read = [SYS_PTRACE, DAC_READ_SEARCH];
        assert!(missing_for_capture(bits(&[BPF, PERFMON, 12]) | bits(&read)).is_empty());
        // An old kernel's way.
        assert!(missing_for_capture(bits(&[SYS_ADMIN]) | bits(&read)).is_empty());
        let m = missing_for_capture(bits(&[PERFMON]) | bits(&read));
        assert_eq!(m.len(), 1);
        assert!(m[0].starts_with("CAP_BPF "));
        let m = missing_for_capture(bits(&[BPF, PERFMON, DAC_READ_SEARCH]));
        assert!(m[0].starts_with("CAP_SYS_PTRACE "), "{m:?}");
        let m = missing_for_capture(bits(&[BPF, PERFMON, SYS_PTRACE]));
        assert!(m[0].starts_with("CAP_DAC_READ_SEARCH "), "{m:?}");
        assert_eq!(missing_for_capture(0).len(), 4);
    }
}
