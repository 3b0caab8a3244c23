//! The files under deploy/, read as the cluster would read them.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .canonicalize()
        .expect("deploy/ beside tests/")
}

/// The Python environment `cargo xtask setup` makes for kubernetes-validate
/// (which brings PyYAML).
pub fn venv_bin(tool: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    let bin = home.join(".cache/sidecar-profiler/venv/bin").join(tool);
    assert!(
        bin.exists(),
        "{} is missing: `cargo xtask setup` installs kubernetes-validate in that venv",
        bin.display()
    );
    bin
}

/// Every document of a YAML file, as JSON.
pub fn yaml(path: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(venv_bin("python"))
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(path)
        .output()
        .expect("run python");
    assert!(out.status.success(), "{}: {out:?}", path.display());
    serde_json::from_slice(&out.stdout).expect("JSON from python")
}

/// The DaemonSet's pod spec.
pub fn daemonset_pod() -> serde_json::Value {
    let docs = yaml(&dir().join("daemonset.yaml"));
    docs[0]["spec"]["template"]["spec"].clone()
}
