//! Project chores: `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! - `golden`: regenerates the float64 reference cases of the supcon-loss parity tests
//!   (`assets/golden/supcon_loss_parity.json`) with `xtask/python/supcon_loss_reference.py`;
//!   needs `python3` with numpy.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  golden   regenerate assets/golden/supcon_loss_parity.json (python3 + numpy)";

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("golden") => golden(),
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
    let script = root.join("xtask/python/supcon_loss_reference.py");
    let output = root.join("assets/golden/supcon_loss_parity.json");
    let status = Command::new("python3")
        .arg(&script)
        .arg(&output)
        .current_dir(&root)
        .status()
        .map_err(|e| format!("could not run python3: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({status}); it needs numpy: pip install numpy",
            script.display()
        ))
    }
}
