//! Whole runs on a tiny dataset through the library: seeding, resumption, linear evaluation,
//! the cross-entropy baseline, kNN and embeddings.

mod common;

use supcon_train::config::{Method, Options, RunConfig};
use supcon_train::fit::{CHECKPOINT_FILE, METRICS_FILE};
use supcon_train::pretrain::{PretrainOutcome, pretrain};
use supcon_train::progress::{Messages, Progress, Silent};
use supcon_train::run::{CONFIG_FILE, Prepared, RunKind, create_run_dir};
use supcon_train::runs::{self as commands, EmbedInput, ExportFormat, Split};

/// Burn's generator is per device and process-wide: runs that must be reproducible take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Per-class results on the tiny test split (32 images, 8 of each of the 4 classes) that agree
/// with the overall test accuracy.
fn assert_tiny_test_split(results: &supcon_train::linear::PerClassResults, accuracy: f64) {
    let rows: Vec<u64> = results.confusion.iter().map(|r| r.iter().sum()).collect();
    assert_eq!(rows, [8, 8, 8, 8]);
    let correct: u64 = (0..4).map(|c| results.confusion[c][c]).sum();
    assert_eq!(correct as f64 / 32.0, accuracy);
    assert_eq!(results.per_class_accuracy.len(), 4);
    assert_eq!(results.classes.len(), 4);
}

fn tiny_config(data: &std::path::Path, out: &std::path::Path) -> RunConfig {
    RunConfig::resolve(Options {
        dataset: Some(format!("idx:{}", data.display()).parse().unwrap()),
        out: Some(out.to_path_buf()),
        epochs: Some(3),
        batch_size: Some(32),
        learning_rate: Some(0.05),
        val_fraction: Some(0.25),
        knn_freq: Some(1),
        knn_k: Some(10),
        linear_epochs: Some(40),
        flip: Some(0.0),
        ..Options::default()
    })
    .unwrap()
}

/// A scratch folder with the tiny dataset in `data/`, and [`tiny_config`] on it (runs in
/// `runs/`).
fn tiny_run() -> (tempfile::TempDir, RunConfig) {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny_idx(&dir.path().join("data"));
    let config = tiny_config(&dir.path().join("data"), &dir.path().join("runs"));
    (dir, config)
}

/// A pre-training run of `prepared` from start to end, in a new folder `name-1`.
fn whole_run(prepared: &Prepared, name: &str) -> (std::path::PathBuf, PretrainOutcome) {
    let dir = create_run_dir(&prepared.config, name, RunKind::Pretrain).unwrap();
    let outcome = pretrain(prepared, &dir, false, &Silent, None).unwrap();
    (dir, outcome)
}

#[test]
fn same_seed_same_run_and_resume_matches_the_uninterrupted_run() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_scratch, config) = tiny_run();

    let prepared = Prepared::new(config.clone(), &Silent).unwrap();
    let (whole_dir, whole) = whole_run(&prepared, "whole");
    assert_eq!(whole.history.len(), 3);
    // The library draws no figures; it hands the test features over for them.
    assert_eq!(whole.test_features.as_ref().unwrap().features.dims()[0], 32);
    assert_eq!(whole.classes.len(), 4);
    assert!(whole.history.iter().all(|m| m.loss.is_finite()));
    for file in [CONFIG_FILE, CHECKPOINT_FILE, METRICS_FILE, "linear.json"] {
        assert!(whole_dir.join(file).is_file(), "{file} missing");
    }
    let lines = std::fs::read_to_string(whole_dir.join(METRICS_FILE)).unwrap();
    assert_eq!(lines.lines().count(), 3);

    // The same seed again, interrupted after one epoch, then resumed.
    let prepared = Prepared::new(config, &Silent).unwrap();
    let split_dir = create_run_dir(&prepared.config, "split", RunKind::Pretrain).unwrap();
    let first = pretrain(&prepared, &split_dir, false, &Silent, Some(1)).unwrap();
    assert_eq!(first.history.len(), 1);
    assert!(first.linear.is_none(), "no evaluation of an unfinished run");
    let resumed = pretrain(&prepared, &split_dir, true, &Silent, None).unwrap();
    assert_eq!(resumed.history.len(), 3);
    for (a, b) in whole.history.iter().zip(&resumed.history) {
        assert_eq!(a.loss, b.loss, "epoch {}", a.epoch);
        assert_eq!(a.knn_accuracy, b.knn_accuracy, "epoch {}", a.epoch);
    }
    let (a, b) = (whole.linear.unwrap(), resumed.linear.unwrap());
    assert_eq!(a.test_accuracy, b.test_accuracy);
    // The tiny task is easy: the encoder must have learnt something.
    assert!(a.test_accuracy > 0.5, "{a:?}");

    // A second writer of a run folder is refused while the first holds it.
    let held = supcon_train::run::RunLock::acquire(&split_dir).unwrap();
    let error = pretrain(&prepared, &split_dir, true, &Silent, None)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("another supcon-train process"), "{error}");
    drop(held);

    // A checkpoint is resumed only under the configuration it was trained with.
    let mut edited = prepared.config.clone();
    edited.data.batch_size = 16;
    let edited = Prepared::new(edited, &Silent).unwrap();
    let error = pretrain(&edited, &split_dir, true, &Silent, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("another configuration")
            && error.contains("data.batch_size was 32, is now 16"),
        "{error}"
    );
}

#[test]
fn evaluation_commands_read_a_finished_run() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, mut config) = tiny_run();
    config.loss.method = Method::SimClr;
    config.schedule.epochs = 1;
    let outcome = commands::start_pretrain(config, &Silent).unwrap();
    let run = outcome.run_dir;
    // The TensorBoard event file reads back: the epoch's scalars and the evaluation.
    let events = run.join(supcon_train::tensorboard::EVENTS_FILE);
    let scalars = supcon_train::tensorboard::read_events(&events).unwrap();
    let tags: Vec<&str> = scalars.iter().map(|s| s.tag.as_str()).collect();
    for tag in [
        "simclr/loss",
        "simclr/learning_rate",
        "simclr/knn_val_accuracy",
        "linear/test_accuracy",
    ] {
        assert!(tags.contains(&tag), "{tag} missing: {tags:?}");
    }
    let linear = outcome.linear.unwrap();
    let loss = scalars.iter().find(|s| s.tag == "simclr/loss").unwrap();
    assert_eq!((loss.step, loss.value), (1, outcome.history[0].loss as f32));
    assert_tiny_test_split(&linear.per_class, linear.test_accuracy);
    assert_eq!(linear.per_class.top5_accuracy, None, "4 classes: no top-5");

    let options = Options {
        linear_epochs: Some(3),
        ..Options::default()
    };
    let (linear, file) = commands::linear(&run, &options, &Silent).unwrap();
    assert_eq!(linear.val_curve.len(), 3);
    // The pre-training's own evaluation stays; this one is the second.
    assert_eq!(file, run.join("linear-2.json"));
    assert!(run.join("linear.json").is_file());
    let (knn, file) = commands::knn(&run, &Options::default(), &Silent).unwrap();
    assert_eq!(file, run.join("knn.json"));
    let (val, test) = (knn.val_accuracy, knn.test_accuracy);
    assert!((0.0..=1.0).contains(&val) && (0.0..=1.0).contains(&test));
    assert_eq!(knn.k, 10);
    // knn_k 1000 of 96 training images: all of them vote, and the record says k = 96.
    let all = Options {
        knn_k: Some(1000),
        ..Options::default()
    };
    let (knn, file) = commands::knn(&run, &all, &Silent).unwrap();
    assert_eq!(file, run.join("knn-2.json"));
    assert_eq!(knn.k, 96);
    let record = std::fs::read_to_string(&file).unwrap();
    assert!(record.contains("\"knn_k\": \"96\""), "{record}");
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    for name in ["linear.json", "linear-2.json", "knn.json", "knn-2.json"] {
        assert!(summary.contains(&format!("| {name} |")), "{summary}");
    }
    assert!(summary.contains("linear_epochs 3"), "{summary}");

    let out = dir.path().join("embeddings");
    let written = commands::embed(
        &run,
        &EmbedInput::Split(Split::Test),
        true,
        Some(&out),
        &Options::default(),
        &Silent,
    )
    .unwrap();
    let bytes = std::fs::read(&written[0]).unwrap();
    let embeddings = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(embeddings.shape(), &[32, 128]);
    assert!(
        embeddings
            .into_vec::<f32>()
            .unwrap()
            .iter()
            .all(|x| x.is_finite())
    );
    let bytes = std::fs::read(&written[1]).unwrap();
    let projections = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(projections.shape(), &[32, 128]);
    let z = projections.into_vec::<f32>().unwrap();
    let norm = z[..128].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() < 1e-4,
        "projections are unit vectors: {norm}"
    );
    let bytes = std::fs::read(&written[2]).unwrap();
    let labels = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(labels.shape(), &[32]);
    assert_eq!(labels.into_vec::<i64>().unwrap()[31], 3);

    // New images, from a folder: the rows follow images-files.txt.
    let images = dir.path().join("new-images");
    std::fs::create_dir_all(&images).unwrap();
    for (name, value) in [("b.png", 40u8), ("a.png", 200u8)] {
        image::GrayImage::from_pixel(20, 20, image::Luma([value]))
            .save(images.join(name))
            .unwrap();
    }
    let written = commands::embed(
        &run,
        &EmbedInput::Images(vec![images.clone()]),
        false,
        Some(&out),
        &Options::default(),
        &Silent,
    )
    .unwrap();
    let names: Vec<_> = written.iter().map(|p| p.file_name().unwrap()).collect();
    assert_eq!(names, ["images-embeddings.npy", "images-files.txt"]);
    let bytes = std::fs::read(&written[0]).unwrap();
    assert_eq!(npyz::NpyFile::new(&bytes[..]).unwrap().shape(), &[2, 128]);
    let files = std::fs::read_to_string(&written[1]).unwrap();
    let want = format!(
        "{}\n{}\n",
        images.join("a.png").display(),
        images.join("b.png").display()
    );
    assert_eq!(files, want);

    // Export: the encoder reloads and computes what the run's encoder computes.
    let exported = commands::export(&run, ExportFormat::Safetensors, false, None).unwrap();
    assert_eq!(exported, run.join("encoder.safetensors"));
    let c = supcon_train::run::load_run_config(&run).unwrap();
    let device = burn::prelude::Device::flex();
    let from_run = commands::load_model(&run, &c, 1, &device).unwrap().encoder;
    let fresh = supcon_train::pretrain::supcon_model(&c, 1, &device)
        .unwrap()
        .encoder;
    let reloaded = supcon_head::weights::load_safetensors(fresh, &exported).unwrap();
    let x = burn::prelude::Tensor::<4>::ones([2, 1, 12, 12], &device);
    assert_eq!(
        reloaded
            .forward(x.clone())
            .into_data()
            .try_into_vec::<f32>()
            .unwrap(),
        from_run
            .forward(x)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    );
    let model = commands::export(&run, ExportFormat::Burnpack, true, None).unwrap();
    assert_eq!(model, run.join("model.bpk"));
    assert!(model.is_file());
    let pytorch = commands::export(&run, ExportFormat::Pytorch, true, None).unwrap();
    assert_eq!(pytorch, run.join("model.pytorch.safetensors"));

    // The files record the run's settings, less the machine's.
    for file in [&exported, &model, &pytorch] {
        let metadata = supcon_head::weights::read_metadata(file).unwrap();
        let settings = &metadata[supcon_train::exported::SETTINGS_KEY];
        let recorded = RunConfig::from_toml_str(settings, dir.path()).unwrap();
        assert_eq!(recorded.data, c.data, "{}", file.display());
        assert_eq!(recorded.model, c.model);
        assert_eq!((recorded.seed, &recorded.eval), (c.seed, &c.eval));
        for key in supcon_train::exported::MACHINE_SETTINGS {
            assert!(!settings.contains(&format!("{key} =")), "{key}: {settings}");
        }
    }

    // The exported files are encoders `embed` (as `linear` and `knn`) takes in place of the
    // run, with the settings they record as defaults: the same test embeddings and projections,
    // bit for bit, the same linear evaluation and kNN accuracy.
    let as_file = Options {
        out: Some(dir.path().join("evals")),
        ..Options::default()
    };
    let three_epochs = Options {
        linear_epochs: Some(3),
        ..Options::default()
    };
    let (from_run, _) = commands::linear(&run, &three_epochs, &Silent).unwrap();
    let three_epochs = Options {
        out: as_file.out.clone(),
        ..three_epochs
    };
    let (from_file, file) = commands::linear(&exported, &three_epochs, &Silent).unwrap();
    assert!(
        file.starts_with(dir.path().join("evals")),
        "{}",
        file.display()
    );
    assert_eq!(from_file.val_curve, from_run.val_curve);
    assert_eq!(from_file.test_accuracy, from_run.test_accuracy);
    let (from_run, _) = commands::knn(&run, &Options::default(), &Silent).unwrap();
    let (from_file, _) = commands::knn(&model, &as_file, &Silent).unwrap();
    assert_eq!(
        (from_file.k, from_file.val_accuracy, from_file.test_accuracy),
        (from_run.k, from_run.val_accuracy, from_run.test_accuracy)
    );
    for (file, projection) in [(&exported, false), (&model, true), (&pytorch, true)] {
        let again = dir.path().join("again");
        let written = commands::embed(
            file,
            &EmbedInput::Split(Split::Test),
            projection,
            Some(&again),
            &as_file,
            &Silent,
        )
        .unwrap();
        for path in &written {
            let name = path.file_name().unwrap();
            let first = std::fs::read(out.join(name)).unwrap();
            assert!(first == std::fs::read(path).unwrap(), "{}", path.display());
        }
        assert_eq!(written.len(), if projection { 3 } else { 2 });
    }
    // A file whose run's dataset is not on this machine asks for --dataset, and takes it.
    let mut moved = c.clone();
    moved.data.dataset = "idx:/no/such/folder".parse().unwrap();
    let metadata = supcon_train::exported::settings_metadata(&moved).unwrap();
    let encoder = commands::load_model(&run, &c, 1, &device).unwrap().encoder;
    let moved_file = dir.path().join("moved.safetensors");
    supcon_head::weights::save_safetensors_with_metadata(&encoder, &moved_file, &metadata).unwrap();
    let error = commands::knn(&moved_file, &as_file, &Silent).unwrap_err();
    assert_eq!(error.exit_code(), 2, "{error}");
    assert!(error.to_string().ends_with("give --dataset"), "{error}");
    let here = Options {
        dataset: Some(c.data.dataset.clone()),
        ..as_file.clone()
    };
    let (moved_knn, _) = commands::knn(&moved_file, &here, &Silent).unwrap();
    assert_eq!(moved_knn.test_accuracy, from_file.test_accuracy);
    // A run's training checkpoint is read through its folder, and says so.
    let error = commands::knn(&run.join(CHECKPOINT_FILE), &as_file, &Silent).unwrap_err();
    assert_eq!(error.exit_code(), 2, "{error}");
    let want = format!(
        "training checkpoint, read with its configuration: give the run folder, --encoder {}",
        run.display()
    );
    assert!(error.to_string().ends_with(&want), "{error}");
    // An option given overrides what the file records.
    let other_mean = Options {
        mean: Some(vec![0.9]),
        ..as_file.clone()
    };
    let again = dir.path().join("other-mean");
    let written = commands::embed(
        &exported,
        &EmbedInput::Split(Split::Test),
        false,
        Some(&again),
        &other_mean,
        &Silent,
    )
    .unwrap();
    let name = written[0].file_name().unwrap();
    assert!(std::fs::read(out.join(name)).unwrap() != std::fs::read(&written[0]).unwrap());
    // An evaluation of a file that fails (an image that does not decode) leaves no evaluation
    // folder behind; one that succeeds keeps its folder.
    let evals = dir.path().join("evals");
    let folders = || std::fs::read_dir(&evals).unwrap().count();
    let before = folders();
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot an image").unwrap();
    let heard = Messages::default();
    let error = commands::embed(
        &exported,
        &EmbedInput::Images(vec![broken]),
        false,
        Some(&dir.path().join("not-written")),
        &as_file,
        &heard,
    )
    .unwrap_err();
    assert!(error.to_string().contains("broken.png"), "{error}");
    assert_eq!(folders(), before, "a failed evaluation's folder was left");
    // Told of the folder when it was made, the user is told of its removal.
    let heard = heard.0.into_inner().unwrap();
    let made = heard
        .iter()
        .find(|m| m.starts_with("evaluation folder "))
        .unwrap();
    let folder = made.split(' ').nth(2).unwrap();
    let removed = format!("evaluation folder {folder} removed: nothing was saved in it");
    assert_eq!(heard.last(), Some(&removed), "{heard:?}");
    commands::knn(&exported, &as_file, &Silent).unwrap();
    assert_eq!(folders(), before + 1);
    // An output folder that is a file is refused before anything runs.
    let file_out = dir.path().join("a-file");
    std::fs::write(&file_out, "").unwrap();
    let error = commands::embed(
        &run,
        &EmbedInput::Split(Split::Test),
        false,
        Some(&file_out),
        &Options::default(),
        &Silent,
    )
    .unwrap_err();
    assert_eq!(error.exit_code(), 2, "{error}");
    assert!(error.to_string().contains("is a file"), "{error}");
    // ... as is one inside a file, for either command.
    let inside = file_out.join("deeper").join("model.bpk");
    let error = commands::embed(
        &run,
        &EmbedInput::Split(Split::Test),
        false,
        inside.parent(),
        &Options::default(),
        &Silent,
    )
    .unwrap_err();
    assert_eq!(error.exit_code(), 2, "{error}");
    assert!(error.to_string().contains("a-file: is a file"), "{error}");
    let error = commands::export(&run, ExportFormat::Burnpack, true, Some(&inside)).unwrap_err();
    assert_eq!(error.exit_code(), 2, "{error}");
    assert!(error.to_string().contains("a-file: is a file"), "{error}");
    let error = commands::export(&run, ExportFormat::Burnpack, true, Some(&out)).unwrap_err();
    assert_eq!(error.exit_code(), 2, "{error}");
    assert!(error.to_string().contains("is a folder"), "{error}");
    // A name the readers would take for the other format.
    for (format, name) in [
        (ExportFormat::Burnpack, "model.safetensors"),
        (ExportFormat::Safetensors, "model.bpk"),
        (ExportFormat::Pytorch, "model.pt"),
    ] {
        let output = dir.path().join(name);
        let error = commands::export(&run, format, true, Some(&output)).unwrap_err();
        assert_eq!(error.exit_code(), 2, "{error}");
        assert!(
            error.to_string().contains("name it to match --format"),
            "{error}"
        );
        assert!(!output.exists());
    }
}

/// A run pre-trained with `linear_epochs = 0` (no linear evaluation) is evaluated later by
/// `linear` at the default length unless `--linear_epochs` says otherwise; an explicit 0 is
/// refused.
#[test]
fn a_run_pretrained_without_linear_evaluation_is_evaluated_later() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_dir, mut config) = tiny_run();
    config.schedule.epochs = 1;
    config.eval.linear_epochs = 0;
    let outcome = commands::start_pretrain(config, &Silent).unwrap();
    assert!(outcome.linear.is_none());
    let run = outcome.run_dir;
    assert!(!run.join("linear.json").exists());
    let (linear, file) = commands::linear(&run, &Options::default(), &Silent).unwrap();
    let default = supcon_train::config::EvalConfig::new().linear_epochs;
    assert_eq!(linear.val_curve.len(), default);
    assert_eq!(file, run.join("linear.json"));
    let explicit_zero = Options {
        linear_epochs: Some(0),
        ..Options::default()
    };
    let error = commands::linear(&run, &explicit_zero, &Silent).unwrap_err();
    assert!(
        error.to_string().contains("linear_epochs must be positive"),
        "{error}"
    );
}

/// `--projection` of a checkpoint file whose encoder loads but which has no projection head of
/// the configuration's shape says so, rather than blaming the architecture.
#[test]
fn a_checkpoint_without_the_head_asked_for_says_so() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny_idx(&dir.path().join("data"));
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/golden/reference_small_ckpt.pth");
    let options = |head, feat_dim| Options {
        dataset: Some(
            format!("idx:{}", dir.path().join("data").display())
                .parse()
                .unwrap(),
        ),
        model: Some(supcon_encoder::Architecture::Small),
        head: Some(head),
        feat_dim: Some(feat_dim),
        out: Some(dir.path().join("evals")),
        ..Options::default()
    };
    // The checkpoint's head is an MLP with 32 outputs: asked for a linear one, or for 128
    // outputs, the head is missing.
    for (head, feat_dim, shape) in [
        (supcon_head::HeadKind::Linear, 32, "(linear, 32 outputs"),
        (supcon_head::HeadKind::Mlp, 128, "(mlp, 128 outputs"),
    ] {
        let Err(error) = commands::open_encoder(&file, &options(head, feat_dim), true, &Silent)
        else {
            panic!("a head of another shape was read");
        };
        let message = error.to_string();
        assert!(
            message.contains(&format!(
                "its encoder loads, but it holds no projection head of the shape asked for {shape}"
            )),
            "{message}"
        );
        assert!(!message.contains("another architecture"), "{message}");
    }
    assert!(!dir.path().join("evals").exists(), "nothing written");
    // Its own head, and the encoder alone, load.
    let mlp = supcon_head::HeadKind::Mlp;
    if let Err(error) = commands::open_encoder(&file, &options(mlp, 32), true, &Silent) {
        panic!("{error}");
    }
    let linear = supcon_head::HeadKind::Linear;
    if let Err(error) = commands::open_encoder(&file, &options(linear, 128), false, &Silent) {
        panic!("{error}");
    }
}

/// Resuming takes only the settings that apply to the run's kind, and says which: a
/// cross-entropy run has no kNN monitor or linear evaluation to set.
#[test]
fn resuming_names_the_settings_a_run_of_its_kind_takes() {
    let (_scratch, config) = tiny_run();
    let ce = create_run_dir(&config, "ce", RunKind::CrossEntropy).unwrap();
    let pretrain = create_run_dir(&config, "pre", RunKind::Pretrain).unwrap();
    let knn_k = Options {
        knn_k: Some(5),
        ..Options::default()
    };
    let Err(error) = commands::resume(&ce, &knn_k, RunKind::CrossEntropy, &Silent) else {
        panic!("resumed with knn_k");
    };
    assert!(
        error.to_string().contains(
            "so `eval.knn_k` cannot be given with it; only --device and --epochs (to extend it) can"
        ),
        "{error}"
    );
    let batch = Options {
        batch_size: Some(8),
        ..Options::default()
    };
    let Err(error) = commands::resume(&pretrain, &batch, RunKind::Pretrain, &Silent) else {
        panic!("resumed with batch_size");
    };
    assert!(
        error.to_string().contains(
            "so `data.batch_size` cannot be given with it; only --device, --linear_epochs, \
             --linear_learning_rate, --knn_k and --epochs (to extend it) can"
        ),
        "{error}"
    );
}

#[test]
fn cross_entropy_baseline_selects_on_validation() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_scratch, config) = tiny_run();
    let prepared = Prepared::new(config.clone(), &Silent).unwrap();
    let run = create_run_dir(&prepared.config, "ce", RunKind::CrossEntropy).unwrap();
    let (history, outcome) =
        supcon_train::ce::cross_entropy(&prepared, &run, false, &Silent, None).unwrap();
    let outcome = outcome.unwrap();
    let best = history
        .iter()
        .map(|m| m.val_accuracy.unwrap())
        .fold(0.0, f64::max);
    assert_eq!(outcome.val_accuracy, best);
    assert_eq!(
        history[outcome.best_epoch - 1].val_accuracy,
        Some(outcome.val_accuracy)
    );
    assert!(run.join("ce.json").is_file() && run.join("best-model.bpk").is_file());
    assert_eq!(outcome.file, Some(run.join("ce.json")));
    assert_tiny_test_split(&outcome.per_class, outcome.test_accuracy);
    // The best network reloads from its file with the best validation accuracy; the file
    // records the run's settings, so `knn` takes it without --model or the dataset options.
    let best_file = run.join("best-model.bpk");
    let encoder = supcon_encoder::EncoderConfig::new(config.model.architecture).with_in_channels(1);
    let net = supcon_head::CrossEntropyNetConfig::new(encoder, 4).init(&prepared.device);
    let net = supcon_head::weights::load_checkpoint(net, &best_file).unwrap();
    let (validation, c) = (&prepared.splits.validation, &prepared.config);
    let accuracy = supcon_train::ce::classify(&net, validation, c, &prepared.device).unwrap();
    assert_eq!(accuracy, outcome.val_accuracy);
    let evals = Options {
        out: Some(_scratch.path().join("evals")),
        ..Options::default()
    };
    let (knn, file) = commands::knn(&best_file, &evals, &Silent).unwrap();
    assert_eq!(knn.k, 10, "the run's knn_k");
    let evaluated = supcon_train::run::load_run_config(file.parent().unwrap()).unwrap();
    assert_eq!(
        (evaluated.data, evaluated.model),
        (c.data.clone(), c.model.clone())
    );
    // `export` writes that network: whole (encoder and classifier, in PyTorch's names, as the
    // reference's `SupCEResNet`), or its encoder, which `knn` evaluates as it did the file.
    let whole = commands::export(&run, ExportFormat::Pytorch, true, None).unwrap();
    assert_eq!(whole, run.join("model.pytorch.safetensors"));
    assert_eq!(
        supcon_head::weights::WeightsOrigin::of(&whole).unwrap(),
        supcon_head::weights::WeightsOrigin::Reference
    );
    let encoder = supcon_encoder::EncoderConfig::new(config.model.architecture)
        .with_in_channels(1)
        .init(&prepared.device);
    let net =
        supcon_head::weights::load_cross_entropy_net(encoder, &whole, &prepared.device).unwrap();
    assert_eq!(net.fc.weight.dims()[1], 4);
    let accuracy = supcon_train::ce::classify(&net, validation, c, &prepared.device).unwrap();
    assert_eq!(accuracy, outcome.val_accuracy);
    let encoder_file = commands::export(&run, ExportFormat::Safetensors, false, None).unwrap();
    assert_eq!(encoder_file, run.join("encoder.safetensors"));
    let (again, _) = commands::knn(&encoder_file, &evals, &Silent).unwrap();
    assert_eq!(again, knn);
    // The run folder itself is not an encoder to evaluate: the error names the file.
    let error = commands::linear(&run, &Options::default(), &Silent)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains(&format!("--encoder {}", best_file.display())),
        "{error}"
    );

    // Asked to stop during the last of its 9 steps: training ends, the test evaluation waits
    // for `--resume`, which gives the uninterrupted run's result. (The same seed again:
    // Prepared seeds the device.)
    let prepared = Prepared::new(config, &Silent).unwrap();
    let stopped = create_run_dir(&prepared.config, "ce-stopped", RunKind::CrossEntropy).unwrap();
    let error =
        supcon_train::ce::cross_entropy(&prepared, &stopped, false, &StopAfter::new(9), None)
            .err()
            .unwrap()
            .to_string();
    assert!(
        error.starts_with("interrupted after the last epoch, before the test evaluation")
            && error.ends_with(&format!(
                "`supcon-train ce --resume {}` runs the evaluation",
                stopped.display()
            )),
        "{error}"
    );
    assert!(!stopped.join("ce.json").exists());
    // As the binary resumes it (the run's training is finished, its evaluation not made).
    let prepared = commands::resume(
        &stopped,
        &Options::default(),
        RunKind::CrossEntropy,
        &Silent,
    )
    .unwrap();
    let (resumed_history, resumed) =
        supcon_train::ce::cross_entropy(&prepared, &stopped, true, &Silent, None).unwrap();
    let resumed = resumed.unwrap();
    assert_eq!(resumed_history.len(), history.len());
    assert_eq!(
        (
            resumed.best_epoch,
            resumed.val_accuracy,
            resumed.test_accuracy
        ),
        (
            outcome.best_epoch,
            outcome.val_accuracy,
            outcome.test_accuracy
        )
    );
    let again = commands::resume(
        &stopped,
        &Options::default(),
        RunKind::CrossEntropy,
        &Silent,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(again.contains("nothing to resume"), "{again}");
}

#[test]
fn weights_that_diverge_are_never_saved() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_scratch, mut config) = tiny_run();
    // One step per epoch at a rate that turns the weights non-finite while the loss of that
    // step (computed before it) is finite.
    config.data.batch_size = 256;
    config.optim.learning_rate = 1e42; // finite as f64; its cosine floor, 1e39, is infinite as f32
    config.schedule.epochs = 1;
    config.eval.knn_freq = 0;
    // The run's error; its folder must hold no checkpoint.
    let diverged = |prepared: &Prepared, name: &str, progress: &dyn Progress| {
        let run = create_run_dir(&prepared.config, name, RunKind::Pretrain).unwrap();
        let error = pretrain(prepared, &run, false, progress, None)
            .err()
            .unwrap();
        let saved = run.join(CHECKPOINT_FILE).exists();
        assert!(!saved, "{name}: a checkpoint of NaN weights");
        error
    };
    let prepared = Prepared::new(config, &Silent).unwrap();
    let messages = supcon_train::progress::Messages::default();
    let error = diverged(&prepared, "diverged", &messages);
    // A batch of 256 of 96 training images is one batch of all of them, and the run says so.
    let said = messages.0.lock().unwrap().join("\n");
    assert!(
        said.contains("batch_size 256 is more than the 96 training images"),
        "{said}"
    );
    assert!(
        matches!(
            error,
            supcon_train::TrainError::NonFiniteWeights { epoch: 1 }
                | supcon_train::TrainError::Diverged { epoch: 1, .. }
        ),
        "{error}"
    );
    assert_eq!(error.exit_code(), 1);

    // Nor when the run is asked to stop during an epoch (3 steps of 32 an epoch here): the
    // weights are checked before the checkpoint of the epoch so far.
    let mut config = prepared.config.clone();
    config.data.batch_size = 32;
    let prepared = Prepared::new(config, &Silent).unwrap();
    let error = diverged(&prepared, "diverged-stopped", &StopAfter::new(1));
    assert!(
        matches!(
            error,
            supcon_train::TrainError::NonFiniteWeights { epoch: 1 }
        ),
        "{error}"
    );
}

#[test]
fn a_loss_that_is_not_finite_before_any_update_blames_the_inputs() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_scratch, mut config) = tiny_run();
    // A standard deviation that is positive, but whose reciprocal overflows f32.
    config.data.mean = vec![0.5];
    config.data.std = vec![1e-40];
    let prepared = Prepared::new(config, &Silent).unwrap();
    let run = create_run_dir(&prepared.config, "inputs", RunKind::Pretrain).unwrap();
    let error = pretrain(&prepared, &run, false, &Silent, None)
        .err()
        .unwrap();
    assert!(
        matches!(error, supcon_train::TrainError::NonFiniteAtStart { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("--std"), "{error}");
    assert_eq!(error.exit_code(), 2);
}

#[test]
fn a_run_with_a_queue_resumes_exactly_and_chunks_run() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_scratch, mut config) = tiny_run();
    config.step.queue = 160;
    config.step.queue_momentum = 0.9;
    config.schedule.epochs = 2;
    config.eval.linear_epochs = 5;

    let prepared = Prepared::new(config.clone(), &Silent).unwrap();
    let (_, whole) = whole_run(&prepared, "queue-whole");
    // The same seed again (Prepared seeds the device), interrupted after one epoch.
    let prepared = Prepared::new(config.clone(), &Silent).unwrap();
    let split_dir = create_run_dir(&prepared.config, "queue-split", RunKind::Pretrain).unwrap();
    pretrain(&prepared, &split_dir, false, &Silent, Some(1)).unwrap();
    let resumed = pretrain(&prepared, &split_dir, true, &Silent, None).unwrap();
    for (a, b) in whole.history.iter().zip(&resumed.history) {
        assert_eq!(a.loss, b.loss, "epoch {}", a.epoch);
    }
    // Stopped during an epoch too (after step 2 of epoch 1): the key model and the queue as
    // they were after that step.
    let prepared = Prepared::new(config.clone(), &Silent).unwrap();
    let mid_dir = create_run_dir(&prepared.config, "queue-mid", RunKind::Pretrain).unwrap();
    let error = pretrain(&prepared, &mid_dir, false, &StopAfter::new(2), None)
        .err()
        .unwrap();
    assert!(
        matches!(error, supcon_train::TrainError::Interrupted(_)),
        "{error}"
    );
    let mid = pretrain(&prepared, &mid_dir, true, &Silent, None).unwrap();
    for (a, b) in whole.history.iter().zip(&mid.history) {
        assert_eq!(a.loss, b.loss, "epoch {}", a.epoch);
    }
    assert_eq!(
        whole.linear.as_ref().unwrap().test_accuracy,
        mid.linear.unwrap().test_accuracy
    );
    assert_eq!(
        whole.linear.unwrap().test_accuracy,
        resumed.linear.unwrap().test_accuracy
    );
    // The queue changes the loss: a run without it differs.
    let mut plain = config.clone();
    plain.step.queue = 0;
    let prepared = Prepared::new(plain, &Silent).unwrap();
    let plain_dir = create_run_dir(&prepared.config, "plain", RunKind::Pretrain).unwrap();
    let plain = pretrain(&prepared, &plain_dir, false, &Silent, Some(1)).unwrap();
    assert_ne!(plain.history[0].loss, whole.history[0].loss);

    // SimCLR against a queue, and gradient caching in chunks of 8, both train.
    let mut other = config;
    other.loss.method = Method::SimClr;
    other.step.chunk = 8;
    other.schedule.epochs = 1;
    let prepared = Prepared::new(other, &Silent).unwrap();
    let run = create_run_dir(&prepared.config, "simclr-chunked", RunKind::Pretrain).unwrap();
    let outcome = pretrain(&prepared, &run, false, &Silent, None).unwrap();
    assert!(outcome.history[0].loss.is_finite());
}

#[test]
fn a_finished_run_says_so_and_extends_with_more_epochs() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_scratch, mut config) = tiny_run();
    config.schedule.epochs = 1;
    config.eval.linear_epochs = 2;
    let first = commands::start_pretrain(config, &Silent).unwrap();
    let run = first.run_dir;

    let again = commands::resume_pretrain(&run, &Options::default(), &Silent);
    let error = again.err().unwrap().to_string();
    assert!(
        error.contains("finished (1 of 1 epochs)") && error.contains("--epochs N"),
        "{error}"
    );
    let fewer = Options {
        epochs: Some(0),
        ..Options::default()
    };
    assert!(commands::resume_pretrain(&run, &fewer, &Silent).is_err());

    let more = Options {
        epochs: Some(2),
        ..Options::default()
    };
    let extended = commands::resume_pretrain(&run, &more, &Silent).unwrap();
    assert_eq!(extended.history.len(), 2);
    assert_eq!(extended.history[0].loss, first.history[0].loss);
    // The second epoch runs on the two-epoch schedule: its last step's rate is that schedule's.
    let c = supcon_train::run::load_run_config(&run).unwrap();
    assert_eq!(c.schedule.epochs, 2, "config.toml records the new total");
    let (_, schedule) = supcon_train::fit::optimisation(&c);
    let steps = 96usize.div_ceil(32); // 96 training images (a quarter of 128 held out)
    assert_eq!(
        extended.history[1].learning_rate,
        schedule.rate(2, steps - 1, steps)
    );
    assert!(extended.linear.is_some());
    assert!(run.join("linear.json").is_file() && run.join("linear-2.json").is_file());
    let error = commands::resume_pretrain(&run, &Options::default(), &Silent)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("finished (2 of 2 epochs)"), "{error}");
}

#[test]
fn limit_trains_on_a_stratified_subset() {
    let (_scratch, config) = tiny_run();
    let full = Prepared::new(config.clone(), &Silent).unwrap();
    let available = full.splits.train.len();
    for (limit, expected) in [(8.0, 8), (0.5, available / 2)] {
        let mut limited = config.clone();
        limited.data.limit = Some(limit);
        let prepared = Prepared::new(limited, &Silent).unwrap();
        let train = &prepared.splits.train;
        assert_eq!(train.len(), expected, "limit {limit}");
        let per_class = |c| train.labels().iter().filter(|&&l| l == c).count();
        let counts: Vec<usize> = (0..4).map(per_class).collect();
        assert!(
            counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
            "{counts:?}"
        );
        assert_eq!(
            prepared.splits.validation.len(),
            full.splits.validation.len()
        );
    }
    for bad in [2.5, 0.0, -1.0, 1e9] {
        let mut limited = config.clone();
        limited.data.limit = Some(bad);
        let error = Prepared::new(limited, &Silent).err().unwrap().to_string();
        assert!(error.contains("limit"), "{bad}: {error}");
    }
    // Fewer images than the 4 classes: some class would have none, and the linear evaluation
    // could never predict it.
    let mut limited = config.clone();
    limited.data.limit = Some(3.0);
    let error = Prepared::new(limited, &Silent).err().unwrap().to_string();
    assert!(
        error.starts_with("--limit 3 keeps no training image of 1 of the 4 classes"),
        "{error}"
    );
    limited = config;
    limited.data.limit = Some(4.0);
    let prepared = Prepared::new(limited, &Silent).unwrap();
    assert_eq!(prepared.splits.train.class_counts(), [1, 1, 1, 1]);
}

/// Asks to stop once `after` more steps are done (as Ctrl-C does in the binary).
struct StopAfter {
    after: usize,
    done: std::sync::atomic::AtomicUsize,
}

impl StopAfter {
    fn new(after: usize) -> Self {
        Self {
            after,
            done: Default::default(),
        }
    }
}

impl supcon_train::progress::Progress for StopAfter {
    fn step_done(&self, _loss: f64, _lr: f64, _rate: f64) {
        self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn stop_requested(&self) -> bool {
        self.done.load(std::sync::atomic::Ordering::Relaxed) >= self.after
    }
}

/// A run asked to stop saves a checkpoint where it stops, during an epoch, at its end or (before
/// the linear evaluation) once training has ended, and resuming it gives the uninterrupted
/// run's every epoch and evaluation exactly. The tiny split has 96 training images: 3 steps of
/// 32 an epoch.
#[test]
fn a_run_stopped_during_an_epoch_resumes_from_that_step() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_scratch, config) = tiny_run();
    let prepared = Prepared::new(config.clone(), &Silent).unwrap();
    let (whole_dir, whole) = whole_run(&prepared, "whole");

    let prepared = Prepared::new(config, &Silent).unwrap();
    let run = create_run_dir(&prepared.config, "stopped", RunKind::Pretrain).unwrap();
    let checkpoint_version = || std::fs::read(run.join(CHECKPOINT_FILE)).unwrap()[8];
    // Stopped after step 2 of epoch 1, after step 2 of epoch 2 (the first session's steps
    // continue: epoch 1's step 3, epoch 2's steps 1 and 2), at the end of epoch 2, then once
    // training has ended (asked during the last step, which training finishes), before the
    // linear evaluation.
    for (session, (after, place)) in [
        (2, "during epoch 1, after step 2 of 3"),
        (3, "during epoch 2, after step 2 of 3"),
        (1, "after epoch 2 of 3"),
        (3, "after the last epoch, before the linear evaluation"),
    ]
    .into_iter()
    .enumerate()
    {
        let error = pretrain(&prepared, &run, session > 0, &StopAfter::new(after), None)
            .err()
            .unwrap();
        assert!(
            matches!(error, supcon_train::TrainError::Interrupted(_)) && error.exit_code() == 130,
            "{error}"
        );
        let message = error.to_string();
        let resumes = if session < 3 {
            "continues it exactly"
        } else {
            "runs the evaluation"
        };
        assert!(
            message.starts_with(&format!("interrupted {place}: the run is saved there"))
                && message.contains("supcon-train pretrain --resume")
                && message.ends_with(resumes),
            "{message}"
        );
        // A checkpoint taken during an epoch has its own format number.
        assert_eq!(checkpoint_version(), if session < 2 { 4 } else { 3 });
        assert!(!run.join("linear.json").exists());
    }
    // As the binary resumes it (the run's training is finished, its evaluation not made).
    let resumed = commands::resume_pretrain(&run, &Options::default(), &Silent).unwrap();
    assert_eq!(resumed.history.len(), 3);
    // Now finished and evaluated: nothing left to resume.
    let again = commands::resume_pretrain(&run, &Options::default(), &Silent)
        .err()
        .unwrap()
        .to_string();
    assert!(again.contains("nothing to resume"), "{again}");
    for (a, b) in whole.history.iter().zip(&resumed.history) {
        assert_eq!(a.loss, b.loss, "epoch {}", a.epoch);
        assert_eq!(a.learning_rate, b.learning_rate, "epoch {}", a.epoch);
        assert_eq!(a.knn_accuracy, b.knn_accuracy, "epoch {}", a.epoch);
    }
    let (a, b) = (whole.linear.unwrap(), resumed.linear.unwrap());
    assert_eq!(
        (a.val_accuracy, a.test_accuracy),
        (b.val_accuracy, b.test_accuracy)
    );
    let lines = std::fs::read_to_string(run.join(METRICS_FILE)).unwrap();
    assert_eq!(lines.lines().count(), 3);
    // The saved weights and BatchNorm's running statistics, bit for bit.
    let saved = |dir: &std::path::Path| {
        let model = commands::load_model(dir, &prepared.config, 1, &prepared.device).unwrap();
        let mut values = Values(Vec::new());
        burn::module::Module::visit(&model, &mut values);
        values.0
    };
    let (a, b) = (saved(&whole_dir), saved(&run));
    assert_eq!(a.len(), b.len());
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!(a == b, "tensor {i} of the saved models differs");
    }
}

/// Every float tensor of a module (parameters and running statistics), in visiting order.
struct Values(Vec<Vec<f32>>);

impl burn::module::ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::Tensor<D>>) {
        self.0
            .push(param.val().into_data().try_to_vec::<f32>().unwrap());
    }
}

/// A run killed during its first epoch leaves its configuration and no checkpoint: resuming it
/// trains from epoch 1, as the uninterrupted run would. Each run folder records its kind, so a
/// run is continued and evaluated only by the command that made it.
#[test]
fn a_run_stopped_before_its_first_checkpoint_resumes_from_the_start() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_scratch, mut config) = tiny_run();
    config.schedule.epochs = 1;
    config.eval.linear_epochs = 2;
    let prepared = Prepared::new(config.clone(), &Silent).unwrap();
    // What a kill during the first epoch leaves: the folder as created, nothing else.
    let run = create_run_dir(&prepared.config, "killed", RunKind::Pretrain).unwrap();
    let files = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(files(&run), [CONFIG_FILE, "kind"]);
    let error = commands::linear(&run, &Options::default(), &Silent)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("stopped during its first epoch"), "{error}");

    let resumed = commands::resume_pretrain(&run, &Options::default(), &Silent).unwrap();
    let whole = commands::start_pretrain(config.clone(), &Silent).unwrap();
    assert_eq!(resumed.history.len(), 1);
    assert_eq!(resumed.history[0].loss, whole.history[0].loss);

    // The other command's runs are refused, before anything is written.
    let ce_run = create_run_dir(&prepared.config, "ce-killed", RunKind::CrossEntropy).unwrap();
    let error = commands::resume_pretrain(&ce_run, &Options::default(), &Silent)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("is a cross-entropy run (`supcon-train ce`), not a pre-training run"),
        "{error}"
    );
    assert_eq!(files(&ce_run), [CONFIG_FILE, "kind"]);
    let more = Options {
        epochs: Some(3),
        ..Options::default()
    };
    let error = commands::resume(&run, &more, RunKind::CrossEntropy, &Silent)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("is a pre-training run"), "{error}");
    let saved = supcon_train::run::load_run_config(&run).unwrap();
    assert_eq!(saved.schedule.epochs, 1, "config.toml is left as it was");
    let error = commands::linear(&ce_run, &Options::default(), &Silent)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("is a cross-entropy run"), "{error}");
    let error = commands::export(&ce_run, ExportFormat::Safetensors, false, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("no best-model.bpk") && error.contains("ce --resume"),
        "{error}"
    );

    // A folder made before kinds were recorded, without a checkpoint: which command made it is
    // unknown, so it is not restarted.
    std::fs::remove_file(ce_run.join("kind")).unwrap();
    let error = commands::resume_pretrain(&ce_run, &Options::default(), &Silent)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("start it again"), "{error}");

    // The kind is written before the configuration: a process stopped between the two leaves a
    // folder every command refuses, never one that reads as made before kinds were recorded.
    let half = create_run_dir(&prepared.config, "half", RunKind::CrossEntropy).unwrap();
    std::fs::remove_file(half.join(CONFIG_FILE)).unwrap();
    let error = commands::resume_pretrain(&half, &Options::default(), &Silent)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("not a run folder"), "{error}");
}
