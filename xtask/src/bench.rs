//! `cargo xtask bench`: how fast the pieces are, on every compiled-in device, side by side with
//! PyTorch on the same machine (`xtask/python/bench.py`) when `python3 -c "import torch"` works.
//!
//! Every workload runs a few warm-up repetitions, then timed ones; the figures are median, min
//! and max seconds per repetition and, where it means something, items per second of the
//! median. The first warm-up repetition's time is kept apart: it holds what a device does on
//! the first use of each shape (on the GPU backends, compiling the kernels and Burn's autotune
//! tuning every convolution and matmul; allocation and caches elsewhere). The SupCon loss also reports the peak of live
//! host memory during one forward and backward pass (allocator counters; on a GPU device this
//! is only the host side).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use serde_json::{Value, json};
use supcon_augment::{ViewPipeline, ViewPipelineConfig};
use supcon_encoder::{Architecture, EncoderConfig};
use supcon_head::{CrossEntropyNetConfig, SupConModelConfig};
use supcon_loss::cross_entropy::CrossEntropyLossConfig;
use supcon_loss::{Positives, SupConLossConfig, by_image};
use supcon_train::config::{OptimizerKind, RunConfig};
use supcon_train::device::{
    DeviceChoice, Precision, backend_features, compiled_in, supcon_kernels,
};
use supcon_train::optim::Optimizer;

use crate::alloc;

/// How long the bench runs.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Untimed repetitions first.
    pub warmup: usize,
    /// Timed repetitions.
    pub repeats: usize,
    /// Run the PyTorch side when torch imports.
    pub pytorch: bool,
    /// Batch sizes are divided by this (at least 8 remain): 1 for the real figures.
    pub shrink: usize,
    /// Only the workload with this key (`--only KEY`, for profiling), `None`: all.
    pub only: Option<&'static str>,
}

impl Plan {
    /// The full bench.
    pub const FULL: Plan = Plan {
        warmup: 2,
        repeats: 10,
        pytorch: true,
        shrink: 1,
        only: None,
    };
    /// `--quick`: a smoke run, one repetition of every workload at an eighth of the batch
    /// sizes, no PyTorch.
    pub const QUICK: Plan = Plan {
        warmup: 0,
        repeats: 1,
        pytorch: false,
        shrink: 8,
        only: None,
    };

    fn wants(&self, key: &str) -> bool {
        self.only.is_none_or(|only| only == key)
    }

    fn batch(&self, size: usize) -> usize {
        (size / self.shrink).max(8)
    }
}

/// One measured workload.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Stable key, shared with the PyTorch script.
    pub key: &'static str,
    /// What was measured.
    pub what: String,
    /// Seconds per repetition, sorted.
    pub seconds: Vec<f64>,
    /// Seconds of the first, untimed repetition (none without warm-up).
    pub first_seconds: Option<f64>,
    /// Items (images or samples) per repetition, for a rate.
    pub items: Option<(usize, &'static str)>,
    /// Peak live host bytes above the starting point, when measured.
    pub peak_bytes: Option<usize>,
}

impl Figure {
    fn median(&self) -> f64 {
        self.seconds[self.seconds.len() / 2]
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "key": self.key,
            "what": self.what,
            "median_s": self.median(),
            "min_s": self.seconds[0],
            "max_s": self.seconds[self.seconds.len() - 1],
        });
        if let Some((n, unit)) = self.items {
            v["items"] = json!(n);
            v["unit"] = json!(unit);
            v["per_second"] = json!(n as f64 / self.median());
        }
        if let Some(bytes) = self.peak_bytes {
            v["peak_bytes"] = json!(bytes);
        }
        if let Some(first) = self.first_seconds {
            v["first_s"] = json!(first);
        }
        v
    }
}

/// Seconds of `plan.repeats` runs of `work` after `plan.warmup` untimed ones, sorted, and the
/// first untimed run's seconds (the device synchronised after each).
pub(crate) fn time(plan: Plan, device: &Device, mut work: impl FnMut()) -> (Option<f64>, Vec<f64>) {
    let mut first = None;
    for _ in 0..plan.warmup {
        let start = Instant::now();
        work();
        let _ = device.sync();
        first.get_or_insert(start.elapsed().as_secs_f64());
    }
    let mut seconds: Vec<f64> = (0..plan.repeats)
        .map(|_| {
            let start = Instant::now();
            work();
            let _ = device.sync();
            start.elapsed().as_secs_f64()
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    (first, seconds)
}

/// The demo's configuration (its recipe), which the demo-step workload reproduces.
fn demo_config() -> RunConfig {
    supcon_train::runs::demo_config(Default::default()).expect("the demo recipe is valid")
}

/// Runs every workload on `device`.
pub fn run_device(device: &Device, plan: Plan) -> Vec<Figure> {
    let mut figures = Vec::new();
    let train = device.clone().autodiff();

    // 1. SupCon loss, forward + backward.
    for (key, batch) in [("loss_b256", 256usize), ("loss_b1024", 1024)] {
        if !plan.wants(key) {
            continue;
        }
        let batch = plan.batch(batch);
        let loss = SupConLossConfig::new().with_temperature(0.1).init();
        let raw = Tensor::<3>::random([batch, 2, 128], Distribution::Normal(0.0, 1.0), &train);
        let features = raw.clone().div(raw.square().sum_dim(2).sqrt()).detach();
        let labels: Vec<i64> = (0..batch as i64).map(|i| (i * 7) % 10).collect();
        let labels = Tensor::<1, Int>::from_ints(labels.as_slice(), &train);
        let step = || {
            let f = features.clone().require_grad();
            let value = loss.forward(f.clone(), Positives::Labels(labels.clone()));
            let grads = value.backward();
            f.grad(&grads).expect("gradient").into_data();
        };
        let (first_seconds, seconds) = time(plan, device, step);
        let before = alloc::reset_peak();
        step();
        let peak = alloc::peak() - before;
        figures.push(Figure {
            key,
            what: format!("SupCon loss forward + backward, features [{batch}, 2, 128], 10 classes"),
            seconds,
            first_seconds,
            items: Some((batch, "samples")),
            peak_bytes: Some(peak),
        });
    }

    // 2. Augmentation: two SupCon-recipe views of 256 images 3x32x32.
    let config =
        ViewPipelineConfig::supcon(vec![0.4914, 0.4822, 0.4465], vec![0.2023, 0.1994, 0.2010]);
    if plan.wants("augment_256x3x32x32") {
        let images_n = plan.batch(256);
        let images = Tensor::<4>::random(
            [images_n, 3, 32, 32],
            Distribution::Uniform(0.0, 1.0),
            device,
        );
        let pipeline = ViewPipeline::new(config.clone());
        let mut seed = 0;
        let (first_seconds, seconds) = time(plan, device, || {
            seed += 1;
            pipeline
                .views(images.clone(), 2, seed)
                .expect("valid")
                .into_data();
        });
        figures.push(Figure {
            key: "augment_256x3x32x32",
            what: format!("two SupCon-recipe views of {images_n} images 3x32x32"),
            seconds,
            first_seconds,
            items: Some((2 * images_n, "views")),
            peak_bytes: None,
        });
    }

    // 3. Encoder training steps (encoder + linear classifier, cross-entropy, SGD).
    for (key, arch, channels, side, batch) in [
        (
            "step_small_1x28x28_b256",
            Architecture::Small,
            1,
            28,
            256usize,
        ),
        (
            "step_resnet18_3x32x32_b64",
            Architecture::ResNet18,
            3,
            32,
            64,
        ),
    ] {
        if !plan.wants(key) {
            continue;
        }
        let batch = plan.batch(batch);
        let mut model =
            CrossEntropyNetConfig::new(EncoderConfig::new(arch).with_in_channels(channels), 10)
                .init(&train);
        let mut optim = Optimizer::new(OptimizerKind::Sgd, 0.9, 1e-4, true);
        let ce = CrossEntropyLossConfig::new().init(&train);
        let x = Tensor::<4>::random(
            [batch, channels, side, side],
            Distribution::Normal(0.0, 1.0),
            &train,
        );
        let labels: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
        let y = Tensor::<1, Int>::from_ints(labels.as_slice(), &train);
        let (first_seconds, seconds) = time(plan, device, || {
            let loss = ce.forward(model.forward(x.clone()), y.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(0.01, model.clone(), grads);
        });
        figures.push(Figure {
            key,
            what: format!(
                "{} training step (forward, backward, SGD), {batch} x {channels}x{side}x{side}",
                arch.name()
            ),
            seconds,
            first_seconds,
            items: Some((batch, "images")),
            peak_bytes: None,
        });
    }

    // 4. Whole SupCon steps: batch to tensor, two views, forward, loss, backward, SGD.
    let mut demo = demo_config();
    let digits = supcon_data::embedded_mnist()
        .expect("embedded digits")
        .train;
    let measured = supcon_train::dataset::ChannelStatistics::measure(&digits);
    (demo.data.mean, demo.data.std) = (measured.mean, measured.std);
    let demo_views = supcon_train::run::pretrain_view_config(&demo, 1);
    let cifar_like = {
        let pixels: Vec<u8> = (0..64 * 3 * 32 * 32)
            .map(|i| ((i * 2654435761usize) >> 13) as u8)
            .collect();
        supcon_data::ImageDataset::new(
            pixels,
            (0..64u32).map(|i| i % 10).collect(),
            [3, 32, 32],
            (0..10).map(|c| c.to_string()).collect(),
            Path::new("synthetic"),
        )
        .expect("consistent synthetic data")
    };
    for (key, what, data, arch, batch, views_config) in [
        (
            "supcon_step_demo",
            format!(
                "SupCon step, the demo's settings: small CNN, BATCH x 1x28x28 digits, views {}x{}",
                demo.data.size.unwrap_or(28),
                demo.data.size.unwrap_or(28)
            ),
            &digits,
            Architecture::Small,
            demo.data.batch_size,
            demo_views.clone(),
        ),
        (
            "supcon_step_resnet18_3x32x32_b64",
            "SupCon step, ResNet-18, BATCH x 3x32x32, the reference's augmentation".to_string(),
            &cifar_like,
            Architecture::ResNet18,
            64,
            config.clone(),
        ),
    ] {
        if !plan.wants(key) {
            continue;
        }
        let batch = plan.batch(batch);
        let channels = data.image_shape()[0];
        let mut model = SupConModelConfig::new(EncoderConfig::new(arch).with_in_channels(channels))
            .init(&train);
        let mut optim = Optimizer::new(OptimizerKind::Sgd, 0.9, 1e-4, true);
        let loss = SupConLossConfig::new().with_temperature(0.1).init();
        let pipeline = ViewPipeline::new(views_config);
        let indices: Vec<usize> = (0..batch).map(|i| i % data.len()).collect();
        let mut seed = 0;
        let (first_seconds, seconds) = time(plan, device, || {
            seed += 1;
            let batch_data = data.batch(&indices, device).expect("valid indices");
            let views = pipeline.views(batch_data.images, 2, seed).expect("valid");
            let features = by_image(model.forward(views.autodiff()), 2);
            let value = loss.forward(features, Positives::Labels(batch_data.labels.autodiff()));
            let grads = GradientsParams::from_grads(value.backward(), &model);
            model = optim.step(0.05, model.clone(), grads);
        });
        figures.push(Figure {
            key,
            what: what.replace("BATCH", &batch.to_string()),
            seconds,
            first_seconds,
            items: Some((batch, "images")),
            peak_bytes: None,
        });
    }
    figures
}

/// The PyTorch side's figures, or why there are none.
pub enum PyTorch {
    /// Figures by key, and what made them.
    Measured {
        /// `{"key", "median_s", "min_s", "max_s"}` per workload.
        figures: Vec<Value>,
        /// torch's version.
        version: String,
        /// The device it ran on (`cpu` or the GPU's name).
        device: String,
        /// Its training steps' automatic mixed precision: `none`, `bf16` or `f16`.
        autocast: String,
        /// Its TF32 settings, `{"matmul": bool, "cudnn": bool}`.
        tf32: Value,
    },
    /// Not run, and why.
    Absent(String),
}

impl PyTorch {
    /// One line saying what PyTorch's figures are of.
    fn describe(&self, threads: usize) -> String {
        match self {
            PyTorch::Measured {
                version,
                device,
                autocast,
                tf32,
                ..
            } => {
                let on_off = |key: &str| match tf32[key].as_bool() {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "?",
                };
                let autocast = match autocast.as_str() {
                    "none" => "float32".to_string(),
                    dtype => format!("training steps under torch.autocast {dtype}"),
                };
                format!(
                    "PyTorch: torch {version} on {device} ({threads} CPU threads), {autocast}, \
                     TF32 for matmul {} and cuDNN {}.",
                    on_off("matmul"),
                    on_off("cudnn")
                )
            }
            PyTorch::Absent(why) => format!("PyTorch: {why}; only our figures are shown."),
        }
    }
}

fn run_pytorch(
    root: &Path,
    threads: usize,
    plan: Plan,
    demo: &RunConfig,
    args: &BenchArgs,
) -> PyTorch {
    let mut command = Command::new("python3");
    command.arg(root.join("xtask/python/bench.py"));
    if let Some(key) = plan.only {
        command.args(["--only", key]);
    }
    let output = command
        .args([
            "--threads".to_string(),
            threads.to_string(),
            "--repeats".into(),
            plan.repeats.to_string(),
            "--demo-batch".into(),
            demo.data.batch_size.to_string(),
            "--demo-size".into(),
            demo.data.size.unwrap_or(28).to_string(),
            "--demo-crop-min-scale".into(),
            demo.augment.crop_min_scale.to_string(),
            "--demo-jitter".into(),
            demo.augment.jitter.to_string(),
            "--device".into(),
            args.torch_device.clone(),
            "--autocast".into(),
            args.torch_autocast.clone(),
            "--tf32".into(),
            args.torch_tf32.clone(),
        ])
        .current_dir(root)
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            return PyTorch::Absent(format!(
                "xtask/python/bench.py failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ));
        }
        Err(e) => return PyTorch::Absent(format!("could not run python3: {e}")),
    };
    match serde_json::from_slice::<Value>(&output.stdout) {
        Ok(v) => {
            let text = |key: &str| v[key].as_str().unwrap_or("?").to_string();
            PyTorch::Measured {
                figures: v["figures"].as_array().cloned().unwrap_or_default(),
                version: text("torch"),
                device: text("device"),
                autocast: text("autocast"),
                tf32: v["tf32"].clone(),
            }
        }
        Err(e) => PyTorch::Absent(format!("unreadable output of bench.py: {e}")),
    }
}

/// The widest SIMD instruction set this processor offers (what Burn flex's kernels and gemm's
/// can use at run time), and the relevant extensions it has.
fn simd_level() -> (String, Vec<&'static str>) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut found = Vec::new();
        macro_rules! probe {
            ($($name:tt),*) => {
                $(if std::arch::is_x86_feature_detected!($name) { found.push($name); })*
            };
        }
        probe!(
            "sse4.2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"
        );
        let level = if found.contains(&"avx512f") {
            "AVX-512"
        } else if found.contains(&"avx2") {
            "AVX2"
        } else if found.contains(&"avx") {
            "AVX"
        } else if found.contains(&"sse4.2") {
            "SSE4.2"
        } else {
            "SSE2"
        };
        (level.to_string(), found)
    }
    #[cfg(target_arch = "aarch64")]
    {
        ("NEON".to_string(), vec!["neon"])
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        (std::env::consts::ARCH.to_string(), Vec::new())
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn milliseconds(seconds: f64) -> String {
    if seconds >= 0.1 {
        format!("{:.0} ms", seconds * 1e3)
    } else {
        format!("{:.2} ms", seconds * 1e3)
    }
}

/// The markdown table: one row per workload and device, PyTorch beside it.
pub fn table(devices: &[(String, Vec<Figure>)], pytorch: &PyTorch) -> String {
    let mut out = String::from(
        "| workload | device | median (min-max) | first run | rate | PyTorch median | rate | ours / PyTorch (time) |\n\
         | --- | --- | --- | ---: | ---: | --- | ---: | ---: |\n",
    );
    for (device, figures) in devices {
        for f in figures {
            let rate = f.items.map_or("-".into(), |(n, unit)| {
                format!("{:.0} {unit}/s", n as f64 / f.median())
            });
            let theirs = match pytorch {
                PyTorch::Measured { figures, .. } => figures
                    .iter()
                    .find(|v| v["key"] == f.key)
                    .and_then(|v| v["median_s"].as_f64()),
                PyTorch::Absent(_) => None,
            };
            let (their_time, their_rate, ratio) = match theirs {
                Some(t) => (
                    milliseconds(t),
                    f.items.map_or("-".into(), |(n, unit)| {
                        format!("{:.0} {unit}/s", n as f64 / t)
                    }),
                    format!("{:.2}x", f.median() / t),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let memory = f.peak_bytes.map_or(String::new(), |b| {
                format!(", peak {:.1} MiB", b as f64 / 1048576.0)
            });
            let first = f.first_seconds.map_or("-".into(), milliseconds);
            out.push_str(&format!(
                "| {}{memory} | {device} | {} ({}-{}) | {first} | {rate} | {their_time} | {their_rate} | {ratio} |\n",
                f.what,
                milliseconds(f.median()),
                milliseconds(f.seconds[0]),
                milliseconds(f.seconds[f.seconds.len() - 1]),
            ));
        }
    }
    out
}

/// The options of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// A smoke run: one repetition of every workload at an eighth of the batch sizes, no
    /// PyTorch.
    #[arg(long)]
    pub quick: bool,
    /// Only the workload with this key (for profiling; no PyTorch).
    #[arg(long, value_name = "KEY")]
    pub only: Option<String>,
    /// Timed repetitions of each workload, ours and PyTorch's (default: 10, or 1 with
    /// `--quick`); more for profiling with `--only`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub repeats: Option<u32>,
    /// The devices to run on (default: every one compiled in).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub devices: Option<Vec<String>>,
    /// PyTorch's device.
    #[arg(long = "torch-device", default_value = "cpu", value_parser = ["cpu", "cuda"])]
    pub torch_device: String,
    /// PyTorch's automatic mixed precision for its training steps (`torch.autocast` around the
    /// forward and the loss; f16 with a GradScaler); its loss-only workloads stay float32.
    #[arg(long = "torch-autocast", default_value = "none", value_parser = ["none", "bf16", "f16"])]
    pub torch_autocast: String,
    /// PyTorch's TF32 use for float32 matmuls and cuDNN convolutions: its defaults (matmul
    /// off, cuDNN on in torch 2.x), or both on or off. The output states what was used.
    #[arg(long = "torch-tf32", default_value = "default", value_parser = ["default", "on", "off"])]
    pub torch_tf32: String,
    /// Where the JSON results go (default: target/bench/results.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Float type of our side: f32 (default), f16, bf16 or flex32 (GPU devices); the losses
    /// compute in f32 whatever it is. PyTorch's side: `--torch-autocast`.
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
}

impl Default for BenchArgs {
    /// The command line's defaults: the full bench on every compiled-in device, PyTorch on the
    /// CPU at float32 with its own TF32 defaults.
    fn default() -> Self {
        Self {
            quick: false,
            only: None,
            repeats: None,
            devices: None,
            torch_device: "cpu".into(),
            torch_autocast: "none".into(),
            torch_tf32: "default".into(),
            out: None,
            precision: Precision::default(),
        }
    }
}

/// The workloads' keys, in the order they run (shared with `xtask/python/bench.py`).
pub const WORKLOADS: [&str; 7] = [
    "loss_b256",
    "loss_b1024",
    "augment_256x3x32x32",
    "step_small_1x28x28_b256",
    "step_resnet18_3x32x32_b64",
    "supcon_step_demo",
    "supcon_step_resnet18_3x32x32_b64",
];

/// Every workload of `plan` on each device, and PyTorch's side when `plan` has it. With
/// PyTorch, the two sides run workload by workload, PyTorch's right after ours (a process for
/// each), so that a ratio compares times taken within a minute of each other: on a shared
/// machine the speed drifts over the minutes a whole side takes (PyTorch's loss at batch 256
/// measured 2.6 to 16.6 ms in full runs on different days, on the same 2-core VM).
fn measure(
    root: &Path,
    threads: usize,
    plan: Plan,
    devices: &[(String, Device)],
    args: &BenchArgs,
) -> (Vec<(String, Vec<Figure>)>, PyTorch) {
    let mut figures: Vec<(String, Vec<Figure>)> = devices
        .iter()
        .map(|(name, _)| (name.clone(), Vec::new()))
        .collect();
    let pytorch_absent = if !plan.pytorch {
        let why = if plan.only.is_some() {
            "--only"
        } else {
            "--quick"
        };
        Some(format!("not run ({why})"))
    } else if !Command::new("python3")
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        Some("python3 cannot import torch".to_string())
    } else {
        None
    };
    let demo = demo_config();
    let mut pytorch = pytorch_absent.map(PyTorch::Absent);
    for key in WORKLOADS.into_iter().filter(|key| plan.wants(key)) {
        let one = Plan {
            only: Some(key),
            ..plan
        };
        for ((name, device), (_, out)) in devices.iter().zip(&mut figures) {
            eprintln!("bench: {key} on {name} ...");
            out.extend(run_device(device, one));
        }
        if matches!(pytorch, Some(PyTorch::Absent(_))) {
            continue;
        }
        eprintln!("bench: {key} in PyTorch ...");
        match (&mut pytorch, run_pytorch(root, threads, one, &demo, args)) {
            (Some(PyTorch::Measured { figures, .. }), PyTorch::Measured { figures: more, .. }) => {
                figures.extend(more)
            }
            // A failure part way leaves no PyTorch column rather than a partial one.
            (Some(_), PyTorch::Absent(why)) => {
                pytorch = Some(PyTorch::Absent(format!("{key}: {why}")))
            }
            (_, next) => pytorch = Some(next),
        }
    }
    let pytorch = pytorch.unwrap_or_else(|| PyTorch::Absent("no workload ran".into()));
    (figures, pytorch)
}

/// Runs the bench as `args` say, prints the table, and returns the JSON file's path.
pub fn bench(root: &Path, args: &BenchArgs) -> Result<PathBuf, String> {
    let mut plan = if args.quick { Plan::QUICK } else { Plan::FULL };
    if let Some(key) = &args.only {
        let Some(known) = WORKLOADS.into_iter().find(|known| known == key) else {
            return Err(format!(
                "--only {key}: no such workload; the workloads are {}",
                WORKLOADS.join(", ")
            ));
        };
        plan.only = Some(known);
        plan.pytorch = false;
    }
    if let Some(repeats) = args.repeats {
        plan.repeats = repeats as usize;
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("target/bench/results.json"));
    let devices_wanted = args.devices.clone();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let names: Vec<String> = match devices_wanted {
        Some(list) => list,
        None => compiled_in().into_iter().map(str::to_string).collect(),
    };
    let precision = args.precision;
    let mut chosen = Vec::new();
    for name in &names {
        let device = DeviceChoice::parse(name)
            .and_then(|choice| choice.device_with(precision))
            .map_err(|e| e.to_string())?;
        chosen.push((name.to_string(), device));
    }
    let (devices, pytorch) = measure(root, threads, plan, &chosen, args);
    let table = table(&devices, &pytorch);
    let (simd, extensions) = simd_level();
    let build: Vec<Value> = names
        .iter()
        .map(|name| {
            json!({
                "device": name,
                "burn_features": backend_features(name),
                "supcon_kernels": supcon_kernels(name),
            })
        })
        .collect();
    println!(
        "{} ({simd}, {threads} threads); ours at {precision}, built with {}",
        cpu_model(),
        names
            .iter()
            .map(|name| {
                let kernels = supcon_kernels(name);
                let ours = if kernels.is_empty() {
                    String::new()
                } else {
                    format!(" with our {}", kernels.join("+"))
                };
                format!("{name}: {}{ours}", backend_features(name).join("+"))
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{table}");
    println!("{}", pytorch.describe(threads));
    let (torch_version, torch_figures, absent) = match &pytorch {
        PyTorch::Measured {
            figures,
            version,
            device,
            autocast,
            tf32,
        } => (
            json!({ "version": version, "device": device, "autocast": autocast, "tf32": tf32 }),
            json!(figures),
            Value::Null,
        ),
        PyTorch::Absent(why) => (Value::Null, Value::Null, json!(why)),
    };
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let results = json!({
        "machine": {
            "cpu": cpu_model(),
            "simd": simd,
            "simd_extensions": extensions,
            "cores": threads,
            "os": std::env::consts::OS,
        },
        "build": build,
        "precision": precision.to_string(),
        "versions": { "supcon": env!("CARGO_PKG_VERSION"), "burn": "0.22.1", "rustc": rustc, "torch": torch_version },
        "plan": {
            "warmup": plan.warmup,
            "repeats": plan.repeats,
            "order": match &pytorch {
                PyTorch::Measured { .. } => "workload by workload, PyTorch's right after ours",
                PyTorch::Absent(_) => "ours only",
            },
        },
        "devices": devices.iter().map(|(name, figures)| json!({
            "device": name,
            "figures": figures.iter().map(Figure::to_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "pytorch": torch_figures,
        "pytorch_absent": absent,
        "table": table,
    });
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    std::fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("results: {}", out.display());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo xtask bench --quick` end to end (without PyTorch): every workload on every
    /// compiled-in device gives finite positive times, and the JSON file has them all.
    #[test]
    fn quick_bench_writes_every_figure() {
        let dir = std::env::temp_dir().join(format!("supcon-bench-{}", std::process::id()));
        let out = dir.join("results.json");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let args = BenchArgs {
            quick: true,
            // flex only: the test build has ndarray too, whose ResNet step takes minutes.
            devices: Some(vec!["flex".into()]),
            out: Some(out.clone()),
            ..BenchArgs::default()
        };
        bench(root, &args).unwrap();
        let results: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let figures = results["devices"][0]["figures"].as_array().unwrap();
        let keys: Vec<&str> = figures.iter().map(|f| f["key"].as_str().unwrap()).collect();
        assert_eq!(keys, WORKLOADS);
        for f in figures {
            let median = f["median_s"].as_f64().unwrap();
            assert!(median.is_finite() && median > 0.0, "{f}");
            // --quick has no warm-up, so no first run apart.
            assert!(f.get("first_s").is_none(), "{f}");
        }
        assert!(
            figures[1]["peak_bytes"].as_u64().unwrap() > figures[0]["peak_bytes"].as_u64().unwrap()
        );
        assert_eq!(results["pytorch_absent"], "not run (--quick)");
        assert_eq!(results["plan"]["order"], "ours only");
        assert_eq!(results["precision"], "f32");
        assert_eq!(results["build"][0]["device"], "flex");
        let features = if cfg!(feature = "avx512") {
            json!(["simd", "rayon", "avx512"])
        } else {
            json!(["simd", "rayon"])
        };
        assert_eq!(results["build"][0]["burn_features"], features);
        assert_eq!(
            results["build"][0]["supcon_kernels"],
            json!([
                "batch_norm",
                "batch_norm_relu",
                "conv2d",
                "conv2d_weight_grad",
                "conv2d_input_grad"
            ])
        );
        let simd = results["machine"]["simd"].as_str().unwrap();
        assert!(!simd.is_empty(), "{results}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// `--only` with a key that names no workload is refused, naming the workloads, rather
    /// than measuring nothing.
    #[test]
    fn an_unknown_workload_is_refused() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let args = BenchArgs {
            only: Some("loss_b512".into()),
            out: Some(std::env::temp_dir().join("supcon-bench-unknown.json")),
            ..BenchArgs::default()
        };
        let error = bench(root, &args).unwrap_err();
        assert!(
            error.contains("--only loss_b512: no such workload"),
            "{error}"
        );
        assert!(error.contains("loss_b256, loss_b1024"), "{error}");
    }

    /// `BenchArgs::default()` is what `cargo xtask bench` without options runs, and the PyTorch
    /// options reach it.
    #[test]
    fn defaults_match_the_command_line() {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            args: BenchArgs,
        }
        let parsed = <Command as clap::Parser>::parse_from(["bench"]).args;
        assert_eq!(format!("{parsed:?}"), format!("{:?}", BenchArgs::default()));
        let parsed = <Command as clap::Parser>::parse_from([
            "bench",
            "--torch-device",
            "cuda",
            "--torch-autocast",
            "bf16",
            "--torch-tf32",
            "off",
        ])
        .args;
        assert_eq!(
            (
                parsed.torch_device.as_str(),
                parsed.torch_autocast.as_str(),
                parsed.torch_tf32.as_str()
            ),
            ("cuda", "bf16", "off")
        );
        assert!(
            <Command as clap::Parser>::try_parse_from(["bench", "--torch-autocast", "fp8"])
                .is_err()
        );
    }

    /// Without PyTorch, the bench says which option left it out.
    #[test]
    fn says_why_pytorch_did_not_run() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let args = BenchArgs::default();
        let only = Plan {
            pytorch: false,
            only: Some("loss_b256"),
            ..Plan::FULL
        };
        for (plan, want) in [
            (only, "not run (--only)"),
            (Plan::QUICK, "not run (--quick)"),
        ] {
            match measure(root, 1, plan, &[], &args).1 {
                PyTorch::Absent(why) => assert_eq!(why, want),
                PyTorch::Measured { .. } => panic!("PyTorch ran"),
            }
        }
    }

    /// The first warm-up repetition is timed apart from the timed ones.
    #[test]
    fn the_first_warm_up_run_is_timed_apart() {
        let plan = Plan {
            warmup: 2,
            repeats: 3,
            pytorch: false,
            shrink: 1,
            only: None,
        };
        let mut calls = 0;
        let (first, seconds) = time(plan, &Device::flex(), || {
            calls += 1;
            if calls == 1 {
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
        });
        assert_eq!((calls, seconds.len()), (5, 3));
        assert!(first.unwrap() >= 0.03, "{first:?}");
        let no_warm_up = Plan { warmup: 0, ..plan };
        assert_eq!(time(no_warm_up, &Device::flex(), || {}).0, None);
    }

    /// The line under the table says how PyTorch's figures were made.
    #[test]
    fn states_pytorch_precision_and_tf32() {
        let measured = PyTorch::Measured {
            figures: Vec::new(),
            version: "2.15.0".into(),
            device: "NVIDIA H200".into(),
            autocast: "bf16".into(),
            tf32: json!({"matmul": false, "cudnn": true}),
        };
        assert_eq!(
            measured.describe(16),
            "PyTorch: torch 2.15.0 on NVIDIA H200 (16 CPU threads), training steps under \
             torch.autocast bf16, TF32 for matmul off and cuDNN on."
        );
        let absent = PyTorch::Absent("not run (--quick)".into());
        assert_eq!(
            absent.describe(2),
            "PyTorch: not run (--quick); only our figures are shown."
        );
    }
}
