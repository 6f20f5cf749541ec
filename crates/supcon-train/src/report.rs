//! Result files of a run: each evaluation in its own JSON file (`linear.json`, `linear-2.json`,
//! `knn.json`, ..., never overwritten), `summary.md` listing them, embeddings as `.npy`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use npyz::WriterBuilder;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::atomic::write_atomically;

/// File name of a run's summary of its evaluations.
pub const SUMMARY_FILE: &str = "summary.md";

/// Writes `value` as pretty JSON, atomically.
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| TrainError::run(path, format!("cannot serialise: {e}")))?;
    write_atomically(path, &text)
}

/// One evaluation of a run as saved: which, under which settings, and its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord<T> {
    /// `linear`, `knn` or `ce`.
    pub evaluation: String,
    /// The settings that decide the result (`linear_epochs`, `knn_k`, `device`, ...).
    pub settings: BTreeMap<String, String>,
    /// The figures.
    #[serde(flatten)]
    pub outcome: T,
}

/// The first result file of `evaluation` in `run_dir`: `<evaluation>.json`.
pub fn result_file(run_dir: &Path, evaluation: &str) -> PathBuf {
    run_dir.join(format!("{evaluation}.json"))
}

/// The first free result file of `evaluation` in `run_dir`: `<evaluation>.json`
/// ([`result_file`]), then `<evaluation>-2.json`, `-3`, ...
pub fn next_result_file(run_dir: &Path, evaluation: &str) -> PathBuf {
    let first = result_file(run_dir, evaluation);
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| run_dir.join(format!("{evaluation}-{n}.json")))
        .find(|path| !path.exists())
        .expect("some number is free")
}

/// Saves an evaluation in the next free file of its kind ([`next_result_file`]) and rewrites
/// the run's [`SUMMARY_FILE`]; returns the file's path. The caller holds the run's lock.
pub fn save_evaluation<T: Serialize>(
    run_dir: &Path,
    record: &EvaluationRecord<T>,
) -> Result<PathBuf, TrainError> {
    let path = next_result_file(run_dir, &record.evaluation);
    save_json(&path, record)?;
    write_atomically(&run_dir.join(SUMMARY_FILE), summary(run_dir)?.as_bytes())?;
    Ok(path)
}

/// A saved evaluation as the summary lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Listed {
    evaluation: String,
    settings: BTreeMap<String, String>,
    val_accuracy: Option<f64>,
    test_accuracy: Option<f64>,
}

/// The evaluations saved in `run_dir` as a Markdown table: one row per result file, grouped by
/// evaluation, each group in the order its files were made.
pub fn summary(run_dir: &Path) -> Result<String, TrainError> {
    let mut files: Vec<(String, usize, PathBuf)> = Vec::new();
    let entries = std::fs::read_dir(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| TrainError::io(run_dir, e))?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let (kind, number) = match stem.rsplit_once('-') {
            Some((kind, n)) if n.parse::<usize>().is_ok() => (kind, n.parse().unwrap_or(1)),
            _ => (stem, 1),
        };
        if ["linear", "knn", "ce"].contains(&kind) {
            files.push((kind.to_string(), number, path));
        }
    }
    files.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut text = format!(
        "# Evaluations of {}\n\n| file | evaluation | settings | validation | test |\n| --- | --- | --- | ---: | ---: |\n",
        run_dir.display()
    );
    let percent = |a: Option<f64>| a.map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
    for (_, _, path) in files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
        let row = match serde_json::from_slice::<Listed>(&bytes) {
            Ok(listed) => {
                let settings: Vec<String> = listed
                    .settings
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                format!(
                    "| {name} | {} | {} | {} | {} |",
                    listed.evaluation,
                    settings.join(", "),
                    percent(listed.val_accuracy),
                    percent(listed.test_accuracy)
                )
            }
            // Written by an earlier version (no settings recorded).
            Err(_) => format!("| {name} | - | - | - | - |"),
        };
        text.push_str(&row);
        text.push('\n');
    }
    Ok(text)
}

/// A NumPy `.npy` file (little-endian, C order) of `values` of `shape`, written by `npyz`.
pub fn npy<T: npyz::AutoSerialize + Copy>(shape: &[usize], values: &[T]) -> Vec<u8> {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut bytes = Vec::new();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut bytes)
        .begin_nd()
        .expect("writing to memory cannot fail");
    writer
        .extend(values.iter().copied())
        .and_then(|()| writer.finish())
        .expect("writing to memory cannot fail");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluations_are_numbered_never_overwritten_and_summarised() {
        let dir = tempfile::tempdir().unwrap();
        let record = |val: f64, k: &str| EvaluationRecord {
            evaluation: "knn".into(),
            settings: BTreeMap::from([("knn_k".to_string(), k.to_string())]),
            outcome: serde_json::json!({"val_accuracy": val, "test_accuracy": 0.5}),
        };
        let first = save_evaluation(dir.path(), &record(0.25, "10")).unwrap();
        let second = save_evaluation(dir.path(), &record(0.75, "20")).unwrap();
        assert_eq!(first.file_name().unwrap(), "knn.json");
        assert_eq!(second.file_name().unwrap(), "knn-2.json");
        let saved: EvaluationRecord<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&first).unwrap()).unwrap();
        assert_eq!(saved.outcome["val_accuracy"], 0.25, "the first is kept");
        let summary = std::fs::read_to_string(dir.path().join(SUMMARY_FILE)).unwrap();
        let rows: Vec<&str> = summary.lines().filter(|l| l.starts_with("| knn")).collect();
        assert_eq!(
            rows,
            [
                "| knn.json | knn | knn_k 10 | 25.00% | 50.00% |",
                "| knn-2.json | knn | knn_k 20 | 75.00% | 50.00% |"
            ]
        );
    }

    #[test]
    fn npy_files_read_back() {
        let bytes = npy(&[2, 3], &[0.5f32, 1.0, 1.5, 2.0, 2.5, 3.0]);
        let file = npyz::NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(file.shape(), &[2, 3]);
        assert_eq!(
            file.into_vec::<f32>().unwrap(),
            [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
        );
        let labels = npy(&[4], &[1i64, 2, 3, 4]);
        let header = String::from_utf8_lossy(&labels[..64]).into_owned();
        assert!(header.contains("'descr': '<i8'"), "{header}");
        let file = npyz::NpyFile::new(&labels[..]).unwrap();
        assert_eq!(file.shape(), &[4]);
        assert_eq!(file.into_vec::<i64>().unwrap(), [1, 2, 3, 4]);
    }
}
