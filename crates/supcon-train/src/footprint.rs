//! Memory, sized before it is used: a training step whose feature maps alone cannot fit in the
//! memory this machine has available (or a momentum queue that would take half of it) is
//! refused with what to change (on the CPU devices, whose memory is the system's), instead of
//! being killed by the system minutes in; and feature extraction takes as many images a pass
//! as fit.
//!
//! The sizes come from [`EncoderConfig::feature_maps`]: the values of every convolution's output
//! for one image. A training step keeps at least those and every convolution's input for its
//! backward pass, for every image of a pass (the batch's views, or one chunk's with gradient
//! caching); an inference pass holds at least the largest, with its input.

use std::path::Path;

use supcon_encoder::EncoderConfig;

use crate::TrainError;
use crate::config::RunConfig;
use crate::device::Precision;
use crate::progress::Progress;
use crate::run::{Prepared, RunKind};

/// Images per pass of feature extraction at most (fewer where the images are large).
pub const MAX_EXTRACT_BATCH: usize = 500;
/// Memory feature extraction lets one pass take where the available memory is unknown (a GPU).
const EXTRACT_BUDGET_UNKNOWN: u64 = 4 << 30;
/// How many times its largest feature map one image is taken to need in an inference pass, when
/// the images a pass are chosen (the map, the convolution's input, and BatchNorm's output
/// beside them); a pass is refused where twice the map does not fit, a lower bound.
const INFERENCE_MAPS: u64 = 3;
/// What a training step keeps for its backward pass at the least, in multiples of its feature
/// maps: every convolution's output (BatchNorm's backward reads it) and every convolution's
/// input (the weight gradient's). A step is refused above the available memory.
const TRAINING_MAPS_KEPT: u64 = 2;
/// What a training step is taken to need, in multiples of its feature maps, when a setting is
/// suggested and below which nothing is said: measured here at 2.8-2.9 for ResNet-18 (a
/// `--chunk 1` step at 1,000 x 1,000 pixels, 13.4 GB peak; the 256-image step at 32x32, 3.5 GiB
/// of heap).
const TRAINING_MAPS_SUGGESTED: u64 = 3;

/// The memory the system can still give this process without swapping, in bytes: Linux's
/// `MemAvailable`, or less where the process's control group (a container's limit, cgroup v2
/// or v1) leaves less; `None` where it is not known.
pub fn available_memory() -> Option<u64> {
    let read = |path: &Path| std::fs::read_to_string(path).ok();
    let system = mem_available(&read(Path::new("/proc/meminfo"))?)?;
    let groups = read(Path::new("/proc/self/cgroup")).unwrap_or_default();
    // The process's group and every group above it (their limits hold too), in v2's single
    // hierarchy and in v1's memory one; the mount's root last (a container's own group), each
    // folder read once.
    let mut folders = Vec::new();
    for (root, path) in cgroup_paths(&groups) {
        let mut folder = Path::new(root).join(path.trim_start_matches('/'));
        loop {
            if !folders.iter().any(|(_, seen)| *seen == folder) {
                folders.push((root, folder.clone()));
            }
            if !folder.pop() || !folder.starts_with(root) {
                break;
            }
        }
    }
    let headroom = folders.iter().filter_map(|(root, folder)| {
        let [limit, usage] = match *root {
            CGROUP_V2 => ["memory.max", "memory.current"],
            _ => ["memory.limit_in_bytes", "memory.usage_in_bytes"],
        };
        cgroup_headroom(
            read(&folder.join(limit)).as_deref(),
            read(&folder.join(usage)).as_deref(),
            read(&folder.join("memory.stat")).as_deref(),
        )
    });
    Some(headroom.fold(system, u64::min))
}

const CGROUP_V2: &str = "/sys/fs/cgroup";
const CGROUP_V1_MEMORY: &str = "/sys/fs/cgroup/memory";

/// The mount and the path of the process's memory control groups, from `/proc/self/cgroup`'s
/// text (`0::/path` for v2, `N:...memory...:/path` for v1), and both mounts' roots.
fn cgroup_paths(text: &str) -> Vec<(&'static str, &str)> {
    let mut paths: Vec<(&'static str, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            if controllers.is_empty() {
                Some((CGROUP_V2, path))
            } else if controllers.split(',').any(|c| c == "memory") {
                Some((CGROUP_V1_MEMORY, path))
            } else {
                None
            }
        })
        .collect();
    paths.extend([(CGROUP_V2, "/"), (CGROUP_V1_MEMORY, "/")]);
    paths
}

/// `MemAvailable` of `/proc/meminfo`'s text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// What a control group's limit leaves: the limit less the usage, the usage without the page
/// cache the kernel can drop (`inactive_file`, `total_inactive_file` in cgroup v1); `None`
/// without a limit (`max`, or v1's near-2^63 for none).
fn cgroup_headroom(limit: Option<&str>, usage: Option<&str>, stat: Option<&str>) -> Option<u64> {
    let limit: u64 = limit?.trim().parse().ok()?;
    if limit >= 1 << 60 {
        return None;
    }
    let usage: u64 = usage?.trim().parse().ok()?;
    let inactive = stat
        .and_then(|stat| {
            stat.lines().find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                matches!(key, "inactive_file" | "total_inactive_file")
                    .then(|| value.trim().parse::<u64>().ok())
                    .flatten()
            })
        })
        .unwrap_or(0);
    Some(limit.saturating_sub(usage.saturating_sub(inactive)))
}

/// The available memory ([`available_memory`]) where the run's device computes in the system's
/// memory (`flex`, `ndarray`); `None` on the GPU devices and where it is not known.
fn host_memory(config: &RunConfig) -> Option<u64> {
    matches!(config.device.name(), "flex" | "ndarray")
        .then(available_memory)
        .flatten()
}

fn bytes_per_value(precision: Precision) -> u64 {
    match precision {
        Precision::F16 | Precision::Bf16 => 2,
        Precision::F32 | Precision::Flex32 => 4,
    }
}

/// The run's encoder, for images of `channels` channels.
fn encoder(config: &RunConfig, channels: usize) -> EncoderConfig {
    EncoderConfig::new(config.model.architecture).with_in_channels(channels)
}

fn images(count: usize) -> String {
    match count {
        1 => "1 image".into(),
        n => format!("{n} images"),
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// What a training step of the run needs.
#[derive(Debug, Clone, Copy)]
pub struct TrainingStep {
    /// Images a batch holds.
    pub batch_size: usize,
    /// Views of each image (1 for cross-entropy).
    pub views: usize,
    /// Images of a gradient-caching chunk (`None`: the whole batch in one pass, or a task
    /// without gradient caching).
    pub chunk: Option<usize>,
    /// The views' shape: channels, height, width.
    pub image: [usize; 3],
    /// Keys the momentum queue holds (0: none), each of the run's `feat_dim` values.
    pub queue: usize,
}

impl TrainingStep {
    /// The bytes of feature maps one image's pass keeps.
    fn per_image(&self, config: &RunConfig) -> u64 {
        let [channels, height, width] = self.image;
        let maps = encoder(config, channels).feature_maps(height, width);
        (maps.total as u64).saturating_mul(bytes_per_value(config.precision))
    }

    /// The bytes of feature maps a pass of `images` images keeps.
    fn pass(&self, config: &RunConfig, images: usize) -> u64 {
        self.per_image(config)
            .saturating_mul((images * self.views) as u64)
    }

    /// Refuses the step where what it keeps for its backward pass (twice its feature maps)
    /// needs more than the `available` memory (less the momentum queue's, which is refused
    /// where it takes more than half of it); `Ok(Some(note))` where three times its feature
    /// maps would (the step may not fit).
    pub fn check_against(
        &self,
        config: &RunConfig,
        available: u64,
    ) -> Result<Option<String>, TrainError> {
        // The queue's keys and labels, there for the whole run.
        let queue = (self.queue as u64).saturating_mul(
            (config.model.feat_dim as u64)
                .saturating_mul(bytes_per_value(config.precision))
                .saturating_add(8),
        );
        if queue > available / 2 {
            return Err(TrainError::Config(format!(
                "the momentum queue would not fit in memory: {} keys of {} values take {}, more \
                 than half the {} this machine has available; lower --queue or --feat_dim",
                self.queue,
                config.model.feat_dim,
                gib(queue),
                gib(available)
            )));
        }
        let available = available - queue;
        let pass_images = self.chunk.unwrap_or(self.batch_size);
        let maps = self.pass(config, pass_images);
        let kept = maps.saturating_mul(TRAINING_MAPS_KEPT);
        let [channels, height, width] = self.image;
        let views = match self.views {
            1 => String::new(),
            v => format!(" ({v} views each)"),
        };
        let what = format!(
            "{} of {channels}x{height}x{width}{views} through {} keep at least {} for the \
             backward pass (every convolution's output and input, {} an image)",
            images(pass_images),
            config.model.architecture,
            gib(kept),
            gib(self.per_image(config) * TRAINING_MAPS_KEPT * self.views as u64),
        );
        if maps.saturating_mul(TRAINING_MAPS_SUGGESTED) <= available {
            return Ok(None);
        }
        if kept <= available {
            return Ok(Some(format!(
                "note: {what}, with {} of memory available: the step may run out of memory",
                gib(available)
            )));
        }
        let fits = |images: usize| {
            self.pass(config, images)
                .saturating_mul(TRAINING_MAPS_SUGGESTED)
                <= available
        };
        let advice = if self.views > 1 {
            match (1..=self.batch_size)
                .rev()
                .find(|&c| self.batch_size.is_multiple_of(c) && fits(c))
            {
                Some(chunk) => format!(
                    "give --chunk {chunk} (gradient caching: the same step, {} at a time), or \
                     lower --size or --batch_size",
                    images(chunk)
                ),
                None => "lower --size: even one image at a time would not fit".into(),
            }
        } else {
            match (1..=self.batch_size).rev().find(|&b| fits(b)) {
                Some(batch) => format!("lower --batch_size (to {batch}, say) or --size"),
                None => "lower --size: even one image at a time would not fit".into(),
            }
        };
        Err(TrainError::Config(format!(
            "a training step would not fit in memory: {what}, and this machine has {} available; \
             {advice}",
            gib(available)
        )))
    }

    /// [`check_against`](Self::check_against) the memory available, on the CPU devices.
    pub fn check(&self, config: &RunConfig) -> Result<Option<String>, TrainError> {
        match host_memory(config) {
            Some(available) => self.check_against(config, available),
            None => Ok(None),
        }
    }
}

/// Refuses to train a run of `kind` (pre-training or cross-entropy) whose step cannot fit in
/// memory ([`TrainingStep::check`]), before its folder is made or its training continued; says
/// so through `progress` where it may not fit.
pub fn check_training(
    prepared: &Prepared,
    kind: RunKind,
    progress: &dyn Progress,
) -> Result<(), TrainError> {
    let c = &prepared.config;
    let (views, chunk, queue) = match kind {
        RunKind::CrossEntropy => (1, None, 0),
        _ => (
            c.augment.views,
            (c.step.chunk > 0).then_some(c.step.chunk),
            c.step.queue,
        ),
    };
    let step = TrainingStep {
        batch_size: c.data.batch_size.min(prepared.splits.train.len()),
        views,
        chunk,
        // The training views have the evaluation transform's shape (`size`, or the images').
        image: crate::features::evaluated_shape(c, &prepared.splits.train),
        queue,
    };
    if let Some(note) = step.check(c)? {
        progress.message(&note);
    }
    Ok(())
}

/// Images a pass of feature extraction takes for images of shape `image` (channels, height,
/// width) through the run's encoder: [`MAX_EXTRACT_BATCH`], or fewer so that a pass takes at
/// most a quarter of the available memory (on the GPU devices, 4 GiB). Refused where even one
/// image's largest feature map, with the input it is computed from, exceeds the available
/// memory (CPU devices).
pub fn extraction_batch(config: &RunConfig, image: [usize; 3]) -> Result<usize, TrainError> {
    let [channels, height, width] = image;
    let largest = encoder(config, channels)
        .feature_maps(height, width)
        .largest as u64;
    let map = largest.saturating_mul(bytes_per_value(config.precision));
    let available = host_memory(config);
    if let Some(available) = available
        && map.saturating_mul(2) > available
    {
        return Err(TrainError::Config(format!(
            "features of {channels}x{height}x{width} images cannot be computed in memory: {}'s \
             largest feature map takes {} an image, and with the input it is computed from more \
             than the {} available; lower --size",
            config.model.architecture,
            gib(map),
            gib(available)
        )));
    }
    let budget = available.map_or(EXTRACT_BUDGET_UNKNOWN, |a| a / 4);
    Ok(extraction_batch_within(map, budget))
}

/// Images a pass of feature extraction takes within `budget` bytes, for images whose largest
/// feature map takes `map` bytes.
fn extraction_batch_within(map: u64, budget: u64) -> usize {
    let per_image = map.saturating_mul(INFERENCE_MAPS).max(1);
    usize::try_from(budget / per_image)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_EXTRACT_BATCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use supcon_encoder::Architecture;

    fn config(architecture: Architecture) -> RunConfig {
        let mut config = RunConfig::new();
        config.model.architecture = architecture;
        config
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_step_whose_feature_maps_cannot_fit_is_refused_with_a_chunk_that_would() {
        let c = config(Architecture::ResNet18);
        // 600 M values an image at 1,000 x 1,000 (2.4 GB in float32), twice over, 64 images a
        // step.
        let step = TrainingStep {
            batch_size: 32,
            views: 2,
            chunk: None,
            image: [1, 1000, 1000],
            queue: 0,
        };
        let error = step.check_against(&c, 20 * GIB).unwrap_err().to_string();
        assert!(error.contains("would not fit in memory"), "{error}");
        assert!(error.contains("keep at least 286.1 GiB"), "{error}");
        // 3 x 2 views x 2.4 GB x 2 images = 28.8 GB > 20 GiB; one image a chunk: 14.4 GB.
        assert!(error.contains("give --chunk 1 "), "{error}");
        let chunked = TrainingStep {
            chunk: Some(1),
            ..step
        };
        let note = chunked.check_against(&c, 12 * GIB).unwrap().unwrap();
        assert!(note.contains("may run out of memory"), "{note}");
        assert_eq!(chunked.check_against(&c, 64 * GIB).unwrap(), None);
        // Cross-entropy: one view, no chunks: a smaller batch is suggested.
        let ce = TrainingStep {
            views: 1,
            batch_size: 256,
            image: [3, 224, 224],
            ..step
        };
        let error = ce.check_against(&c, 8 * GIB).unwrap_err().to_string();
        assert!(error.contains("lower --batch_size (to "), "{error}");
        // The reference's CIFAR step, 512 images x 2 views of 32x32, fits in 8 GiB.
        let cifar = TrainingStep {
            batch_size: 512,
            image: [3, 32, 32],
            ..step
        };
        assert_eq!(cifar.check_against(&c, 8 * GIB).unwrap(), None);
        // The largest queue with the largest keys: 2^20 x 65,536 float32 values, 256 GiB.
        let mut wide = config(Architecture::ResNet18);
        wide.model.feat_dim = 65_536;
        let queued = TrainingStep {
            queue: 1 << 20,
            ..cifar
        };
        let error = queued
            .check_against(&wide, 64 * GIB)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("the momentum queue would not fit in memory: 1048576 keys of 65536 values take 256.0 GiB"),
            "{error}"
        );
        // The reference-sized queue (65,536 keys of 128 values, 32.5 MiB) changes nothing.
        let reference = TrainingStep {
            queue: 65_536,
            ..cifar
        };
        assert_eq!(reference.check_against(&c, 8 * GIB).unwrap(), None);
    }

    #[test]
    fn the_available_memory_is_the_systems_or_a_control_groups_less() {
        let meminfo = "MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(mem_available(meminfo), Some(20_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
        // cgroup v2: no limit; a limit of 8 GiB with 3 GiB used, 1 GiB of it droppable cache.
        assert_eq!(cgroup_headroom(Some("max\n"), Some("100"), None), None);
        let stat = "anon 2147483648\ninactive_file 1073741824\nactive_file 0\n";
        assert_eq!(
            cgroup_headroom(Some("8589934592\n"), Some("3221225472\n"), Some(stat)),
            Some(6 * GIB)
        );
        // cgroup v1: "no limit" is a number near 2^63; its stat names the cache otherwise.
        assert_eq!(
            cgroup_headroom(Some("9223372036854771712"), Some("4542119936"), None),
            None
        );
        let stat = "cache 10\ntotal_inactive_file 1073741824\n";
        assert_eq!(
            cgroup_headroom(Some("4294967296"), Some("2147483648"), Some(stat)),
            Some(3 * GIB)
        );
        let groups = "4:memory:/process_api/abc\n1:cpu:/\n0::/user.slice/x\n";
        assert_eq!(
            cgroup_paths(groups),
            [
                (CGROUP_V1_MEMORY, "/process_api/abc"),
                (CGROUP_V2, "/user.slice/x"),
                (CGROUP_V2, "/"),
                (CGROUP_V1_MEMORY, "/"),
            ]
        );
        // Usage above the limit (reclaimable memory counted): nothing left, not an overflow.
        assert_eq!(cgroup_headroom(Some("100"), Some("200"), None), Some(0));
    }

    #[test]
    fn extraction_takes_fewer_images_a_pass_only_where_they_are_large() {
        let c = config(Architecture::ResNet18);
        // 64 K values in the largest map at 32x32: 786 KB an image.
        assert_eq!(
            extraction_batch_within(64 * 32 * 32 * 4, GIB),
            MAX_EXTRACT_BATCH
        );
        // 64 M values at 1,000 x 1,000, 768 MB an image.
        let map = 64 * 1000 * 1000 * 4;
        assert_eq!(extraction_batch_within(map, 4 * GIB), 5);
        assert_eq!(extraction_batch_within(map, GIB / 2), 1);
        if available_memory().is_some() {
            // 64 x 10^10 values, 2.56 TB a map: no machine here has that.
            let error = extraction_batch(&c, [3, 100_000, 100_000]).unwrap_err();
            assert!(error.to_string().contains("lower --size"), "{error}");
        }
        assert_eq!(
            extraction_batch(&c, [1, 28, 28]).unwrap(),
            MAX_EXTRACT_BATCH
        );
    }
}
