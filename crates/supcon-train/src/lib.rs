//! The supcon trainer, as a library: the reference's programs (SupCon/SimCLR pre-training,
//! linear evaluation, cross-entropy baseline) plus a kNN monitor, embeddings export, seeded and
//! resumable runs with atomic checkpoints, and figures.
//!
//! The `supcon-train` binary is a thin layer over [`commands`]. Every run lives in a folder
//! holding `config.toml` (the resolved configuration), `checkpoint.bin`, `metrics.jsonl`, and
//! at the end `linear.json` / `ce.json`, `curves.png` and `embedding.png`.
//!
//! ```no_run
//! use supcon_train::config::{Options, RunConfig};
//!
//! let options = Options { epochs: Some(2), ..Options::default() };
//! let outcome = supcon_train::commands::start_pretrain(RunConfig::resolve(options)?, false)?;
//! println!("{:?}", outcome.linear.map(|l| l.test_accuracy));
//! # Ok::<(), supcon_train::TrainError>(())
//! ```

pub mod atomic;
pub mod ce;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dataset;
pub mod device;
mod error;
pub mod features;
pub mod fit;
pub mod linear;
pub mod memory;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod pretrain;
pub mod report;
pub mod run;
pub mod schedule;

pub use error::TrainError;
