//! Small kernel files (/proc and cgroup: a few hundred bytes each) read
//! with one read call into a reused buffer. `std::fs::read_to_string` also
//! asks the file's size (statx) and reads once more to see the end, and
//! allocates each time: five syscalls where three do, for the few hundred
//! files a node daemon reads every second.
use std::{fs::File, io::Read, path::Path};

/// Larger than any file read through it (cpu.stat of cgroup v2, the
/// longest, is under 300 bytes); a longer file is read whole anyway.
const BUF: usize = 4096;

#[derive(Default)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// The file's text, or None when it cannot be opened or read, or is not
    /// UTF-8.
    pub fn text(&mut self, path: &Path) -> Option<&str> {
        let mut f = File::open(path).ok()?;
        self.buf.clear();
        self.buf.resize(BUF, 0);
        let mut len = 0;
        loop {
            let n = f.read(&mut self.buf[len..]).ok()?;
            len += n;
            // A kernel file gives its text in one read; only a full buffer
            // may have more.
            if n == 0 || len < self.buf.len() {
                break;
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        self.buf.truncate(len);
        std::str::from_utf8(&self.buf).ok()
    }
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
