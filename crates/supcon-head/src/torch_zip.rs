//! `torch.save` archives that the zip reader under burn-store misreads, and a copy it reads.
//!
//! PyTorch writes every archive with ZIP64 end records (the ZIP64 end of central directory and
//! its locator, 76 bytes) between the central directory and the classic end record, whose
//! fields it fills as well (they fit). The `zip` crate (9.x) sees a classic record that needs
//! no ZIP64, and first looks for the central directory where that record's size field says it
//! starts if it ends right at the record: 76 bytes after its real start. Usually no header is
//! there and it falls back to the offset the record states; but when the first central header
//! is exactly 76 bytes long (46 bytes and a 30-byte name: `<stem>/data.pkl` with a
//! 21-character stem, as `supcon_resnet50_e1000.pth` has) the second header is there, and the
//! whole directory is read shifted: "Invalid Central Directory header". A copy whose classic
//! record defers to the ZIP64 one (offset `0xFFFFFFFF`, as the format allows) reads correctly.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const EOCD_SIGNATURE: &[u8; 4] = b"PK\x05\x06";
const LOCATOR_SIGNATURE: &[u8; 4] = b"PK\x06\x07";
const CENTRAL_HEADER_SIGNATURE: &[u8; 4] = b"PK\x01\x02";
/// The classic end record without a comment (PyTorch writes none).
const EOCD_LEN: u64 = 22;
/// The ZIP64 end record and its locator, as PyTorch writes them.
const LOCATOR_LEN: u64 = 20;

/// Whether `path` is an archive the `zip` crate would misread as described above.
pub(crate) fn is_misread(path: &Path) -> std::io::Result<bool> {
    let mut file = File::open(path)?;
    let len = file.seek(SeekFrom::End(0))?;
    if len < EOCD_LEN + LOCATOR_LEN {
        return Ok(false);
    }
    let eocd_at = len - EOCD_LEN;
    let mut eocd = [0u8; EOCD_LEN as usize];
    file.seek(SeekFrom::Start(eocd_at))?;
    file.read_exact(&mut eocd)?;
    let mut locator = [0u8; 4];
    file.seek(SeekFrom::Start(eocd_at - LOCATOR_LEN))?;
    file.read_exact(&mut locator)?;
    if &eocd[..4] != EOCD_SIGNATURE || &locator != LOCATOR_SIGNATURE {
        return Ok(false);
    }
    let size = u64::from(u32::from_le_bytes(
        eocd[12..16].try_into().expect("4 bytes"),
    ));
    let offset = u32::from_le_bytes(eocd[16..20].try_into().expect("4 bytes"));
    if offset == u32::MAX {
        return Ok(false);
    }
    let Some(abutting) = eocd_at.checked_sub(size) else {
        return Ok(false);
    };
    if abutting == u64::from(offset) {
        return Ok(false);
    }
    let mut signature = [0u8; 4];
    file.seek(SeekFrom::Start(abutting))?;
    file.read_exact(&mut signature)?;
    Ok(&signature == CENTRAL_HEADER_SIGNATURE)
}

/// A temporary copy of an archive whose classic end record points to its ZIP64 record;
/// removed when dropped.
pub(crate) struct ReadableCopy {
    path: PathBuf,
}

impl ReadableCopy {
    /// Copies `path` and marks the copy's central-directory offset as held by the ZIP64 record.
    pub(crate) fn new(path: &Path) -> std::io::Result<ReadableCopy> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("supcon-torch-{}-{n}.pth", std::process::id());
        let copy = ReadableCopy {
            path: std::env::temp_dir().join(name),
        };
        std::fs::copy(path, &copy.path)?;
        let mut file = std::fs::OpenOptions::new().write(true).open(&copy.path)?;
        let len = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(len - EOCD_LEN + 16))?;
        file.write_all(&u32::MAX.to_le_bytes())?;
        file.sync_all()?;
        Ok(copy)
    }

    /// Where the copy is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ReadableCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
