//! What is attached to one side of an interface of the calling thread's
//! namespace, the profiler's or anyone's: tcx programs and tc filters.
use std::io;

use aya::programs::SchedClassifier;

use super::{
    filters::{self, Filter, Side},
    links,
};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attachments {
    /// tcx programs by name (none where the kernel has no tcx).
    pub tcx: Vec<String>,
    pub filters: Vec<Filter>,
}

pub fn attachments(ifname: &str, side: Side) -> io::Result<Attachments> {
    let index = links::index_of(ifname)?;
    let tcx = SchedClassifier::query_tcx(ifname, side.into())
        .map(|(_, progs)| {
            progs
                .iter()
                .map(|p| p.name_as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    Ok(Attachments {
        tcx,
        filters: filters::list(index, side)?,
    })
}
