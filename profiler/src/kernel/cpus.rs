//! How many CPU ids the kernel may hand out: per-CPU rings are sized for
//! every possible CPU, since bpf_get_smp_processor_id() can return any of them.

const POSSIBLE: &str = "/sys/devices/system/cpu/possible";

/// One past the highest id in a kernel CPU list ("0-3", "0,2-5", "0").
pub fn ids_end(list: &str) -> Option<u32> {
    let mut end = None;
    for part in list.trim().split(',') {
        let last = part.rsplit('-').next()?.trim().parse::<u32>().ok()?;
        end = end.max(Some(last + 1));
    }
    end
}

/// One past the highest possible CPU id of this machine.
pub fn possible_ids_end() -> std::io::Result<u32> {
    let text = std::fs::read_to_string(POSSIBLE)?;
    ids_end(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{POSSIBLE}: unreadable CPU list {text:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_give_one_past_the_highest_id() {
        assert_eq!(ids_end("0-1\n"), Some(2));
        assert_eq!(ids_end("0"), Some(1));
        assert_eq!(ids_end("0,2-5,9"), Some(10));
        assert_eq!(ids_end("0-3,8-11"), Some(12));
        assert_eq!(ids_end(""), None);
        assert_eq!(ids_end("0-x"), None);
    }

    #[test]
    fn this_machine_has_a_cpu() {
        assert!(possible_ids_end().expect("readable") >= 1);
    }
}
