//! The settings a weights file written by [`export`](crate::runs::export) (or a cross-entropy
//! run's [`BEST_MODEL_FILE`](crate::ce::BEST_MODEL_FILE)) carries: its run's
//! configuration, less what belongs to the machine that trained it, as the text of a
//! `config.toml` under the metadata key [`SETTINGS_KEY`]. Evaluating the file (`linear`, `knn`,
//! `embed --encoder FILE`) takes them as its defaults, so the encoder sees its inputs as in
//! training (the size, the normalisation) without the user repeating them, and the results
//! are those of evaluating the run folder itself.
//!
//! Python reads them with `safetensors.safe_open(path, "pt").metadata()["supcon.config"]`.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Table;

use crate::TrainError;
use crate::config::{Layer, RunConfig};
use crate::dataset::DatasetSpec;

/// The metadata key under which [`export`](crate::runs::export) records its run's settings.
pub const SETTINGS_KEY: &str = "supcon.config";

/// The settings of the machine, not of the model or its data, which are not recorded: where
/// and in which float type the run computed, where it was saved, how often.
pub const MACHINE_SETTINGS: [&str; 5] = ["device", "precision", "out", "name", "save_freq"];

/// The settings that count the images of the recorded dataset, dropped when another dataset is
/// given.
const DATASET_SETTINGS: [(&str, &str); 1] = [("data", "limit")];

/// The metadata recording `config` (see the module's documentation).
pub fn settings_metadata(config: &RunConfig) -> Result<BTreeMap<String, String>, TrainError> {
    let mut table = Table::try_from(config)
        .map_err(|e| TrainError::Config(format!("cannot serialise the configuration: {e}")))?;
    for key in MACHINE_SETTINGS {
        table.remove(key);
    }
    let text = toml::to_string_pretty(&table)
        .map_err(|e| TrainError::Config(format!("cannot serialise the configuration: {e}")))?;
    Ok(BTreeMap::from([(SETTINGS_KEY.to_string(), text)]))
}

/// The settings recorded in the weights file `path`, as a layer of settings (`None` for a file
/// without them: the reference's checkpoints, files of other programs); the dataset-bound ones
/// (`data.limit`, a count of the recorded dataset's images) left out when `dataset` is given
/// and is not the recorded one. Recorded settings that this version does not know, or of the
/// wrong type, are refused naming the file.
pub fn recorded_settings(
    path: &Path,
    dataset: Option<&DatasetSpec>,
) -> Result<Option<Layer>, TrainError> {
    let metadata = supcon_head::weights::read_metadata(path)?;
    let Some(text) = metadata.get(SETTINGS_KEY) else {
        return Ok(None);
    };
    let origin = format!("the settings recorded in {}", path.display());
    let mut table: Table = text
        .parse()
        .map_err(|e| TrainError::Config(format!("{origin}: {e}")))?;
    let recorded_dataset = table
        .get("data")
        .and_then(|data| data.get("dataset"))
        .and_then(|spec| spec.as_str())
        .and_then(|spec| spec.parse::<DatasetSpec>().ok());
    let other_dataset = match dataset {
        Some(given) => Some(given.absolute()?) != recorded_dataset,
        None => false,
    };
    if other_dataset {
        for (section, key) in DATASET_SETTINGS {
            if let Some(toml::Value::Table(section)) = table.get_mut(section) {
                section.remove(key);
            }
        }
    }
    let base = path.parent().unwrap_or(Path::new(""));
    Layer::from_table(table, &origin, base).map(Some)
}
