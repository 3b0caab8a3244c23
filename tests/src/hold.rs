//! A known kernel delay inside a pod's network path: the `fixture_hold`
//! classifier on one of the pod's own interfaces holds every packet for a
//! set time. On eth0's ingress, after the pod edge and before the socket;
//! on its egress, after TCP sent the packet and before the pod edge; on
//! lo's egress, after TCP sent a packet to the other end in the pod and
//! before it is readable there. Detached when dropped.
use std::path::PathBuf;

use aya::{
    Ebpf,
    maps::Array,
    programs::{SchedClassifier, TcAttachType, tc::SchedClassifierLinkId},
};
use profiler::edge::netns;

pub struct Hold {
    ebpf: Ebpf,
    link: Option<SchedClassifierLinkId>,
    netns: PathBuf,
}

/// Hold every packet entering (`TcAttachType::Ingress`) or leaving
/// (`Egress`) interface `ifname` of the pod of network namespace
/// `pod_netns` (its name under /run/netns) for `hold_ns`.
pub fn hold_pod(pod_netns: &str, ifname: &str, side: TcAttachType, hold_ns: u64) -> Hold {
    let netns = PathBuf::from("/run/netns").join(pod_netns);
    let mut ebpf = profiler::ebpf::open().expect("the eBPF object (needs root)");
    let mut map: Array<_, u64> = Array::try_from(
        ebpf.map_mut("FIXTURE_HOLD_NS")
            .expect("map FIXTURE_HOLD_NS in the object"),
    )
    .expect("FIXTURE_HOLD_NS is an array");
    map.set(0, hold_ns, 0).expect("set the hold");
    let prog: &mut SchedClassifier = ebpf
        .program_mut("fixture_hold")
        .expect("program fixture_hold in the object")
        .try_into()
        .expect("fixture_hold is a classifier");
    prog.load().expect("load fixture_hold");
    let link = {
        let _in = netns::enter(Some(&netns)).expect("enter the pod namespace");
        prog.attach(ifname, side)
            .unwrap_or_else(|e| panic!("attach fixture_hold to the pod's {ifname}: {e}"))
    };
    Hold {
        ebpf,
        link: Some(link),
        netns,
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // In the pod's namespace: a filter (kernels without tcx) is removed
        // by interface index, which means the right one only there.
        let Ok(_in) = netns::enter(Some(&self.netns)) else {
            return;
        };
        if let (Some(link), Some(p)) = (self.link.take(), self.ebpf.program_mut("fixture_hold")) {
            let p: Result<&mut SchedClassifier, _> = p.try_into();
            if let Ok(p) = p {
                let _ = p.detach(link);
            }
        }
    }
}
