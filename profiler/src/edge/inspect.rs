//! What is attached to one side of an interface of the calling thread's
//! namespace, the profiler's or anyone's: tcx programs and tc filters.
use std::io;

use aya::programs::{SchedClassifier, TcAttachType};

use super::filters::{self, Filter, Side};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attachments {
    /// tcx programs by name (none where the kernel has no tcx).
    pub tcx: Vec<String>,
    pub filters: Vec<Filter>,
}

pub fn attachments(ifname: &str, side: Side) -> io::Result<Attachments> {
    let index = ifindex(ifname)?;
    let kind = match side {
        Side::Ingress => TcAttachType::Ingress,
        Side::Egress => TcAttachType::Egress,
    };
    let tcx = SchedClassifier::query_tcx(ifname, kind)
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

fn ifindex(ifname: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(ifname)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a NUL-terminated name.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}
