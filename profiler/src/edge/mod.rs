//! The pod edge: the node-side end of each tracked pod's veth, where tc
//! classifiers see packets enter and leave the pod. Which interfaces those
//! are (`links`), the filters and qdiscs on them (`filters`), and the
//! profiler's own attachments (`owned`): added only where wanted, removed at
//! exit, swept after a crash, never someone else's.
pub mod filters;
pub mod inspect;
pub mod links;
mod netlink;
pub mod netns;
pub mod owned;

pub use owned::{EdgeError, Edges, Mode};
