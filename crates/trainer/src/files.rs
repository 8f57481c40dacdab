//! Reading the files a user points at: regular files only, each within a size bound.
//!
//! A path can name something that is not a file's bytes: a FIFO (reading it waits for a writer
//! that may never come), a device (`/dev/zero` never ends), a directory, or a regular file far
//! larger than what it claims to be (a 1 GB `.jpg`). Every file the trainer reads whole goes
//! through [`read`], which refuses the special files before opening them (so a FIFO cannot
//! block the run) and a file over its bound before reading it, naming the kind or the size.
//!
//! | what | bound |
//! |---|---|
//! | an image of an image folder | [`IMAGE_BYTES`] (256 MiB) |
//! | a checkpoint | [`CHECKPOINT_BYTES`] (32 GiB) |
//! | an experiment file, a run's `config.toml` | [`CONFIG_BYTES`] (16 MiB) |
//! | a label or class list, a record CSV | [`LIST_BYTES`] (1 GiB) |
//! | an MNIST (IDX) or CIFAR-10 file | [`DATA_FILE_BYTES`] (8 GiB, the IDX reader's bound) |

use std::fs::{File, FileType};
use std::io::{Error, ErrorKind, Read};
use std::path::Path;

/// The largest image file read (a 128-megapixel PNG is about this size at most).
pub const IMAGE_BYTES: u64 = 256 << 20;
/// The largest checkpoint read.
pub const CHECKPOINT_BYTES: u64 = 32 << 30;
/// The largest experiment file read.
pub const CONFIG_BYTES: u64 = 16 << 20;
/// The largest list read: labels, class names, CSV records.
pub const LIST_BYTES: u64 = 1 << 30;
/// The largest file of a standard data set read (CIFAR-10's batches are 30 MB, MNIST's
/// training images 47 MB; IDX files of other sets up to the IDX reader's own bound,
/// [`crate::data::mnist::MAX_IDX_BYTES`]).
pub const DATA_FILE_BYTES: u64 = crate::data::mnist::MAX_IDX_BYTES as u64;

/// What a file type is, for a message.
fn kind(t: &FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Checks that `path` (links followed) is a regular file of at most `limit` bytes; returns its
/// length. The error says what the path is instead, or the size and the bound (callers name
/// the file).
pub fn check(path: &Path, limit: u64) -> std::io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    if !meta.file_type().is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("it is {}, not a regular file", kind(&meta.file_type())),
        ));
    }
    over(meta.len(), limit)?;
    Ok(meta.len())
}

/// The error of a file of `len` bytes over `limit`.
fn over(len: u64, limit: u64) -> std::io::Result<()> {
    match len > limit {
        true => Err(Error::new(
            ErrorKind::FileTooLarge,
            format!("it is {len} bytes, over the limit of {limit} bytes for this kind of file"),
        )),
        false => Ok(()),
    }
}

/// Opens `path` for reading after [`check`]ing it.
pub fn open(path: &Path, limit: u64) -> std::io::Result<File> {
    check(path, limit)?;
    File::open(path)
}

/// The bytes of the regular file `path`, at most `limit` of them (see [`check`]); a file that
/// grows past the bound while it is read is refused too.
pub fn read(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let len = check(path, limit)?;
    let file = File::open(path)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    over(bytes.len() as u64, limit)?;
    Ok(bytes)
}

/// The text of the regular file `path` (see [`read`]), which must be UTF-8.
pub fn read_to_string(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|_| Error::new(ErrorKind::InvalidData, "it is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_and_files_over_the_bound_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("a.jpg");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // Opening a FIFO for reading would wait for a writer: the check comes first.
            let e = read(&fifo, 100).unwrap_err().to_string();
            assert!(e.contains("it is a FIFO"), "{e}");
        }
        let e = read(Path::new("/dev/zero"), 100).unwrap_err().to_string();
        assert!(e.contains("it is a character device"), "{e}");
        let e = read(dir.path(), 100).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let big = dir.path().join("big.jpg");
        std::fs::write(&big, vec![0u8; 101]).unwrap();
        let e = read(&big, 100).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FileTooLarge);
        assert!(
            e.to_string().contains("101 bytes, over the limit of 100"),
            "{e}"
        );
        assert_eq!(read(&big, 101).unwrap().len(), 101);
        // A link to a regular file is read.
        let link = dir.path().join("link.jpg");
        std::os::unix::fs::symlink(&big, &link).unwrap();
        assert_eq!(read(&link, 200).unwrap().len(), 101);
        let link = dir.path().join("zero.jpg");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(read(&link, 200).is_err());
    }
}
