//! The commands: each calls the library (`supcon_train::runs`, `ce`) and prints its result;
//! figures are drawn here, from what the library returns.

use std::path::PathBuf;

use supcon_train::TrainError;
use supcon_train::config::{Options, RunConfig};
use supcon_train::pretrain::PretrainOutcome;
use supcon_train::progress::Progress;
use supcon_train::run::{Prepared, RunKind, create_run_dir};
use supcon_train::runs::{
    self, EmbedInput, Split, demo_config, embed, knn, linear, resume_pretrain, start_pretrain,
};

use crate::cli::Command;
use crate::plot;

/// Runs a parsed command line, reporting to `progress`.
pub fn run(
    command: Option<Command>,
    options: Options,
    progress: &dyn Progress,
) -> Result<(), TrainError> {
    match command {
        None => demo(options, progress),
        Some(Command::Pretrain { resume, options }) => {
            let outcome = match resume {
                Some(run) => resume_pretrain(&run, &options, progress)?,
                None => {
                    let config = RunConfig::resolve(options.clone())?;
                    // Given on the command line, it would be saved and do nothing.
                    if options.queue_momentum.is_some() && config.step.queue == 0 {
                        return Err(TrainError::Config(format!(
                            "--queue_momentum {} would have no effect: it is the momentum \
                             encoder's, which runs only with a queue (give --queue N)",
                            config.step.queue_momentum
                        )));
                    }
                    start_pretrain(config, progress)?
                }
            };
            figures(&outcome)?;
            print_pretrain(&outcome);
            Ok(())
        }
        Some(Command::Ce { resume, options }) => {
            check_ce_options(&options)?;
            let (prepared, run_dir, resume) = match resume {
                Some(run) => (
                    runs::resume(&run, &options, RunKind::CrossEntropy, progress)?,
                    run,
                    true,
                ),
                None => {
                    let (prepared, dir) = new_ce_run(options, progress)?;
                    (prepared, dir, false)
                }
            };
            let (history, outcome) =
                supcon_train::ce::cross_entropy(&prepared, &run_dir, resume, progress, None)?;
            plot::plot_curves(&run_dir, &history)?;
            if let Some(o) = outcome {
                if let Some(file) = &o.file {
                    let title = format!(
                        "Cross-entropy baseline, test split: {:.2}% correct",
                        100.0 * o.test_accuracy
                    );
                    confusion_figure(file, &o.per_class.confusion, &o.per_class.classes, &title)?;
                }
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
        Some(Command::Linear {
            encoder,
            device,
            checkpoint,
            linear_epochs,
            linear_learning_rate,
        }) => {
            let options = checkpoint.over(Options {
                device: device.device,
                linear_epochs,
                linear_learning_rate,
                ..Options::default()
            });
            let (outcome, file) = linear(&encoder, &options, progress)?;
            linear_confusion(&outcome, &file)?;
            println!(
                "linear evaluation test accuracy {:.2}% (epoch {} of best validation {:.2}%), saved as {}",
                100.0 * outcome.test_accuracy,
                outcome.best_epoch,
                100.0 * outcome.val_accuracy,
                file.display()
            );
            print_summary(file.parent().unwrap_or(&encoder));
            Ok(())
        }
        Some(Command::Knn {
            encoder,
            device,
            checkpoint,
            knn_k,
        }) => {
            let options = checkpoint.over(Options {
                device: device.device,
                knn_k,
                ..Options::default()
            });
            let (outcome, file) = knn(&encoder, &options, progress)?;
            println!(
                "kNN accuracy (k = {}): validation {:.2}%, test {:.2}%, saved as {}",
                outcome.k,
                100.0 * outcome.val_accuracy,
                100.0 * outcome.test_accuracy,
                file.display()
            );
            print_summary(file.parent().unwrap_or(&encoder));
            Ok(())
        }
        Some(Command::Embed {
            encoder,
            split,
            images,
            projection,
            output,
            device,
            checkpoint,
            head,
            feat_dim,
        }) => {
            let options = checkpoint.over(Options {
                device: device.device,
                head,
                feat_dim,
                ..Options::default()
            });
            let input = if images.is_empty() {
                EmbedInput::Split(split.unwrap_or(Split::Test))
            } else {
                EmbedInput::Images(images)
            };
            let written = embed(
                &encoder,
                &input,
                projection,
                output.as_deref(),
                &options,
                progress,
            )?;
            for path in written {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Some(Command::Export {
            run,
            format,
            head,
            output,
        }) => {
            let path = runs::export(&run, format, head, output.as_deref())?;
            println!("wrote {}", path.display());
            Ok(())
        }
    }
}

/// The demo: the recipe under `options`, pre-training, linear evaluation, a summary table.
fn demo(options: Options, progress: &dyn Progress) -> Result<(), TrainError> {
    let started = std::time::Instant::now();
    let outcome = start_pretrain(demo_config(options)?, progress)?;
    figures(&outcome)?;
    print_pretrain(&outcome);
    println!("total time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `curves.png` and, for a finished run, `embedding.png` and the linear evaluation's confusion
/// matrix.
fn figures(outcome: &PretrainOutcome) -> Result<(), TrainError> {
    match &outcome.test_features {
        Some(test) => plot::plot_run(&outcome.run_dir, &outcome.history, test, &outcome.classes)?,
        None => plot::plot_curves(&outcome.run_dir, &outcome.history)?,
    }
    if let (Some(linear), Some(file)) = (&outcome.linear, &outcome.linear_file) {
        linear_confusion(linear, file)?;
    }
    Ok(())
}

/// The confusion matrix of the linear evaluation saved in `file`.
fn linear_confusion(
    outcome: &supcon_train::linear::LinearOutcome,
    file: &std::path::Path,
) -> Result<(), TrainError> {
    let title = format!(
        "Linear evaluation, test split: {:.2}% correct",
        100.0 * outcome.test_accuracy
    );
    confusion_figure(
        file,
        &outcome.per_class.confusion,
        &outcome.per_class.classes,
        &title,
    )
}

/// `<result>-confusion.png` beside an evaluation's result file.
fn confusion_figure(
    file: &std::path::Path,
    confusion: &[Vec<u64>],
    classes: &[String],
    title: &str,
) -> Result<(), TrainError> {
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    let path = file.with_file_name(format!("{stem}-confusion.png"));
    plot::plot_confusion(&path, confusion, classes, title)
}

/// Refuses options of pre-training given to `ce`: a new run would save them in its
/// config.toml and ignore them, a resumed one ignore them. (A --config file may hold them,
/// shared with `pretrain`: they are not checked there.)
fn check_ce_options(options: &Options) -> Result<(), TrainError> {
    let unused = options.unused_by_cross_entropy();
    if !unused.is_empty() {
        let names: Vec<String> = unused.iter().map(|name| format!("--{name}")).collect();
        return Err(TrainError::Config(format!(
            "{} would have no effect on the cross-entropy baseline, which trains the encoder \
             and a linear classifier together on one view of each image and selects its epoch \
             on validation accuracy (no contrastive loss, head, queue, kNN monitor or linear \
             evaluation): leave {} out",
            names.join(", "),
            if names.len() == 1 { "it" } else { "them" }
        )));
    }
    Ok(())
}

/// Loads the data of a new cross-entropy run and creates its folder.
fn new_ce_run(
    options: Options,
    progress: &dyn Progress,
) -> Result<(Prepared, PathBuf), TrainError> {
    let config = RunConfig::resolve(options)?;
    supcon_train::run::check_new_run(&config)?;
    let prepared = Prepared::new(config, progress)?;
    supcon_train::footprint::check_training(&prepared, RunKind::CrossEntropy, progress)?;
    let dir = create_run_dir(
        &prepared.config,
        &format!("ce-{}", prepared.config.model.architecture),
        RunKind::CrossEntropy,
    )?;
    progress.message(&format!("run folder {}", dir.display()));
    let settings = prepared.config.describe();
    progress.message(&format!("configuration (config.toml):\n{settings}"));
    Ok((prepared, dir))
}

/// The run's evaluations so far (its `summary.md`), when there is more than one.
fn print_summary(run: &std::path::Path) {
    if let Ok(text) = supcon_train::report::summary(run)
        && text.lines().filter(|l| l.ends_with('|')).count() > 3
    {
        println!("\n{text}");
    }
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
