//! Layering settings: the defaults of [`RunConfig`], then a recipe or TOML file, then the
//! command line, each layer a list of settings addressed by their path in `config.toml`
//! (`optim.learning_rate`). Unknown names are refused with a suggestion, values of the wrong
//! type are refused naming the setting and where it came from.

use std::path::Path;

use toml::{Table, Value};

use super::{FLAG_PATHS, Options, RunConfig};
use crate::TrainError;

/// Settings from one source, by path.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Where they come from, for messages: a file or "the command line".
    origin: String,
    /// `(path, value)` pairs, paths checked against the configuration's.
    entries: Vec<(Vec<String>, Value)>,
}

impl Layer {
    /// The settings of a TOML text: `config.toml`'s sections, or the flat option names of the
    /// command line at the top level. Relative dataset folders are taken from `base_dir`.
    pub fn from_toml(text: &str, origin: &str, base_dir: &Path) -> Result<Layer, TrainError> {
        let table: Table = text
            .parse()
            .map_err(|e| TrainError::Config(format!("{origin}: {e}")))?;
        Layer::from_table(table, origin, base_dir)
    }

    /// The settings of a parsed TOML table (see [`from_toml`](Self::from_toml)).
    pub fn from_table(table: Table, origin: &str, base_dir: &Path) -> Result<Layer, TrainError> {
        let schema = schema();
        let mut entries = Vec::new();
        for (key, value) in table {
            match value {
                Value::Table(section) => {
                    let Some(Value::Table(known)) = schema.get(&key) else {
                        return Err(unknown(&schema, &key, origin));
                    };
                    for (name, value) in section {
                        if !known.contains_key(&name) {
                            return Err(unknown(&schema, &format!("{key}.{name}"), origin));
                        }
                        entries.push((vec![key.clone(), name], value));
                    }
                }
                value => {
                    let entry = flat_entry(&schema, &key, value)
                        .ok_or_else(|| unknown(&schema, &key, origin))?;
                    entries.push(entry);
                }
            }
        }
        let mut layer = Layer {
            origin: origin.to_string(),
            entries,
        };
        layer.rebase_dataset(base_dir);
        Ok(layer)
    }

    /// The settings of a TOML file (see [`from_toml`](Self::from_toml)); relative dataset
    /// folders are taken from the file's own folder.
    pub fn from_file(path: &Path) -> Result<Layer, TrainError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new(""));
        Layer::from_toml(&text, &path.display().to_string(), base)
    }

    /// The options given on the command line (their `--config` file aside).
    pub fn from_options(options: &Options) -> Result<Layer, TrainError> {
        let table = Table::try_from(options)
            .map_err(|e| TrainError::Config(format!("the command line: {e}")))?;
        let schema = schema();
        let entries = table
            .into_iter()
            .map(|(flag, value)| {
                flat_entry(&schema, &flag, value).expect("every option names a setting")
            })
            .collect();
        Ok(Layer {
            origin: "the command line".into(),
            entries,
        })
    }

    /// The paths this layer sets, dotted (`optim.learning_rate`).
    pub fn paths(&self) -> impl Iterator<Item = String> + '_ {
        self.entries.iter().map(|(path, _)| path.join("."))
    }

    /// Writes this layer's settings into `table` (a serialised configuration).
    fn apply(&self, table: &mut Table) {
        for (path, value) in &self.entries {
            set(table, path, value.clone());
        }
    }

    /// A relative `kind:DIR` dataset is made relative to `base` (the folder of its file).
    fn rebase_dataset(&mut self, base: &Path) {
        for (path, value) in &mut self.entries {
            if path != &["data", "dataset"] {
                continue;
            }
            let Value::String(spec) = value else { continue };
            if let Some((kind, dir)) = spec.split_once(':')
                && Path::new(dir).is_relative()
                && !dir.is_empty()
            {
                *spec = format!("{kind}:{}", base.join(dir).display());
            }
        }
    }
}

/// `base` (a configuration) with `layers` applied in order, checked as a whole.
pub fn build(base: &RunConfig, layers: &[Layer]) -> Result<RunConfig, TrainError> {
    let base_table = Table::try_from(base)
        .map_err(|e| TrainError::Config(format!("cannot serialise the configuration: {e}")))?;
    let mut table = base_table.clone();
    for layer in layers {
        layer.apply(&mut table);
    }
    match Value::Table(table).try_into::<RunConfig>() {
        Ok(config) => Ok(config),
        Err(error) => {
            // Name the first setting that does not fit on its own.
            for layer in layers {
                for (path, value) in &layer.entries {
                    let mut alone = base_table.clone();
                    set(&mut alone, path, value.clone());
                    if let Err(e) = Value::Table(alone).try_into::<RunConfig>() {
                        return Err(TrainError::Config(format!(
                            "{}: `{}`: {}",
                            layer.origin,
                            path.join("."),
                            e.message().trim()
                        )));
                    }
                }
            }
            Err(TrainError::Config(error.message().trim().to_string()))
        }
    }
}

/// The default of the setting the command-line option `flag` sets, as `--help` shows it.
pub fn default_text(flag: &str) -> Option<String> {
    match flag {
        "size" => {
            return Some("the images' own size; image folders: 32".into());
        }
        "limit" => return Some("all the training images".into()),
        "name" => return Some("<method>-<model>-<n>, the first free n".into()),
        "mean" | "std" => return Some("measured on the training split".into()),
        "cosine" => return Some("false (the schedule is `cosine`)".into()),
        _ => {}
    }
    let schema = schema();
    let defaults = Table::try_from(RunConfig::new()).ok()?;
    let path = route(&schema, flag)?;
    let mut value = &Value::Table(defaults);
    for key in &path {
        value = value.as_table()?.get(key)?;
    }
    Some(match value {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "none".into(),
        other => other.to_string(),
    })
}

/// Every setting's path, as a table shaped like `config.toml` (optional settings included).
fn schema() -> Table {
    let mut full = RunConfig::new();
    // The optional settings, which a default configuration leaves out.
    full.data.size = Some(1);
    full.data.limit = Some(1.0);
    full.name = Some(String::new());
    Table::try_from(&full).expect("the configuration serialises")
}

/// The setting a flat option sets: its path ([`route`]) and value; the reference's `cosine`
/// flag chooses the schedule (`true`: `reference-cosine`, `false`: `step`).
fn flat_entry(schema: &Table, flag: &str, value: Value) -> Option<(Vec<String>, Value)> {
    if flag == "cosine" {
        let kind = match value {
            Value::Boolean(true) => Value::String("reference-cosine".into()),
            Value::Boolean(false) => Value::String("step".into()),
            other => other,
        };
        return Some((vec!["schedule".into(), "kind".into()], kind));
    }
    route(schema, flag).map(|path| (path, value))
}

/// The path of a flat option name: a top-level setting, a renamed one ([`FLAG_PATHS`]), or
/// the one section holding a setting of that name.
fn route(schema: &Table, flag: &str) -> Option<Vec<String>> {
    if let Some((_, path)) = FLAG_PATHS.iter().find(|(name, _)| *name == flag) {
        return Some(path.split('.').map(str::to_string).collect());
    }
    match schema.get(flag) {
        Some(Value::Table(_)) => None,
        Some(_) => Some(vec![flag.to_string()]),
        None => schema.iter().find_map(|(section, value)| match value {
            Value::Table(t) if t.contains_key(flag) => Some(vec![section.clone(), flag.into()]),
            _ => None,
        }),
    }
}

fn set(table: &mut Table, path: &[String], value: Value) {
    match path {
        [name] => {
            table.insert(name.clone(), value);
        }
        [section, rest @ ..] => {
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(inner) = entry {
                set(inner, rest, value);
            }
        }
        [] => {}
    }
}

/// An unknown setting, with the closest known name (flat or dotted) when there is one.
fn unknown(schema: &Table, name: &str, origin: &str) -> TrainError {
    let mut known: Vec<String> = FLAG_PATHS.iter().map(|(f, _)| f.to_string()).collect();
    known.push("cosine".into());
    for (key, value) in schema {
        match value {
            Value::Table(section) => {
                known.push(key.clone());
                for leaf in section.keys() {
                    known.push(leaf.clone());
                    known.push(format!("{key}.{leaf}"));
                }
            }
            _ => known.push(key.clone()),
        }
    }
    let leaf = name.rsplit('.').next().unwrap_or(name);
    let hint = if let Some(path) = route(schema, leaf).filter(|_| name.contains('.')) {
        format!(
            " (`{leaf}` belongs in [{}])",
            path[..path.len() - 1].join(".")
        )
    } else {
        known
            .iter()
            .map(|k| (edit_distance(name, k), k))
            .filter(|(d, k)| *d <= 2.max(k.len() / 4))
            .min()
            .map(|(_, k)| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default()
    };
    TrainError::Config(format!("{origin}: unknown setting `{name}`{hint}"))
}

/// Edit distance counting an insertion, a deletion, a substitution or a swap of two adjacent
/// characters as one edit (optimal string alignment): `tmep` is one edit from `temp`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: the distance between the first i characters of a and the first j of b.
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitution.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(text: &str) -> Result<Layer, TrainError> {
        Layer::from_toml(text, "test.toml", Path::new("/recipes"))
    }

    #[test]
    fn flat_names_and_sections_set_the_same_setting() {
        let flat = build(&RunConfig::new(), &[layer("learning_rate = 0.5").unwrap()]).unwrap();
        let nested = build(
            &RunConfig::new(),
            &[layer("[optim]\nlearning_rate = 0.5").unwrap()],
        )
        .unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.optim.learning_rate, 0.5);
    }

    #[test]
    fn unknown_names_suggest_the_closest() {
        let error = layer("learning_rte = 0.1").unwrap_err().to_string();
        assert!(error.contains("did you mean `learning_rate`"), "{error}");
        let error = layer("[data]\nlearning_rate = 0.1")
            .unwrap_err()
            .to_string();
        assert!(error.contains("belongs in [optim]"), "{error}");
        let error = layer("[optimiser]\nlearning_rate = 0.1")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown setting `optimiser`"), "{error}");
    }

    #[test]
    fn a_wrong_type_names_the_setting_and_its_file() {
        let error = build(&RunConfig::new(), &[layer("epochs = \"ten\"").unwrap()])
            .unwrap_err()
            .to_string();
        assert!(error.contains("test.toml: `schedule.epochs`"), "{error}");
    }

    #[test]
    fn the_reference_cosine_flag_chooses_its_schedule() {
        use crate::schedule::ScheduleKind;
        let on = build(&RunConfig::new(), &[layer("cosine = true").unwrap()]).unwrap();
        assert_eq!(on.schedule.kind, ScheduleKind::ReferenceCosine);
        let off = build(&RunConfig::new(), &[layer("cosine = false").unwrap()]).unwrap();
        assert_eq!(off.schedule.kind, ScheduleKind::Step);
        let named = build(&RunConfig::new(), &[layer("schedule = \"step\"").unwrap()]).unwrap();
        assert_eq!(named.schedule.kind, ScheduleKind::Step);
        assert_eq!(RunConfig::new().schedule.kind, ScheduleKind::Cosine);
    }

    #[test]
    fn relative_dataset_folders_are_from_the_file() {
        let config = build(
            &RunConfig::new(),
            &[layer("dataset = \"idx:data\"").unwrap()],
        )
        .unwrap();
        assert_eq!(config.data.dataset.dir(), Some(Path::new("/recipes/data")));
    }

    #[test]
    fn defaults_are_shown_from_the_configuration() {
        assert_eq!(default_text("batch_size").unwrap(), "128");
        assert_eq!(default_text("model").unwrap(), "small");
        assert_eq!(default_text("schedule").unwrap(), "cosine");
        assert_eq!(default_text("learning_rate").unwrap(), "0.1");
        assert_eq!(default_text("lr_decay_epochs").unwrap(), "none");
        assert_eq!(default_text("config"), None);
    }

    #[test]
    fn every_command_line_option_sets_a_setting() {
        // Layer::from_options routes every option given; set them all.
        let options = Options {
            batch_size: Some(8),
            learning_rate: Some(0.2),
            lr_decay_epochs: Some(vec![2]),
            lr_decay_rate: Some(0.2),
            weight_decay: Some(0.0),
            momentum: Some(0.5),
            epochs: Some(2),
            temp: Some(0.2),
            base_temp: Some(0.2),
            schedule: Some(crate::schedule::ScheduleKind::Step),
            warm: Some(true),
            method: Some(super::super::Method::SimClr),
            model: Some(supcon_encoder::Architecture::ResNet18),
            dataset: Some("idx:/data".parse().unwrap()),
            size: Some(24),
            mean: Some(vec![0.5]),
            std: Some(vec![0.25]),
            seed: Some(3),
            views: Some(3),
            head: Some(supcon_head::HeadKind::Linear),
            feat_dim: Some(64),
            out: Some("elsewhere".into()),
            name: Some("mine".into()),
            optimizer: Some(super::super::OptimizerKind::Lars),
            decay_norm_and_bias: Some(false),
            crop_min_scale: Some(0.3),
            jitter: Some(0.1),
            flip: Some(0.25),
            val_fraction: Some(0.2),
            save_freq: Some(2),
            knn_freq: Some(0),
            knn_k: Some(5),
            linear_epochs: Some(4),
            linear_learning_rate: Some(0.3),
            queue: Some(64),
            queue_momentum: Some(0.99),
            chunk: Some(4),
            ..Options::default()
        };
        let layer = Layer::from_options(&options).unwrap();
        let config = build(&RunConfig::new(), &[layer]).unwrap();
        assert_eq!(config.name.as_deref(), Some("mine"));
        assert_eq!(config.data.size, Some(24));
        assert_eq!(config.eval.linear_learning_rate, 0.3);
        assert_eq!(
            config.model.architecture,
            supcon_encoder::Architecture::ResNet18
        );
        assert_eq!(config.schedule.kind, crate::schedule::ScheduleKind::Step);
        assert_eq!((config.step.queue, config.step.chunk), (64, 4));
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("learning_rte", "learning_rate"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("tmep", "temp"), 1);
        assert_eq!(edit_distance("abc", ""), 3);
    }
}
