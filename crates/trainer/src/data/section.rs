//! `[data]` of an experiment file: which data set, where, and how it is read. Defined here,
//! beside the loaders that read it, and re-exported by [`crate::config`].

use super::image_folder::ImageFolderSection;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The data sets the trainer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// MNIST in IDX format (gzip or raw): `train-images-idx3-ubyte[.gz]` and the rest.
    Mnist,
    /// Fashion-MNIST: MNIST's files and format, ten kinds of clothing.
    #[serde(rename = "fashion_mnist", alias = "fashion-mnist")]
    FashionMnist,
    /// CIFAR-10 binary batches: `data_batch_*.bin` and `test_batch.bin`.
    Cifar10,
    /// Image folders (`train/<class>/*.jpg`, `val/<class>/*.jpg`), read as
    /// `[data.image_folder]` says.
    #[serde(rename = "image_folder")]
    ImageFolder,
}

/// How pixels are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// `x / 255`, in `[0, 1]`.
    Unit,
    /// `x / 255`, then per channel minus the training mean, divided by the training std.
    Standardize,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// `mnist`, `fashion_mnist`, `cifar10` or `image_folder`. Default `mnist`.
    pub dataset: DatasetKind,
    /// Folder holding the files in their official format; relative paths are relative to the
    /// working directory (a run records it made absolute). Default: the standard set's folder
    /// under the data root (`--data-root`, else `BIOFEEDBACK_DATA`, else the cache directory),
    /// e.g. `~/.cache/biofeedback/mnist`; an image folder must set it.
    pub dir: Option<PathBuf>,
    /// Reshuffle the training set every epoch (seeded). Default true.
    pub shuffle: bool,
    /// Use only the first N training examples. Default: all.
    pub train_limit: Option<usize>,
    /// Use only the first N test examples. Default: all.
    pub test_limit: Option<usize>,
    /// Evaluate on N held-out examples drawn evenly across the classes (a quick look at a big
    /// set; unlike `test_limit`, a class-sorted folder keeps every class). Default: all.
    pub eval_limit: Option<usize>,
    /// Loader threads that read, decode, crop and normalize batches (0: on the training
    /// thread). Default 2.
    pub workers: usize,
    /// Batches the loader prepares ahead of the training step. Memory holds about
    /// `prefetch + 1` batches, whatever the size of the data set. Default 4.
    pub prefetch: usize,
    /// Pixel scaling, `unit` or `standardize`. Default `unit`. (Image folders normalize with
    /// `data.image_folder.mean` and `std` instead.)
    pub normalize: Normalize,
    /// MNIST and CIFAR-10 training transform: a random crop of the image zero-padded by this
    /// many pixels (CIFAR's usual augmentation: 4; 0: none). Default 0. (Image folders:
    /// `data.image_folder.augment`.)
    pub random_crop_pad: usize,
    /// MNIST and CIFAR-10 training transform: horizontal flip with probability 1/2 (CIFAR's
    /// usual augmentation; not for digits). Default false.
    pub random_flip: bool,
    /// How an image folder is read (`dataset = "image_folder"`).
    pub image_folder: ImageFolderSection,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::Mnist,
            dir: None,
            shuffle: true,
            train_limit: None,
            test_limit: None,
            eval_limit: None,
            workers: 2,
            prefetch: 4,
            normalize: Normalize::Unit,
            random_crop_pad: 0,
            random_flip: false,
            image_folder: ImageFolderSection::default(),
        }
    }
}
