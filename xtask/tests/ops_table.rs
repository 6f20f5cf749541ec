//! `cargo xtask ops`: every operation kind of the ResNet-18 step gets a row, for every distinct
//! convolution shape, and the per-kind summary adds them up (PyTorch kept out: no `PATH`).

use std::process::Command;

#[test]
fn ops_prints_every_operation_of_the_step() {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["ops", "--batch", "2", "--repeats", "1"])
        .env("PATH", "")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (kind, rows) in [
        ("| conv forward |", 11),
        ("| conv input gradient |", 11),
        ("| conv weight gradient |", 11),
        ("| BatchNorm forward + backward |", 4),
        ("| ReLU forward + backward |", 4),
    ] {
        // One row per shape, and one in the summary by kind.
        assert_eq!(stdout.matches(kind).count(), rows + 1, "{kind}\n{stdout}");
    }
    assert!(stdout.contains("| all of the above |"), "{stdout}");
    assert!(stdout.contains("PyTorch: not run"), "{stdout}");
}
