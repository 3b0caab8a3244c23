//! The profiler's own classifiers on the pod edges.
//!
//! Two programs, both observe-only (they pass every packet on):
//! `profiler_in` on the node-side interface's egress (packets entering the
//! pod) and `profiler_out` on its ingress (packets leaving it).
//!
//! Where the kernel has tcx (Linux 6.6+), each attachment is a BPF link
//! the process holds: it ends with the process, even after kill -9, and
//! touches no qdisc. Elsewhere they are cls_bpf filters on a clsact qdisc,
//! which outlive a crash; such a filter is recognisably the profiler's by
//! its program's name, and carries its owner's pid as its handle. At start
//! the profiler removes the filters of owners that are gone, and never a
//! filter of another program or of a profiler still running. A clsact it
//! added is removed at exit if nothing else was attached to it meanwhile.
use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    path::PathBuf,
};

use aya::{
    Ebpf,
    programs::{
        LinkOrder, ProgramError, SchedClassifier,
        tc::{NlOptions, SchedClassifierLinkId, TcAttachOptions},
    },
};

use super::{
    filters::{self, Side},
    links, netns,
};

/// The programs, and the side of the node-side interface each goes on.
pub const PROGRAMS: [(&str, Side); 2] = [
    ("profiler_in", Side::Egress),
    ("profiler_out", Side::Ingress),
];

const NAMES: [&str; 2] = [PROGRAMS[0].0, PROGRAMS[1].0];

/// How the classifiers attach on this kernel (probed at the first attach).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Tcx,
    Netlink,
}

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("entering the node's network namespace {path}: {source} (needs CAP_SYS_ADMIN)")]
    Netns {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {}", crate::ebpf::loader::explain(.source))]
    Program {
        what: String,
        #[source]
        source: ProgramError,
    },
}

fn nl(what: impl Into<String>) -> impl FnOnce(io::Error) -> EdgeError {
    let what = what.into();
    move |source| EdgeError::Netlink { what, source }
}

struct Attached {
    name: String,
    links: Vec<(&'static str, SchedClassifierLinkId)>,
    /// The clsact qdisc was added by the profiler (netlink mode).
    added_clsact: bool,
}

/// The classifiers on the edges of the pods followed.
pub struct Edges {
    node: Option<PathBuf>,
    mode: Option<Mode>,
    pid: u32,
    attached: BTreeMap<u32, Attached>,
    /// Leftover filters of gone profilers removed at start.
    swept: usize,
}

impl Edges {
    /// Load the classifiers and sweep the node's interfaces of filters a
    /// profiler that is gone left behind. `node`: the node's network
    /// namespace when it is not the profiler's own.
    pub fn open(ebpf: &mut Ebpf, at: crate::ebpf::PodEdge) -> Result<Edges, EdgeError> {
        for (name, _) in PROGRAMS {
            program(ebpf, name)?
                .load()
                .map_err(|source| EdgeError::Program {
                    what: format!("loading {name}"),
                    source,
                })?;
        }
        let mut edges = Edges {
            node: at.node_netns,
            mode: at.mode,
            pid: std::process::id(),
            attached: BTreeMap::new(),
            swept: 0,
        };
        let _in = edges.enter()?;
        let own = edges.pid;
        let alive = |pid: u32| pid != own && std::path::Path::new(&format!("/proc/{pid}")).exists();
        for link in links::node_links().map_err(nl("listing the node's interfaces"))? {
            for (_, side) in PROGRAMS {
                // An interface may go meanwhile: its filters went with it.
                let Ok(list) = filters::list(link.index, side) else {
                    continue;
                };
                for f in list
                    .iter()
                    .filter(|f| filters::is_own_leftover(f, &NAMES, alive))
                {
                    filters::remove(link.index, side, f).map_err(nl(format!(
                        "removing a leftover filter {} (pid {}) from {}",
                        f.program.as_deref().unwrap_or_default(),
                        f.handle,
                        link.name
                    )))?;
                    log::info!(
                        "removed a filter {} left on {} by profiler pid {}, which is gone",
                        f.program.as_deref().unwrap_or_default(),
                        link.name,
                        f.handle
                    );
                    edges.swept += 1;
                }
            }
        }
        drop(_in);
        Ok(edges)
    }

    fn enter(&self) -> Result<netns::Entered, EdgeError> {
        netns::enter(self.node.as_deref()).map_err(|source| EdgeError::Netns {
            path: self
                .node
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            source,
        })
    }

    /// Leftover filters of profilers that are gone, removed at start.
    pub fn swept(&self) -> usize {
        self.swept
    }

    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// The interfaces the classifiers are on, by name.
    pub fn interfaces(&self) -> Vec<String> {
        self.attached.values().map(|a| a.name.clone()).collect()
    }

    /// Put the classifiers on the edges of the pods `pids` live in, and take
    /// them off the edges of pods no longer followed.
    pub fn follow(
        &mut self,
        ebpf: &mut Ebpf,
        pids: impl IntoIterator<Item = u32>,
    ) -> Result<(), EdgeError> {
        let _in = self.enter()?;
        // One question per network namespace, not per process: a proxy's
        // processes and threads share their pod's.
        let mut namespaces = BTreeSet::new();
        let mut nsids = BTreeSet::new();
        for pid in pids {
            use std::os::unix::fs::MetadataExt;
            let ns = std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| m.ino());
            // A process that ended meanwhile has no pod to follow.
            if ns.is_ok_and(|ns| namespaces.insert(ns))
                && let Ok(Some(id)) = links::nsid_of_pid(pid)
            {
                nsids.insert(id);
            }
        }
        let all = links::node_links().map_err(nl("listing the node's interfaces"))?;
        let wanted: BTreeMap<u32, String> = nsids
            .iter()
            .flat_map(|&id| links::pod_edges(&all, id))
            .map(|l| (l.index, l.name))
            .collect();
        let gone: Vec<u32> = self
            .attached
            .keys()
            .filter(|i| !wanted.contains_key(i))
            .copied()
            .collect();
        for index in gone {
            let present = all.iter().any(|l| l.index == index);
            self.detach(ebpf, index, present);
        }
        for (index, name) in wanted {
            if !self.attached.contains_key(&index) {
                self.attach(ebpf, index, &name)?;
            }
        }
        Ok(())
    }

    /// Put the classifiers on interface `name` of the node's namespace, as
    /// on a pod's edge (`profiler check` tries them on a scratch loopback).
    pub fn attach_named(&mut self, ebpf: &mut Ebpf, name: &str) -> Result<(), EdgeError> {
        let _in = self.enter()?;
        let index = links::index_of(name).map_err(nl(format!("finding interface {name}")))?;
        self.attach(ebpf, index, name)
    }

    fn attach(&mut self, ebpf: &mut Ebpf, index: u32, name: &str) -> Result<(), EdgeError> {
        let mut at = Attached {
            name: name.to_string(),
            links: Vec::new(),
            added_clsact: false,
        };
        for (prog, side) in PROGRAMS {
            let r = self.attach_one(ebpf, &mut at, index, prog, side);
            if let Err(e) = r {
                self.attached.insert(index, at);
                self.detach(ebpf, index, true);
                return Err(e);
            }
        }
        self.attached.insert(index, at);
        Ok(())
    }

    fn attach_one(
        &mut self,
        ebpf: &mut Ebpf,
        at: &mut Attached,
        index: u32,
        prog: &'static str,
        side: Side,
    ) -> Result<(), EdgeError> {
        let kind = side.into();
        let what = || format!("attaching {prog} to {}", at.name);
        if self.mode != Some(Mode::Netlink) {
            let tcx = TcAttachOptions::TcxOrder(LinkOrder::default());
            match program(ebpf, prog)?.attach_with_options(&at.name, kind, tcx) {
                Ok(id) => {
                    self.mode = Some(Mode::Tcx);
                    at.links.push((prog, id));
                    return Ok(());
                }
                // tcx is probed once: a kernel without it refuses the link.
                Err(e) if self.mode.is_none() => {
                    log::info!("tcx links refused ({e}); using cls_bpf filters on clsact");
                    self.mode = Some(Mode::Netlink);
                }
                Err(source) => {
                    return Err(EdgeError::Program {
                        what: what(),
                        source,
                    });
                }
            }
        }
        if at.links.is_empty() && !at.added_clsact {
            at.added_clsact = filters::add_clsact(index)
                .map_err(nl(format!("adding a clsact qdisc to {}", at.name)))?;
        }
        let opts = TcAttachOptions::Netlink(NlOptions {
            handle: self.pid.into(),
            ..NlOptions::default()
        });
        let id = program(ebpf, prog)?
            .attach_with_options(&at.name, kind, opts)
            .map_err(|source| EdgeError::Program {
                what: what(),
                source,
            })?;
        at.links.push((prog, id));
        Ok(())
    }

    /// Take the classifiers off interface `index` (`present`: it still
    /// exists, so there is something to remove).
    fn detach(&mut self, ebpf: &mut Ebpf, index: u32, present: bool) {
        let Some(at) = self.attached.remove(&index) else {
            return;
        };
        for (prog, id) in at.links {
            if let Ok(p) = program(ebpf, prog)
                && let Err(e) = p.detach(id)
                && present
            {
                log::warn!("detaching {prog} from {}: {e}", at.name);
            }
        }
        if present && at.added_clsact {
            match filters::remove_clsact_if_empty(index) {
                Ok(true) => {}
                Ok(false) => log::info!(
                    "left the clsact qdisc added to {}: another filter is on it now",
                    at.name
                ),
                Err(e) => log::warn!("removing the clsact qdisc added to {}: {e}", at.name),
            }
        }
    }

    /// Take every classifier off (at exit).
    pub fn close(&mut self, ebpf: &mut Ebpf) {
        let Ok(_in) = self.enter() else {
            log::warn!("cannot enter the node's namespace to detach the classifiers");
            return;
        };
        let present: BTreeSet<u32> = links::node_links()
            .map(|l| l.into_iter().map(|l| l.index).collect())
            .unwrap_or_default();
        let all: Vec<u32> = self.attached.keys().copied().collect();
        for index in all {
            self.detach(ebpf, index, present.contains(&index));
        }
    }
}

fn program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, EdgeError> {
    ebpf.program_mut(name)
        .ok_or_else(|| EdgeError::Program {
            what: format!("program {name}"),
            source: ProgramError::UnexpectedProgramType,
        })?
        .try_into()
        .map_err(|source| EdgeError::Program {
            what: format!("program {name}"),
            source,
        })
}
