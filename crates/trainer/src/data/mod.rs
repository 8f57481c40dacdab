//! Data sets in their official formats, loaded into host memory.
//!
//! - [`mnist`]: the IDX files (`train-images-idx3-ubyte` ...), gzip or raw.
//! - [`cifar`]: the CIFAR-10 binary batches (`data_batch_*.bin`, `test_batch.bin`).
//! - [`image_folder`]: ImageNet-style folders of JPEG and PNG images, one folder per class.
//!
//! Every failure is a [`DataError`] naming the file and what was expected.

pub mod cifar;
pub mod image_folder;
pub mod mnist;

use image_folder::Augment;
use std::sync::Arc;

use crate::config::{DataSection, DatasetKind, Normalize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A labelled image set, flattened: example `i` is `images[i*dim .. (i+1)*dim]`, channel-major
/// (`[channels, height, width]`), scaled as the config says.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Pixels, `[len, dim]` row-major.
    pub images: Vec<f32>,
    /// Class of each example, `< classes`.
    pub labels: Vec<u8>,
    /// Values per example (`channels * height * width`).
    pub dim: usize,
    /// Colour channels (1 for MNIST, 3 for CIFAR-10).
    pub channels: usize,
    /// Number of classes.
    pub classes: usize,
    /// Training transform drawn anew each epoch (image folders); `None`: the stored
    /// examples as they are.
    pub augment: Option<Arc<Augment>>,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one example, `[channels, side, side]` (square images).
    pub fn shape(&self) -> [usize; 3] {
        let per = self.dim / self.channels.max(1);
        let side = (per as f64).sqrt().round() as usize;
        match side * side == per {
            true => [self.channels, side, side],
            false => [self.channels, 1, per],
        }
    }

    /// Keeps the first `n` examples (all if `n >= len`).
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.labels.truncate(n);
            self.images.truncate(n * self.dim);
        }
    }

    /// Gathers examples `indices` into a `[indices.len(), dim]` buffer and one-hot targets
    /// `[indices.len(), classes]`.
    pub fn gather(&self, indices: &[usize]) -> (Vec<f32>, Vec<f32>) {
        let mut x = Vec::with_capacity(indices.len() * self.dim);
        for &i in indices {
            x.extend_from_slice(&self.images[i * self.dim..(i + 1) * self.dim]);
        }
        (x, self.one_hot(indices))
    }

    /// One-hot targets of examples `indices`, `[indices.len(), classes]`.
    fn one_hot(&self, indices: &[usize]) -> Vec<f32> {
        let mut t = vec![0.0; indices.len() * self.classes];
        for (row, &i) in indices.iter().enumerate() {
            t[row * self.classes + self.labels[i] as usize] = 1.0;
        }
        t
    }

    /// Like [`Dataset::gather`], through the training transform when there is one (a
    /// random resized crop and flip per example, drawn from `rng`).
    pub fn gather_train(
        &self,
        indices: &[usize],
        rng: &mut impl rand::Rng,
    ) -> (Vec<f32>, Vec<f32>) {
        match &self.augment {
            None => self.gather(indices),
            Some(augment) => (augment.batch(indices, rng), self.one_hot(indices)),
        }
    }

    /// Per-channel mean and standard deviation over the whole set.
    pub fn channel_stats(&self) -> Vec<(f64, f64)> {
        let per = self.dim / self.channels;
        (0..self.channels)
            .map(|c| {
                let (mut s, mut s2, mut n) = (0.0f64, 0.0f64, 0.0f64);
                for img in self.images.chunks_exact(self.dim) {
                    for &v in &img[c * per..(c + 1) * per] {
                        s += v as f64;
                        s2 += (v as f64) * (v as f64);
                        n += 1.0;
                    }
                }
                let mean = s / n;
                (mean, (s2 / n - mean * mean).max(1e-12).sqrt())
            })
            .collect()
    }

    /// Applies `(x - mean_c) / std_c` per channel.
    pub fn standardize(&mut self, stats: &[(f64, f64)]) {
        let per = self.dim / self.channels;
        for img in self.images.chunks_exact_mut(self.dim) {
            for (c, &(mean, std)) in stats.iter().enumerate() {
                for v in &mut img[c * per..(c + 1) * per] {
                    *v = ((*v as f64 - mean) / std) as f32;
                }
            }
        }
    }
}

/// A training and a test set.
#[derive(Debug, Clone)]
pub struct Split {
    /// Training examples.
    pub train: Dataset,
    /// Held-out examples.
    pub test: Dataset,
}

/// Data that could not be loaded.
#[derive(Debug, Error)]
pub enum DataError {
    /// The data directory does not exist.
    #[error("data directory {0} does not exist (set data.dir to the folder holding the files)")]
    MissingDir(PathBuf),
    /// None of the accepted file names is present.
    #[error("no {what} in {dir}: expected one of {expected}")]
    MissingFile {
        /// What file.
        what: &'static str,
        /// The directory searched.
        dir: PathBuf,
        /// The names accepted.
        expected: String,
    },
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not in the expected format.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },
    /// A label outside `0..classes`.
    #[error("{path}: label {label} of record {index} is out of range (expected 0..={max})")]
    Label {
        /// The file.
        path: PathBuf,
        /// Record number, from 0.
        index: usize,
        /// The label found.
        label: u8,
        /// The largest valid label.
        max: usize,
    },
}

/// Reads a whole file, naming it on failure.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Checks that every label is `< classes`.
pub(crate) fn check_labels(path: &Path, labels: &[u8], classes: usize) -> Result<(), DataError> {
    match labels.iter().position(|&l| l as usize >= classes) {
        Some(index) => Err(DataError::Label {
            path: path.to_path_buf(),
            index,
            label: labels[index],
            max: classes - 1,
        }),
        None => Ok(()),
    }
}

/// Loads the data set the config names, applies the limits and the scaling.
pub fn load(section: &DataSection) -> Result<Split, DataError> {
    if !section.dir.is_dir() {
        return Err(DataError::MissingDir(section.dir.clone()));
    }
    let mut split = match section.dataset {
        DatasetKind::Mnist => mnist::load(&section.dir)?,
        DatasetKind::Cifar10 => cifar::load(&section.dir)?,
        DatasetKind::ImageFolder => image_folder::load(&section.dir, &section.image_folder)?,
    };
    if let Some(n) = section.train_limit {
        split.train.truncate(n);
    }
    if let Some(n) = section.test_limit {
        split.test.truncate(n);
    }
    if section.normalize == Normalize::Standardize {
        let stats = split.train.channel_stats();
        split.train.standardize(&stats);
        split.test.standardize(&stats);
    }
    Ok(split)
}
