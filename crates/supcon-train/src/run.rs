//! What every command does first: resolve the configuration against the data, pick the device,
//! create (or reopen) the run folder.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use supcon_augment::{ColorJitterConfig, CropConfig, ViewPipelineConfig};
use supcon_data::Splits;

use crate::TrainError;
use crate::config::RunConfig;
use crate::dataset::ChannelStatistics;
use crate::progress::Progress;

/// File name of the configuration saved in a run folder.
pub const CONFIG_FILE: &str = "config.toml";

/// File name of a run folder's kind ([`RunKind`]), one word.
pub const KIND_FILE: &str = "kind";

/// What a run folder holds, written beside its configuration when it is created, so that a run
/// is continued or evaluated by the command that made it, checkpoint or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Pre-training (SupCon or SimCLR): `pretrain`.
    Pretrain,
    /// The cross-entropy baseline: `ce`.
    CrossEntropy,
    /// An evaluation of an encoder from a checkpoint file: `linear`, `knn`.
    Evaluation,
}

impl RunKind {
    /// The word in the [`KIND_FILE`].
    pub fn word(self) -> &'static str {
        match self {
            RunKind::Pretrain => "pretrain",
            RunKind::CrossEntropy => "ce",
            RunKind::Evaluation => "eval",
        }
    }

    /// What such a run is, for messages.
    pub fn description(self) -> &'static str {
        match self {
            RunKind::Pretrain => "a pre-training run (`supcon-train pretrain`)",
            RunKind::CrossEntropy => "a cross-entropy run (`supcon-train ce`)",
            RunKind::Evaluation => "an evaluation folder (`supcon-train linear` or `knn`)",
        }
    }

    /// The kind `run` was created as; `None` for a folder made before kinds were recorded.
    pub fn of(run: &Path) -> Result<Option<RunKind>, TrainError> {
        let path = run.join(KIND_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        [
            RunKind::Pretrain,
            RunKind::CrossEntropy,
            RunKind::Evaluation,
        ]
        .into_iter()
        .find(|k| k.word() == text.trim())
        .map(Some)
        .ok_or_else(|| {
            TrainError::run(
                &path,
                format!("unknown run kind `{}` (pretrain, ce or eval)", text.trim()),
            )
        })
    }

    /// Refuses `run` unless it was created as this kind (or before kinds were recorded);
    /// returns the kind recorded.
    pub fn check(self, run: &Path) -> Result<Option<RunKind>, TrainError> {
        match RunKind::of(run)? {
            Some(kind) if kind != self => Err(TrainError::run(
                run,
                format!("is {}, not {}", kind.description(), self.description()),
            )),
            recorded => Ok(recorded),
        }
    }
}

/// A configuration made concrete: data loaded, normalisation measured, device ready.
pub struct Prepared {
    /// The configuration, `mean`/`std` filled in.
    pub config: RunConfig,
    /// The data.
    pub splits: Splits,
    /// The plain device (training uses its autodiff twin).
    pub device: Device,
}

impl Prepared {
    /// Loads the data named by `config` and fills in what depends on it.
    pub fn new(mut config: RunConfig, progress: &dyn Progress) -> Result<Prepared, TrainError> {
        config.validate()?;
        let device = config.device()?;
        device.seed(config.seed);
        let data = &mut config.data;
        let mut splits =
            data.dataset
                .load(data.val_fraction, config.seed, data.size.unwrap_or(32))?;
        if let Some(count) = data.limited(splits.train.len())? {
            let subset = supcon_data::stratified_subset(splits.train.labels(), count, config.seed)?;
            progress.message(&format!(
                "limit: training on {count} of the {} training images (class-stratified)",
                splits.train.len()
            ));
            let before = splits.train.class_counts();
            splits.train = splits.train.subset(&subset)?;
            let dropped: Vec<String> = (before.iter().zip(splits.train.class_counts()))
                .zip(splits.train.classes())
                .filter(|((had, has), _)| **had > 0 && *has == 0)
                .map(|(_, name)| name.clone())
                .collect();
            if !dropped.is_empty() {
                let present = before.iter().filter(|&&c| c > 0).count();
                return Err(TrainError::Config(format!(
                    "--limit {count} keeps no training image of {} of the {present} classes \
                     ({}): the linear evaluation could never predict them; give a limit that \
                     keeps every class (at least {present} images, more for classes smaller \
                     than the others)",
                    dropped.len(),
                    crate::dataset::list_names(&dropped, 10)
                )));
            }
        }
        let channels = splits.train.image_shape()[0];
        let mut constant_channels = None;
        if data.mean.is_empty() {
            let measured = ChannelStatistics::measure(&splits.train);
            constant_channels = measured.constant_channels_note();
            (data.mean, data.std) = (measured.mean, measured.std);
        } else if data.mean.len() != channels {
            return Err(TrainError::Config(format!(
                "mean/std have {} values but the images have {channels} channels",
                data.mean.len()
            )));
        }
        progress.message(&format!(
            "data {}: {} train, {} validation, {} test images of {:?}, {} classes",
            config.data.dataset,
            splits.train.len(),
            splits.validation.len(),
            splits.test.len(),
            splits.train.image_shape(),
            splits.train.num_classes()
        ));
        if let Some(note) = config.data.dataset.test_note(splits.test.len())? {
            progress.message(&note);
        }
        if let Some(note) = crate::dataset::empty_classes_note(&splits.train) {
            progress.message(&note);
        }
        if let Some(note) = constant_channels {
            progress.message(&note);
        }
        Ok(Prepared {
            config,
            splits,
            device,
        })
    }

    /// Image channels.
    pub fn channels(&self) -> usize {
        self.splits.train.image_shape()[0]
    }
}

/// The augmentation of pre-training for images of `channels` channels: random resized crop
/// (scale `crop_min_scale..1`, output `size`), flip, colour jitter of strength `jitter`
/// (brightness and contrast only for grey images) with probability 0.8, grayscale with
/// probability 0.2 for colour images, normalisation with `mean` / `std`.
pub fn pretrain_view_config(c: &RunConfig, channels: usize) -> ViewPipelineConfig {
    let colour = channels == 3;
    let jitter = (c.augment.jitter > 0.0).then(|| {
        ColorJitterConfig::new()
            .with_brightness(c.augment.jitter)
            .with_contrast(c.augment.jitter)
            .with_saturation(if colour { c.augment.jitter } else { 0.0 })
            .with_hue(if colour { c.augment.jitter / 4.0 } else { 0.0 })
    });
    crop_view_config(c)
        .with_color_jitter(jitter)
        .with_grayscale_probability(if colour { 0.2 } else { 0.0 })
}

/// The augmentation of the cross-entropy baseline: random resized crop, flip, normalisation.
pub fn crop_view_config(c: &RunConfig) -> ViewPipelineConfig {
    ViewPipelineConfig::cross_entropy(c.data.mean.clone(), c.data.std.clone())
        .with_crop(Some(
            CropConfig::new().with_scale([c.augment.crop_min_scale, 1.0]),
        ))
        .with_flip_probability(c.augment.flip)
        .with_output_size(c.data.size.map(|s| [s, s]))
}

/// Checks, without creating anything, that the run `config` describes can be created: its
/// `out` folder ([`check_out_dir`]) and, for a chosen `name`, that no such folder exists; and
/// that step milestones (`lr_decay_epochs`) come with the step schedule, which alone uses them.
pub fn check_new_run(config: &RunConfig) -> Result<(), TrainError> {
    check_out_dir(&config.out)?;
    let schedule = &config.schedule;
    if !schedule.lr_decay_epochs.is_empty() && schedule.kind != crate::schedule::ScheduleKind::Step
    {
        // (Not checked when a run is reopened: runs saved before this check hold them.)
        return Err(TrainError::Config(
            "lr_decay_epochs would have no effect: they are the step schedule's milestones, and \
             the schedule is not step (give --schedule step, or the reference's --cosine false; \
             the default, cosine, warms up and decays per iteration)"
                .into(),
        ));
    }
    match &config.name {
        Some(name) if config.out.join(name).exists() => Err(name_taken(&config.out.join(name))),
        _ => Ok(()),
    }
}

fn name_taken(dir: &Path) -> TrainError {
    TrainError::Config(format!(
        "{} already exists: choose another --name, or continue that run with --resume {}",
        dir.display(),
        dir.display()
    ))
}

/// Checks, without creating anything, that run folders can be created in `out`: its nearest
/// existing ancestor must be a folder we can write in. So a bad `--out` (a file, a read-only
/// place) is refused before any data is loaded.
pub fn check_out_dir(out: &Path) -> Result<(), TrainError> {
    let mut existing = out;
    while !existing.exists() {
        existing = match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
    }
    if !existing.is_dir() {
        return Err(TrainError::run(
            existing,
            format!(
                "is a file, so --out {} cannot hold run folders",
                out.display()
            ),
        ));
    }
    let probe = existing.join(format!(".supcon-write-test-{}", std::process::id()));
    std::fs::create_dir(&probe)
        .and_then(|()| std::fs::remove_dir(&probe))
        .map_err(|e| {
            TrainError::run(
                existing,
                format!(
                    "cannot create run folders here (--out {}): {e}",
                    out.display()
                ),
            )
        })
}

/// Creates a fresh run folder `out/<name>-<n>` (the first free `n` from 1, or `config.name`)
/// and saves the configuration and the run's `kind` in it.
pub fn create_run_dir(
    config: &RunConfig,
    name: &str,
    kind: RunKind,
) -> Result<PathBuf, TrainError> {
    check_new_run(config)?;
    std::fs::create_dir_all(&config.out)
        .map_err(|e| TrainError::run(&config.out, format!("cannot create the folder: {e}")))?;
    let dir = match &config.name {
        Some(chosen) => {
            let dir = config.out.join(chosen);
            match std::fs::create_dir(&dir) {
                Ok(()) => dir,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(name_taken(&dir));
                }
                Err(e) => return Err(cannot_create(&dir, e)),
            }
        }
        None => numbered_dir(&config.out, name)?,
    };
    // The kind first: a folder with a configuration but no kind reads as one made before kinds
    // were recorded, which any command would take; one stopped between the two writes has no
    // configuration, which every command refuses.
    crate::atomic::write_atomically(
        &dir.join(KIND_FILE),
        format!("{}\n", kind.word()).as_bytes(),
    )?;
    config.save(&dir.join(CONFIG_FILE))?;
    Ok(dir)
}

/// Removes `dir`, made by [`create_run_dir`], if it still holds only what that wrote (and the
/// lock file a [`RunLock`] leaves): for a command that failed before saving anything there.
/// Returns whether it was removed. Best effort: the command's own error is what the user needs
/// to see.
pub(crate) fn remove_unused_run_dir(dir: &Path) -> bool {
    let made = [KIND_FILE, CONFIG_FILE, LOCK_FILE];
    let unused = std::fs::read_dir(dir).is_ok_and(|mut entries| {
        entries.all(|entry| entry.is_ok_and(|e| made.iter().any(|m| e.file_name() == *m)))
    });
    unused && std::fs::remove_dir_all(dir).is_ok()
}

/// Creates the first free `out/name-n` (n = 1, 2, ...).
fn numbered_dir(out: &Path, name: &str) -> Result<PathBuf, TrainError> {
    for n in 1.. {
        let dir = out.join(format!("{name}-{n}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(cannot_create(&dir, e)),
        }
    }
    unreachable!("some run number is free")
}

fn cannot_create(dir: &Path, e: std::io::Error) -> TrainError {
    TrainError::run(dir, format!("cannot create the run folder: {e}"))
}

/// File name of a run folder's lock.
pub const LOCK_FILE: &str = ".lock";

/// A run folder held for writing: the operating system's advisory lock on its `.lock` file,
/// released when this is dropped or the process ends in any way (a kill included, so a
/// crashed run never leaves a stale lock behind).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Locks `run` for this process, or says that another process is writing it.
    pub fn acquire(run: &Path) -> Result<RunLock, TrainError> {
        let path = run.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(TrainError::run(
                run,
                "another supcon-train process is writing this run folder; wait for it to \
                 finish (or stop it) first",
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(TrainError::io(&path, e)),
        }
    }
}

/// The configuration saved in an existing run folder.
pub fn load_run_config(run: &Path) -> Result<RunConfig, TrainError> {
    if !run.is_dir() {
        return Err(TrainError::run(run, "no such run folder"));
    }
    let path = run.join(CONFIG_FILE);
    if !path.is_file() {
        return Err(TrainError::run(
            run,
            format!("not a run folder: no {CONFIG_FILE}"),
        ));
    }
    RunConfig::load(&path)
}
