//! Entry points, one file per hook family. Each kernel variant feeds the same
//! functions in `track/`.
mod fentry;
mod fixture;
mod kprobe;
mod probe;
mod sched;
mod tc;
mod tracepoint;
