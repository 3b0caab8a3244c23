//! The hook sets the same pairing logic can be fed from, one per kernel
//! capability. Which one runs is decided by probing (`profiler check`).
use serde::Serialize;

/// How a program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    Tracepoint {
        category: &'static str,
        name: &'static str,
    },
    /// A raw tracepoint: the tracepoint's arguments, no record filled first,
    /// and the kernel skips it only when the same program is already running
    /// on the CPU (a classic tracepoint's program is skipped whenever any
    /// program runs there, which loses arrivals delivered by a softirq that
    /// interrupted one).
    RawTracepoint {
        name: &'static str,
    },
    /// A BTF tracepoint (tp_btf): a raw tracepoint whose arguments the
    /// verifier knows by their kernel types, so fields are plain loads.
    BtfTracepoint {
        name: &'static str,
    },
    Kprobe {
        function: &'static str,
    },
    Kretprobe {
        function: &'static str,
    },
    Fentry {
        function: &'static str,
    },
    Fexit {
        function: &'static str,
    },
}

/// One program of the object and where it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hook {
    pub program: &'static str,
    pub attach: Attach,
}

impl Hook {
    /// An empty program attached where this one goes: whether the kernel
    /// allows the attachment at all, whatever the verifier makes of ours.
    pub fn trivial(&self) -> Hook {
        let program = match self.attach {
            Attach::Tracepoint { .. } => "probe_tracepoint",
            Attach::RawTracepoint { .. } => "probe_raw_tracepoint",
            Attach::BtfTracepoint { .. } => "probe_btf_tracepoint",
            Attach::Kprobe { .. } => "probe_kprobe",
            Attach::Kretprobe { .. } => "probe_kretprobe",
            Attach::Fentry { .. } => "probe_fentry",
            Attach::Fexit { .. } => "probe_fexit",
        };
        Hook {
            program,
            attach: self.attach,
        }
    }

    pub fn describe(&self) -> String {
        match self.attach {
            Attach::Tracepoint { category, name } => format!("tracepoint {category}:{name}"),
            Attach::RawTracepoint { name } => format!("raw tracepoint {name}"),
            Attach::BtfTracepoint { name } => format!("btf tracepoint {name}"),
            Attach::Kprobe { function } => format!("kprobe {function}"),
            Attach::Kretprobe { function } => format!("kretprobe {function}"),
            Attach::Fentry { function } => format!("fentry {function}"),
            Attach::Fexit { function } => format!("fexit {function}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HookSet {
    /// sock:sock_recv_length / sock_send_length, raw sk_data_ready (Linux 6.2+).
    Tracepoints,
    /// fexit tcp_recvmsg / tcp_sendmsg, fentry tcp_data_ready (BPF trampolines).
    Fentry,
    /// kprobes on tcp_cleanup_rbuf (reads) and tcp_data_ready, a kprobe and
    /// kretprobe on tcp_sendmsg.
    Kprobes,
}

/// Which hooks a capture attaches: a hook set (None: the first that
/// attaches here), unless left out the scheduler hooks, and where asked the
/// classifiers on the pod edges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hooks {
    pub set: Option<HookSet>,
    pub sched: SchedHooks,
    pub pod_edge: Option<PodEdge>,
}

impl Default for Hooks {
    fn default() -> Hooks {
        Hooks {
            set: None,
            sched: SchedHooks::Auto,
            pod_edge: None,
        }
    }
}

/// Where the pods' veths have their node side: the profiler's own network
/// namespace (a DaemonSet with hostNetwork), or the one at `node_netns`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodEdge {
    pub node_netns: Option<std::path::PathBuf>,
    /// How the classifiers attach (None: tcx links where the kernel has
    /// them, else cls_bpf filters).
    pub mode: Option<crate::edge::Mode>,
}

/// Which scheduler hooks a capture tries: the preferred kind that works
/// (Auto), one kind only, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedHooks {
    Auto,
    Btf,
    Classic,
    Off,
}

impl SchedHooks {
    /// The kinds to try, in order.
    pub fn candidates(self) -> &'static [&'static [Hook]] {
        match self {
            SchedHooks::Auto => &SCHED_PREFERENCE,
            SchedHooks::Btf => &SCHED_PREFERENCE[..1],
            SchedHooks::Classic => &SCHED_PREFERENCE[1..],
            SchedHooks::Off => &[],
        }
    }
}

const fn tp(program: &'static str, category: &'static str, name: &'static str) -> Hook {
    Hook {
        program,
        attach: Attach::Tracepoint { category, name },
    }
}

/// Connection state (endpoints and role) comes from this tracepoint in every set.
pub const SET_STATE: Hook = tp("tp_inet_sock_set_state", "sock", "inet_sock_set_state");

const fn raw(program: &'static str, name: &'static str) -> Hook {
    Hook {
        program,
        attach: Attach::RawTracepoint { name },
    }
}

const fn tp_btf(program: &'static str, name: &'static str) -> Hook {
    Hook {
        program,
        attach: Attach::BtfTracepoint { name },
    }
}

/// The scheduler's hook, beside any set: it follows the proxy's threads
/// on and off their CPUs to split process time into running, runnable and
/// blocked (the split of the time off CPU comes from each thread's own
/// run-queue wait, read by the thread; no wake-up needs a hook). A BTF
/// tracepoint where the kernel's BTF tells where a task keeps its pid (no
/// record filled first, a task's pid is a plain load).
pub const SCHED_BTF: [Hook; 1] = [tp_btf("tpb_sched_switch", "sched_switch")];

/// The classic scheduler tracepoint: where the BTF one cannot go.
pub const SCHED_CLASSIC: [Hook; 1] = [tp("tp_sched_switch", "sched", "sched_switch")];

/// The scheduler's hooks in order of preference.
pub const SCHED_PREFERENCE: [&[Hook]; 2] = [&SCHED_BTF, &SCHED_CLASSIC];

/// Whether `hook` is one of the scheduler's.
pub fn is_sched(hook: &Hook) -> bool {
    SCHED_PREFERENCE.iter().any(|s| s.contains(hook))
}

/// The tracepoint set where the kernel's BTF says where `sock` keeps its
/// protocol: send and receive on raw tracepoints, so the kernel fills no
/// record before the program runs (every send and receive on the node
/// paid for that, tracked or not).
const TRACEPOINTS_RAW: [Hook; 4] = [
    raw("rtp_sock_recv_length", "sock_recv_length"),
    raw("rtp_sock_send_length", "sock_send_length"),
    raw("rtp_sk_data_ready", "sk_data_ready"),
    SET_STATE,
];

/// The tracepoint set elsewhere: the classic records carry the protocol.
const TRACEPOINTS_CLASSIC: [Hook; 4] = [
    tp("tp_sock_recv_length", "sock", "sock_recv_length"),
    tp("tp_sock_send_length", "sock", "sock_send_length"),
    raw("rtp_sk_data_ready", "sk_data_ready"),
    SET_STATE,
];

const FENTRY: [Hook; 4] = [
    Hook {
        program: "fx_tcp_recvmsg",
        attach: Attach::Fexit {
            function: "tcp_recvmsg",
        },
    },
    Hook {
        program: "fx_tcp_sendmsg",
        attach: Attach::Fexit {
            function: "tcp_sendmsg",
        },
    },
    Hook {
        program: "fe_tcp_data_ready",
        attach: Attach::Fentry {
            function: "tcp_data_ready",
        },
    },
    SET_STATE,
];

const KPROBES: [Hook; 5] = [
    Hook {
        program: "kp_tcp_cleanup_rbuf",
        attach: Attach::Kprobe {
            function: "tcp_cleanup_rbuf",
        },
    },
    Hook {
        program: "kp_tcp_sendmsg",
        attach: Attach::Kprobe {
            function: "tcp_sendmsg",
        },
    },
    Hook {
        program: "krp_tcp_sendmsg",
        attach: Attach::Kretprobe {
            function: "tcp_sendmsg",
        },
    },
    Hook {
        program: "kp_tcp_data_ready",
        attach: Attach::Kprobe {
            function: "tcp_data_ready",
        },
    },
    SET_STATE,
];

impl HookSet {
    /// In order of preference: stable tracepoint fields first, then the
    /// cheaper trampolines, then kprobes.
    pub const PREFERENCE: [HookSet; 3] = [HookSet::Tracepoints, HookSet::Fentry, HookSet::Kprobes];

    pub fn hooks(self) -> &'static [Hook] {
        match self {
            HookSet::Tracepoints => Self::tracepoints(super::loader::sk_protocol_offset().is_ok()),
            HookSet::Fentry => &FENTRY,
            HookSet::Kprobes => &KPROBES,
        }
    }

    /// The tracepoint set's hooks: on raw tracepoints where `sk_protocol`'s
    /// offset is known (`raw`), else on the classic ones.
    pub fn tracepoints(raw: bool) -> &'static [Hook] {
        if raw {
            &TRACEPOINTS_RAW
        } else {
            &TRACEPOINTS_CLASSIC
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HookSet::Tracepoints => "tracepoints",
            HookSet::Fentry => "fentry",
            HookSet::Kprobes => "kprobes",
        }
    }

    /// The first set, in preference order, all of whose hooks work.
    pub fn choose(works: impl Fn(&Hook) -> bool) -> Option<HookSet> {
        Self::PREFERENCE
            .into_iter()
            .find(|set| set.hooks().iter().all(&works))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sched_hooks_btf_first_then_classic_or_one_kind_forced() {
        assert_eq!(
            SchedHooks::Auto.candidates(),
            &[&SCHED_BTF[..], &SCHED_CLASSIC[..]]
        );
        assert_eq!(SchedHooks::Btf.candidates(), &[&SCHED_BTF[..]]);
        assert_eq!(SchedHooks::Classic.candidates(), &[&SCHED_CLASSIC[..]]);
        assert!(SchedHooks::Off.candidates().is_empty());
        assert!(SCHED_BTF.iter().chain(&SCHED_CLASSIC).all(is_sched));
        assert!(!is_sched(&SET_STATE));
    }

    #[test]
    fn every_set_learns_connection_state() {
        for set in HookSet::PREFERENCE {
            assert!(set.hooks().contains(&SET_STATE), "{set:?}");
        }
        for raw in [true, false] {
            assert!(HookSet::tracepoints(raw).contains(&SET_STATE));
        }
    }

    #[test]
    fn tracepoint_set_sends_and_receives_on_raw_tracepoints_only_where_known() {
        let kinds = |raw| {
            HookSet::tracepoints(raw)[..2]
                .iter()
                .map(|h| h.attach)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kinds(true),
            [
                Attach::RawTracepoint {
                    name: "sock_recv_length"
                },
                Attach::RawTracepoint {
                    name: "sock_send_length"
                },
            ]
        );
        assert!(kinds(false).iter().all(|a| matches!(
            a,
            Attach::Tracepoint {
                category: "sock",
                ..
            }
        )));
        // The arrival hook and the state hook are the same either way.
        assert_eq!(
            HookSet::tracepoints(true)[2..],
            HookSet::tracepoints(false)[2..]
        );
    }

    #[test]
    fn tracepoints_preferred_then_fentry_then_kprobes() {
        assert_eq!(HookSet::choose(|_| true), Some(HookSet::Tracepoints));
        // Linux 6.1: no sock tracepoints but inet_sock_set_state.
        let no_sock_tp = |h: &Hook| match h.attach {
            Attach::Tracepoint { name, .. } => name == "inet_sock_set_state",
            Attach::RawTracepoint { .. } => false,
            _ => true,
        };
        assert_eq!(HookSet::choose(no_sock_tp), Some(HookSet::Fentry));
        // This machine: tracepoints (raw ones too) work, fentry is refused,
        // kprobes absent.
        let here = |h: &Hook| {
            matches!(
                h.attach,
                Attach::Tracepoint { .. } | Attach::RawTracepoint { .. }
            )
        };
        assert_eq!(HookSet::choose(here), Some(HookSet::Tracepoints));
        // Linux 6.1 with kprobes but trampolines refused.
        let old = |h: &Hook| {
            matches!(h.attach, Attach::Kprobe { .. } | Attach::Kretprobe { .. }) || *h == SET_STATE
        };
        assert_eq!(HookSet::choose(old), Some(HookSet::Kprobes));
        assert_eq!(HookSet::choose(|_| false), None);
    }
}
