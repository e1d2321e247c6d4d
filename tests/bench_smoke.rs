//! The load generator cannot rot: the real `authd serve`, a real user, and every `authd bench`
//! scenario for a few hundred requests. Asserts zero errors and the JSON shape scripts depend
//! on — never a speed (figures belong in BENCHMARKS.md).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on the unexpected

#[path = "support/binary.rs"]
mod binary;

use std::process::Command;

use binary::{Server, run_with_stdin};
use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery staple";

fn authd(dir: &TempDir, args: &[&str]) -> Command {
    let mut cmd = binary::authd(&format!(
        "sqlite://{}",
        dir.path().join("authd.db").display()
    ));
    cmd.args(args)
        .current_dir(dir.path())
        // The load generator sends everything from 127.0.0.1, and logs one user in from many
        // workers at once: each in-flight attempt is charged to the user's failure counter
        // before its password is checked, so the per-username throttle must be out of reach.
        .env("AUTHD_PER_SOURCE_RATE", "0")
        .env("AUTHD_THROTTLE_FREE_FAILURES", "1000000");
    cmd
}

fn bench(dir: &TempDir, addr: &str, scenario: &str, pid: u32, extra: &[&str]) -> serde_json::Value {
    let pid = pid.to_string();
    let mut args = vec![
        "bench",
        scenario,
        "--addr",
        addr,
        "--concurrency",
        "8",
        "--requests",
        "200",
        "--duration",
        "120s",
        "--pid",
        &pid,
        "--json",
    ];
    if scenario != "noop" {
        args.extend(["--user", "alice", "--password-stdin"]);
    }
    args.extend(extra);
    let out = run_with_stdin(authd(dir, &args), &format!("{PASSWORD}\n"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "bench {scenario} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON object on one line: {stdout}"
    );
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn every_bench_scenario_runs_without_errors_and_prints_the_documented_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_stdin(
        authd(&dir, &["user", "add", "alice", "--password-stdin"]),
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start(authd(&dir, &["serve", "--grpc-addr", "127.0.0.1:0"]));
    let (addr, pid) = (server.addr.clone(), server.pid());

    for scenario in ["noop", "login", "refresh", "mixed"] {
        let report = bench(&dir, &addr, scenario, pid, &[]);
        assert_eq!(report["scenario"], scenario);
        assert_eq!(report["errors"], 0, "{scenario}: {report}");
        assert_eq!(report["requests"], 200, "{scenario}: {report}");
        for key in ["rps", "p50_ms", "p90_ms", "p99_ms", "max_ms"] {
            assert!(
                report[key].as_f64().is_some_and(|v| v >= 0.0),
                "{scenario}: {key} in {report}"
            );
        }
        assert!(
            report["server_rss_after_kib"]
                .as_u64()
                .is_some_and(|v| v > 0)
        );
        // The highest sample, split into the server's own memory and mapped files.
        let kib = |key: &str| report[key].as_u64().unwrap_or_default();
        let (anon, file) = (
            kib("server_rss_max_anon_kib"),
            kib("server_rss_max_file_kib"),
        );
        assert!(anon > 0 && file > 0, "{scenario}: {report}");
        assert!(
            anon + file <= kib("server_rss_max_kib"),
            "{scenario}: {report}"
        );
    }

    // The server's memory over the run, drawn (issue 24).
    let memory_svg = dir.path().join("memory.svg");
    let report = bench(
        &dir,
        &addr,
        "refresh",
        pid,
        &["--memory-svg", memory_svg.to_str().unwrap()],
    );
    assert_eq!(report["errors"], 0, "{report}");
    let drawing = std::fs::read_to_string(&memory_svg).unwrap();
    assert!(drawing.starts_with("<svg"), "{drawing}");
    for text in ["refresh: server memory", "own memory (RssAnon)", "RSS"] {
        assert!(drawing.contains(text), "{text} drawn");
    }

    // Refresh alone, then beside a garbage-Logout flood (issue 16): both rates, the flood's
    // answers (Logout of an unknown token succeeds: RFC 7009), zero refresh errors.
    let report = bench(&dir, &addr, "logout-flood", pid, &["--garbage-rate", "200"]);
    assert_eq!(report["scenario"], "logout-flood");
    for key in ["refresh_rps_alone", "refresh_rps_flooded"] {
        assert!(
            report[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {report}"
        );
    }
    for run in ["alone", "flooded"] {
        assert_eq!(report[run]["errors"], 0, "{run}: {report}");
        assert_eq!(report[run]["requests"], 200, "{run}: {report}");
    }
    let flood = &report["garbage_logouts"];
    assert!(flood["sent"].as_u64().is_some_and(|n| n > 0), "{report}");
    assert_eq!(flood["by_code"]["Ok"], flood["sent"], "{report}");
    // The same scenarios over the HTTP/JSON routes (issue 17).
    let http_addr = server.http_addr.clone();
    for scenario in ["noop", "login", "refresh", "mixed"] {
        let report = bench(
            &dir,
            &addr,
            scenario,
            pid,
            &["--protocol", "http", "--http-addr", &http_addr],
        );
        assert_eq!(report["protocol"], "http", "{report}");
        assert_eq!(report["errors"], 0, "{scenario} over HTTP: {report}");
        assert_eq!(report["requests"], 200, "{scenario} over HTTP: {report}");
    }

    // Logins spread over several users, created by the load generator where missing.
    let report = bench(&dir, &addr, "login", pid, &["--users", "3"]);
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["requests"], 200, "{report}");
    // The argon2id limit, measured one core at a time and all cores at once, with the ratios.
    for key in [
        "argon2_single_core_per_s",
        "login_limit_rps",
        "login_ratio_to_limit",
        "argon2_all_cores_per_s",
        "login_ratio_to_all_cores",
    ] {
        assert!(
            report[key].as_f64().is_some_and(|v| v > 0.0),
            "{key} in {report}"
        );
    }
    let users = authd(&dir, &["user", "list"]).output().unwrap();
    let users = String::from_utf8(users.stdout).unwrap();
    for name in ["alice-0", "alice-1", "alice-2"] {
        assert!(users.contains(name), "{name} in {users}");
    }
}

#[test]
fn bench_without_a_user_for_a_login_scenario_is_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_stdin(
        authd(&dir, &["bench", "refresh", "--addr", "127.0.0.1:1"]),
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_sweep_runs_each_level_in_turn_and_draws_throughput_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_stdin(
        authd(&dir, &["user", "add", "alice", "--password-stdin"]),
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success());
    let server = Server::start(authd(&dir, &["serve", "--grpc-addr", "127.0.0.1:0"]));
    let svg = dir.path().join("sweep.svg");
    let args = [
        "bench",
        "refresh",
        "--addr",
        &server.addr,
        "--sweep",
        "1,2,4",
        "--requests",
        "60",
        "--user",
        "alice",
        "--password-stdin",
        "--json",
        "--svg",
        svg.to_str().unwrap(),
    ];
    let out = run_with_stdin(authd(&dir, &args), &format!("{PASSWORD}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sweep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sweep["scenario"], "sweep");
    assert_eq!(sweep["of"], "refresh");
    let points = sweep["points"].as_array().unwrap();
    let levels: Vec<_> = points.iter().map(|p| p["concurrency"].clone()).collect();
    assert_eq!(levels, [1, 2, 4]);
    for point in points {
        assert_eq!(point["requests"], 60, "{point}");
        assert_eq!(point["errors"], 0, "{point}");
    }
    let drawing = std::fs::read_to_string(&svg).unwrap();
    assert!(drawing.starts_with("<svg"), "{drawing}");
    for text in ["refresh: throughput", "refresh: latency", "p50", "p99"] {
        assert!(drawing.contains(text), "{text} drawn");
    }

    // A level that is not a concurrency is refused before anything runs.
    let out = authd(&dir, &["bench", "noop", "--sweep", "4,0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"0\" is not a concurrency"));
}
