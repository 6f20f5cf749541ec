//! The binary's handling of bad input: one clear message, exit status 2, nothing written.

mod common;

use common::supcon_train;

use std::path::Path;

fn assert_rejected(args: &[&str], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = supcon_train(args, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one message: {stderr}");
    let written: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(written.is_empty(), "{args:?} wrote {written:?}");
}

#[test]
fn bad_options_are_refused_before_anything_is_written() {
    assert_rejected(&["pretrain", "--model", "resnet7"], "resnet7");
    assert_rejected(&["pretrain", "--dataset", "imagenet:/x"], "unknown dataset");
    assert_rejected(
        &["pretrain", "--dataset", "idx:/no/such/folder"],
        "no such folder",
    );
    assert_rejected(
        &["pretrain", "--learning_rate", "0"],
        "learning_rate must be a positive",
    );
    assert_rejected(
        &["pretrain", "--learning_rate", "-1"],
        "learning_rate must be a positive",
    );
    assert_rejected(&["ce", "--batch_size", "0"], "batch_size must be positive");
    // Pre-training options would be saved and ignored by the cross-entropy baseline.
    assert_rejected(
        &["ce", "--temp", "0.5", "--linear_epochs", "7"],
        "--temp, --linear_epochs would have no effect on the cross-entropy baseline, which \
         trains the encoder and a linear classifier together",
    );
    assert_rejected(&["ce", "--views", "3"], "--views would have no effect");
    assert_rejected(&["pretrain", "--device", "tpu"], "unknown device");
    // The reference's step milestones under our default (cosine) schedule would be ignored.
    assert_rejected(
        &["pretrain", "--lr_decay_epochs", "700,800,900"],
        "lr_decay_epochs would have no effect: they are the step schedule's milestones",
    );
    assert_rejected(
        &["pretrain", "--queue_momentum", "0.99"],
        "--queue_momentum 0.99 would have no effect",
    );
    assert_rejected(
        &["pretrain", "--std", "0.3"],
        "std is given without mean: give both, or neither",
    );
    assert_rejected(
        &["pretrain", "--mean", "0.1,0.2", "--std", "0.3"],
        "mean has 2 values and std 1: give one of each per channel",
    );
    // Statistics of 0-255 pixels, where the [0, 1] scale is meant.
    assert_rejected(
        &["pretrain", "--mean", "125.3", "--std", "63.0"],
        "mean 125.3 is outside [0, 1]: mean and std are on the [0, 1] scale",
    );
    assert_rejected(
        &["pretrain", "--mean", "0.5", "--std", "63.0"],
        "std 63 is above 1",
    );
    assert_rejected(
        &["pretrain", "--mean", "-0.1", "--std", "0.3"],
        "mean -0.1 is outside [0, 1]",
    );
    assert_rejected(
        &["linear", "--encoder", "missing-run"],
        "no such run folder",
    );
    assert_rejected(
        &["pretrain", "--resume", "missing-run"],
        "no such run folder",
    );
    assert_rejected(&["pretrain", "--config", "missing.toml"], "missing.toml");
    assert_rejected(
        &["pretrain", "--dataset", "foo:/x"],
        "unknown dataset kind `foo`",
    );
}

#[test]
fn what_cannot_work_is_refused_before_the_run_folder_exists() {
    assert_rejected(
        &["pretrain", "--method", "simclr", "--views", "1"],
        "--method simclr needs at least two views",
    );
    assert_rejected(
        &["pretrain", "--feat_dim", "1000000000"],
        "feat_dim must be at most",
    );
    assert_rejected(&["pretrain", "--views", "100000"], "views must be at most");
    assert_rejected(&["pretrain", "--jitter", "3"], "jitter must be at most 2");
    assert_rejected(
        &["pretrain", "--mean", "NaN", "--std", "0.3"],
        "mean values must be finite",
    );
    assert_rejected(&["pretrain", "--temp", "0"], "temp must be a positive");
    assert_rejected(
        &["pretrain", "--temp", "1e-40"],
        "temperatures from 1e-20 to 8e37",
    );
    assert_rejected(
        &["pretrain", "--temp", "1e-20", "--base_temp", "1e20"],
        "base_temp = 1e20 is out of range",
    );
    // A loss scale of 1e38 would overflow at the first step, after the run folder exists.
    assert_rejected(
        &["pretrain", "--temp", "0.1", "--base_temp", "1e-39"],
        "base_temp = 1e-39 is out of range",
    );
    assert_rejected(
        &["pretrain", "--batch_size", "1"],
        "batch_size 1 cannot pre-train",
    );
    assert_rejected(
        &["pretrain", "--queue", "10"],
        "queue must hold at least a batch's keys (2 views x 128 images = 256)",
    );
    assert_rejected(
        &["pretrain", "--queue", "4096", "--queue_momentum", "1"],
        "queue_momentum must be in [0, 1)",
    );
    assert_rejected(
        &["pretrain", "--chunk", "48"],
        "chunk must divide batch_size",
    );
    assert_rejected(
        &["pretrain", "--chunk", "256"],
        "chunk must divide batch_size",
    );
    assert_rejected(
        &["pretrain", "--name", "../up"],
        "name must be a folder name",
    );
    assert_rejected(&["pretrain", "--schedule", "linear"], "--schedule");
}

/// A step whose feature maps alone need more memory than any machine has (ResNet-18 on
/// 4,000 x 4,000 views: 38 GB an image, 128 views a step) is refused before its folder exists,
/// with a chunk of gradient caching or a smaller size to try, instead of being killed by the
/// system; the cross-entropy baseline too, and an evaluation whose images are too large for
/// one feature map.
#[test]
#[cfg(target_os = "linux")] // the available memory is read from /proc/meminfo
fn a_step_that_cannot_fit_in_memory_is_refused_before_the_run_folder_exists() {
    for command in ["pretrain", "ce"] {
        let dir = tempfile::tempdir().unwrap();
        let args = [
            command, "--model", "resnet18", "--size", "4000", "--limit", "64",
        ];
        let out = supcon_train(&args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("a training step would not fit in memory: 64 images of 1x4000x4000")
                && stderr.contains("lower --size"),
            "{command}: {stderr}"
        );
        let written: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(written.is_empty(), "{command} wrote {written:?}");
    }
    // Evaluating a checkpoint on images too large for even one feature map: refused before
    // the evaluation folder exists.
    let dir = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/golden/reference_small_ckpt.pth")
        .display()
        .to_string();
    let args = [
        "knn",
        "--encoder",
        &file,
        "--model",
        "small",
        "--size",
        "100000",
    ];
    let out = supcon_train(&args, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("features of 1x100000x100000 images cannot be computed in memory"),
        "{stderr}"
    );
    let written: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(written.is_empty(), "knn wrote {written:?}");
}

#[test]
fn a_named_run_folder_is_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("runs/mine")).unwrap();
    let out = supcon_train(&["pretrain", "--name", "mine", "--out", "runs"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("already exists: choose another --name"),
        "{stderr}"
    );
    let inside: Vec<_> = std::fs::read_dir(dir.path().join("runs/mine"))
        .unwrap()
        .collect();
    assert!(
        inside.is_empty(),
        "nothing written into the existing folder"
    );
}

#[test]
fn an_out_that_is_a_file_is_refused_with_exit_2_before_loading() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("taken"), b"a file").unwrap();
    // The data folder does not exist: the --out problem must be found first.
    let out = supcon_train(
        &[
            "pretrain",
            "--out",
            "taken",
            "--dataset",
            "idx:/no/such/folder",
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is a file, so --out taken cannot hold"),
        "{stderr}"
    );
}

#[test]
fn a_device_not_compiled_in_is_named() {
    if cfg!(feature = "wgpu") {
        return;
    }
    assert_rejected(&["pretrain", "--device", "wgpu"], "not compiled in");
}

#[test]
fn a_checkpoint_of_another_architecture_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny_idx(&dir.path().join("data"));
    let dataset = format!("idx:{}", dir.path().join("data").display());
    let out = supcon_train(
        &[
            "pretrain",
            "--dataset",
            &dataset,
            "--epochs",
            "1",
            "--batch_size",
            "32",
            "--knn_freq",
            "0",
            "--linear_epochs",
            "1",
            "--out",
            "runs",
            "--quiet",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = dir.path().join("runs/supcon-small-1");
    // The binary draws the figures: decodable PNGs of the sizes it draws.
    for (file, size) in [("curves.png", (1000, 420)), ("embedding.png", (720, 640))] {
        let image = image::open(run.join(file)).unwrap();
        assert_eq!((image.width(), image.height()), size, "{file}");
    }
    // Pretend the run was a ResNet-18: its checkpoint no longer fits.
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    std::fs::write(
        run.join("config.toml"),
        config.replace("architecture = \"small\"", "architecture = \"resnet18\""),
    )
    .unwrap();
    let before = std::fs::read(run.join("checkpoint.bin")).unwrap();
    let out = supcon_train(&["linear", "--encoder", "runs/supcon-small-1"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("does not fit this model"), "{stderr}");
    assert_eq!(std::fs::read(run.join("checkpoint.bin")).unwrap(), before);
}

#[test]
fn toml_options_are_overridden_by_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny_idx(&dir.path().join("data"));
    let dataset = format!("idx:{}", dir.path().join("data").display());
    std::fs::write(
        dir.path().join("recipe.toml"),
        format!(
            "dataset = \"{dataset}\"\nepochs = 5\nbatch_size = 32\nknn_freq = 0\nlinear_epochs = 1\ntemp = 0.5\n"
        ),
    )
    .unwrap();
    let out = supcon_train(
        &[
            "pretrain",
            "--config",
            "recipe.toml",
            "--epochs",
            "1",
            "--out",
            "runs",
            "--quiet",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved =
        std::fs::read_to_string(dir.path().join("runs/supcon-small-1/config.toml")).unwrap();
    assert!(saved.contains("epochs = 1\n"), "{saved}");
    assert!(saved.contains("temp = 0.5\n"), "{saved}");
    assert!(
        saved.contains("mean = ["),
        "measured normalisation is saved: {saved}"
    );
}

#[test]
fn a_reference_checkpoint_file_is_evaluated_in_its_own_folder() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny_idx(&dir.path().join("data"));
    let dataset = format!("idx:{}", dir.path().join("data").display());
    // A real `torch.save` checkpoint of the reference's code (a small CNN for grey images).
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/golden/reference_small_ckpt.pth")
        .display()
        .to_string();
    let without_model = supcon_train(
        &["knn", "--encoder", &file, "--dataset", &dataset],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&without_model.stderr);
    assert_eq!(without_model.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--model"), "{stderr}");

    let args = [
        "--encoder",
        &file,
        "--model",
        "small",
        "--dataset",
        &dataset,
    ];
    let args = |command: &'static str, extra: &[&'static str]| {
        let mut all = vec![command];
        all.extend_from_slice(&args);
        all.extend_from_slice(&["--out", "evals", "--quiet"]);
        all.extend_from_slice(extra);
        all
    };
    let knn = supcon_train(&args("knn", &["--knn_k", "5"]), dir.path());
    assert!(
        knn.status.success(),
        "{}",
        String::from_utf8_lossy(&knn.stderr)
    );
    let linear = supcon_train(&args("linear", &["--linear_epochs", "2"]), dir.path());
    assert!(
        linear.status.success(),
        "{}",
        String::from_utf8_lossy(&linear.stderr)
    );
    let read = |path: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(path)).unwrap()).unwrap()
    };
    let knn = read("evals/eval-small-1/knn.json");
    assert_eq!(knn["settings"]["knn_k"], "5");
    assert!(
        knn["settings"]["encoder"]
            .as_str()
            .unwrap()
            .ends_with("reference_small_ckpt.pth")
    );
    let accuracy = knn["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy), "{knn}");
    let linear = read("evals/eval-small-2/linear.json");
    assert_eq!(linear["val_curve"].as_array().unwrap().len(), 2);
    // Its projection head (an MLP with 32 outputs) is read when its shape is given.
    let projected = supcon_train(
        &args(
            "embed",
            &["--projection", "--feat_dim", "32", "--output", "embedded"],
        ),
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&projected.stderr);
    assert!(projected.status.success(), "{stderr}");
    assert!(dir.path().join("embedded/test-projections.npy").is_file());
    let default_shape = supcon_train(&args("embed", &["--projection"]), dir.path());
    let stderr = String::from_utf8_lossy(&default_shape.stderr);
    assert_eq!(default_shape.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("(mlp, 128 outputs; `head.*`)"), "{stderr}");

    // A run folder has its own data: the dataset options are refused with it.
    let refused = supcon_train(
        &[
            "knn",
            "--encoder",
            "evals/eval-small-1",
            "--dataset",
            &dataset,
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be given with it"), "{stderr}");
    // An evaluation folder holds results, not an encoder to evaluate.
    let refused = supcon_train(&["knn", "--encoder", "evals/eval-small-1"], dir.path());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is an evaluation folder (`supcon-train linear` or `knn`)"),
        "{stderr}"
    );
}
