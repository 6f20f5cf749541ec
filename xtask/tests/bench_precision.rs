//! `cargo xtask bench --precision`: our side runs in the float type asked for, the JSON says so,
//! and a type the device lacks is refused (each run its own process: a device's float type is
//! set once per process).

use std::process::Command;

#[test]
fn bench_runs_at_the_precision_asked_for_and_records_it() {
    let dir = std::env::temp_dir().join(format!("supcon-bench-precision-{}", std::process::id()));
    let out = dir.join("results.json");
    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "bench",
            "--quick",
            "--only",
            "loss_b256",
            "--devices",
            "flex",
        ])
        .args(["--precision", "bf16", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(results["precision"], "bf16");
    let figure = &results["devices"][0]["figures"][0];
    assert_eq!(figure["key"], "loss_b256");
    assert!(figure["median_s"].as_f64().unwrap() > 0.0, "{figure}");
    std::fs::remove_dir_all(&dir).unwrap();

    let refused = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "bench",
            "--quick",
            "--devices",
            "flex",
            "--precision",
            "flex32",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the flex device cannot compute in flex32"),
        "{stderr}"
    );
}
