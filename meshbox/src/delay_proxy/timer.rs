//! A timerfd for the event-loop mode: epoll's own timeout has millisecond
//! resolution, which would stretch sub-millisecond holds; a timerfd wakes
//! the loop at the due time to the microsecond.
use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use mio::{Interest, Registry, Token, unix::SourceFd};

pub struct Timer {
    fd: OwnedFd,
    /// The absolute CLOCK_MONOTONIC time it is set to fire, if set.
    armed_ns: Option<u64>,
}

impl Timer {
    pub fn new(registry: &Registry, token: Token) -> io::Result<Timer> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Timer { fd, armed_ns: None })
    }

    /// Fire at `at_ns` (CLOCK_MONOTONIC); re-arming to the same time is free.
    pub fn arm_at(&mut self, at_ns: u64) -> io::Result<()> {
        if self.armed_ns == Some(at_ns) {
            return Ok(());
        }
        // A zero it_value would disarm the timer.
        let at_ns = at_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (at_ns / 1_000_000_000) as _,
                tv_nsec: (at_ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: our descriptor and a valid itimerspec.
        let r = unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        self.armed_ns = Some(at_ns);
        Ok(())
    }

    /// After it fired: consume the expiry count so the next one wakes the
    /// loop again (epoll is edge-triggered under mio).
    pub fn fired(&mut self) {
        let mut count = [0u8; 8];
        // SAFETY: reading at most 8 bytes into an 8-byte buffer; a
        // would-block result (nothing expired) is fine to ignore.
        unsafe { libc::read(self.fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
        self.armed_ns = None;
    }
}
