//! deploy/ as a cluster and a Prometheus would read it: the manifests
//! against the Kubernetes schemas, the rules through promtool, the
//! PrometheusRule and the plain rule file in step, the seccomp profile's
//! shape. (That every rule and dashboard expression returns data is proven
//! against a live Prometheus in tests/tests/daemon.rs.)
use std::process::Command;

use profiler_tests::deploy;

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let d = deploy::dir();
    for f in ["namespace.yaml", "serviceaccount.yaml", "daemonset.yaml"] {
        let out = Command::new(deploy::venv_bin("kubernetes-validate"))
            .arg("--strict")
            .arg(d.join(f))
            .output()
            .expect("kubernetes-validate");
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("{f}: {}", text.trim());
        assert!(
            out.status.success() && text.contains("passed"),
            "{f}: {out:?}"
        );
    }
    // The operator's kinds: kubernetes-validate has no schema for them and
    // says so (checked here so that a change there is seen).
    for f in ["podmonitor.yaml", "prometheusrule.yaml"] {
        let out = Command::new(deploy::venv_bin("kubernetes-validate"))
            .arg(d.join(f))
            .output()
            .expect("kubernetes-validate");
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("{f}: {}", text.trim());
        assert!(out.status.success(), "{f}: {out:?}");
        let doc = &deploy::yaml(&d.join(f))[0];
        assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1", "{f}");
    }
}

#[test]
fn rules_pass_promtool_and_match_the_prometheusrule() {
    let d = deploy::dir();
    let out = Command::new("/usr/bin/promtool")
        .arg("check")
        .arg("rules")
        .arg(d.join("rules.yaml"))
        .output()
        .expect("promtool is missing: `cargo xtask setup` installs Debian's prometheus");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{}", text.trim());
    assert!(out.status.success() && text.contains("SUCCESS"), "{out:?}");
    let plain = &deploy::yaml(&d.join("rules.yaml"))[0];
    let crd = &deploy::yaml(&d.join("prometheusrule.yaml"))[0];
    assert_eq!(
        plain["groups"], crd["spec"]["groups"],
        "rules.yaml and prometheusrule.yaml differ"
    );
}

#[test]
fn the_pod_is_least_privilege_and_names_the_shipped_seccomp_profile() {
    let pod = deploy::daemonset_pod();
    let sc = &pod["containers"][0]["securityContext"];
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let added: Vec<&str> = sc["capabilities"]["add"]
        .as_array()
        .expect("added")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert_eq!(
        added,
        [
            "BPF",
            "PERFMON",
            "SYS_PTRACE",
            "DAC_READ_SEARCH",
            "NET_ADMIN"
        ]
    );
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "Localhost"
    );
    let profile: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy::dir().join("seccomp/profiler.json")).expect("profile"),
    )
    .expect("profile JSON");
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    let allowed: Vec<&str> = profile["syscalls"][0]["names"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    for need in ["bpf", "perf_event_open", "execve", "epoll_pwait", "accept4"] {
        assert!(allowed.contains(&need), "{need} not allowed");
    }
    // Nothing the daemon never does: no namespaces, mounts, ptrace, modules.
    for never in [
        "unshare",
        "setns",
        "mount",
        "umount2",
        "ptrace",
        "init_module",
        "finit_module",
        "kexec_load",
        "pivot_root",
        "process_vm_readv",
        "keyctl",
        "userfaultfd",
    ] {
        assert!(!allowed.contains(&never), "{never} is allowed");
    }
    assert_eq!(pod["containers"][0]["ports"][0]["containerPort"], 9477);
}
