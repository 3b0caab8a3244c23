//! Ctrl-C and SIGTERM as a flag, so long-running commands stop cleanly and
//! tear down what they built.
use std::sync::atomic::{AtomicBool, Ordering};

static FLAG: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    FLAG.store(true, Ordering::SeqCst);
}

/// Install handlers for SIGINT and SIGTERM that set the flag.
pub fn install() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

pub fn interrupted() -> bool {
    FLAG.load(Ordering::SeqCst)
}
