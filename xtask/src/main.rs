//! Project chores: `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! - `bench`: speed of the loss, the augmentation, training steps, beside PyTorch
//!   (see [`bench`](mod@bench)).
//! - `step`: time and peak memory of SupCon steps at a global batch, whole or with gradient
//!   caching (see [`step`](mod@step)).
//! - `ops`: per-operation CPU times of a ResNet-18 training step beside PyTorch's (see
//!   [`ops`](mod@ops)).
//! - `golden`: regenerates the reference data the tests compare against, in `assets/golden/`:
//!   the float64 SupCon cases (`xtask/python/supcon_loss_reference.py`, needs numpy) and
//!   torchvision's crop-sampler statistics (`xtask/python/crop_stats.py`, needs torch and
//!   torchvision), and the PyTorch outputs and checkpoint of the encoder parity tests
//!   (`xtask/python/encoder_parity.py`, needs torch).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

mod alloc;
mod bench;
/// The trainer binary's allocator setting, shared with it.
#[path = "../../crates/supcon-train/src/memory.rs"]
mod memory;
mod ops;
mod step;

#[global_allocator]
static ALLOCATOR: alloc::CountingAllocator = alloc::CountingAllocator;

/// Project chores.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "supcon's project chores")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Regenerate assets/golden/ (python3 with numpy, torch, torchvision).
    Golden,
    /// Time the loss, augmentation and training steps; beside PyTorch when torch imports.
    Bench(bench::BenchArgs),
    /// Time and peak memory of SupCon steps at a global batch, whole or in gradient-cached chunks.
    Step(step::StepArgs),
    /// Per-operation CPU times of a ResNet-18 training step (convolutions' forward, input and
    /// weight gradients, BatchNorm, ReLU), beside PyTorch's on the same shapes.
    Ops(ops::OpsArgs),
}

fn main() -> ExitCode {
    memory::keep_freed_memory();
    let result = match Cli::parse().task {
        Task::Golden => golden(),
        Task::Bench(args) => bench::bench(&workspace_root(), &args).map(|_| ()),
        Task::Step(args) => step::step(&args),
        Task::Ops(args) => ops::ops(&workspace_root(), &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// The workspace root: the parent of this crate's folder where it was built or, for a binary
/// carried to another machine (to bench a GPU there), the current folder when that one holds
/// the PyTorch scripts and the build-time one does not.
fn workspace_root() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf();
    let scripts = |root: &Path| root.join("xtask/python/bench.py").is_file();
    match std::env::current_dir() {
        Ok(here) if !scripts(&built) && scripts(&here) => here,
        _ => built,
    }
}

fn golden() -> Result<(), String> {
    let root = workspace_root();
    for (script, output, needs) in [
        (
            "supcon_loss_reference.py",
            "supcon_loss_parity.json",
            "numpy",
        ),
        ("crop_stats.py", "crop_stats.json", "torch and torchvision"),
        ("encoder_parity.py", "encoder_parity.json", "torch"),
        ("torch_names.py", "torch_names", "torch"),
        ("cifar_pickles.py", "cifar_pickles", "numpy"),
    ] {
        let script = root.join("xtask/python").join(script);
        let status = Command::new("python3")
            .arg(&script)
            .arg(root.join("assets/golden").join(output))
            .current_dir(&root)
            .status()
            .map_err(|e| format!("could not run python3: {e}"))?;
        if !status.success() {
            return Err(format!(
                "{} failed ({status}); it needs {needs}",
                script.display()
            ));
        }
    }
    Ok(())
}
