//! Data sets as indexes whose examples are read on demand, and the loader that turns them into
//! batches on worker threads.
//!
//! - [`Source`]: what the loader needs of a data set: its length, labels, example shape, and
//!   one example read into a buffer (through the training transform when a generator is
//!   given).
//! - [`Dataset`]: small sets held in host memory ([`mnist`]: the IDX files, gzip or raw;
//!   [`cifar`]: the CIFAR-10 binary batches).
//! - [`image_folder`]: ImageNet-style folders scanned into `(path, class)` pairs; each photo
//!   is decoded, cropped and normalized when a batch needs it.
//! - [`root`], [`catalog`], [`download`]: the data root, the standard sets (MNIST,
//!   Fashion-MNIST, CIFAR-10) with their official locations and SHA-256 values, and the
//!   resumable, verified download that puts them there.
//! - [`loader`]: worker threads, a bounded prefetch queue, batches in a fixed order whose
//!   content depends only on `(seed, epoch, batch index)`.
//!
//! Why not burn-dataset: its `Dataset::get` returns `Option<I>` (a file that does not decode
//! can only be a silent gap or a panic, where this crate names the file or skips it as the
//! config says), it has no per-example random transform tied to a seed, its
//! `ImageFolderDataset` panics on a bad file, and its multi-worker `DataLoader` shuffles per
//! worker, so a batch's content depends on the number of workers.
//!
//! Every failure is a [`DataError`] naming the file and what was expected.

pub mod catalog;
pub mod cifar;
pub mod download;
pub mod image_folder;
pub mod loader;
pub mod mnist;
pub mod root;
pub mod section;

use biofeedback_core::init::Rng;
use rand::RngExt;
use std::sync::Arc;

use section::{DataSection, DatasetKind, Normalize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What reading one example gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The example was written to the buffer.
    Read,
    /// The example could not be read and the config says to skip it: why, naming the file.
    Skipped(String),
}

/// A labelled data set whose examples are read on demand, from any thread.
///
/// Examples are `[channels, height, width]` images flattened channel-major into `dim()`
/// floats, already scaled and normalized.
pub trait Source: Send + Sync + std::fmt::Debug {
    /// Number of examples.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of classes; labels are `< classes()`.
    fn classes(&self) -> usize;
    /// The shape of one example, `[channels, height, width]`.
    fn shape(&self) -> [usize; 3];
    /// Values per example.
    fn dim(&self) -> usize {
        self.shape().iter().product()
    }
    /// The class of example `index`.
    fn label(&self, index: usize) -> usize;
    /// The class names in label order: an image folder's folder names, `0`, `1`, ... for a
    /// set without names.
    fn class_names(&self) -> Vec<String> {
        (0..self.classes()).map(|c| c.to_string()).collect()
    }
    /// Appends example `index` (`dim()` values) to `out`: through the training transform
    /// (random crop and flip drawn from `augment`) when a generator is given, else through
    /// the evaluation transform. On [`Item::Skipped`] nothing is appended.
    fn read(
        &self,
        index: usize,
        augment: Option<&mut Rng>,
        out: &mut Vec<f32>,
    ) -> Result<Item, DataError>;
}

/// The training and the held-out sets of a run, as the trainer reads them.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Training examples.
    pub train: Arc<dyn Source>,
    /// Held-out examples.
    pub test: Arc<dyn Source>,
}

impl From<Split> for Sources {
    fn from(split: Split) -> Self {
        Self {
            train: Arc::new(split.train),
            test: Arc::new(split.test),
        }
    }
}

/// Up to `n` examples of `source` drawn evenly across its classes: the first example of every
/// class, then the second of every class, and so on (each class's examples in index order),
/// so a class-sorted set gives every class its share (SPEC section 4).
pub fn across_classes(source: &dyn Source, n: usize) -> Vec<usize> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); source.classes()];
    for i in 0..source.len() {
        by_class[source.label(i)].push(i);
    }
    let mut chosen = Vec::with_capacity(n.min(source.len()));
    let mut rank = 0;
    while chosen.len() < n.min(source.len()) {
        for class in &by_class {
            if let Some(&i) = class.get(rank)
                && chosen.len() < n
            {
                chosen.push(i);
            }
        }
        rank += 1;
    }
    chosen
}

/// A labelled image set, flattened: example `i` is `images[i*dim .. (i+1)*dim]`, channel-major
/// (`[channels, height, width]`), scaled as the config says.
#[derive(Debug, Clone, Default)]
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
    /// The training transform: random crop of the image zero-padded by this many pixels on
    /// each side (0: none; CIFAR's usual augmentation is 4).
    pub crop_pad: usize,
    /// The training transform: horizontal flip with probability 1/2.
    pub flip: bool,
    /// The value of a padding pixel per channel (black: 0, or where the data were
    /// standardized, `-mean / std`).
    pub pad_value: Vec<f32>,
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
    pub fn one_hot(&self, indices: &[usize]) -> Vec<f32> {
        let mut t = vec![0.0; indices.len() * self.classes];
        for (row, &i) in indices.iter().enumerate() {
            t[row * self.classes + self.labels[i] as usize] = 1.0;
        }
        t
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
        self.pad_value = stats
            .iter()
            .map(|&(mean, std)| (-mean / std) as f32)
            .collect();
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
    /// The data directory does not exist, or is not a directory.
    #[error("data.dir {}: {}", .0.display(), missing_dir_reason(.0))]
    MissingDir(PathBuf),
    /// A standard data set is not in its folder.
    #[error(
        "the {name} data set is not in {}: fetch it with `{command}` (or add --download to a \
         train command), or point at a copy with --data-root DIR or --set data.dir=DIR",
        .folder.display()
    )]
    NotFetched {
        /// The set's name.
        name: &'static str,
        /// The folder looked in.
        folder: PathBuf,
        /// The command that fetches it there.
        command: String,
    },
    /// No data root can be found (no home directory).
    #[error(
        "no data root: there is no cache directory (HOME unset?); give --data-root DIR or set \
         BIOFEEDBACK_DATA"
    )]
    NoRoot,
    /// An image folder names no folder.
    #[error("data.dir is not set: an image folder has no standard location, set data.dir")]
    NoDir,
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
    /// The loader's threads could not be started: which, and what to change.
    #[error("{0}")]
    Threads(String),
    /// A loader worker stopped unexpectedly (a bug): what it said.
    #[error("a data loader worker failed: {0}")]
    Worker(String),
    /// Too much of a split could not be read (with `on_bad_image = "skip"`): nothing, or more
    /// than `data.image_folder.max_skipped` of it.
    #[error(
        "{skipped} of the {total} {split} examples could not be read ({}); the first: {first}",
        unreadable_bound(.skipped, .total, *.max)
    )]
    Unreadable {
        /// Which split, for the message.
        split: &'static str,
        /// Examples skipped.
        skipped: usize,
        /// Examples of the pass.
        total: usize,
        /// The bound, a fraction.
        max: f64,
        /// The first skipped file and why.
        first: String,
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

/// What [`DataError::Unreadable`] says of the bound it crossed.
fn unreadable_bound(skipped: &usize, total: &usize, max: f64) -> String {
    match skipped == total {
        true => "none could: there is nothing to train on or to evaluate".into(),
        false => format!(
            "more than data.image_folder.max_skipped = {max} of them; raise it to go on without \
             them"
        ),
    }
}

/// Why `dir` cannot be the data folder, for [`DataError::MissingDir`].
fn missing_dir_reason(dir: &Path) -> &'static str {
    match dir.exists() {
        true => "is a file, expected the folder holding the data set's files (set data.dir)",
        false => "does not exist (set data.dir to the folder holding the files)",
    }
}

/// The folder `section` reads, checked to exist: `data.dir`, else the standard set's folder
/// under the data root of the environment ([`root::DataRoot::resolve`] without a flag; the
/// binary resolves `--data-root` into `data.dir` first). A standard set whose folder holds
/// none of its files is [`DataError::NotFetched`], with the command that fetches it.
pub fn folder(section: &DataSection) -> Result<PathBuf, DataError> {
    let standard = catalog::Standard::of(section.dataset);
    let dir = chosen_dir(section, None)?;
    match standard {
        Some(set) if set.absent_from(&dir) => Err(DataError::NotFetched {
            name: set.name,
            command: fetch_command(&set, &dir),
            folder: dir,
        }),
        _ if !dir.is_dir() => Err(DataError::MissingDir(dir)),
        _ => Ok(dir),
    }
}

/// The command that fetches `set` into `dir`: `biofeedback data download NAME`, with
/// `--data-root` when `dir` is not the set's folder under the default root.
pub fn fetch_command(set: &catalog::Standard, dir: &Path) -> String {
    let default = root::DataRoot::resolve(None)
        .ok()
        .map(|r| r.folder(set.name));
    match (default, dir.parent()) {
        (Some(d), _) if d == dir => set.download_command(),
        (_, Some(parent)) if dir.file_name().is_some_and(|n| n == set.name) => format!(
            "{} --data-root {}",
            set.download_command(),
            parent.display()
        ),
        _ => format!("{} --dir {}", set.download_command(), dir.display()),
    }
}

/// Sets `data.dir` for a run: a relative folder becomes absolute (against the working
/// directory), an unset one of a standard set becomes its folder under `root`. The recorded
/// config then names the folder the run read, whatever directory `eval` runs from.
pub fn resolve_dir(section: &mut DataSection, root: &root::DataRoot) -> Result<(), DataError> {
    let dir = chosen_dir(section, Some(root))?;
    section.dir = Some(root::absolute(&dir)?);
    Ok(())
}

/// `data.dir`, else the standard set's folder under `root` (or, without one, under the data
/// root of the environment); an image folder without `data.dir` is [`DataError::NoDir`].
fn chosen_dir(section: &DataSection, root: Option<&root::DataRoot>) -> Result<PathBuf, DataError> {
    match (&section.dir, catalog::Standard::of(section.dataset)) {
        (Some(dir), _) => Ok(dir.clone()),
        (None, Some(set)) => Ok(match root {
            Some(root) => root.folder(set.name),
            None => root::DataRoot::resolve(None)?.folder(set.name),
        }),
        (None, None) => Err(DataError::NoDir),
    }
}

/// Reads a whole file, naming it on failure.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    crate::files::read(path, crate::files::DATA_FILE_BYTES).map_err(|source| DataError::Io {
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

/// Loads an in-memory data set (MNIST or CIFAR-10) as the config names it, with the limits
/// and the scaling applied. Image folders stream instead: see [`open`].
pub fn load(section: &DataSection) -> Result<Split, DataError> {
    let dir = folder(section)?;
    let mut split = match section.dataset {
        DatasetKind::Mnist | DatasetKind::FashionMnist => mnist::load(&dir)?,
        DatasetKind::Cifar10 => cifar::load(&dir)?,
        DatasetKind::ImageFolder => {
            return Err(DataError::Format {
                path: dir,
                message: "an image folder is read on demand (data::open), not into memory".into(),
            });
        }
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
    split.train.crop_pad = section.random_crop_pad;
    split.train.flip = section.random_flip;
    Ok(split)
}

/// Which splits a command reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Splits {
    /// Training and held-out (training).
    Both,
    /// Only the held-out split (`eval`): an image folder's training split is not scanned and
    /// need not exist. [`Sources::train`] is then the held-out set too.
    Eval,
}

/// Opens the data set the config names: small sets are loaded into memory ([`load`]), image
/// folders are scanned into indexes. Applies `train_limit`, `test_limit` and `eval_limit`.
pub fn open(section: &DataSection, splits: Splits) -> Result<Sources, DataError> {
    let mut sources = match section.dataset {
        DatasetKind::ImageFolder => {
            let folder = image_folder::open(&folder(section)?, &section.image_folder, splits)?;
            let mut test = folder.eval;
            if let Some(n) = section.test_limit {
                test.truncate(n);
            }
            let test: Arc<dyn Source> = Arc::new(test);
            let train: Arc<dyn Source> = match folder.train {
                Some(mut train) => {
                    if let Some(n) = section.train_limit {
                        train.truncate(n);
                    }
                    Arc::new(train)
                }
                None => test.clone(),
            };
            Sources { train, test }
        }
        _ => load(section)?.into(),
    };
    if let Some(n) = section.eval_limit {
        let chosen = across_classes(sources.test.as_ref(), n);
        sources.test = Arc::new(Subset {
            source: sources.test,
            indices: chosen,
        });
    }
    Ok(sources)
}

/// The examples `indices` of another source, in that order.
#[derive(Debug)]
pub struct Subset {
    /// The whole set.
    pub source: Arc<dyn Source>,
    /// The examples kept.
    pub indices: Vec<usize>,
}

impl Source for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn classes(&self) -> usize {
        self.source.classes()
    }
    fn shape(&self) -> [usize; 3] {
        self.source.shape()
    }
    fn label(&self, index: usize) -> usize {
        self.source.label(self.indices[index])
    }
    fn class_names(&self) -> Vec<String> {
        self.source.class_names()
    }
    fn read(
        &self,
        index: usize,
        augment: Option<&mut Rng>,
        out: &mut Vec<f32>,
    ) -> Result<Item, DataError> {
        self.source.read(self.indices[index], augment, out)
    }
}

impl Source for Dataset {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn shape(&self) -> [usize; 3] {
        Dataset::shape(self)
    }
    fn label(&self, index: usize) -> usize {
        self.labels[index] as usize
    }
    /// The stored example, or with a generator and `crop_pad` / `flip` set, a random crop of
    /// it zero-padded by `crop_pad` pixels and flipped horizontally with probability 1/2
    /// (torchvision's `RandomCrop(size, padding)` + `RandomHorizontalFlip()`).
    fn read(
        &self,
        index: usize,
        augment: Option<&mut Rng>,
        out: &mut Vec<f32>,
    ) -> Result<Item, DataError> {
        let image = &self.images[index * self.dim..(index + 1) * self.dim];
        let rng = match augment {
            Some(rng) if self.crop_pad > 0 || self.flip => rng,
            _ => {
                out.extend_from_slice(image);
                return Ok(Item::Read);
            }
        };
        let [c, h, w] = Dataset::shape(self);
        let p = self.crop_pad;
        let (dy, dx) = (rng.random_range(0..=2 * p), rng.random_range(0..=2 * p));
        let flip = self.flip && rng.random_bool(0.5);
        // Output pixel x of a row reads source pixel x + shift (x' = w - 1 - x when flipped),
        // inside the image for x in lo..hi: a row is pads, one copied run, pads.
        let shift = dx as isize - p as isize;
        let lo = (-shift).clamp(0, w as isize) as usize;
        let hi = (w as isize - shift).clamp(lo as isize, w as isize) as usize;
        out.reserve(c * h * w);
        for ch in 0..c {
            let pad = self.pad_value.get(ch).copied().unwrap_or(0.0);
            let plane = &image[ch * h * w..(ch + 1) * h * w];
            for y in 0..h {
                let start = out.len();
                match (y + dy).checked_sub(p).filter(|&v| v < h) {
                    Some(sy) => {
                        let row = &plane[sy * w..(sy + 1) * w];
                        out.resize(start + lo, pad);
                        if hi > lo {
                            let first = (lo as isize + shift) as usize;
                            out.extend_from_slice(&row[first..first + (hi - lo)]);
                        }
                        out.resize(start + w, pad);
                    }
                    None => out.resize(start + w, pad),
                }
                if flip {
                    out[start..].reverse();
                }
            }
        }
        Ok(Item::Read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn across_classes_takes_every_class_of_a_class_sorted_set() {
        let set = Dataset {
            images: vec![0.0; 12],
            labels: vec![0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2],
            dim: 1,
            channels: 1,
            classes: 3,
            ..Dataset::default()
        };
        assert_eq!(across_classes(&set, 5), [0, 4, 6, 1, 5]);
        assert_eq!(across_classes(&set, 100).len(), 12);
        let mut firsts = across_classes(&set, 3);
        firsts.sort();
        assert_eq!(firsts, [0, 4, 6]);
    }

    /// The crop of `set`'s image 0 at shift `(dy, dx)`, pixel by pixel.
    fn crop_pixelwise(set: &Dataset, dy: usize, dx: usize, flip: bool) -> Vec<f32> {
        let [c, h, w] = set.shape();
        let p = set.crop_pad;
        let mut img = Vec::new();
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let x = if flip { w - 1 - x } else { x };
                    let sy = (y + dy).checked_sub(p).filter(|&v| v < h);
                    let sx = (x + dx).checked_sub(p).filter(|&v| v < w);
                    img.push(match (sy, sx) {
                        (Some(sy), Some(sx)) => set.images[(ch * h + sy) * w + sx],
                        _ => set.pad_value[ch],
                    });
                }
            }
        }
        img
    }

    /// Every crop `set`'s image 0 can give: each shift, flipped and not.
    fn every_crop(set: &Dataset) -> Vec<Vec<f32>> {
        let p = set.crop_pad;
        let mut all = Vec::new();
        for flip in [false, true] {
            for dy in 0..=2 * p {
                for dx in 0..=2 * p {
                    all.push(crop_pixelwise(set, dy, dx, flip));
                }
            }
        }
        all
    }

    #[test]
    fn row_wise_crops_are_the_pixelwise_crops_at_every_padding() {
        // Two 4x4 channels; paddings below, at and beyond the image's width.
        for pad in [1, 2, 4, 6] {
            let set = Dataset {
                images: (0..32).map(|v| v as f32).collect(),
                labels: vec![0],
                dim: 32,
                channels: 2,
                classes: 1,
                crop_pad: pad,
                flip: true,
                pad_value: vec![-1.0, -2.0],
            };
            let possible = every_crop(&set);
            let mut seen = Vec::new();
            for seed in 0..400 {
                let mut out = vec![7.0];
                let mut rng = biofeedback_core::init::seeded_rng(seed);
                set.read(0, Some(&mut rng), &mut out).unwrap();
                assert_eq!(out[0], 7.0, "pad {pad}: what was in `out` stays");
                let out = out[1..].to_vec();
                assert!(possible.contains(&out), "pad {pad}: {out:?}");
                if !seen.contains(&out) {
                    seen.push(out);
                }
            }
            assert!(seen.len() >= 10, "pad {pad}: {} distinct crops", seen.len());
        }
    }

    #[test]
    fn random_crop_with_padding_and_flip_draws_shifted_and_mirrored_images() {
        // One 3x3 gray image 1..9; padding 1 (value -1) and flips.
        let set = Dataset {
            images: (1..=9).map(|v| v as f32).collect(),
            labels: vec![0],
            dim: 9,
            channels: 1,
            classes: 1,
            crop_pad: 1,
            flip: true,
            pad_value: vec![-1.0],
        };
        // Every possible output: shifts (dy, dx) in 0..=2 and a flip.
        let possible = every_crop(&set);
        let mut seen = Vec::new();
        for seed in 0..300 {
            let mut out = Vec::new();
            let mut rng = biofeedback_core::init::seeded_rng(seed);
            set.read(0, Some(&mut rng), &mut out).unwrap();
            assert!(possible.contains(&out), "{out:?}");
            if !seen.contains(&out) {
                seen.push(out);
            }
        }
        assert!(seen.len() >= 12, "{} distinct crops", seen.len());
        let mut plain = Vec::new();
        set.read(0, None, &mut plain).unwrap();
        assert_eq!(plain, set.images, "evaluation reads the image as it is");
    }
}
