//! Writing a file so that a crash, a kill or a full disk at any moment leaves either the old
//! file or the new one, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::TrainError;

/// Writes `bytes` to `path` through a temporary file in the same folder (`.NAME.tmp`): written,
/// flushed to disk, renamed over `path`, and the folder synced so that the rename itself is
/// durable. On any failure the temporary file is removed (a full disk is not left fuller); a
/// stale temporary file from an earlier crash is simply overwritten.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let temporary = temporary_path(path);
    let written = write_and_sync(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path).map_err(|e| TrainError::io(path, e)));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    sync_folder(path);
    Ok(())
}

/// The temporary file [`write_atomically`] writes `path` through.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

fn write_and_sync(temporary: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let mut file = std::fs::File::create(temporary).map_err(|e| TrainError::io(temporary, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| TrainError::io(temporary, e))
}

/// Syncs the folder holding `path`, where the platform allows opening folders (Unix); the
/// rename is already done, so a failure here only weakens durability and is not reported.
fn sync_folder(path: &Path) {
    #[cfg(unix)]
    if let Some(folder) = path.parent() {
        let folder = if folder.as_os_str().is_empty() {
            Path::new(".")
        } else {
            folder
        };
        if let Ok(handle) = std::fs::File::open(folder) {
            let _ = handle.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomically(&path, b"old").unwrap();
        // A stale temporary file from a crash does not get in the way.
        std::fs::write(temporary_path(&path), b"stale").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_removes_its_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // Renaming a file over a non-empty folder fails after the temporary file is written.
        let path = dir.path().join("occupied");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"x").unwrap();
        assert!(write_atomically(&path, b"bytes").is_err());
        assert!(!temporary_path(&path).exists());
    }
}
