//! ImageNet-style image folders: `<dir>/<split>/<class>/*.{jpg,jpeg,png}`.
//!
//! ```text
//! <dir>/train/<class>/*.jpg   training images, one folder per class (sorted names = labels)
//! <dir>/val/<class>/*.jpg     held-out images (`test/` is accepted when there is no `val/`)
//! <dir>/<class>/*.jpg         no split folders: every `holdout_every`-th image of each class
//!                             is held out
//! ```
//!
//! Images are decoded on `workers` threads (JPEG and PNG; grayscale, CMYK and alpha become
//! RGB), resized so the shorter side is `resize`, and kept in memory as bytes. Evaluation
//! crops the centre `image_size` square; training, when `augment` is on, takes torchvision's
//! random resized crop (area 8-100%, aspect 3/4-4/3, 10 tries, then the centre) and a
//! horizontal flip with probability 1/2, drawn from the epoch's seeded generator. Pixels are
//! scaled to [0, 1] and normalized per channel with `mean` and `std`.

use super::{DataError, Dataset};
use image::imageops::{self, FilterType};
use image::{ImageReader, RgbImage};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::{info, warn};

/// `[data.image_folder]`: how an image folder is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageFolderSection {
    /// Training split folder under `data.dir`. Default `train`.
    pub train_split: String,
    /// Held-out split folder (`test` is used when this one is absent). Default `val`.
    pub eval_split: String,
    /// Without split folders: hold out every N-th image of each class. Default 5.
    pub holdout_every: usize,
    /// Class folders to use, by name. Default: all (or the first `first_classes`).
    pub classes: Vec<String>,
    /// Use the first N class folders in sorted order. Default: all.
    pub first_classes: Option<usize>,
    /// At most this many images per class and split. Default: all.
    pub per_class_limit: Option<usize>,
    /// Side of the square the network sees. Default 224.
    pub image_size: usize,
    /// Shorter side after loading (eval crops the centre `image_size` of it). Default 256.
    pub resize: usize,
    /// Random resized crop and horizontal flip for training. Default true.
    pub augment: bool,
    /// Smallest crop area of the random resized crop, as a fraction of the image. Default
    /// 0.08 (torchvision's; about 0.35 suits 32x32 images).
    pub min_scale: f64,
    /// Per-channel mean of the [0, 1] pixels. Default ImageNet's.
    pub mean: [f64; 3],
    /// Per-channel standard deviation. Default ImageNet's.
    pub std: [f64; 3],
    /// An image that does not decode: `skip` it (counted and logged) or `fail`. Default `fail`.
    pub on_bad_image: OnBadImage,
    /// Decoding threads. Default 2.
    pub workers: usize,
}

impl Default for ImageFolderSection {
    fn default() -> Self {
        Self {
            train_split: "train".into(),
            eval_split: "val".into(),
            holdout_every: 5,
            classes: Vec::new(),
            first_classes: None,
            per_class_limit: None,
            image_size: 224,
            resize: 256,
            augment: true,
            min_scale: 0.08,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            on_bad_image: OnBadImage::Fail,
            workers: 2,
        }
    }
}

/// What to do with an image that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBadImage {
    /// Leave it out, log its path and count it.
    Skip,
    /// Stop with an error naming the file.
    Fail,
}

/// Decoded images of one split, shorter side `resize`.
#[derive(Debug)]
pub struct ImageSet {
    /// The images, RGB.
    pub images: Vec<RgbImage>,
    /// Class of each image.
    pub labels: Vec<u8>,
    /// Files that did not decode and were skipped.
    pub skipped: Vec<PathBuf>,
}

/// The training transform: the decoded images, drawn anew every epoch.
#[derive(Debug)]
pub struct Augment {
    /// The training images.
    pub images: Vec<RgbImage>,
    /// Output side.
    pub size: usize,
    /// Smallest crop area, as a fraction of the image.
    pub min_scale: f64,
    /// Normalization.
    pub mean: [f64; 3],
    /// Normalization.
    pub std: [f64; 3],
}

fn folder_error(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Sub-folders of `dir`, sorted by name.
fn subfolders(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut folders = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            folders.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    folders.sort();
    Ok(folders)
}

/// JPEG and PNG files of `dir`, sorted.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png")
                })
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The class folders to use under `split_dir`, in label order.
fn select_classes(
    split_dir: &Path,
    section: &ImageFolderSection,
) -> Result<Vec<(String, PathBuf)>, DataError> {
    let all = subfolders(split_dir)?;
    if all.is_empty() {
        return Err(folder_error(
            split_dir,
            "no class folders (expected <class>/*.jpg)",
        ));
    }
    let mut chosen = if section.classes.is_empty() {
        all.clone()
    } else {
        let mut chosen = Vec::new();
        for name in &section.classes {
            match all.iter().find(|(n, _)| n == name) {
                Some(found) => chosen.push(found.clone()),
                None => {
                    let names: Vec<&str> = all.iter().take(20).map(|(n, _)| n.as_str()).collect();
                    return Err(folder_error(
                        split_dir,
                        format!(
                            "class `{name}` of data.image_folder.classes does not exist; the \
                             class folders are {}{}",
                            names.join(", "),
                            if all.len() > 20 { ", ..." } else { "" }
                        ),
                    ));
                }
            }
        }
        chosen
    };
    if let Some(n) = section.first_classes {
        chosen.truncate(n);
    }
    if chosen.len() > 256 {
        return Err(folder_error(
            split_dir,
            format!(
                "{} classes; at most 256 are supported (labels are bytes)",
                chosen.len()
            ),
        ));
    }
    Ok(chosen)
}

/// Decodes `path` to RGB with its shorter side resized to `side`.
fn decode(path: &Path, side: usize) -> Result<RgbImage, String> {
    let image = ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| e.to_string())?;
    let rgb = image.to_rgb8();
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 {
        return Err("the image is empty".into());
    }
    let scale = side as f64 / w.min(h) as f64;
    let (nw, nh) = (
        ((w as f64 * scale).round() as u32).max(1),
        ((h as f64 * scale).round() as u32).max(1),
    );
    Ok(imageops::resize(&rgb, nw, nh, FilterType::Triangle))
}

/// Decodes `files` (with their labels) on `workers` threads, in order.
fn decode_all(
    files: Vec<(PathBuf, u8)>,
    section: &ImageFolderSection,
) -> Result<ImageSet, DataError> {
    let workers = section.workers.max(1);
    let chunk = files.len().div_ceil(workers).max(1);
    let decoded: Vec<Vec<Result<RgbImage, String>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(path, _)| decode(path, section.resize))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a decoding thread does not panic"))
            .collect()
    });
    let mut set = ImageSet {
        images: Vec::with_capacity(files.len()),
        labels: Vec::with_capacity(files.len()),
        skipped: Vec::new(),
    };
    for ((path, label), result) in files.into_iter().zip(decoded.into_iter().flatten()) {
        match (result, section.on_bad_image) {
            (Ok(image), _) => {
                set.images.push(image);
                set.labels.push(label);
            }
            (Err(e), OnBadImage::Skip) => {
                warn!("skipping {}: {e}", path.display());
                set.skipped.push(path);
            }
            (Err(e), OnBadImage::Fail) => {
                return Err(folder_error(
                    &path,
                    format!(
                        "cannot decode the image ({e}); fix or remove it, or set \
                         data.image_folder.on_bad_image = \"skip\""
                    ),
                ));
            }
        }
    }
    Ok(set)
}

/// The files of the chosen classes of one split folder.
fn split_files(
    classes: &[(String, PathBuf)],
    section: &ImageFolderSection,
    keep: impl Fn(usize) -> bool,
) -> Result<Vec<(PathBuf, u8)>, DataError> {
    let mut files = Vec::new();
    for (label, (_, dir)) in classes.iter().enumerate() {
        let all = image_files(dir)?;
        if all.is_empty() {
            return Err(folder_error(
                dir,
                "empty class folder: no .jpg, .jpeg or .png images",
            ));
        }
        let mine: Vec<PathBuf> = all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(_, p)| p)
            .take(section.per_class_limit.unwrap_or(usize::MAX))
            .collect();
        files.extend(mine.into_iter().map(|p| (p, label as u8)));
    }
    Ok(files)
}

/// Loads the training and held-out images of `dir`; returns them with the class names.
pub fn load_sets(
    dir: &Path,
    section: &ImageFolderSection,
) -> Result<(ImageSet, ImageSet, Vec<String>), DataError> {
    let train_dir = dir.join(&section.train_split);
    let (train_files, eval_files, names) = if train_dir.is_dir() {
        let eval_dir = [section.eval_split.as_str(), "test", "val"]
            .iter()
            .map(|s| dir.join(s))
            .find(|p| p.is_dir())
            .ok_or_else(|| {
                folder_error(
                    dir,
                    format!(
                        "no held-out split: expected a folder `{}` (or `test`) beside `{}`",
                        section.eval_split, section.train_split
                    ),
                )
            })?;
        let classes = select_classes(&train_dir, section)?;
        let eval_classes: Vec<(String, PathBuf)> = classes
            .iter()
            .map(|(name, _)| {
                let p = eval_dir.join(name);
                match p.is_dir() {
                    true => Ok((name.clone(), p)),
                    false => Err(folder_error(
                        &p,
                        format!("class `{name}` of the training split has no held-out folder"),
                    )),
                }
            })
            .collect::<Result<_, _>>()?;
        (
            split_files(&classes, section, |_| true)?,
            split_files(&eval_classes, section, |_| true)?,
            classes.into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        )
    } else {
        // No split folders: the class folders are directly under `dir`.
        let classes = select_classes(dir, section)?;
        let every = section.holdout_every.max(2);
        (
            split_files(&classes, section, |i| i % every != every - 1)?,
            split_files(&classes, section, |i| i % every == every - 1)?,
            classes.into_iter().map(|(n, _)| n).collect(),
        )
    };
    let train = decode_all(train_files, section)?;
    let eval = decode_all(eval_files, section)?;
    let skipped = train.skipped.len() + eval.skipped.len();
    info!(
        "{}: {} classes, {} training and {} held-out images{}",
        dir.display(),
        names.len(),
        train.images.len(),
        eval.images.len(),
        match skipped {
            0 => String::new(),
            n => format!(", {n} skipped (did not decode)"),
        }
    );
    Ok((train, eval, names))
}

/// Writes `image` (cropped to `size` x `size`) as normalized channel-major floats.
fn push_normalized(out: &mut Vec<f32>, image: &RgbImage, mean: &[f64; 3], std: &[f64; 3]) {
    for c in 0..3 {
        let (m, s) = (mean[c], std[c]);
        out.extend(
            image
                .pixels()
                .map(|p| ((p.0[c] as f64 / 255.0 - m) / s) as f32),
        );
    }
}

/// The centre `size` square of `image` (resized up if the image is smaller).
fn center_crop(image: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    if w < size || h < size {
        return imageops::resize(image, size, size, FilterType::Triangle);
    }
    imageops::crop_imm(image, (w - size) / 2, (h - size) / 2, size, size).to_image()
}

/// torchvision's `RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3))` and a flip.
fn random_resized_crop(
    image: &RgbImage,
    size: u32,
    min_scale: f64,
    rng: &mut impl Rng,
) -> RgbImage {
    let (w, h) = image.dimensions();
    let area = (w * h) as f64;
    let (lo, hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    let mut crop = None;
    for _ in 0..10 {
        let target = area * rng.random_range(min_scale..=1.0);
        let ratio = rng.random_range(lo..=hi).exp();
        let cw = (target * ratio).sqrt().round() as u32;
        let ch = (target / ratio).sqrt().round() as u32;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            let x = rng.random_range(0..=w - cw);
            let y = rng.random_range(0..=h - ch);
            crop = Some((x, y, cw, ch));
            break;
        }
    }
    let (x, y, cw, ch) = crop.unwrap_or_else(|| {
        let s = w.min(h);
        ((w - s) / 2, (h - s) / 2, s, s)
    });
    let cut = imageops::crop_imm(image, x, y, cw, ch).to_image();
    let mut out = imageops::resize(&cut, size, size, FilterType::Triangle);
    if rng.random_bool(0.5) {
        imageops::flip_horizontal_in_place(&mut out);
    }
    out
}

impl Augment {
    /// The training batch of examples `indices`, freshly cropped and flipped:
    /// `[indices.len(), 3 size size]`.
    pub fn batch(&self, indices: &[usize], rng: &mut impl Rng) -> Vec<f32> {
        let mut x = Vec::with_capacity(indices.len() * 3 * self.size * self.size);
        for &i in indices {
            let image = random_resized_crop(&self.images[i], self.size as u32, self.min_scale, rng);
            push_normalized(&mut x, &image, &self.mean, &self.std);
        }
        x
    }
}

/// An in-memory [`Dataset`] of `set`, centre-cropped and normalized.
fn to_dataset(set: &ImageSet, classes: usize, section: &ImageFolderSection) -> Dataset {
    let size = section.image_size as u32;
    let mut images = Vec::with_capacity(set.images.len() * 3 * (size * size) as usize);
    for image in &set.images {
        push_normalized(
            &mut images,
            &center_crop(image, size),
            &section.mean,
            &section.std,
        );
    }
    Dataset {
        images,
        labels: set.labels.clone(),
        dim: 3 * (size * size) as usize,
        channels: 3,
        classes,
        augment: None,
    }
}

/// Loads an image folder as a training and a test [`Dataset`]; the training set carries its
/// [`Augment`] when `augment` is on.
pub fn load(dir: &Path, section: &ImageFolderSection) -> Result<super::Split, DataError> {
    if section.image_size == 0 || section.resize < section.image_size {
        return Err(folder_error(
            dir,
            format!(
                "data.image_folder: image_size {} and resize {} (expected 0 < image_size <= resize)",
                section.image_size, section.resize
            ),
        ));
    }
    let (train, eval, names) = load_sets(dir, section)?;
    let classes = names.len();
    let mut train_set = to_dataset(&train, classes, section);
    if section.augment {
        train_set.augment = Some(Arc::new(Augment {
            images: train.images,
            size: section.image_size,
            min_scale: section.min_scale,
            mean: section.mean,
            std: section.std,
        }));
    }
    Ok(super::Split {
        train: train_set,
        test: to_dataset(&eval, classes, section),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb};

    fn shared(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data")
            .join(name)
    }

    fn small(size: usize) -> ImageFolderSection {
        ImageFolderSection {
            image_size: size,
            resize: size,
            ..Default::default()
        }
    }

    fn write_png(path: &Path, value: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // A gradient, so that different crops and flips give different pixels.
        RgbImage::from_fn(20, 16, |x, y| {
            Rgb([value.wrapping_add(10 * x as u8), 255 - value, 15 * y as u8])
        })
        .save(path)
        .unwrap();
    }

    /// `root/{train,val}/{a,b}/` with two PNGs per class and split.
    fn folder(root: &Path) {
        for split in ["train", "val"] {
            for (c, v) in [("a", 10), ("b", 200)] {
                for i in 0..2 {
                    write_png(&root.join(split).join(c).join(format!("{i}.png")), v);
                }
            }
        }
    }

    #[test]
    fn reads_the_cifar_folder_sample_with_a_class_subset_and_limit() {
        let section = ImageFolderSection {
            first_classes: Some(3),
            per_class_limit: Some(5),
            ..small(32)
        };
        let split = load(&shared("cifar10-folder-sample"), &section).unwrap();
        assert_eq!(split.train.len(), 15);
        assert_eq!(split.test.len(), 15);
        assert_eq!(split.train.dim, 3 * 32 * 32);
        let mut labels = split.train.labels.clone();
        labels.dedup();
        assert_eq!(labels, [0, 1, 2]);
        assert!(split.train.augment.is_some());
    }

    #[test]
    fn reads_the_imagenet_sample_without_split_folders() {
        let section = ImageFolderSection {
            image_size: 64,
            resize: 72,
            holdout_every: 2,
            ..Default::default()
        };
        let (train, eval, names) = load_sets(&shared("imagenet-sample"), &section).unwrap();
        assert_eq!(names.len(), 19);
        assert_eq!(train.images.len() + eval.images.len(), 20);
        assert!(train.images.iter().all(|i| i.width().min(i.height()) == 72));
    }

    #[test]
    fn augmentation_is_reproducible_from_the_seed_and_differs_across_seeds() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path());
        let split = load(dir.path(), &small(8)).unwrap();
        let augment = split.train.augment.clone().unwrap();
        let batch = |seed| {
            let mut rng = biofeedback_core::init::seeded_rng(seed);
            augment.batch(&[0, 1, 2, 3], &mut rng)
        };
        assert_eq!(batch(1), batch(1));
        assert_ne!(batch(1), batch(2));
        assert_eq!(batch(1).len(), 4 * 3 * 64);
        // Different workers give the same images in the same order.
        let two = load(
            dir.path(),
            &ImageFolderSection {
                workers: 3,
                ..small(8)
            },
        )
        .unwrap();
        assert_eq!(two.train.images, split.train.images);
    }

    #[test]
    fn a_corrupt_image_is_named_or_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path());
        let bad = dir.path().join("train/a/broken.jpg");
        std::fs::write(&bad, b"\xff\xd8\xff not really a jpeg").unwrap();
        let e = load(dir.path(), &small(8)).unwrap_err().to_string();
        assert!(
            e.contains("broken.jpg") && e.contains("on_bad_image"),
            "{e}"
        );
        let section = ImageFolderSection {
            on_bad_image: OnBadImage::Skip,
            ..small(8)
        };
        let (train, _, _) = load_sets(dir.path(), &section).unwrap();
        assert_eq!(train.skipped, [bad]);
        assert_eq!(train.images.len(), 4);
    }

    #[test]
    fn an_empty_class_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path());
        std::fs::create_dir_all(dir.path().join("train/c")).unwrap();
        std::fs::create_dir_all(dir.path().join("val/c")).unwrap();
        let e = load(dir.path(), &small(8)).unwrap_err().to_string();
        assert!(
            e.contains("train/c") && e.contains("empty class folder"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_class_in_the_subset_is_named_with_the_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path());
        let section = ImageFolderSection {
            classes: vec!["a".into(), "zebra".into()],
            ..small(8)
        };
        let e = load(dir.path(), &section).unwrap_err().to_string();
        assert!(e.contains("`zebra`") && e.contains("a, b"), "{e}");
    }

    #[test]
    fn grayscale_cmyk_and_odd_file_names_decode_to_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for split in ["train", "val"] {
            let class = root.join(split).join("chat noir é");
            std::fs::create_dir_all(&class).unwrap();
            GrayImage::from_pixel(12, 10, Luma([90]))
                .save(class.join("gris clair ü.png"))
                .unwrap();
            std::fs::copy(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cmyk.jpg"),
                class.join("cmyk image.JPG"),
            )
            .unwrap();
        }
        let split = load(root, &small(8)).unwrap();
        assert_eq!(split.train.len(), 2);
        assert_eq!(split.train.channels, 3);
        assert_eq!(split.train.images.len(), 2 * 3 * 64);
        // The gray image (the second file in sorted order) has equal channels.
        let first: Vec<f32> = (0..3)
            .map(|c| split.train.images[3 * 64 + c * 64])
            .collect();
        let s = ImageFolderSection::default();
        let raw: Vec<f64> = (0..3)
            .map(|c| first[c] as f64 * s.std[c] + s.mean[c])
            .collect();
        assert!(
            (raw[0] - raw[1]).abs() < 1e-3 && (raw[1] - raw[2]).abs() < 1e-3,
            "{raw:?}"
        );
    }

    #[test]
    fn a_missing_held_out_split_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("train/a/0.png"), 1);
        let e = load(dir.path(), &small(8)).unwrap_err().to_string();
        assert!(
            e.contains("no held-out split") && e.contains("`val`"),
            "{e}"
        );
    }
}
