//! tracefs and securityfs: present, or mounted on demand.
use std::{ffi::CString, path::Path};

pub const TRACEFS: &str = "/sys/kernel/tracing";
pub const SECURITYFS: &str = "/sys/kernel/security";

/// Whether a pseudo filesystem of `fstype` is mounted at `target`, from the
/// text of /proc/self/mounts.
pub fn is_mounted(mounts: &str, target: &str, fstype: &str) -> bool {
    mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let _src = f.next();
        f.next() == Some(target) && f.next() == Some(fstype)
    })
}

/// Make sure `fstype` is mounted at `target`; returns whether we mounted it.
pub fn ensure(target: &str, fstype: &str) -> std::io::Result<bool> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    if is_mounted(&mounts, target, fstype) {
        return Ok(false);
    }
    if !Path::new(target).is_dir() {
        return Err(std::io::Error::other(format!("{target} does not exist")));
    }
    let c = |s: &str| CString::new(s).map_err(std::io::Error::other);
    let (src, tgt, ty) = (c("nodev")?, c(target)?, c(fstype)?);
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(true)
}

/// The kernel lockdown mode: the bracketed word of `none [integrity] confidentiality`.
pub fn parse_lockdown(text: &str) -> Option<&str> {
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(&text[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mounts_by_target_and_type() {
        let m = "sysfs /sys sysfs rw 0 0\nnodev /sys/kernel/tracing tracefs rw 0 0\n";
        assert!(is_mounted(m, TRACEFS, "tracefs"));
        assert!(!is_mounted(m, SECURITYFS, "securityfs"));
        assert!(!is_mounted(m, "/sys/kernel", "tracefs"));
    }

    #[test]
    fn reads_lockdown_mode() {
        assert_eq!(
            parse_lockdown("none [integrity] confidentiality\n"),
            Some("integrity")
        );
        assert_eq!(
            parse_lockdown("[none] integrity confidentiality"),
            Some("none")
        );
        assert_eq!(parse_lockdown("garbage"), None);
    }
}
