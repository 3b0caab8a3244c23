//! Small kernel files (/proc and cgroup: a few hundred bytes each) read
//! with one read call into a reused buffer. `std::fs::read_to_string` also
//! asks the file's size (statx) and reads once more to see the end, and
//! allocates each time: five syscalls where three do, for the few hundred
//! files a node daemon reads every second.
//!
//! A sampler's reader also keeps the files it reads at every sample open
//! and reads them again from offset 0 (the kernel writes a /proc or cgroup
//! file's text anew at each read from its start): one call, where opening
//! walks the path each time (about 1.7 µs of a schedstat's 2.1 here). A
//! kept /proc file holds its process, not its pid: once the process is
//! gone it reads an error, never a recycled pid's process.
use std::{collections::HashMap, fs::File, os::unix::fs::FileExt, path::Path, path::PathBuf};

/// Larger than any file read through it (cpu.stat of cgroup v2, the
/// longest, is under 300 bytes); a longer file is read whole anyway.
const BUF: usize = 4096;

#[derive(Default)]
pub struct Reader {
    buf: Vec<u8>,
    /// Files kept open (only by a reader made with [`Reader::keeping`]),
    /// with the pass each was last read in.
    open: HashMap<PathBuf, (File, u64)>,
    /// Most files kept open at once (0: none).
    keep_max: usize,
    pass: u64,
}

/// How many files a sampler may keep open: a quarter of the process's
/// limit on open files (256 under the common 1024), at most 4096.
pub fn keep_max() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    (lim.rlim_cur / 4).min(4096) as usize
}

impl Reader {
    /// A reader that keeps up to `max` files open between reads.
    pub fn keeping(max: usize) -> Reader {
        Reader {
            keep_max: max,
            ..Reader::default()
        }
    }

    /// Files kept open now.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.open.len()
    }

    /// Close the kept files not read since the last sweep (what a pass
    /// over every sidecar no longer reads: a sidecar gone, a thread ended).
    pub fn sweep(&mut self) {
        let pass = self.pass;
        self.open.retain(|_, (_, used)| *used == pass);
        self.pass += 1;
    }

    /// The text of a file read once (never kept open).
    pub fn once(&mut self, path: &Path) -> Option<&str> {
        self.open_and_read(path)?;
        std::str::from_utf8(&self.buf).ok()
    }

    /// The file's text, or None when it cannot be opened or read, or is not
    /// UTF-8.
    pub fn text(&mut self, path: &Path) -> Option<&str> {
        if let Some((f, used)) = self.open.get_mut(path) {
            *used = self.pass;
            if read_whole(f, &mut self.buf).is_none() {
                // Gone (its process ended, its cgroup removed).
                self.open.remove(path);
                return None;
            }
        } else {
            let f = self.open_and_read(path)?;
            if self.open.len() < self.keep_max {
                self.open.insert(path.to_path_buf(), (f, self.pass));
            }
        }
        std::str::from_utf8(&self.buf).ok()
    }

    /// Open `path` and read it into the buffer; the open file.
    fn open_and_read(&mut self, path: &Path) -> Option<File> {
        let f = File::open(path).ok()?;
        read_whole(&f, &mut self.buf)?;
        Some(f)
    }
}

/// Read `f` from its start into `buf`.
fn read_whole(f: &File, buf: &mut Vec<u8>) -> Option<()> {
    buf.clear();
    buf.resize(BUF, 0);
    let mut len = 0;
    loop {
        let n = f.read_at(&mut buf[len..], len as u64).ok()?;
        len += n;
        // A kernel file gives its text in one read; only a full buffer
        // may have more.
        if n == 0 || len < buf.len() {
            break;
        }
        buf.resize(buf.len() * 2, 0);
    }
    buf.truncate(len);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_files_whole() {
        let dir = std::env::temp_dir().join(format!("profiler-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let short = dir.join("short");
        let long = dir.join("long");
        let long_text: String = (0..2000).map(|i| format!("{i}\n")).collect();
        std::fs::write(&short, "nr_throttled 4\n").expect("write");
        std::fs::write(&long, &long_text).expect("write");
        let mut r = Reader::default();
        assert_eq!(r.text(&short), Some("nr_throttled 4\n"));
        assert!(long_text.len() > BUF);
        assert_eq!(r.text(&long), Some(long_text.as_str()));
        // The buffer is reused: a shorter file after a longer one is itself.
        assert_eq!(r.text(&short), Some("nr_throttled 4\n"));
        assert_eq!(r.text(&dir.join("missing")), None);
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    }

    /// A kept file reads its text as it is now, and a process's file kept
    /// open reads nothing once the process is gone (never another
    /// process's, should its pid be taken again).
    #[test]
    fn a_kept_file_reads_what_is_there_now_and_nothing_once_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let path = PathBuf::from(format!("/proc/{}/stat", child.id()));
        let mut r = Reader::keeping(8);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let first = r.text(&path).map(str::to_owned).expect("the child's stat");
            assert_eq!(r.kept(), 1);
            assert!(first.contains("(sleep)"), "{first}");
            // Read again through the kept file: its text anew.
            assert!(r.text(&path).is_some_and(|t| t.contains("(sleep)")));
            assert_eq!(r.kept(), 1);
            child.kill().expect("kill");
            child.wait().expect("wait");
            assert_eq!(r.text(&path), None, "a reaped process's kept stat");
            assert_eq!(r.kept(), 0);
        }));
        child.kill().ok();
        child.wait().ok();
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }

    #[test]
    fn kept_files_are_bounded_and_those_not_read_in_a_pass_are_closed() {
        let mut r = Reader::keeping(2);
        for p in ["/proc/self/stat", "/proc/self/statm", "/proc/self/status"] {
            assert!(r.text(Path::new(p)).is_some(), "{p}");
        }
        assert_eq!(r.kept(), 2, "no more than asked");
        r.sweep();
        assert!(r.text(Path::new("/proc/self/stat")).is_some());
        r.sweep();
        assert_eq!(
            r.kept(),
            1,
            "the file not read since the sweep before is closed"
        );
        let mut plain = Reader::default();
        assert!(plain.text(Path::new("/proc/self/stat")).is_some());
        assert_eq!(plain.kept(), 0);
    }

    #[test]
    fn reads_a_proc_file_the_kernel_writes_as_it_is_read() {
        let mut r = Reader::default();
        let stat = r
            .text(Path::new("/proc/self/stat"))
            .expect("/proc/self/stat");
        let pid = std::process::id().to_string();
        assert_eq!(stat.split(' ').next(), Some(pid.as_str()));
        assert!(super::super::proc::parse_stat(stat).is_some(), "{stat}");
    }
}
