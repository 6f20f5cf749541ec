//! `cargo xtask ops`: where the CPU time of a training step goes, operation by operation, on
//! the shapes of the reference's CIFAR ResNet-18 (3x3 stem, no max-pool) at a batch of 3x32x32
//! images, or of the small CNN at a batch of 1x28x28 (`--network small`): each convolution's
//! forward pass, input gradient and weight gradient, and BatchNorm and ReLU (forward and
//! backward), on flex and, when `python3` imports torch, in PyTorch on the same shapes
//! (`xtask/python/ops.py`, which also prints `torch.profiler`'s table of a whole training step).
//!
//! Our forward is `supcon_encoder::conv::conv2d`, our input and weight gradients
//! `supcon_encoder::conv::conv2d_x_backward` and `conv2d_weight_backward` (products with the
//! unfolded input, image by image, on flex), the operations our encoders' backward steps call; BatchNorm is `supcon_encoder::norm::batch_norm` (two passes each way on flex), and
//! `batch_norm_relu` where a ReLU follows it (the ReLU inside the same operation). The
//! first convolution's input gradient is timed but not counted: a step does not compute it.
//! PyTorch's are `torch.nn.grad.conv2d_input` and `conv2d_weight`, and `nn.BatchNorm2d`.

use std::path::Path;
use std::process::Command;

use burn::module::Param;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::ops::ConvOptions;
use serde_json::Value;
use supcon_encoder::conv::{conv2d as encoder_conv2d, conv2d_weight_backward, conv2d_x_backward};
use supcon_encoder::norm::{batch_norm, batch_norm_relu};

use crate::bench::{Plan, time};

/// What `cargo xtask ops` runs.
#[derive(Debug, clap::Args)]
pub struct OpsArgs {
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Timed repetitions of each operation (after one untimed), median reported.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// The network whose shapes are timed.
    #[arg(long, value_enum, default_value_t = Network::Resnet18)]
    pub network: Network,
}

/// The networks `cargo xtask ops` knows the shapes of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Network {
    /// The CIFAR ResNet-18, 3x32x32 images.
    Resnet18,
    /// The demo's small CNN, 1x28x28 images.
    Small,
}

impl Network {
    /// The name on the command line, also passed to `xtask/python/ops.py`.
    fn name(self) -> &'static str {
        match self {
            Network::Resnet18 => "resnet18",
            Network::Small => "small",
        }
    }
}

/// A convolution of the network: input channels, output channels, input side, kernel, stride,
/// and how many times the network has it.
#[derive(Clone, Copy, Debug)]
struct Conv {
    cin: usize,
    cout: usize,
    side: usize,
    kernel: usize,
    stride: usize,
    count: usize,
}

/// The 20 convolutions of the CIFAR ResNet-18 (`networks/resnet_big.py`), by distinct shape:
/// input channels, output channels, input side, kernel, stride, how many.
const RESNET18: [(usize, usize, usize, usize, usize, usize); 11] = [
    (3, 64, 32, 3, 1, 1),
    (64, 64, 32, 3, 1, 4),
    (64, 128, 32, 3, 2, 1),
    (128, 128, 16, 3, 1, 3),
    (64, 128, 32, 1, 2, 1),
    (128, 256, 16, 3, 2, 1),
    (256, 256, 8, 3, 1, 3),
    (128, 256, 16, 1, 2, 1),
    (256, 512, 8, 3, 2, 1),
    (512, 512, 4, 3, 1, 3),
    (256, 512, 8, 1, 2, 1),
];

/// The four convolutions of the small CNN (`supcon_encoder::SmallCnn`), as [`RESNET18`].
const SMALL: [(usize, usize, usize, usize, usize, usize); 4] = [
    (1, 32, 28, 3, 1, 1),
    (32, 64, 28, 3, 2, 1),
    (64, 128, 14, 3, 2, 1),
    (128, 128, 7, 3, 1, 1),
];

/// The activations of the small CNN, as [`ACTIVATIONS`]: every BatchNorm followed by its ReLU.
const SMALL_ACTIVATIONS: [(usize, usize, usize, usize, usize); 3] =
    [(32, 28, 1, 0, 0), (64, 14, 1, 0, 0), (128, 7, 2, 0, 0)];

/// The activations that BatchNorm (after every convolution) and ReLU see: channels, side, then
/// how many BatchNorms the network follows with a ReLU (one operation, `batch_norm_relu`: the
/// stem and each block's first), how many it does not (each block's second, before the
/// shortcut is added, and the shortcuts'), and how many ReLUs stand alone (after the addition).
const ACTIVATIONS: [(usize, usize, usize, usize, usize); 4] = [
    (64, 32, 3, 2, 2),
    (128, 16, 2, 3, 2),
    (256, 8, 2, 3, 2),
    (512, 4, 2, 3, 2),
];

impl Conv {
    fn padding(&self) -> usize {
        self.kernel / 2
    }

    fn out_side(&self) -> usize {
        (self.side + 2 * self.padding() - self.kernel) / self.stride + 1
    }

    fn options(&self) -> ConvOptions<2> {
        let p = self.padding();
        ConvOptions::new([self.stride; 2], [p, p], [1, 1], 1)
    }

    fn label(&self) -> String {
        format!(
            "{}->{} {}x{}, {}x{} s{}",
            self.cin, self.cout, self.side, self.side, self.kernel, self.kernel, self.stride
        )
    }
}

/// Median seconds of `repeats` runs of `work` after one untimed run.
fn median(device: &Device, repeats: usize, work: impl FnMut()) -> f64 {
    let plan = Plan {
        warmup: 1,
        repeats: repeats.max(1),
        pytorch: false,
        shrink: 1,
        only: None,
    };
    let (_, runs) = time(plan, device, work);
    runs[runs.len() / 2]
}

/// One row of the table: what, how many times a step has it, our seconds, PyTorch's.
struct Row {
    op: &'static str,
    shape: String,
    count: usize,
    ours: f64,
    torch: Option<f64>,
}

/// Runs the operations and prints the table.
pub fn ops(root: &Path, args: &OpsArgs) -> Result<(), String> {
    let device = Device::flex();
    device.seed(0);
    let train = device.clone().autodiff();
    let batch = args.batch;
    let random = |shape: [usize; 4], device: &Device| {
        Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device)
    };
    let torch = pytorch(root, args);
    let torch_of =
        |key: &str| -> Option<f64> { torch.as_ref().ok().and_then(|v| v["ops"][key].as_f64()) };
    let mut rows = Vec::new();
    let (shapes, activations): (&[_], &[_]) = match args.network {
        Network::Small => (&SMALL, &SMALL_ACTIVATIONS),
        Network::Resnet18 => (&RESNET18, &ACTIVATIONS),
    };
    let convs = shapes
        .iter()
        .map(|&(cin, cout, side, kernel, stride, count)| Conv {
            cin,
            cout,
            side,
            kernel,
            stride,
            count,
        });
    for (n, c) in convs.enumerate() {
        let (side, out) = (c.side, c.out_side());
        let x = random([batch, c.cin, side, side], &device);
        let w = random([c.cout, c.cin, c.kernel, c.kernel], &device);
        let grad = random([batch, c.cout, out, out], &device);
        let options = c.options();
        // The forward as the encoders run it (`supcon_encoder::conv::conv2d`: ours at strides
        // above 1 on flex, flex's otherwise).
        let p = c.padding();
        let mut conv = Conv2dConfig::new([c.cin, c.cout], [c.kernel; 2])
            .with_stride([c.stride; 2])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(false)
            .init(&device);
        conv.weight = Param::from_tensor(w.clone());
        let forward = median(&device, args.repeats, || {
            let _ = encoder_conv2d(&conv, x.clone()).into_data();
        });
        let input_grad = median(&device, args.repeats, || {
            let _ =
                conv2d_x_backward(x.clone(), w.clone(), grad.clone(), options.clone()).into_data();
        });
        let weight_grad = median(&device, args.repeats, || {
            let _ = conv2d_weight_backward(x.clone(), w.clone(), grad.clone(), options.clone())
                .into_data();
        });
        let key = format!("{}_{}_{}_{}_{}", c.cin, c.cout, c.side, c.kernel, c.stride);
        // The first convolution's input is the images: a step has no input gradient there.
        let input_grads = if n == 0 { 0 } else { c.count };
        for (op, ours, torch_key, count) in [
            ("conv forward", forward, "forward", c.count),
            ("conv input gradient", input_grad, "input_grad", input_grads),
            ("conv weight gradient", weight_grad, "weight_grad", c.count),
        ] {
            rows.push(Row {
                op,
                shape: c.label(),
                count,
                ours,
                torch: torch_of(&format!("{torch_key}_{key}")),
            });
        }
    }
    for &(channels, side, fused, norms, relus) in activations {
        let shape = [batch, channels, side, side];
        let x = random(shape, &train);
        let bn = BatchNormConfig::new(channels).init(&train);
        let norm_relu = median(&device, args.repeats, || {
            let input = x.clone().require_grad();
            let y = batch_norm_relu(&bn, input.clone());
            let grads = y.sum().backward();
            let _ = input.grad(&grads).map(Tensor::into_data);
        });
        let norm = median(&device, args.repeats, || {
            let input = x.clone().require_grad();
            let y = batch_norm(&bn, input.clone());
            let grads = y.sum().backward();
            let _ = input.grad(&grads).map(Tensor::into_data);
        });
        let relu = median(&device, args.repeats, || {
            let input = x.clone().require_grad();
            let grads = burn::tensor::activation::relu(input.clone())
                .sum()
                .backward();
            let _ = input.grad(&grads).map(Tensor::into_data);
        });
        let label = format!("{channels} x {side}x{side}");
        let key = format!("{channels}_{side}");
        for (op, count, ours, torch_key) in [
            (
                "BatchNorm + ReLU forward + backward",
                fused,
                norm_relu,
                "bn_relu",
            ),
            ("BatchNorm forward + backward", norms, norm, "bn"),
            ("ReLU forward + backward", relus, relu, "relu"),
        ] {
            rows.push(Row {
                op,
                shape: label.clone(),
                count,
                ours,
                torch: torch_of(&format!("{torch_key}_{key}")),
            });
        }
    }
    print_table(&rows, batch);
    match &torch {
        Ok(v) => {
            println!(
                "\nPyTorch {} ({} threads); torch.profiler, one training step of {} + linear, cross-entropy, SGD, batch {batch}:\n",
                v["torch"].as_str().unwrap_or("?"),
                v["threads"],
                match args.network {
                    Network::Small => "the small CNN",
                    Network::Resnet18 => "ResNet-18",
                },
            );
            println!(
                "```text\n{}\n```",
                v["profile"].as_str().unwrap_or("").trim_end()
            );
        }
        Err(why) => println!("\nPyTorch: {why}"),
    }
    Ok(())
}

fn print_table(rows: &[Row], batch: usize) {
    println!(
        "Per operation, batch {batch}, median (ms); `total` is the time times the count in one step:\n"
    );
    println!(
        "| operation | shape | in a step | ours | PyTorch | ours / PyTorch | ours total | PyTorch total |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let ms = |s: f64| format!("{:.2}", s * 1e3);
    for row in rows {
        let (torch, ratio, torch_total) = match row.torch {
            Some(t) => (
                ms(t),
                format!("{:.2}x", row.ours / t),
                ms(t * row.count as f64),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {} | {} | {torch} | {ratio} | {} | {torch_total} |",
            row.op,
            row.shape,
            row.count,
            ms(row.ours),
            ms(row.ours * row.count as f64)
        );
    }
    println!("\nBy kind, summed over one step (ms):\n");
    println!("| operation | ours | PyTorch | ours / PyTorch |");
    println!("| --- | ---: | ---: | ---: |");
    let mut kinds: Vec<&str> = Vec::new();
    // Kinds the step does not run (every count zero) are left out of the sums.
    for row in rows.iter().filter(|r| r.count > 0) {
        if !kinds.contains(&row.op) {
            kinds.push(row.op);
        }
    }
    let (mut all_ours, mut all_torch, mut complete) = (0.0, 0.0, true);
    for kind in kinds {
        let of_kind = rows.iter().filter(|r| r.op == kind);
        let ours: f64 = of_kind.clone().map(|r| r.ours * r.count as f64).sum();
        let torch: Option<f64> = of_kind.map(|r| r.torch.map(|t| t * r.count as f64)).sum();
        all_ours += ours;
        match torch {
            Some(t) => {
                all_torch += t;
                println!("| {kind} | {} | {} | {:.2}x |", ms(ours), ms(t), ours / t);
            }
            None => {
                complete = false;
                println!("| {kind} | {} | - | - |", ms(ours));
            }
        }
    }
    if complete {
        println!(
            "| all of the above | {} | {} | {:.2}x |",
            ms(all_ours),
            ms(all_torch),
            all_ours / all_torch
        );
    } else {
        println!("| all of the above | {} | - | - |", ms(all_ours));
    }
}

/// PyTorch's side: `xtask/python/ops.py`'s JSON, or why it is absent.
fn pytorch(root: &Path, args: &OpsArgs) -> Result<Value, String> {
    let probe = Command::new("python3")
        .args(["-c", "import torch"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return Err("not run (python3 cannot import torch)".into());
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let output = Command::new("python3")
        .arg(root.join("xtask/python/ops.py"))
        .args([
            "--threads".to_string(),
            threads.to_string(),
            "--batch".into(),
            args.batch.to_string(),
            "--repeats".into(),
            args.repeats.to_string(),
            "--network".into(),
            args.network.name().into(),
        ])
        .current_dir(root)
        .output()
        .map_err(|e| format!("could not run python3: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "xtask/python/ops.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("xtask/python/ops.py: {e}"))
}
