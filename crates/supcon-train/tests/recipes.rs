//! Every committed recipe parses and resolves to a valid configuration; a run's `config.toml`
//! reads back as the configuration it was written from.

use std::path::Path;

use supcon_encoder::Architecture;
use supcon_head::HeadKind;
use supcon_train::config::{
    AugmentConfig, DataConfig, Method, ModelConfig, OptimizerKind, Options, RunConfig,
};
use supcon_train::dataset::DatasetSpec;

#[test]
fn committed_recipes_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        RunConfig::from_toml_str(&text, &dir).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    assert_eq!(
        names,
        [
            "demo.toml",
            "fashion-mnist-ce.toml",
            "fashion-mnist-simclr.toml",
            "fashion-mnist-supcon.toml"
        ]
    );
}

#[test]
fn unknown_keys_are_errors() {
    let error =
        RunConfig::from_toml_str("epochs = 3\nlearning_rte = 0.1\n", Path::new("")).unwrap_err();
    assert!(error.to_string().contains("learning_rte"), "{error}");
}

#[test]
fn config_toml_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let config = RunConfig::new()
        .with_seed(7)
        .with_data(
            DataConfig::new()
                .with_dataset(DatasetSpec::Folder(dir.path().join("images")))
                .with_size(Some(24))
                .with_mean(vec![0.5, 0.4, 0.3])
                .with_std(vec![0.2, 0.2, 0.25]),
        )
        .with_model(
            ModelConfig::new()
                .with_architecture(Architecture::ResNet18)
                .with_head(HeadKind::Linear),
        )
        .with_augment(AugmentConfig::new().with_views(4).with_flip(0.0));
    let mut config = config;
    config.loss.method = Method::SimClr;
    config.optim.optimizer = OptimizerKind::Lars;
    config.schedule.lr_decay_epochs = vec![3, 6];
    let path = dir.path().join("config.toml");
    config.save(&path).unwrap();
    assert_eq!(RunConfig::load(&path).unwrap(), config);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("[model]\narchitecture = \"resnet18\"\nhead = \"linear\""),
        "{text}"
    );
    // The same file, given as --config, resolves to the same configuration.
    let options = Options {
        config: Some(path),
        ..Options::default()
    };
    assert_eq!(RunConfig::resolve(options).unwrap(), config);
}

#[test]
fn the_command_line_overrides_the_file_and_the_file_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recipe.toml");
    std::fs::write(
        &path,
        "epochs = 5\n[optim]\nlearning_rate = 0.3\nmomentum = 0.5\n",
    )
    .unwrap();
    let config = RunConfig::resolve(Options {
        config: Some(path),
        momentum: Some(0.8),
        model: Some(Architecture::ResNet34),
        ..Options::default()
    })
    .unwrap();
    assert_eq!(config.schedule.epochs, 5);
    assert_eq!(config.optim.learning_rate, 0.3);
    assert_eq!(config.optim.momentum, 0.8);
    assert_eq!(config.model.architecture, Architecture::ResNet34);
    assert_eq!(
        config.data,
        DataConfig::new(),
        "untouched sections keep their defaults"
    );
    // The embedded digits are not flipped unless asked.
    assert_eq!(config.augment.flip, 0.0);
    let flipped = RunConfig::resolve(Options {
        flip: Some(0.5),
        ..Options::default()
    })
    .unwrap();
    assert_eq!(flipped.augment.flip, 0.5);
}
