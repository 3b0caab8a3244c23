//! What /proc says of a process's CPU and memory, parsed from the files'
//! text (pure, unit-tested): run time, run-queue wait and switches in from
//! each thread's schedstat, the user/system split from stat's ticks, RSS,
//! threads. (One small file per thread: the daemon reads them for every
//! sidecar every second.)

/// Run time and run-queue wait of one thread in ns, and the times it was
/// switched in (/proc/<pid>/task/<tid>/schedstat: "run_ns wait_ns
/// timeslices").
pub fn parse_schedstat(text: &str) -> Option<(u64, u64, u64)> {
    let mut f = text.split_whitespace();
    Some((
        f.next()?.parse().ok()?,
        f.next()?.parse().ok()?,
        f.next()?.parse().ok()?,
    ))
}

/// From /proc/<pid>/stat: user and system ticks (fields 14, 15, dead
/// threads included), threads (20) and resident pages (24). comm may hold
/// spaces and parentheses, so fields are counted after the last ')'.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    pub threads: u64,
    pub rss_pages: u64,
}

pub fn parse_stat(text: &str) -> Option<Stat> {
    let field = |n| crate::discovery::procinfo::stat_field::<u64>(text, n);
    Some(Stat {
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        threads: field(20)?,
        rss_pages: field(24)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_is_run_and_wait_ns() {
        assert_eq!(
            parse_schedstat("123456789 4567 89\n"),
            Some((123_456_789, 4567, 89))
        );
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn stat_fields_after_a_comm_with_spaces_and_parens() {
        let s = "4242 (envoy (main) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                 250 75 0 0 20 0 9 0 12345 200000000 3072 18446744073709551615";
        assert_eq!(
            parse_stat(s),
            Some(Stat {
                utime_ticks: 250,
                stime_ticks: 75,
                threads: 9,
                rss_pages: 3072
            })
        );
        assert_eq!(parse_stat("4242 (x) S 1"), None);
    }
}
