//! The result of `profiler check`, as text or JSON.
use serde::Serialize;

use crate::ebpf::HookSet;

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// One hook set on this kernel: whether the kernel allows its attachments
/// (empty programs attach where its programs go) and whether its real
/// programs pass the verifier and attach. Allowed but not attached is a
/// defect of the profiler, not of the kernel.
#[derive(Clone, Debug, Serialize)]
pub struct SetProbe {
    pub set: HookSet,
    pub kernel_allows: bool,
    /// The kernel's reason when it does not allow the set.
    pub refused: Option<String>,
    pub attached: bool,
    /// Why the real programs did not attach (the verifier's verdict when it
    /// refused one).
    pub error: Option<String>,
}

/// A program that attached here, and how many instructions the verifier
/// processed to accept it (its complexity, as veristat reports it).
#[derive(Clone, Debug, Serialize)]
pub struct ProgramProbe {
    pub program: String,
    pub hook: String,
    pub verified_insns: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub hook_sets: Vec<SetProbe>,
    pub programs: Vec<ProgramProbe>,
    /// The hook set the profiler would use here, if any works.
    pub hook_set: Option<HookSet>,
    /// Whether tc classifiers can be attached (pod interface timestamps).
    pub tc: bool,
    pub verdict: String,
}

impl Report {
    pub fn usable(&self) -> bool {
        self.hook_set.is_some()
    }

    pub fn finding(&self, name: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.name == name)
    }

    pub fn to_text(&self) -> String {
        let width = self
            .findings
            .iter()
            .map(|f| f.name.len())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for f in &self.findings {
            let yn = if f.ok { "yes" } else { "no " };
            out.push_str(&format!("{:width$}  {yn}  {}\n", f.name, f.detail));
        }
        if !self.programs.is_empty() {
            let list: Vec<String> = self
                .programs
                .iter()
                .map(|p| match p.verified_insns {
                    Some(n) => format!("{} {n}", p.program),
                    None => format!("{} ?", p.program),
                })
                .collect();
            out.push_str(&format!(
                "\ninstructions the verifier processed: {}\n",
                list.join(", ")
            ));
        }
        out.push_str(&format!("\n{}\n", self.verdict));
        out
    }

    pub fn verdict_for(hook_set: Option<HookSet>, tc: bool) -> String {
        match hook_set {
            Some(set) => format!(
                "verdict: usable; hook set `{}`{}",
                set.name(),
                if tc {
                    ", tc classifiers available"
                } else {
                    "; tc classifiers unavailable (no pod-interface timestamps)"
                }
            ),
            None => "verdict: NOT usable: no complete hook set loads here. The profiler needs \
                     one of: the sock tracepoints (Linux 6.2+), fentry/fexit on tcp_recvmsg/\
                     tcp_sendmsg/tcp_data_ready, or kprobes on them; plus the \
                     sock:inet_sock_set_state tracepoint. Run as root (CAP_BPF, CAP_PERFMON) \
                     on a kernel with one of these."
                .to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_one_line_per_finding_and_a_verdict() {
        let r = Report {
            findings: vec![
                Finding {
                    name: "btf".into(),
                    ok: true,
                    detail: "/sys/kernel/btf/vmlinux".into(),
                },
                Finding {
                    name: "kprobe pmu".into(),
                    ok: false,
                    detail: "absent".into(),
                },
            ],
            hook_sets: Vec::new(),
            programs: vec![ProgramProbe {
                program: "kp_tcp_recvmsg".into(),
                hook: "kprobe tcp_recvmsg".into(),
                verified_insns: Some(41),
            }],
            hook_set: None,
            tc: false,
            verdict: Report::verdict_for(None, false),
        };
        let t = r.to_text();
        assert!(
            t.contains("btf         yes  /sys/kernel/btf/vmlinux"),
            "{t}"
        );
        assert!(t.contains("kprobe pmu  no   absent"), "{t}");
        assert!(t.contains("NOT usable"));
        assert!(t.contains("processed: kp_tcp_recvmsg 41"), "{t}");
        assert!(!r.usable());
        assert!(Report::verdict_for(Some(HookSet::Tracepoints), true).contains("`tracepoints`"));
    }
}
