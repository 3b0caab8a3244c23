//! The tc filters and clsact qdisc of one interface, read and removed over
//! rtnetlink; which of the filters are the profiler's is decided here, by
//! their program's name and the owner's pid the profiler puts in the
//! filter's handle.
use std::io;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::{
    RouteNetlinkMessage,
    tc::{TcAttribute, TcFilterBpfOption, TcHandle, TcMessage, TcOption},
};

use super::netlink::{Flags, request};

/// Which side of the clsact qdisc: packets the interface receives, or sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Ingress,
    Egress,
}

impl From<Side> for aya::programs::TcAttachType {
    fn from(side: Side) -> Self {
        match side {
            Side::Ingress => Self::Ingress,
            Side::Egress => Self::Egress,
        }
    }
}

impl Side {
    fn parent(self) -> TcHandle {
        TcHandle {
            major: u16::MAX,
            minor: match self {
                Side::Ingress => TcHandle::MIN_INGRESS,
                Side::Egress => TcHandle::MIN_EGRESS,
            },
        }
    }
}

/// One tc filter as the kernel lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub handle: u32,
    /// The priority and protocol word (`tcm_info`) that names it for removal.
    pub info: u32,
    pub kind: String,
    /// A bpf filter's program name.
    pub program: Option<String>,
}

/// Whether `f` is a filter of the profiler (one of `programs`) whose owner,
/// the pid in its handle, is gone (`alive` says which pids still run).
pub fn is_own_leftover(f: &Filter, programs: &[&str], alive: impl Fn(u32) -> bool) -> bool {
    f.kind == "bpf"
        && f.program.as_deref().is_some_and(|p| programs.contains(&p))
        && f.handle != 0
        && !alive(f.handle)
}

/// Whether `f` is one of `programs` owned by `owner`.
pub fn is_owned_by(f: &Filter, programs: &[&str], owner: u32) -> bool {
    f.kind == "bpf"
        && f.program.as_deref().is_some_and(|p| programs.contains(&p))
        && f.handle == owner
}

/// The filters on `side` of interface `index` (none without a clsact).
pub fn list(index: u32, side: Side) -> io::Result<Vec<Filter>> {
    let mut msg = TcMessage::with_index(index as i32);
    msg.header.parent = side.parent();
    let reply = request(RouteNetlinkMessage::GetTrafficFilter(msg), Flags::Dump)?;
    Ok(reply
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewTrafficFilter(m) => filter(m),
            _ => None,
        })
        .collect())
}

fn filter(m: &TcMessage) -> Option<Filter> {
    let mut kind = None;
    let mut program = None;
    for a in &m.attributes {
        match a {
            TcAttribute::Kind(k) => kind = Some(k.clone()),
            TcAttribute::Options(opts) => {
                for o in opts {
                    if let TcOption::Bpf(TcFilterBpfOption::ProgName(n)) = o {
                        program = Some(n.clone());
                    }
                }
            }
            _ => {}
        }
    }
    // A priority's chain head is listed with handle 0 and holds no filter.
    let handle = u32::from(m.header.handle);
    (handle != 0).then(|| Filter {
        handle,
        info: m.header.info,
        kind: kind.unwrap_or_default(),
        program,
    })
}

/// Remove the filter `f` from `side` of interface `index`.
pub fn remove(index: u32, side: Side, f: &Filter) -> io::Result<()> {
    let mut msg = TcMessage::with_index(index as i32);
    msg.header.parent = side.parent();
    msg.header.handle = TcHandle::from(f.handle);
    msg.header.info = f.info;
    msg.attributes.push(TcAttribute::Kind(f.kind.clone()));
    request(RouteNetlinkMessage::DelTrafficFilter(msg), Flags::Change(0)).map(drop)
}

fn clsact(index: u32) -> TcMessage {
    let mut msg = TcMessage::with_index(index as i32);
    msg.header.parent = TcHandle::CLSACT;
    msg.header.handle = TcHandle {
        major: u16::MAX,
        minor: 0,
    };
    msg.attributes.push(TcAttribute::Kind("clsact".into()));
    msg
}

/// Add a clsact qdisc to interface `index`; false when it already had one
/// (someone else's: never removed by the profiler).
pub fn add_clsact(index: u32) -> io::Result<bool> {
    match request(
        RouteNetlinkMessage::NewQueueDiscipline(clsact(index)),
        Flags::Change(NLM_F_CREATE | NLM_F_EXCL),
    ) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove the clsact qdisc the profiler added to interface `index`, if no
/// filter is left on it (one added since by someone else keeps it).
pub fn remove_clsact_if_empty(index: u32) -> io::Result<bool> {
    for side in [Side::Ingress, Side::Egress] {
        if !list(index, side)?.is_empty() {
            return Ok(false);
        }
    }
    request(
        RouteNetlinkMessage::DelQueueDiscipline(clsact(index)),
        Flags::Change(0),
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [&str; 2] = ["profiler_in", "profiler_out"];

    fn bpf(handle: u32, program: &str) -> Filter {
        Filter {
            handle,
            info: 0xc000_0003,
            kind: "bpf".into(),
            program: Some(program.into()),
        }
    }

    #[test]
    fn only_own_filters_of_a_gone_owner_are_leftovers() {
        let alive = |pid| pid == 100;
        assert!(is_own_leftover(&bpf(42, "profiler_in"), &OURS, alive));
        assert!(is_own_leftover(&bpf(42, "profiler_out"), &OURS, alive));
        // A running profiler's filters stay.
        assert!(!is_own_leftover(&bpf(100, "profiler_in"), &OURS, alive));
        // Someone else's program, even in a handle like ours.
        assert!(!is_own_leftover(
            &bpf(42, "cil_from_container"),
            &OURS,
            alive
        ));
        let mut u32_filter = bpf(42, "profiler_in");
        u32_filter.kind = "u32".into();
        assert!(!is_own_leftover(&u32_filter, &OURS, alive));
        let mut unnamed = bpf(42, "x");
        unnamed.program = None;
        assert!(!is_own_leftover(&unnamed, &OURS, alive));
    }

    #[test]
    fn owned_means_our_program_and_our_pid() {
        assert!(is_owned_by(&bpf(7, "profiler_in"), &OURS, 7));
        assert!(!is_owned_by(&bpf(8, "profiler_in"), &OURS, 7));
        assert!(!is_owned_by(&bpf(7, "other"), &OURS, 7));
    }

    #[test]
    fn a_chain_head_is_not_a_filter() {
        let mut m = TcMessage::with_index(3);
        m.attributes.push(TcAttribute::Kind("bpf".into()));
        assert_eq!(filter(&m), None);
        m.header.handle = TcHandle::from(9u32);
        m.attributes.push(TcAttribute::Options(vec![TcOption::Bpf(
            TcFilterBpfOption::ProgName("profiler_out".into()),
        )]));
        assert_eq!(
            filter(&m),
            Some(Filter {
                handle: 9,
                info: 0,
                kind: "bpf".into(),
                program: Some("profiler_out".into()),
            })
        );
    }
}
