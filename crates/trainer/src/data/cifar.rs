//! CIFAR-10 in its official binary format: each record is one label byte followed by
//! 1024 red, 1024 green and 1024 blue bytes (32x32, row-major).

use super::{DataError, Dataset, Split, check_labels, read_file};
use std::path::{Path, PathBuf};
use tracing::info;

/// Bytes per record: 1 label + 3 * 32 * 32 pixels.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// The official names of the training batches.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// Loads the training batches of `dir` that have their official names (`data_batch_1.bin`
/// ... `data_batch_5.bin`, in that order; any other file, such as a copy, is not read) and
/// `test_batch.bin` for testing; logs which files were read.
pub fn load(dir: &Path) -> Result<Split, DataError> {
    let train_files: Vec<PathBuf> = TRAIN_FILES
        .iter()
        .map(|name| dir.join(name))
        .filter(|p| p.is_file())
        .collect();
    if train_files.is_empty() {
        return Err(DataError::MissingFile {
            what: "CIFAR-10 training batch",
            dir: dir.to_path_buf(),
            expected: "data_batch_1.bin ... data_batch_5.bin".into(),
        });
    }
    let test_file = dir.join("test_batch.bin");
    if !test_file.is_file() {
        return Err(DataError::MissingFile {
            what: "CIFAR-10 test batch",
            dir: dir.to_path_buf(),
            expected: "test_batch.bin".into(),
        });
    }
    let mut train = empty();
    for f in &train_files {
        read_batch(f, &mut train)?;
    }
    let mut test = empty();
    read_batch(&test_file, &mut test)?;
    let names: Vec<String> = train_files
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    info!(
        "{}: read {} for training ({} images), test_batch.bin for testing ({} images)",
        dir.display(),
        names.join(", "),
        train.len(),
        test.len()
    );
    Ok(Split { train, test })
}

fn empty() -> Dataset {
    Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        dim: RECORD - 1,
        channels: 3,
        classes: 10,
        ..Dataset::default()
    }
}

/// Appends the records of one batch file to `into`.
pub fn read_batch(path: &Path, into: &mut Dataset) -> Result<(), DataError> {
    let bytes = read_file(path)?;
    parse_records(&bytes).map_err(|message| DataError::Format {
        path: path.to_path_buf(),
        message,
    })?;
    let labels: Vec<u8> = bytes.chunks_exact(RECORD).map(|r| r[0]).collect();
    check_labels(path, &labels, 10)?;
    for record in bytes.chunks_exact(RECORD) {
        into.images
            .extend(record[1..].iter().map(|&p| p as f32 / 255.0));
    }
    into.labels.extend(labels);
    Ok(())
}

/// Checks the size of a batch file's bytes.
pub fn parse_records(bytes: &[u8]) -> Result<usize, String> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(format!(
            "not a CIFAR-10 binary batch: {} bytes is not a positive multiple of the \
             {RECORD}-byte record (1 label + 3072 pixels)",
            bytes.len()
        ));
    }
    Ok(bytes.len() / RECORD)
}
