//! Network namespaces, veths and the node bridge, through iproute2.
use std::{
    io::Write,
    process::{Command, Stdio},
};

use super::TestbedError;

/// Run a command, turning a failure into an error that shows its stderr.
pub fn run(cmd: &mut Command) -> Result<String, TestbedError> {
    run_with_input(cmd, &[])
}

/// Run a command with `input` on its stdin (none when empty).
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Result<String, TestbedError> {
    let failed = |cmd: &Command, e: std::io::Error| TestbedError::Command {
        cmd: format!("{cmd:?}"),
        detail: e.to_string(),
    };
    let out = if input.is_empty() {
        cmd.output().map_err(|e| failed(cmd, e))?
    } else {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(cmd, e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).map_err(|e| failed(cmd, e))?;
        }
        child.wait_with_output().map_err(|e| failed(cmd, e))?
    };
    if !out.status.success() {
        return Err(TestbedError::Command {
            cmd: format!("{cmd:?}"),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn ip(args: &[&str]) -> Result<String, TestbedError> {
    run(Command::new("ip").args(args))
}

/// `ip -n <ns> ...`
pub fn ip_in(ns: &str, args: &[&str]) -> Result<String, TestbedError> {
    run(Command::new("ip").arg("-n").arg(ns).args(args))
}

/// A command run inside a namespace (`ip netns exec`).
pub fn exec_in(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

pub fn add(ns: &str) -> Result<(), TestbedError> {
    ip(&["netns", "add", ns])?;
    ip_in(ns, &["link", "set", "lo", "up"])?;
    Ok(())
}

pub fn exists(ns: &str) -> bool {
    std::path::Path::new("/run/netns").join(ns).exists()
}

pub fn delete(ns: &str) -> Result<(), TestbedError> {
    if exists(ns) {
        ip(&["netns", "del", ns])?;
    }
    Ok(())
}

/// A bridge inside the node namespace: pods talk through it, the host's own
/// interfaces never see their traffic.
pub fn add_bridge(node_ns: &str, bridge: &str) -> Result<(), TestbedError> {
    ip_in(node_ns, &["link", "add", bridge, "type", "bridge"])?;
    ip_in(node_ns, &["link", "set", bridge, "up"])?;
    Ok(())
}

/// eth0 in the pod, its peer on the node bridge.
pub fn add_pod_link(
    node_ns: &str,
    bridge: &str,
    pod_ns: &str,
    peer: &str,
    cidr: &str,
) -> Result<(), TestbedError> {
    ip_in(
        node_ns,
        &[
            "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", pod_ns,
        ],
    )?;
    ip_in(node_ns, &["link", "set", peer, "master", bridge, "up"])?;
    ip_in(pod_ns, &["addr", "add", cidr, "dev", "eth0"])?;
    ip_in(pod_ns, &["link", "set", "eth0", "up"])?;
    Ok(())
}
