//! The one place an error becomes an exit code and a message: 0 done, 1 a
//! failure of the profiler or the machine, 2 bad input or a setup the user
//! must change (no sidecar matched, missing privilege, no usable hook set,
//! an address that cannot be listened on). Messages go through the log, so
//! `--log-format json` keeps every line JSON.
use std::process::ExitCode;

use crate::{
    collect::CollectError, daemon::DaemonError, engine::EngineError, snapshot::SnapshotError,
};

pub const USAGE: u8 = 2;

/// What went wrong, by whose to fix.
pub enum Failure {
    /// The user's input or setup (exit 2).
    Usage(String),
    /// No hook set attaches: exit 2, with `profiler check`'s verdict.
    NoHookSet(String),
    /// Anything else (exit 1).
    Internal(String),
}

impl Failure {
    pub fn exit(self) -> ExitCode {
        match self {
            Failure::Usage(m) => {
                log::error!("{m}");
                ExitCode::from(USAGE)
            }
            Failure::NoHookSet(why) => {
                log::error!(
                    "no usable hook set on this kernel: {why}\n{}",
                    crate::check::run().to_text()
                );
                ExitCode::from(USAGE)
            }
            Failure::Internal(m) => {
                log::error!("{m}");
                ExitCode::FAILURE
            }
        }
    }
}

impl From<CollectError> for Failure {
    fn from(e: CollectError) -> Failure {
        match e {
            CollectError::NoHookSet(why) => Failure::NoHookSet(why),
            e @ CollectError::HookSetRefused { .. } => Failure::Usage(e.to_string()),
            e => Failure::Internal(e.to_string()),
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Failure {
        match e {
            EngineError::Privilege(p) => Failure::Usage(p),
            EngineError::Collect(c) => c.into(),
            e => Failure::Internal(e.to_string()),
        }
    }
}

impl From<SnapshotError> for Failure {
    fn from(e: SnapshotError) -> Failure {
        match e {
            e @ SnapshotError::NoSidecar { .. } => Failure::Usage(e.to_string()),
            SnapshotError::Engine(e) => e.into(),
        }
    }
}

impl From<DaemonError> for Failure {
    fn from(e: DaemonError) -> Failure {
        match e {
            e @ DaemonError::Listen { .. } => Failure::Usage(e.to_string()),
            DaemonError::Engine(e) => e.into(),
            DaemonError::Collect(c) => c.into(),
            e => Failure::Internal(e.to_string()),
        }
    }
}
