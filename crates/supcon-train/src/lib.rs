//! The supcon trainer, as a library: the reference's programs (SupCon/SimCLR pre-training,
//! linear evaluation, cross-entropy baseline) plus a kNN monitor, embeddings export, seeded and
//! resumable runs with atomic, checksummed checkpoints; the optimisers (PyTorch-semantics SGD,
//! LARS) and the reference's learning-rate schedules as Burn types.
//!
//! It prints nothing and needs no terminal: runs report through a [`progress::Progress`]. The
//! `supcon-train` binary (feature `cli`, on by default, with `mimalloc`) adds the command line,
//! the progress bar and the figures; `default-features = false, features = ["flex"]` gives the
//! library alone. Every run lives in a folder holding `config.toml` (the resolved
//! configuration), `checkpoint.bin`, `metrics.jsonl`, the TensorBoard event file
//! ([`tensorboard::EVENTS_FILE`]), and its evaluations (`linear.json`, `knn.json`, `ce.json`,
//! numbered when repeated, listed in `summary.md`).
//!
//! ```no_run
//! use supcon_train::config::{Options, RunConfig};
//! use supcon_train::progress::Silent;
//!
//! let options = Options { epochs: Some(2), ..Options::default() };
//! // or, as a Burn configuration: RunConfig::new().with_schedule(ScheduleConfig::new().with_epochs(2))
//! let outcome = supcon_train::runs::start_pretrain(RunConfig::resolve(options)?, &Silent)?;
//! println!("{:?}", outcome.linear.map(|l| l.test_accuracy));
//! # Ok::<(), supcon_train::TrainError>(())
//! ```

pub mod atomic;
pub mod ce;
pub mod checkpoint;
pub mod config;
pub mod dataset;
pub mod device;
mod error;
pub mod exported;
pub mod features;
pub mod fit;
pub mod footprint;
pub mod grad_cache;
pub mod linear;
pub mod metrics;
pub mod momentum;
pub mod optim;
pub mod params;
pub mod pretrain;
pub mod progress;
pub mod report;
pub mod run;
pub mod runs;
pub mod schedule;
pub mod tensorboard;

pub use error::TrainError;
