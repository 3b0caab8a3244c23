//! Which processes are sidecars, which ports are not data-plane hops, and
//! which hook set feeds the capture: the same flags for `snapshot` and `run`.
use crate::{
    classify::DEFAULT_EXCLUDED_PORTS,
    discovery::Selector,
    ebpf::{HookSet, Hooks, PodEdge, SchedHooks},
    edge::Mode,
};

#[derive(clap::Args)]
pub struct SelectArgs {
    /// Profile these processes (repeatable). Default: Istio sidecars
    /// (`envoy`, or UID 1337 in a pod's cgroup).
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Profile processes with this name (repeatable).
    #[arg(long)]
    pub comm: Vec<String>,
    /// Profile processes whose cgroup path contains this (repeatable).
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// Ports whose traffic is not a data-plane hop (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_EXCLUDED_PORTS)]
    pub exclude_ports: Vec<u16>,
    /// Which hook set feeds the capture: auto picks the first that attaches
    /// here (tracepoints, then fentry, then kprobes; `profiler check` shows
    /// which work). Forcing one that does not attach is an error.
    #[arg(long, value_enum, default_value_t = HookSetArg::Auto)]
    pub hook_set: HookSetArg,
    /// Leave out the scheduler hook (sched_switch) and the threads'
    /// accounts reads and writes keep for it, which split each forward's
    /// process time into on-CPU, run-queue and blocked time, and save
    /// their cost (the hook's on every context switch of the node).
    #[arg(long, conflicts_with = "sched_hooks")]
    pub no_sched_split: bool,
    /// Which scheduler hook: auto prefers the BTF tracepoint (where the
    /// kernel's BTF gives a task's pid offset and the kernel takes it),
    /// then the classic tracepoint. Either needs the offset of a task's
    /// run-queue wait from the kernel's BTF. Forcing a kind that does not
    /// attach leaves process time unsplit, with a warning.
    #[arg(long, value_enum, default_value_t = SchedHooksArg::Auto)]
    pub sched_hooks: SchedHooksArg,
    /// Also time the kernel's part where data enters and leaves each
    /// followed pod (kernel_in, kernel_out, sidecar_total): observe-only tc
    /// classifiers on the node side of each pod's veth, as tcx links where
    /// the kernel has them, else as cls_bpf filters (or the one named).
    /// Needs CAP_NET_ADMIN and the node's network namespace (hostNetwork).
    #[arg(long, num_args = 0..=1, default_missing_value = "auto", value_name = "HOW")]
    pub pod_edge: Option<PodEdgeArg>,
    /// The network namespace holding the node side of the pods' veths,
    /// when it is not the profiler's own (a node that is itself a
    /// namespace, as in the test mesh); entering it needs CAP_SYS_ADMIN.
    #[arg(long, hide = true, requires = "pod_edge")]
    pub node_netns: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SchedHooksArg {
    Auto,
    Btf,
    Classic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PodEdgeArg {
    Auto,
    Tcx,
    Netlink,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HookSetArg {
    Auto,
    Tracepoints,
    Fentry,
    Kprobes,
}

impl HookSetArg {
    pub fn forced(self) -> Option<HookSet> {
        match self {
            HookSetArg::Auto => None,
            HookSetArg::Tracepoints => Some(HookSet::Tracepoints),
            HookSetArg::Fentry => Some(HookSet::Fentry),
            HookSetArg::Kprobes => Some(HookSet::Kprobes),
        }
    }
}

impl SelectArgs {
    pub fn hooks(&self) -> Hooks {
        Hooks {
            set: self.hook_set.forced(),
            sched: match (self.no_sched_split, self.sched_hooks) {
                (true, _) => SchedHooks::Off,
                (false, SchedHooksArg::Auto) => SchedHooks::Auto,
                (false, SchedHooksArg::Btf) => SchedHooks::Btf,
                (false, SchedHooksArg::Classic) => SchedHooks::Classic,
            },
            pod_edge: self.pod_edge.map(|m| PodEdge {
                node_netns: self.node_netns.clone(),
                mode: match m {
                    PodEdgeArg::Auto => None,
                    PodEdgeArg::Tcx => Some(Mode::Tcx),
                    PodEdgeArg::Netlink => Some(Mode::Netlink),
                },
            }),
        }
    }

    pub fn selectors(&self) -> Vec<Selector> {
        let mut s: Vec<Selector> = self.pid.iter().map(|p| Selector::Pid(*p)).collect();
        s.extend(self.comm.iter().map(|c| Selector::Comm(c.clone())));
        s.extend(self.cgroup.iter().map(|c| Selector::Cgroup(c.clone())));
        if s.is_empty() {
            s.push(Selector::Istio);
        }
        s
    }
}
