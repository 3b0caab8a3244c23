//! `meshbox bench` in a seconds-long smoke mode, so it cannot rot: every
//! part runs to the end and prints its figures. No figure is judged here
//! (machines are noisy); only that each was measured.
use std::process::Command;

use profiler_tests::{meshbox_bin, require_root};

#[test]
fn bench_smoke_runs_every_part_and_writes_the_users_view() {
    require_root();
    let json = std::env::temp_dir().join(format!("bench-users-{}.json", std::process::id()));
    let out = Command::new(meshbox_bin())
        .args(["bench", "--seconds", "1", "--rounds", "1"])
        .args(["--sidecars", "1", "--daemon-seconds", "2"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run meshbox bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "meshbox bench failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for line in [
        "untracked",
        "daemon (`profiler run` as its own process",
        "user's view",
        "CPU per request at the highest rate",
        "goal: throughput loss",
        "goal: fixed-rate client p99",
        "goal: throughput with the pod edge's classifiers",
        "pod edge classifiers (--pod-edge):",
        "a program that only tests whether the incoming task is followed",
        "the floor of following threads through their switches",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    let text = std::fs::read_to_string(&json).expect("the --json file");
    let _ = std::fs::remove_file(&json);
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let arms = v["arms"].as_array().expect("arms");
    assert_eq!(arms.len(), 4, "{text}");
    for a in arms {
        for key in ["max_rps", "p50_us", "p99_us"] {
            let x = a[key][0].as_f64().unwrap_or(0.0);
            assert!(x > 0.0, "{} {key} not measured: {text}", a["arm"]);
        }
        let cpu = &a["cpu_per_request"][0];
        assert!(
            cpu["machine_us"].as_f64().unwrap_or(0.0) > 0.0
                && cpu["pods_us"].as_f64().unwrap_or(0.0) > 0.0,
            "{} CPU per request not measured: {text}",
            a["arm"]
        );
        if a["arm"].as_str().unwrap_or("").starts_with("profiler") {
            assert!(
                cpu["daemon_us"].as_f64().unwrap_or(0.0) > 0.0,
                "{}: the daemon's CPU not measured: {text}",
                a["arm"]
            );
        }
    }
    assert!(
        v["profiler_forwards"].as_f64().unwrap_or(0.0) > 0.0,
        "the daemon recorded no forward while its arm ran: {text}"
    );
    for key in ["empty", "profiler", "edge"] {
        assert!(
            v[key]["throughput"]["median"].as_f64().unwrap_or(0.0) > 0.0,
            "no {key} ratio: {text}"
        );
    }
    let goals = v["goals"].as_array().expect("goals");
    assert_eq!(goals.len(), 3, "{text}");
    for g in goals {
        let verdict = g["verdict"].as_str().unwrap_or("");
        assert!(
            ["met", "missed", "not_judgeable"].contains(&verdict),
            "a goal without a verdict: {text}"
        );
    }
}

#[test]
fn arms_are_checked_before_anything_runs() {
    require_root();
    for (args, says) in [
        (
            &["--part", "users", "--arms", "edge"][..],
            "two arms or more",
        ),
        (
            &["--part", "daemon", "--arms", "profiler,edge"][..],
            "--part users or all",
        ),
        (
            &["--part", "users", "--arms", "profiler,nothing"][..],
            "invalid value",
        ),
    ] {
        let out = Command::new(meshbox_bin())
            .arg("bench")
            .args(args)
            .output()
            .expect("run meshbox bench");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: no {says:?} in {stderr}");
    }
}
