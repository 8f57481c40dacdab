//! Atomic file replacement: write a temporary file beside the target, sync it, rename it over
//! the target, sync the directory. A crash at any point leaves either the old file or the new
//! one, never a mix.

use crate::faults;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary file [`write_atomically`] writes before renaming: `<path>.<pid>.tmp`, so two
/// processes writing the same file never share one.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Removes the `*.tmp` files in `dir` (left by writes that a kill interrupted); returns how
/// many.
pub fn remove_orphaned_temporaries(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    if !dir.is_dir() {
        return Ok(0);
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tmp") && path.is_file() {
            fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Replaces `path` with `bytes` atomically (write, fsync, rename, fsync of the directory).
/// On failure the temporary file is removed and `path` is untouched.
///
/// Fault points ([`crate::faults`]): `write.<file name>` before anything is written,
/// `write.<file name>.tmp` after the temporary is synced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    faults::point(&format!("write.{name}"))?;
    let tmp = temporary_path(path);
    let written = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        faults::point(&format!("write.{name}.tmp"))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Makes the rename itself durable; not every platform can open a directory.
    if let Ok(d) = File::open(dir) {
        d.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert!(!temporary_path(&path).exists());
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_and_orphans_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails after the temporary was written.
        let path = dir.path().join("a-dir");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        assert!(write_atomically(&path, b"bytes").is_err());
        assert!(!temporary_path(&path).exists());
        fs::write(dir.path().join("last.safetensors.123.tmp"), b"half").unwrap();
        fs::write(dir.path().join("keep.csv"), b"rows").unwrap();
        assert_eq!(remove_orphaned_temporaries(dir.path()).unwrap(), 1);
        assert!(dir.path().join("keep.csv").exists());
    }
}
