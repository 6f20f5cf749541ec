//! Project chores: `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! - `bench`: speed of the loss, the augmentation, training steps, beside PyTorch
//!   (see [`bench`]).
//! - `golden`: regenerates the reference data the tests compare against, in `assets/golden/`:
//!   the float64 SupCon cases (`xtask/python/supcon_loss_reference.py`, needs numpy) and
//!   torchvision's crop-sampler statistics (`xtask/python/crop_stats.py`, needs torch and
//!   torchvision), and the PyTorch outputs and checkpoint of the encoder parity tests
//!   (`xtask/python/encoder_parity.py`, needs torch).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod alloc;
mod bench;

#[global_allocator]
static ALLOCATOR: alloc::CountingAllocator = alloc::CountingAllocator;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  golden   regenerate assets/golden/ (python3 with numpy, torch, torchvision)
  bench    time the loss, augmentation, training steps; beside PyTorch when torch imports
           [--quick] [--only KEY] [--devices A,B] [--torch-device cpu|cuda]
           [--out FILE] (default target/bench/results.json)";

fn main() -> ExitCode {
    supcon_train::memory::keep_freed_memory();
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("golden") => golden(),
        Some("bench") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            bench::bench(&workspace_root(), &args).map(|_| ())
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`\n\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// The workspace root (the parent of this crate's folder).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
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
