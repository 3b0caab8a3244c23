//! Loading the kernel programs and attaching a hook set.
pub mod hookset;
pub mod loader;
pub mod verifier;

pub use hookset::{Attach, Hook, HookSet, Hooks, PodEdge, SchedHooks};
pub use loader::{EbpfError, object, open};
