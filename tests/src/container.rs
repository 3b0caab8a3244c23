//! The DaemonSet's container run by podman (with runc) on this machine, with
//! what the DaemonSet declares: host PID and network namespaces, the user,
//! the added capabilities (everything else dropped), no privilege
//! escalation, a read-only root, the seccomp profile, the host mounts.
use std::process::{Command, Output};

use crate::deploy;

/// The image the DaemonSet names (`cargo xtask image` builds it).
pub fn image() -> String {
    deploy::daemonset_pod()["containers"][0]["image"]
        .as_str()
        .expect("image")
        .to_string()
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc"]);
    c
}

/// Fail, naming the fix, unless podman and the image are here.
pub fn require_image() {
    let image = image();
    let out = podman()
        .args(["image", "exists", &image])
        .output()
        .expect("podman is missing: `cargo xtask setup` installs it");
    assert!(
        out.status.success(),
        "image {image} is missing: `cargo xtask image` builds it (`cargo xtask test` does first)"
    );
}

/// `podman run` arguments for the DaemonSet's pod, but for `drop_cap`
/// (one of the added capabilities, left out) and `seccomp` (None: the
/// runtime's default profile instead of the declared one).
pub fn run_args(drop_cap: Option<&str>, declared_seccomp: bool) -> Vec<String> {
    let pod = deploy::daemonset_pod();
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    let mut a: Vec<String> = vec!["run".into()];
    if pod["hostPID"] == true {
        a.push("--pid=host".into());
    }
    if pod["hostNetwork"] == true {
        a.push("--network=host".into());
    }
    a.push(format!(
        "--user={}:{}",
        sc["runAsUser"].as_u64().expect("runAsUser"),
        sc["runAsGroup"].as_u64().expect("runAsGroup")
    ));
    assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{sc}");
    a.push("--cap-drop=ALL".into());
    for cap in sc["capabilities"]["add"]
        .as_array()
        .expect("added capabilities")
    {
        let cap = cap.as_str().expect("capability name");
        if Some(cap) != drop_cap {
            a.push(format!("--cap-add={cap}"));
        }
    }
    if sc["allowPrivilegeEscalation"] == false {
        a.push("--security-opt=no-new-privileges".into());
    }
    if sc["readOnlyRootFilesystem"] == true {
        a.push("--read-only".into());
    }
    assert_eq!(sc["privileged"], false, "{sc}");
    let profile = &pod["securityContext"]["seccompProfile"];
    assert_eq!(profile["type"], "Localhost", "{profile}");
    if declared_seccomp {
        // What the nodes hold at <kubelet root>/seccomp/<localhostProfile>.
        a.push(format!(
            "--security-opt=seccomp={}",
            deploy::dir().join("seccomp/profiler.json").display()
        ));
    }
    for m in c["volumeMounts"].as_array().expect("volume mounts") {
        let name = &m["name"];
        let vol = pod["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| &v["name"] == name))
            .unwrap_or_else(|| panic!("volume {name} not declared"));
        let host = vol["hostPath"]["path"].as_str().expect("hostPath volume");
        let ro = if m["readOnly"] == true { ":ro" } else { "" };
        a.push(format!(
            "--volume={host}:{}{ro}",
            m["mountPath"].as_str().expect("mountPath")
        ));
    }
    // This machine's podman cannot raise limits (no CAP_SYS_RESOURCE).
    a.extend([
        "--ulimit=nofile=1024:1024".into(),
        "--ulimit=nproc=4096:4096".into(),
    ]);
    a
}

/// The DaemonSet's command, listening on `listen` instead of the node port.
pub fn command(listen: &str) -> Vec<String> {
    let pod = deploy::daemonset_pod();
    let cmd: Vec<String> = pod["containers"][0]["command"]
        .as_array()
        .expect("command")
        .iter()
        .map(|v| v.as_str().expect("argument").to_string())
        .collect();
    assert_eq!(cmd[0], "/profiler", "{cmd:?}");
    let at = cmd.iter().position(|a| a == "--listen").expect("--listen");
    let mut cmd = cmd;
    cmd[at + 1] = listen.to_string();
    // The image's entrypoint is the binary.
    cmd.remove(0);
    cmd
}

/// A detached container, removed (by name) when dropped.
pub struct Container {
    pub name: String,
}

impl Container {
    pub fn start(name: &str, args: &[String], cmd: &[String]) -> Container {
        let _ = podman().args(["rm", "-f", name]).output();
        let out = podman()
            .args(args)
            .args(["-d", "--name", name, &image()])
            .args(cmd)
            .output()
            .expect("podman run");
        assert!(out.status.success(), "podman run: {out:?}");
        Container { name: name.into() }
    }

    pub fn logs(&self) -> String {
        let out = podman()
            .args(["logs", &self.name])
            .output()
            .expect("podman logs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `podman stop` (SIGTERM, SIGKILL after `grace_s`), then the exit code.
    pub fn stop(&self, grace_s: u32) -> Option<i64> {
        let _ = podman()
            .args(["stop", "-t", &grace_s.to_string(), &self.name])
            .output();
        let out = podman()
            .args(["inspect", &self.name, "--format", "{{.State.ExitCode}}"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "2", &self.name]).output();
    }
}

/// Run the image to completion (`--rm`), for a start that must fail.
pub fn run_once(args: &[String], cmd: &[String]) -> Output {
    podman()
        .args(args)
        .args(["--rm", &image()])
        .args(cmd)
        .output()
        .expect("podman run")
}
