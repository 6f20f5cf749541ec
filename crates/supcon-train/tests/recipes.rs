//! Every committed recipe parses and resolves to a valid configuration.

use supcon_train::config::{Options, RunConfig};

#[test]
fn committed_recipes_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let options =
            Options::from_toml_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        RunConfig::resolve(options).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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
    let error = Options::from_toml_str("epochs = 3\nlearning_rte = 0.1\n").unwrap_err();
    assert!(error.to_string().contains("learning_rte"), "{error}");
}
