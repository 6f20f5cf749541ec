//! Backend parity, reduced precision: a device computing in f16 or bf16 (`--precision`) against
//! a float32 device, on the SupCon loss and both encoder families forward and backward, to the
//! tolerances [`tolerance`] states (and why).
//!
//! A device's float type is set once per process, so each precision runs in a child process of
//! this test binary (`reduced_precision_matches_float32`). The device under test is flex (the
//! float32 reference ndarray) unless `SUPCON_PARITY_PRECISION_DEVICE` names another (the
//! reference is then flex), for example on a machine with a GPU:
//!
//! ```text
//! SUPCON_PARITY_PRECISION_DEVICE=vulkan cargo test -p supcon-train --features vulkan \
//!     --test parity_precision -- --nocapture
//! ```
//!
//! The measure is the parity suite's, `max |got - want| / max |want|` over a whole tensor, for
//! the loss and the outputs; gradients are compared norm-wise ([`norm_error`] says why).
#![cfg(all(
    feature = "flex",
    any(
        feature = "ndarray",
        feature = "wgpu",
        feature = "vulkan",
        feature = "cuda"
    )
))]

#[allow(dead_code)]
mod parity_support;

use std::process::Command;

use burn::prelude::*;
use supcon_encoder::{Architecture, EncoderConfig};
use supcon_loss::{Positives, SupConLossConfig};
use supcon_train::device::{DeviceChoice, Precision};

use parity_support::{forward_backward, host_supcon, relative_error, uniform, upload, values};

/// Names the device under test (default: flex).
const DEVICE_VAR: &str = "SUPCON_PARITY_PRECISION_DEVICE";
/// Set by the parent test for its children: the precision a child runs.
const CHILD_VAR: &str = "SUPCON_PARITY_PRECISION_CHILD";

/// The error allowed for `what` at `precision`, in units of the type's unit roundoff `u`
/// (2^-11 for f16, 2^-8 for bf16); for outputs and gradients about twice what was measured
/// here (2026-11-30, flex):
///
/// - the loss sees only its inputs rounded (it computes in float32): 8 `u`, a bound rather than
///   a margin (measured 0.01 `u` at f16, 0.02 `u` at bf16);
/// - an encoder's output accumulates roundings through every layer: 40 `u` (measured 2-16 `u`
///   at f16, 2-17 `u` at bf16);
/// - the small CNN's gradients (input and parameters, norm-wise): 200 `u` at f16 (measured
///   100 `u`), 80 `u` at bf16 (38 `u`). That f16 does worse per `u` is probably its range:
///   gradients below its smallest normal number (6.1e-5) lose digits, where bf16 has float32's
///   range; PyTorch's AMP scales the loss against this, Burn 0.22 has no loss scaling.
///
/// ResNet-18's gradients are printed, not judged: at a batch of 2 its last BatchNorm layers see
/// 8 values per channel, and its gradients differ from float32 by 0.2 norm-wise at f16 and 0.5
/// at bf16 (measured), too far for a bound to catch a broken kernel.
fn tolerance(precision: Precision, what: Workload) -> Option<f64> {
    let f16 = precision == Precision::F16;
    let unit_roundoff = if f16 { 2f64.powi(-11) } else { 2f64.powi(-8) };
    let units = match what {
        Workload::Loss => 8.0,
        Workload::EncoderOutput => 40.0,
        Workload::SmallGradient if f16 => 200.0,
        Workload::SmallGradient => 80.0,
        Workload::ResNetGradient => return None,
    };
    Some(units * unit_roundoff)
}

#[derive(Clone, Copy)]
enum Workload {
    Loss,
    EncoderOutput,
    SmallGradient,
    ResNetGradient,
}

/// Runs the comparison for f16 and bf16, each in a child process of this binary.
#[test]
fn reduced_precision_matches_float32() {
    let exe = std::env::current_exe().unwrap();
    let mut failed = Vec::new();
    for precision in ["f16", "bf16"] {
        let out = Command::new(&exe)
            .args([
                "precision_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_VAR, precision)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{stdout}");
        if !(out.status.success() && stdout.contains("1 passed")) {
            failed.push(format!("{precision}: {stdout}\n{stderr}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// One precision's comparison; run by [`reduced_precision_matches_float32`] in a process of its
/// own.
#[test]
#[ignore = "run by reduced_precision_matches_float32 in a child process"]
fn precision_child() {
    let precision = match std::env::var(CHILD_VAR).as_deref() {
        Ok("f16") => Precision::F16,
        Ok("bf16") => Precision::Bf16,
        other => panic!("{CHILD_VAR} must be f16 or bf16, got {other:?}"),
    };
    let name = std::env::var(DEVICE_VAR).unwrap_or_else(|_| "flex".into());
    let reference_name = if name == "flex" { "ndarray" } else { "flex" };
    let tested = DeviceChoice::parse(&name)
        .and_then(|choice| choice.device_with(precision))
        .unwrap_or_else(|e| panic!("{name} at {precision}: {e}"));
    let reference = DeviceChoice::parse(reference_name)
        .and_then(|choice| choice.device_with(Precision::F32))
        .unwrap_or_else(|e| panic!("the float32 reference {reference_name}: {e}"));

    let mut failures = Vec::new();
    let mut judge = |what: &str, error: f64, workload: Workload| {
        let Some(allowed) = tolerance(precision, workload) else {
            println!("parity {name} {precision:>4} | {what:<48} | {error:.2e} (printed only)");
            return;
        };
        println!("parity {name} {precision:>4} | {what:<48} | {error:.2e} (allowed {allowed:.1e})");
        if error.is_nan() || error > allowed {
            failures.push(format!("{what}: {error:.3e} > {allowed:.1e}"));
        }
    };

    // The loss: its value against the float64 host loss of the float32 features.
    let shape = [16, 2, 32];
    let labels: Vec<i64> = (0..16).map(|i| i % 4).collect();
    let features = unit_rows(21, shape);
    let (want, _) = host_supcon(&features, shape, Some(&labels), 0.1, 0.07);
    let loss = SupConLossConfig::new()
        .with_temperature(0.1)
        .with_base_temperature(0.07)
        .init();
    let got = loss.forward(
        upload::<3>(&features, shape, &tested),
        Positives::Labels(Tensor::from_ints(labels.as_slice(), &tested)),
    );
    judge(
        "SupCon loss [16, 2, 32]",
        relative_error(&values(got), &want),
        Workload::Loss,
    );

    // Both encoders, the same weights: output, input gradient, every parameter gradient.
    for (architecture, input_shape) in [
        (Architecture::Small, [4, 1, 28, 28]),
        (Architecture::ResNet18, [2, 3, 16, 16]),
    ] {
        let config = EncoderConfig::new(architecture).with_in_channels(input_shape[1]);
        let weights = {
            reference.seed(11);
            config.init(&reference)
        };
        let input = uniform(4, input_shape.iter().product(), -1.0, 1.0);
        let want = forward_backward(&config, &weights, &reference, input_shape, &input);
        let got = forward_backward(&config, &weights, &tested, input_shape, &input);
        let arch = architecture.name();
        let gradient = match architecture {
            Architecture::Small => Workload::SmallGradient,
            _ => Workload::ResNetGradient,
        };
        judge(
            &format!("{arch} output"),
            relative_error(&got.output, &want.output),
            Workload::EncoderOutput,
        );
        judge(
            &format!("{arch} input gradient (norm-wise)"),
            norm_error(&got.input_gradient, &want.input_gradient),
            gradient,
        );
        let worst = got
            .parameter_gradients
            .iter()
            .zip(&want.parameter_gradients)
            .map(|((_, g), (_, w))| norm_error(g, w))
            .fold(
                0.0,
                |worst: f64, e| if e.is_nan() { e } else { worst.max(e) },
            );
        assert_eq!(
            got.parameter_gradients.len(),
            want.parameter_gradients.len()
        );
        judge(
            &format!("{arch} parameter gradients (worst, norm-wise)"),
            worst,
            gradient,
        );
    }
    assert!(
        failures.is_empty(),
        "{name} at {precision}:\n{}",
        failures.join("\n")
    );
}

/// `||got - want|| / ||want||` (Euclidean norms); NaN when lengths differ or a value is not
/// finite. Gradients are compared this way: a ReLU unit whose pre-activation lies within a
/// rounding of zero passes its gradient on one device and not on the other, and at f16 and bf16
/// many do, which moves single entries far (the largest-entry measure gave 0.13-0.55 at f16).
fn norm_error(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() || got.iter().chain(want).any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    let squared = |values: &mut dyn Iterator<Item = f64>| values.map(|v| v * v).sum::<f64>();
    let difference = squared(
        &mut got
            .iter()
            .zip(want)
            .map(|(g, w)| f64::from(*g) - f64::from(*w)),
    );
    let scale = squared(&mut want.iter().map(|w| f64::from(*w)));
    if scale > 0.0 {
        (difference / scale).sqrt()
    } else {
        difference.sqrt()
    }
}

/// `[batch, views, dim]` rows of unit length.
fn unit_rows(seed: u64, [batch, views, dim]: [usize; 3]) -> Vec<f32> {
    let mut values = uniform(seed, batch * views * dim, -1.0, 1.0);
    for row in values.chunks_mut(dim) {
        let length = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= length);
    }
    values
}
