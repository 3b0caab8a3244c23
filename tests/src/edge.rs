//! What is attached to the pods' edges, read in the node's namespace: for
//! tests that the profiler's classifiers are on where they belong and off
//! once it ends.
use std::path::Path;

use profiler::edge::{
    filters::{Filter, Side},
    inspect::{Attachments, attachments},
    netns,
    owned::PROGRAMS,
};

/// What is on `side` of `ifname` in the node namespace at `node`.
pub fn on(node: &Path, ifname: &str, side: Side) -> Attachments {
    let _in = netns::enter(Some(node)).expect("enter the node namespace");
    attachments(ifname, side).unwrap_or_else(|e| panic!("listing {ifname} {side:?}: {e}"))
}

/// The profiler's classifier on `side` of a pod edge.
pub fn ours(side: Side) -> &'static str {
    PROGRAMS
        .iter()
        .find(|(_, s)| *s == side)
        .map(|(name, _)| *name)
        .expect("a classifier for each side")
}

/// The filters of `a` that are the profiler's classifier for `side`.
pub fn own_filters(a: &Attachments, side: Side) -> Vec<&Filter> {
    a.filters
        .iter()
        .filter(|f| f.program.as_deref() == Some(ours(side)))
        .collect()
}

/// None of the profiler's classifiers (either of them, on either side) is
/// on `ifnames`.
pub fn assert_none_of_ours(node: &Path, ifnames: &[&str]) {
    let profilers = |name: &str| PROGRAMS.iter().any(|(p, _)| *p == name);
    for ifname in ifnames {
        for side in [Side::Ingress, Side::Egress] {
            let a = on(node, ifname, side);
            assert!(
                !a.tcx.iter().any(|n| profilers(n))
                    && !a
                        .filters
                        .iter()
                        .any(|f| f.program.as_deref().is_some_and(profilers)),
                "{ifname} {side:?}: a classifier of the profiler is still on: {a:?}"
            );
        }
    }
}
