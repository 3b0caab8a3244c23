#![no_std]
// The library target exists so that profiler can name this crate as a
// build-dependency and be rebuilt when it changes.
