//! What the parity tests share: the devices to compare, the error measure and its report, module
//! traversal, a float64 SupCon loss on the host, seeded inputs, and an encoder's forward and
//! backward pass on a device with given weights.

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::store::ModuleRecord;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use supcon_encoder::{Encoder, EncoderConfig};
use supcon_train::device::{DeviceChoice, compiled_in};

/// Relative error allowed between a device and flex.
pub const TOLERANCE: f64 = 1e-4;

/// Names the devices to compare with flex (`ndarray,wgpu`, say); unset: every compiled-in one.
pub const DEVICES_VAR: &str = "SUPCON_PARITY_DEVICES";

/// The devices to compare with flex, the reference; at least one, or the test fails.
fn other_devices() -> Vec<(&'static str, Device)> {
    let wanted = std::env::var(DEVICES_VAR).ok();
    let wanted: Option<Vec<&str>> = wanted.as_deref().map(|list| list.split(',').collect());
    if let Some(list) = &wanted {
        for name in list {
            assert!(
                compiled_in().contains(name),
                "{DEVICES_VAR} names `{name}`, which this build does not have ({:?})",
                compiled_in()
            );
        }
    }
    let devices: Vec<_> = compiled_in()
        .into_iter()
        .filter(|name| *name != "flex")
        .filter(|name| wanted.as_ref().is_none_or(|list| list.contains(name)))
        .map(|name| {
            let device = DeviceChoice::parse(name)
                .and_then(|choice| choice.device())
                .unwrap_or_else(|e| panic!("device {name}: {e}"));
            (name, device)
        })
        .collect();
    assert!(
        !devices.is_empty(),
        "no device to compare with flex ({DEVICES_VAR}={wanted:?}, compiled in: {:?})",
        compiled_in()
    );
    devices
}

/// What a test found, device by device.
#[derive(Default)]
pub struct Report {
    failures: Vec<String>,
}

impl Report {
    /// Prints and returns the relative error of `got` against `want`.
    pub fn measure(&mut self, device: &str, what: &str, got: &[f32], want: &[f32]) -> f64 {
        let error = relative_error(got, want);
        println!("parity {device:>8} | {what:<45} | {error:.2e}");
        error
    }

    /// Prints the relative error and records a failure when it exceeds `tolerance`.
    pub fn check(&mut self, device: &str, what: &str, got: &[f32], want: &[f32], tolerance: f64) {
        let error = self.measure(device, what, got, want);
        self.judge(device, what, error, tolerance);
    }

    /// Records a failure when a measured `error` exceeds `tolerance` (or is NaN).
    pub fn judge(&mut self, device: &str, what: &str, error: f64, tolerance: f64) {
        if error.is_nan() || error > tolerance {
            self.failures.push(format!(
                "{device}: {what}: relative error {error:.3e} > {tolerance:.1e}"
            ));
        }
    }
}

/// Runs `test` on every device but flex, each in turn even when one panics; fails at the end
/// with everything that went wrong.
pub fn for_each_device(test: &str, run: impl Fn(&str, &Device, &mut Report)) {
    let mut report = Report::default();
    for (name, device) in other_devices() {
        let outcome = catch_unwind(AssertUnwindSafe(|| run(name, &device, &mut report)));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            report.failures.push(format!("{name}: panicked: {message}"));
        }
    }
    assert!(
        report.failures.is_empty(),
        "{test}: {} failure(s):\n{}",
        report.failures.len(),
        report.failures.join("\n")
    );
}

/// `max |got - want| / max |want|` (the absolute error where `want` is all zeros); NaN when
/// lengths differ or a value is not finite.
pub fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() || got.iter().chain(want).any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    let difference = got
        .iter()
        .zip(want)
        .map(|(g, w)| (f64::from(*g) - f64::from(*w)).abs())
        .fold(0.0, f64::max);
    let scale = want.iter().map(|w| f64::from(w.abs())).fold(0.0, f64::max);
    if scale > 0.0 {
        difference / scale
    } else {
        difference
    }
}

/// A tensor made from host values.
pub fn upload<const D: usize>(values: &[f32], shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// A tensor's values on the host.
pub fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float tensor")
}

/// Collects `(path, value)` of every float tensor of a module (parameters and running
/// statistics), in traversal order, or of their gradients when `grads` is given.
struct Collector<'a> {
    path: Vec<String>,
    grads: Option<&'a GradientsParams>,
    found: Vec<(String, Vec<f32>)>,
}

impl ModuleVisitor for Collector<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = match self.grads {
            Some(grads) => match grads.get::<D>(param.id) {
                Some(grad) => grad,
                None => return,
            },
            None => param.val().inner(),
        };
        self.found.push((self.path.join("."), values(tensor)));
    }
}

fn collect<M: Module>(module: &M, grads: Option<&GradientsParams>) -> Vec<(String, Vec<f32>)> {
    let mut collector = Collector {
        path: Vec::new(),
        grads,
        found: Vec::new(),
    };
    module.visit(&mut collector);
    collector.found
}

/// Every float tensor of `module`, by path.
pub fn parameter_values<M: Module>(module: &M) -> Vec<(String, Vec<f32>)> {
    collect(module, None)
}

/// The gradient of every parameter of `module` that has one, by path.
pub fn parameter_gradients<M: Module>(
    module: &M,
    grads: &GradientsParams,
) -> Vec<(String, Vec<f32>)> {
    collect(module, Some(grads))
}

/// The SupCon loss (`L_out`, contrast mode all, denominator over every other view) and its
/// gradient with respect to the features, in float64 on the host, written from the formula
/// rather than from the library's code.
///
/// Rows are view-major (`r = v * batch + b`, the reference's `cat(unbind(features, 1))`);
/// `s_rj = z_r · z_j / T`, `q_r` the softmax of `s_r` over `j != r`, `P(r)` the positives of
/// anchor `r`. `loss = mean_r -(T / T_b) / |P(r)| Σ_{p ∈ P(r)} (s_rp - log Σ_{j≠r} exp s_rj)`,
/// and with `c_rj = -(T / T_b) (1[j ∈ P(r)] / |P(r)| - q_rj)`,
/// `∂loss/∂z_k = (Σ_j c_kj z_j + Σ_r c_rk z_r) / (N T)`.
/// `labels` `None` is SimCLR (the positives of a view are the other views of its image).
pub fn host_supcon(
    features: &[f32],
    [batch, views, dim]: [usize; 3],
    labels: Option<&[i64]>,
    temperature: f64,
    base_temperature: f64,
) -> (Vec<f32>, Vec<f32>) {
    let rows = batch * views;
    // Row r = v * batch + b holds features[b, v, :].
    let z: Vec<Vec<f64>> = (0..rows)
        .map(|r| {
            let (v, b) = (r / batch, r % batch);
            let start = (b * views + v) * dim;
            features[start..start + dim]
                .iter()
                .map(|&x| f64::from(x))
                .collect()
        })
        .collect();
    let positive = |r: usize, j: usize| {
        r != j
            && match labels {
                Some(labels) => labels[r % batch] == labels[j % batch],
                None => r % batch == j % batch,
            }
    };
    let scale = temperature / base_temperature;
    let mut loss = 0.0;
    let mut c = vec![vec![0.0f64; rows]; rows];
    for r in 0..rows {
        let logits: Vec<f64> = (0..rows)
            .map(|j| z[r].iter().zip(&z[j]).map(|(a, b)| a * b).sum::<f64>() / temperature)
            .collect();
        let max = (0..rows)
            .filter(|&j| j != r)
            .map(|j| logits[j])
            .fold(f64::NEG_INFINITY, f64::max);
        let partition: f64 = (0..rows)
            .filter(|&j| j != r)
            .map(|j| (logits[j] - max).exp())
            .sum();
        let log_partition = max + partition.ln();
        let count = (0..rows).filter(|&j| positive(r, j)).count() as f64;
        for j in (0..rows).filter(|&j| j != r) {
            let q = (logits[j] - log_partition).exp();
            let p = if positive(r, j) { 1.0 / count } else { 0.0 };
            c[r][j] = -scale * (p - q);
            if positive(r, j) {
                loss -= scale * (logits[j] - log_partition) / count;
            }
        }
    }
    loss /= rows as f64;
    let mut gradient = vec![0.0f32; batch * views * dim];
    for (k, row) in c.iter().enumerate() {
        let (v, b) = (k / batch, k % batch);
        for d in 0..dim {
            let total: f64 = (0..rows).map(|j| (row[j] + c[j][k]) * z[j][d]).sum();
            gradient[(b * views + v) * dim + d] = (total / (rows as f64 * temperature)) as f32;
        }
    }
    (vec![loss as f32], gradient)
}

/// Random values uniform in `[low, high)`, the same for a seed on every run.
pub fn uniform(seed: u64, count: usize, low: f32, high: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count).map(|_| rng.random_range(low..high)).collect()
}

/// An encoder's output, the gradient of `sum(output * weights)` with respect to its input, and
/// the gradients of its parameters, in training mode (BatchNorm on batch statistics).
pub struct Pass {
    pub output: Vec<f32>,
    pub input_gradient: Vec<f32>,
    pub parameter_gradients: Vec<(String, Vec<f32>)>,
}

impl Pass {
    /// `(what, values)` of everything compared.
    pub fn parts(&self) -> Vec<(String, &[f32])> {
        let mut parts = vec![
            ("output".to_string(), &self.output[..]),
            ("input gradient".to_string(), &self.input_gradient[..]),
        ];
        for (path, values) in &self.parameter_gradients {
            parts.push((format!("gradient of {path}"), &values[..]));
        }
        parts
    }
}

/// The encoder of `config` on `device` (autodiff) with the weights of `weights`, through a
/// serialised record, so that its parameters are fresh leaves there (`Module::to_device` would
/// tie them to the original graph).
pub fn replica(config: &EncoderConfig, weights: &Encoder, device: &Device) -> Encoder {
    let bytes = weights
        .clone()
        .into_record()
        .into_bytes()
        .expect("the encoder serialises");
    let record = ModuleRecord::from_bytes(bytes).expect("the record reads back");
    let encoder = config
        .init(device)
        .try_load_record(record)
        .expect("the same architecture");
    // A record keeps its float type: the device's, as the trainer loads checkpoints.
    supcon_head::weights::to_device_float_type(encoder)
}

pub fn forward_backward(
    config: &EncoderConfig,
    weights: &Encoder,
    device: &Device,
    shape: [usize; 4],
    input: &[f32],
) -> Pass {
    let device = device.clone().autodiff();
    let encoder = replica(config, weights, &device);
    let images = upload::<4>(input, shape, &device).require_grad();
    let output = encoder.forward(images.clone());
    let weights = upload::<2>(
        &uniform(5, shape[0] * encoder.width(), -1.0, 1.0),
        [shape[0], encoder.width()],
        &device,
    );
    let grads = (output.clone() * weights).sum().backward();
    let input_gradient = values(images.grad(&grads).expect("input is tracked"));
    let grads = GradientsParams::from_grads(grads, &encoder);
    Pass {
        output: values(output.inner()),
        input_gradient,
        parameter_gradients: parameter_gradients(&encoder, &grads),
    }
}
