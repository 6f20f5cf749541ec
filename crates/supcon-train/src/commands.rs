//! The commands, as library functions returning their results (the binary prints them).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use supcon_encoder::Encoder;

use crate::atomic::write_atomically;
use crate::cli::{Command, SplitName};
use crate::config::{Method, Options, RunConfig};
use crate::features::{FeatureSet, extract, knn_accuracy};
use crate::fit::{CHECKPOINT_FILE, restore_model};
use crate::linear::LinearOutcome;
use crate::metrics::say;
use crate::pretrain::{
    KNN_TEMPERATURE, PretrainOutcome, evaluate_linear, pretrain, split_features, supcon_model,
};
use crate::report::{npy_f32, npy_i64, save_linear};
use crate::run::{Prepared, create_run_dir, load_run_config};
use crate::{TrainError, checkpoint::Checkpoint};

/// The demo's recipe (`recipes/demo.toml`).
pub const DEMO_RECIPE: &str = include_str!("../recipes/demo.toml");

/// Runs a parsed command line.
pub fn run(command: Option<Command>, options: Options, quiet: bool) -> Result<(), TrainError> {
    match command {
        None => demo(options, quiet).map(|_| ()),
        Some(Command::Pretrain { resume, options }) => {
            let outcome = match resume {
                Some(run) => resume_pretrain(&run, &options, quiet)?,
                None => {
                    let config = RunConfig::resolve(options.with_config_file()?)?;
                    start_pretrain(config, quiet)?
                }
            };
            print_pretrain(&outcome);
            Ok(())
        }
        Some(Command::Ce { resume, options }) => {
            let (prepared, run_dir, resume) = match resume {
                Some(run) => (reopen(&run, &options, quiet)?, run, true),
                None => {
                    let config = RunConfig::resolve(options.with_config_file()?)?;
                    let prepared = Prepared::new(config, quiet)?;
                    let name = format!("ce-{}", prepared.config.model);
                    let dir = create_run_dir(&prepared.config, &name)?;
                    say(quiet, &format!("run folder {}", dir.display()));
                    (prepared, dir, false)
                }
            };
            let (_, outcome) = crate::ce::cross_entropy(&prepared, &run_dir, resume, quiet, None)?;
            if let Some(o) = outcome {
                println!(
                    "cross-entropy test accuracy {:.2}% (epoch {} of best validation {:.2}%), run {}",
                    100.0 * o.test_accuracy,
                    o.best_epoch,
                    100.0 * o.val_accuracy,
                    run_dir.display()
                );
            }
            Ok(())
        }
        Some(Command::Linear { encoder, options }) => {
            let outcome = linear(&encoder, &options, quiet)?;
            println!(
                "linear evaluation test accuracy {:.2}% (epoch {} of best validation {:.2}%)",
                100.0 * outcome.test_accuracy,
                outcome.best_epoch,
                100.0 * outcome.val_accuracy
            );
            Ok(())
        }
        Some(Command::Knn { encoder, options }) => {
            let (val, test) = knn(&encoder, &options, quiet)?;
            println!(
                "kNN accuracy: validation {:.2}%, test {:.2}%",
                100.0 * val,
                100.0 * test
            );
            Ok(())
        }
        Some(Command::Embed {
            encoder,
            split,
            output,
            options,
        }) => {
            let written = embed(&encoder, split, output.as_deref(), &options, quiet)?;
            for path in written {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
    }
}

/// The demo: the recipe under `options`, pre-training, linear evaluation, a summary table.
pub fn demo(options: Options, quiet: bool) -> Result<PretrainOutcome, TrainError> {
    let recipe: Options =
        toml::from_str(DEMO_RECIPE).map_err(|e| TrainError::Config(format!("demo recipe: {e}")))?;
    let config = RunConfig::resolve(options.with_config_file()?.or(recipe))?;
    let started = std::time::Instant::now();
    let outcome = start_pretrain(config, quiet)?;
    print_pretrain(&outcome);
    println!("total time {:.1} s", started.elapsed().as_secs_f64());
    Ok(outcome)
}

/// Pre-trains a new run for `config`.
pub fn start_pretrain(config: RunConfig, quiet: bool) -> Result<PretrainOutcome, TrainError> {
    let prepared = Prepared::new(config, quiet)?;
    let c = &prepared.config;
    let method = match c.method {
        Method::SupCon => "supcon",
        Method::SimClr => "simclr",
    };
    let run_dir = create_run_dir(c, &format!("{method}-{}", c.model))?;
    say(quiet, &format!("run folder {}", run_dir.display()));
    pretrain(&prepared, &run_dir, false, quiet, None)
}

/// Continues the pre-training run in `run`.
pub fn resume_pretrain(
    run: &Path,
    options: &Options,
    quiet: bool,
) -> Result<PretrainOutcome, TrainError> {
    let prepared = reopen(run, options, quiet)?;
    pretrain(&prepared, run, true, quiet, None)
}

/// The run's saved configuration, with the few options that may change between sessions
/// (`device`, `linear_epochs`, `linear_learning_rate`, `knn_k`) taken from `options`.
pub fn reopen(run: &Path, options: &Options, quiet: bool) -> Result<Prepared, TrainError> {
    let mut config = load_run_config(run)?;
    let options = options.clone().with_config_file()?;
    let fixed = Options {
        config: None,
        device: None,
        linear_epochs: None,
        linear_learning_rate: None,
        knn_k: None,
        ..options.clone()
    };
    if fixed != Options::default() {
        return Err(TrainError::Config(format!(
            "{} has its configuration in {}; only --device, --linear_epochs, \
             --linear_learning_rate and --knn_k may be given with it",
            run.display(),
            crate::run::CONFIG_FILE
        )));
    }
    if let Some(device) = options.device {
        config.device = device;
    }
    if let Some(epochs) = options.linear_epochs {
        config.linear_epochs = epochs;
    }
    if let Some(rate) = options.linear_learning_rate {
        config.linear_learning_rate = rate;
    }
    if let Some(k) = options.knn_k {
        config.knn_k = k;
    }
    config.validate()?;
    if !run.join(CHECKPOINT_FILE).is_file() {
        return Err(TrainError::run(
            run,
            format!("no {CHECKPOINT_FILE} in the run folder"),
        ));
    }
    Prepared::new(config, quiet)
}

/// The encoder of the pre-training run in `run`, in evaluation mode on `prepared`'s device.
pub fn load_encoder(run: &Path, prepared: &Prepared) -> Result<Encoder, TrainError> {
    let path = run.join(CHECKPOINT_FILE);
    let checkpoint = Checkpoint::load(&path)?;
    let model = supcon_model(&prepared.config, prepared.channels(), &prepared.device)?;
    Ok(restore_model(model, checkpoint.model, &path)?
        .valid()
        .encoder)
}

/// Linear evaluation of the encoder of `run`; the result is saved there as `linear.json`.
pub fn linear(run: &Path, options: &Options, quiet: bool) -> Result<LinearOutcome, TrainError> {
    let prepared = reopen(run, options, quiet)?;
    let encoder = load_encoder(run, &prepared)?;
    let features = split_features(&prepared, &encoder)?;
    let outcome = evaluate_linear(&prepared, &features, quiet)?;
    save_linear(run, &outcome)?;
    Ok(outcome)
}

/// kNN accuracy (training split as reference) on the validation and test splits.
pub fn knn(run: &Path, options: &Options, quiet: bool) -> Result<(f64, f64), TrainError> {
    let prepared = reopen(run, options, quiet)?;
    let encoder = load_encoder(run, &prepared)?;
    let c = &prepared.config;
    let s = &prepared.splits;
    let features = |data| extract(&encoder, data, c, &prepared.device);
    let train: FeatureSet = features(&s.train)?;
    let val = knn_accuracy(&train, &features(&s.validation)?, c.knn_k, KNN_TEMPERATURE)?;
    let test = knn_accuracy(&train, &features(&s.test)?, c.knn_k, KNN_TEMPERATURE)?;
    Ok((val, test))
}

/// Writes `<split>-embeddings.npy` (`[N, width]` f32) and `<split>-labels.npy` (`[N]` i64).
pub fn embed(
    run: &Path,
    split: SplitName,
    output: Option<&Path>,
    options: &Options,
    quiet: bool,
) -> Result<Vec<PathBuf>, TrainError> {
    let prepared = reopen(run, options, quiet)?;
    let encoder = load_encoder(run, &prepared)?;
    let (name, data) = match split {
        SplitName::Train => ("train", &prepared.splits.train),
        SplitName::Validation => ("validation", &prepared.splits.validation),
        SplitName::Test => ("test", &prepared.splits.test),
    };
    let c = &prepared.config;
    let set = extract(&encoder, data, c, &prepared.device)?;
    let dir = output.unwrap_or(run);
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let [n, width] = set.features.dims();
    let host = |e: burn::tensor::DataError| TrainError::run(run, format!("{e:?}"));
    let features = set
        .features
        .into_data()
        .try_into_vec::<f32>()
        .map_err(host)?;
    let labels = set
        .labels
        .into_data()
        .try_into_vec_as::<i64>()
        .map_err(host)?;
    let embeddings_path = dir.join(format!("{name}-embeddings.npy"));
    let labels_path = dir.join(format!("{name}-labels.npy"));
    write_atomically(&embeddings_path, &npy_f32(&[n, width], &features))?;
    write_atomically(&labels_path, &npy_i64(&[n], &labels))?;
    Ok(vec![embeddings_path, labels_path])
}

fn print_pretrain(outcome: &PretrainOutcome) {
    let knn = outcome
        .history
        .iter()
        .rev()
        .find_map(|m| m.knn_accuracy)
        .map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
    let last_loss = outcome.history.last().map_or(f64::NAN, |m| m.loss);
    println!();
    println!("| run | epochs | training | final loss | kNN val | linear val | linear test |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let (val, test) = outcome
        .linear
        .as_ref()
        .map_or(("-".into(), "-".into()), |l| {
            (
                format!("{:.2}%", 100.0 * l.val_accuracy),
                format!("{:.2}%", 100.0 * l.test_accuracy),
            )
        });
    println!(
        "| {} | {} | {:.1} s | {last_loss:.4} | {knn} | {val} | {test} |",
        outcome.run_dir.display(),
        outcome.history.len(),
        outcome.seconds,
    );
}
