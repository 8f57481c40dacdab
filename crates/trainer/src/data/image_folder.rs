//! ImageNet-style image folders, scanned into `(path, class)` indexes; each photo is decoded,
//! cropped and normalized only when a batch needs it (see [`super::loader`]).
//!
//! ```text
//! <dir>/train/<class>/*.JPEG   training images, one folder per class (sorted names = labels)
//! <dir>/val/<class>/*.JPEG     held-out images (`test/` is accepted when there is no `val/`)
//! <dir>/val/*.JPEG             or flat, labelled by the devkit's ground truth:
//!                              LOC_val_solution.csv (ImageId,PredictionString with the wnid
//!                              first) or ILSVRC2012_validation_ground_truth.txt (one
//!                              ILSVRC2012_ID per line, for ILSVRC2012_val_%08d.JPEG),
//!                              found in <dir>, its parents, or ILSVRC2012_devkit_t12/data/
//! <dir>/<class>/*.jpg          no split folders: every `holdout_every`-th image of each class
//!                              is held out
//! ```
//!
//! Class names come from the training split's folders (or the held-out split's when only it
//! is read); `LOC_synset_mapping.txt`, where present beside the data, gives their readable
//! names for the log. A subset is chosen by name (`classes`), by a file of names one per line
//! (`classes_file`), and/or by count (`first_classes`).
//!
//! Reading one example: the file is decoded (JPEG, PNG; grayscale, CMYK and alpha become RGB),
//! a JPEG at 1/4 or 1/8 scale through its DCT when the image stays at least `resize` pixels on
//! its shorter side; then in one resampling step (bilinear with antialiasing, as PIL and
//! torchvision) either torchvision's random resized crop (area `min_scale`-100%, aspect
//! 3/4-4/3, 10 tries, then the centre) with a horizontal flip with probability 1/2, or for
//! evaluation the centre `image_size` square of the image scaled to shorter side `resize`.
//! Pixels are scaled to [0, 1] and normalized per channel with `mean` and `std`.

use super::{DataError, Item, Source, Splits};
use crate::files;
use biofeedback_core::init::Rng;
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageReader};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Cursor;
use std::path::{Path, PathBuf};
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
    /// Class folders to use, by name, in label order. Default: all (or the first
    /// `first_classes`).
    pub classes: Vec<String>,
    /// A file naming the classes to use, one per line (the first word of a line; `#` starts
    /// a comment), in label order; relative to `data.dir`. Default: none.
    pub classes_file: Option<PathBuf>,
    /// Use the first N classes (of `classes`, of `classes_file`, or of all in sorted order).
    /// Default: all.
    pub first_classes: Option<usize>,
    /// At most this many images per class and split. Default: all.
    pub per_class_limit: Option<usize>,
    /// Labels of a flat held-out folder: `LOC_val_solution.csv` or
    /// `ILSVRC2012_validation_ground_truth.txt`; relative to `data.dir`. Default: looked for
    /// beside the data.
    pub val_labels: Option<PathBuf>,
    /// Side of the square the network sees. Default 224.
    pub image_size: usize,
    /// Shorter side of the image that evaluation crops the centre `image_size` of; JPEGs are
    /// decoded at a reduced scale while they keep at least this side. Default 256.
    pub resize: usize,
    /// Random resized crop and horizontal flip for training. Default true.
    pub augment: bool,
    /// Decode a JPEG at 1/4 or 1/8 scale through its DCT when it keeps at least `resize`
    /// pixels on its shorter side (small targets from large photos). Default true.
    pub reduced_decode: bool,
    /// Smallest crop area of the random resized crop, as a fraction of the image. Default
    /// 0.08 (torchvision's; about 0.35 suits 32x32 images).
    pub min_scale: f64,
    /// Per-channel mean of the [0, 1] pixels. Default ImageNet's.
    pub mean: [f64; 3],
    /// Per-channel standard deviation. Default ImageNet's.
    pub std: [f64; 3],
    /// An image that does not decode: `skip` it (left out of its batch and logged) or `fail`.
    /// Default `fail`.
    pub on_bad_image: OnBadImage,
    /// With `on_bad_image = "skip"`: the largest fraction of a split's images that an epoch
    /// or an evaluation may skip; more (or every image) stops the run, naming the first file.
    /// Default 0.05.
    pub max_skipped: f64,
    /// Deprecated: loader threads are `data.workers`. When given (configs written before
    /// 0.2), it overrides `data.workers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
}

impl Default for ImageFolderSection {
    fn default() -> Self {
        Self {
            train_split: "train".into(),
            eval_split: "val".into(),
            holdout_every: 5,
            classes: Vec::new(),
            classes_file: None,
            first_classes: None,
            per_class_limit: None,
            val_labels: None,
            image_size: 224,
            resize: 256,
            augment: true,
            reduced_decode: true,
            min_scale: 0.08,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            on_bad_image: OnBadImage::Fail,
            max_skipped: 0.05,
            workers: None,
        }
    }
}

/// What to do with an image that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBadImage {
    /// Leave it out of its batch, log its path.
    Skip,
    /// Stop with an error naming the file.
    Fail,
}

/// The largest image decoded, in pixels (a photo of 16000 x 8000); larger files are bad
/// images, so that one file cannot exhaust the memory.
pub const MAX_PIXELS: u64 = 128_000_000;

/// One split of an image folder: the files and their classes, read on demand.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    /// Image files, class by class.
    pub files: Vec<PathBuf>,
    /// The class of each file, `< classes.len()`.
    pub labels: Vec<u32>,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Random resized crop and flip when a generator is given.
    pub augment: bool,
    /// Output side.
    pub size: usize,
    /// Shorter side before the evaluation centre crop; smallest decoded shorter side.
    pub resize: usize,
    /// Decode JPEGs at a reduced scale where `resize` allows.
    pub reduced_decode: bool,
    /// Smallest crop area of the random resized crop.
    pub min_scale: f64,
    /// Per-channel mean of [0, 1] pixels.
    pub mean: [f64; 3],
    /// Per-channel standard deviation.
    pub std: [f64; 3],
    /// Skip or fail on a file that does not decode.
    pub on_bad_image: OnBadImage,
}

/// The splits of an image folder.
#[derive(Debug, Clone)]
pub struct Folder {
    /// Training split; `None` when only the held-out split was asked for.
    pub train: Option<ImageFolder>,
    /// Held-out split.
    pub eval: ImageFolder,
}

fn folder_error(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Sub-folders of `dir` by name, sorted.
fn subfolders(dir: &Path) -> Result<Vec<String>, DataError> {
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let is_dir = match entry.file_type().map_err(io_error(dir))? {
            t if t.is_symlink() => entry.path().is_dir(),
            t => t.is_dir(),
        };
        if is_dir {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(folder_error(
                    &entry.path(),
                    "a class folder whose name is not UTF-8: class names are recorded as text; \
                     rename it",
                ));
            };
            refuse_control_characters(&entry.path(), name)?;
            folders.push(name.to_string());
        }
    }
    folders.sort();
    Ok(folders)
}

/// Refuses a file or folder `name` with a control character (a newline, a tab): logs, errors
/// and records name files one per line.
fn refuse_control_characters(path: &Path, name: &str) -> Result<(), DataError> {
    match name.chars().any(char::is_control) {
        true => Err(DataError::Format {
            path: path.parent().unwrap_or(path).to_path_buf(),
            message: format!(
                "the name {name:?} holds a control character (a newline?): logs and records name \
                 files one per line; rename it"
            ),
        }),
        false => Ok(()),
    }
}

/// Whether `path` names a JPEG or PNG file by its extension.
fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

/// JPEG and PNG files of `dir`, sorted (by extension only: nothing is opened).
fn image_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        if is_image(&path) && !entry.file_type().map_err(io_error(dir))?.is_dir() {
            refuse_control_characters(&path, &entry.file_name().to_string_lossy())?;
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The classes to use out of `all` (sorted names found in `dir`), in label order.
fn choose_classes(
    dir: &Path,
    data_dir: &Path,
    all: Vec<String>,
    section: &ImageFolderSection,
) -> Result<Vec<String>, DataError> {
    if all.is_empty() {
        return Err(folder_error(
            dir,
            "no class folders (expected <class>/*.jpg)",
        ));
    }
    let (wanted, origin) = match &section.classes_file {
        Some(file) => {
            let path = data_dir.join(file);
            let text = files::read_to_string(&path, files::LIST_BYTES).map_err(io_error(&path))?;
            let names: Vec<String> = text
                .lines()
                .filter_map(|l| l.split('#').next()?.split_whitespace().next())
                .map(str::to_string)
                .collect();
            if names.is_empty() {
                return Err(folder_error(
                    &path,
                    "names no class (expected one per line)",
                ));
            }
            (
                names,
                format!("data.image_folder.classes_file {}", path.display()),
            )
        }
        None => (section.classes.clone(), "data.image_folder.classes".into()),
    };
    let mut chosen = if wanted.is_empty() {
        all
    } else {
        let known: BTreeSet<&String> = all.iter().collect();
        let mut seen = BTreeSet::new();
        for name in &wanted {
            if !known.contains(name) {
                let names: Vec<&str> = all.iter().take(20).map(String::as_str).collect();
                return Err(folder_error(
                    dir,
                    format!(
                        "class `{name}` of {origin} does not exist; the class folders are {}{}",
                        names.join(", "),
                        if all.len() > 20 { ", ..." } else { "" }
                    ),
                ));
            }
            if !seen.insert(name) {
                return Err(folder_error(
                    dir,
                    format!("class `{name}` is named twice in {origin}"),
                ));
            }
        }
        wanted
    };
    if let Some(n) = section.first_classes {
        chosen.truncate(n);
    }
    if chosen.len() < 2 {
        return Err(folder_error(
            dir,
            format!(
                "{} class chosen ({}); a classifier needs at least 2",
                chosen.len(),
                chosen.join(", ")
            ),
        ));
    }
    Ok(chosen)
}

/// The files of `classes` in `split_dir/<class>/`, each class's files filtered by `keep`
/// (its position in the sorted folder) and capped at `per_class_limit`.
fn class_folder_files(
    split_dir: &Path,
    classes: &[String],
    section: &ImageFolderSection,
    keep: impl Fn(usize) -> bool,
) -> Result<(Vec<PathBuf>, Vec<u32>), DataError> {
    let (mut files, mut labels) = (Vec::new(), Vec::new());
    for (label, name) in classes.iter().enumerate() {
        let dir = split_dir.join(name);
        if !dir.is_dir() {
            return Err(folder_error(
                &dir,
                format!("class `{name}` has no folder in this split"),
            ));
        }
        let all = image_files(&dir)?;
        if all.is_empty() {
            return Err(folder_error(
                &dir,
                "empty class folder: no .jpg, .jpeg or .png images",
            ));
        }
        let mine = all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(_, p)| p)
            .take(section.per_class_limit.unwrap_or(usize::MAX));
        for path in mine {
            files.push(path);
            labels.push(label as u32);
        }
    }
    Ok((files, labels))
}

/// `name` in `dir`, in one of its parents (up to three levels), or in the devkit's `data/`.
fn find_beside(dir: &Path, name: &str) -> Option<PathBuf> {
    dir.ancestors()
        .take(4)
        .flat_map(|d| {
            [
                d.join(name),
                d.join("ILSVRC2012_devkit_t12/data").join(name),
            ]
        })
        .find(|p| p.is_file())
}

/// The devkit's ILSVRC2012_ID order: line `k` is the wnid of ID `k + 1`.
const ILSVRC2012_WNIDS: &str = include_str!("ilsvrc2012_wnids.txt");

/// File stem (`ILSVRC2012_val_00000001`) to wnid, from a ground-truth file.
fn read_val_labels(path: &Path) -> Result<HashMap<String, String>, DataError> {
    let text = files::read_to_string(path, files::LIST_BYTES).map_err(io_error(path))?;
    let bad = |line: usize, what: String| folder_error(path, format!("line {line}: {what}"));
    let mut labels = HashMap::new();
    let csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if csv {
        // Kaggle's LOC_val_solution.csv: ImageId,PredictionString ("wnid x y x y wnid ..."),
        // fields quoted or not.
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut first_line: HashMap<String, u64> = HashMap::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                bad(line as usize, format!("not CSV: {e}"))
            })?;
            let line = record.position().map_or(0, |p| p.line()) as usize;
            let (Some(id), Some(boxes)) = (record.get(0), record.get(1)) else {
                return Err(bad(
                    line,
                    format!(
                        "`{}` is not `ImageId,PredictionString`",
                        record.iter().collect::<Vec<_>>().join(",")
                    ),
                ));
            };
            let id = id.trim();
            let wnid = boxes
                .split_whitespace()
                .next()
                .ok_or_else(|| bad(line, format!("no wnid for {id}")))?;
            match labels.get(id) {
                Some(earlier) if earlier != wnid => {
                    return Err(bad(
                        line,
                        format!(
                            "{id} is labelled {wnid} here and {earlier} on line {}",
                            first_line[id]
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    first_line.insert(id.to_string(), line as u64);
                    labels.insert(id.to_string(), wnid.to_string());
                }
            }
        }
    } else {
        // The devkit's ground truth: one ILSVRC2012_ID (1..=1000) per validation image.
        let wnids: Vec<&str> = ILSVRC2012_WNIDS.lines().collect();
        for (k, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let id: usize = line
                .trim()
                .parse()
                .ok()
                .filter(|id| (1..=1000).contains(id))
                .ok_or_else(|| {
                    bad(
                        k + 1,
                        format!("`{line}` is not an ILSVRC2012_ID in 1..=1000"),
                    )
                })?;
            labels.insert(
                format!("ILSVRC2012_val_{:08}", k + 1),
                wnids[id - 1].to_string(),
            );
        }
    }
    if labels.is_empty() {
        return Err(folder_error(path, "holds no labels"));
    }
    Ok(labels)
}

/// The ground-truth file of a flat held-out folder `eval_dir`.
fn val_labels_file(data_dir: &Path, section: &ImageFolderSection) -> Result<PathBuf, DataError> {
    if let Some(file) = &section.val_labels {
        let path = data_dir.join(file);
        return match path.is_file() {
            true => Ok(path),
            false => Err(folder_error(
                &path,
                "data.image_folder.val_labels: no such file",
            )),
        };
    }
    [
        "LOC_val_solution.csv",
        "ILSVRC2012_validation_ground_truth.txt",
    ]
    .iter()
    .find_map(|name| find_beside(data_dir, name))
    .ok_or_else(|| {
        folder_error(
            data_dir,
            "the held-out folder holds images, not class folders, and no LOC_val_solution.csv \
                 or ILSVRC2012_validation_ground_truth.txt was found beside it (set \
                 data.image_folder.val_labels)",
        )
    })
}

/// The images of a flat held-out folder that belong to `classes`, labelled by `truth`.
fn flat_files(
    eval_dir: &Path,
    truth_file: &Path,
    truth: &HashMap<String, String>,
    classes: &[String],
    section: &ImageFolderSection,
) -> Result<(Vec<PathBuf>, Vec<u32>), DataError> {
    let label_of: HashMap<&str, u32> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let mut by_class: BTreeMap<u32, Vec<PathBuf>> = BTreeMap::new();
    for path in image_files(eval_dir)? {
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let wnid = truth.get(stem.as_ref()).ok_or_else(|| {
            folder_error(&path, format!("has no label in {}", truth_file.display()))
        })?;
        if let Some(&label) = label_of.get(wnid.as_str()) {
            by_class.entry(label).or_default().push(path);
        }
    }
    if by_class.is_empty() {
        let some: BTreeSet<&str> = truth.values().map(String::as_str).take(3).collect();
        return Err(folder_error(
            truth_file,
            format!(
                "labels none of the images in {} with a chosen class ({}{}); it names classes \
                 such as {} (are the class folders named by wnid?)",
                eval_dir.display(),
                classes
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                if classes.len() > 3 { ", ..." } else { "" },
                some.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let (mut files, mut labels) = (Vec::new(), Vec::new());
    for (label, paths) in by_class {
        for path in paths
            .into_iter()
            .take(section.per_class_limit.unwrap_or(usize::MAX))
        {
            files.push(path);
            labels.push(label);
        }
    }
    Ok((files, labels))
}

/// Whether `dir` holds image files directly (a flat held-out folder).
fn is_flat(dir: &Path) -> Result<bool, DataError> {
    Ok(subfolders(dir)?.is_empty() && !image_files(dir)?.is_empty())
}

/// Scans the image folder `dir` as `section` says: file names and classes only, nothing
/// decoded. `splits` says whether the training split is read.
pub fn open(dir: &Path, section: &ImageFolderSection, splits: Splits) -> Result<Folder, DataError> {
    let train_dir = dir.join(&section.train_split);
    let eval_dir = [section.eval_split.as_str(), "test", "val"]
        .iter()
        .map(|s| dir.join(s))
        .find(|p| p.is_dir());
    let split_folders = train_dir.is_dir() || (splits == Splits::Eval && eval_dir.is_some());
    let make = |files: Vec<PathBuf>, labels: Vec<u32>, classes: &[String]| ImageFolder {
        files,
        labels,
        classes: classes.to_vec(),
        augment: section.augment,
        size: section.image_size,
        resize: section.resize,
        reduced_decode: section.reduced_decode,
        min_scale: section.min_scale,
        mean: section.mean,
        std: section.std,
        on_bad_image: section.on_bad_image,
    };
    let folder = if split_folders {
        let eval_dir = eval_dir.ok_or_else(|| {
            folder_error(
                dir,
                format!(
                    "no held-out split: expected a folder `{}` (or `test`) beside `{}`",
                    section.eval_split, section.train_split
                ),
            )
        })?;
        let flat = is_flat(&eval_dir)?;
        let truth = match flat {
            true => {
                let file = val_labels_file(dir, section)?;
                let labels = read_val_labels(&file)?;
                Some((file, labels))
            }
            false => None,
        };
        // The class universe: the training folders, else the held-out ones, else the
        // ground truth's wnids.
        let all = match (splits, train_dir.is_dir(), &truth) {
            (Splits::Both, _, _) | (Splits::Eval, true, _) => subfolders(&train_dir)?,
            (Splits::Eval, false, None) => subfolders(&eval_dir)?,
            (Splits::Eval, false, Some((_, labels))) => {
                let set: BTreeSet<&String> = labels.values().collect();
                set.into_iter().cloned().collect()
            }
        };
        let universe = if train_dir.is_dir() {
            &train_dir
        } else {
            &eval_dir
        };
        let classes = choose_classes(universe, dir, all, section)?;
        let (files, labels) = match &truth {
            Some((file, labels)) => flat_files(&eval_dir, file, labels, &classes, section)?,
            None => class_folder_files(&eval_dir, &classes, section, |_| true)?,
        };
        let eval = make(files, labels, &classes);
        let train = match splits {
            Splits::Both => {
                let (files, labels) = class_folder_files(&train_dir, &classes, section, |_| true)?;
                Some(make(files, labels, &classes))
            }
            Splits::Eval => None,
        };
        Folder { train, eval }
    } else {
        // No split folders: the class folders are directly under `dir`.
        let classes = choose_classes(dir, dir, subfolders(dir)?, section)?;
        let every = section.holdout_every;
        let (files, labels) =
            class_folder_files(dir, &classes, section, |i| i % every == every - 1)?;
        let eval = make(files, labels, &classes);
        let train = match splits {
            Splits::Both => {
                let (files, labels) =
                    class_folder_files(dir, &classes, section, |i| i % every != every - 1)?;
                Some(make(files, labels, &classes))
            }
            Splits::Eval => None,
        };
        Folder { train, eval }
    };
    let names = readable_names(dir);
    let classes = &folder.eval.classes;
    let shown: Vec<String> = classes
        .iter()
        .take(5)
        .map(|c| match names.get(c) {
            Some(name) => format!("{c} ({name})"),
            None => c.clone(),
        })
        .collect();
    info!(
        "{}: {} classes ({}{}), {} training and {} held-out images, read on demand",
        dir.display(),
        classes.len(),
        shown.join(", "),
        if classes.len() > 5 { ", ..." } else { "" },
        folder
            .train
            .as_ref()
            .map_or("no".to_string(), |t| t.len().to_string()),
        folder.eval.len()
    );
    Ok(folder)
}

/// Readable class names from `LOC_synset_mapping.txt` (`wnid name, name`) beside the data.
fn readable_names(dir: &Path) -> HashMap<String, String> {
    find_beside(dir, "LOC_synset_mapping.txt")
        .and_then(|p| files::read_to_string(&p, files::LIST_BYTES).ok())
        .map(|text| {
            text.lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(w, n)| {
                    (
                        w.to_string(),
                        n.split(',').next().unwrap_or(n).trim().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An RGB image, 3 bytes per pixel, row-major.
struct Rgb {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

/// Decodes `bytes` to RGB. A JPEG that can be decoded at 1/4 or 1/8 scale through its DCT
/// while keeping its shorter side at least `min_side` is (by `jpeg-decoder`); every other
/// image is decoded in full (by `image`, whose JPEG decoder is zune-jpeg). Measured on
/// 512x512 photos (`benches/loader.rs`): 1/8 scale is 13% faster than a full decode, 1/2
/// scale 18% slower (the entropy decoding, the larger part, is the same, and zune-jpeg does
/// it faster), so half scale is not used.
fn decode(bytes: &[u8], min_side: u32) -> Result<Rgb, String> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        // The decoders fill a truncated JPEG with grey without an error: the file must reach
        // its end-of-image marker (whatever follows it: a phone's motion-photo video, padding).
        jpeg_end(bytes)?;
        let mut jpeg = jpeg_decoder::Decoder::new(bytes);
        jpeg.read_info().map_err(|e| e.to_string())?;
        let info = jpeg.info().ok_or("no JPEG frame header")?;
        let (w, h) = (u32::from(info.width), u32::from(info.height));
        check_size(w, h)?;
        let short = w.min(h).max(1);
        let want = |side: u32| (u64::from(side) * u64::from(min_side)).div_ceil(u64::from(short));
        let (want_w, want_h) = (want(w).min(u64::from(w)), want(h).min(u64::from(h)));
        let reduced = want_w * 4 <= u64::from(w) && want_h * 4 <= u64::from(h);
        if reduced && !matches!(info.pixel_format, jpeg_decoder::PixelFormat::CMYK32) {
            let (sw, sh) = jpeg
                .scale(want_w as u16, want_h as u16)
                .map_err(|e| e.to_string())?;
            let raw = jpeg.decode().map_err(|e| e.to_string())?;
            let info = jpeg.info().ok_or("no JPEG frame header")?;
            let (sw, sh) = (u32::from(sw), u32::from(sh));
            let pixels = match info.pixel_format {
                jpeg_decoder::PixelFormat::RGB24 => raw,
                jpeg_decoder::PixelFormat::L8 => raw.iter().flat_map(|&v| [v, v, v]).collect(),
                jpeg_decoder::PixelFormat::L16 => raw
                    .chunks_exact(2)
                    .flat_map(|v| [v[0], v[0], v[0]])
                    .collect(),
                jpeg_decoder::PixelFormat::CMYK32 => unreachable!("CMYK is decoded below"),
            };
            if pixels.len() as u64 != u64::from(sw) * u64::from(sh) * 3 {
                return Err("the JPEG decoder returned a truncated image".into());
            }
            return Ok(Rgb {
                width: sw,
                height: sh,
                pixels,
            });
        }
    }
    let decoder = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .into_decoder()
        .map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    check_size(w, h)?;
    let rgb = DynamicImage::from_decoder(decoder)
        .map_err(|e| e.to_string())?
        .into_rgb8();
    Ok(Rgb {
        width: w,
        height: h,
        pixels: rgb.into_raw(),
    })
}

/// The offset just past the end-of-image marker of the JPEG `bytes` (which start with its
/// start-of-image marker), found by walking its structure as a decoder does: marker segments
/// skipped by their length (an EXIF thumbnail's own markers sit inside one), the entropy-coded
/// data of each scan up to the first marker that is not a restart or a stuffed `0xFF`. An
/// error if the data end first: the file was cut short. Bytes after the marker are not read.
fn jpeg_end(bytes: &[u8]) -> Result<usize, String> {
    let truncated = || {
        format!(
            "truncated JPEG: the data end before the end-of-image marker ({} bytes)",
            bytes.len()
        )
    };
    let mut i = 2;
    loop {
        // Bytes between segments are skipped up to the next marker, as decoders do.
        i += bytes
            .get(i..)
            .and_then(|b| b.iter().position(|&v| v == 0xFF))
            .ok_or_else(truncated)?;
        // A marker may be preceded by any number of fill bytes 0xFF.
        while bytes.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *bytes.get(i).ok_or_else(truncated)?;
        i += 1;
        match marker {
            0xD9 => return Ok(i),
            // Markers without a length: SOI, TEM, RST0-7; 0x00 is a stuffed byte out of place.
            0xD8 | 0x01 | 0xD0..=0xD7 | 0x00 => continue,
            _ => {}
        }
        let length = bytes.get(i..i + 2).ok_or_else(truncated)?;
        let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
        if length < 2 {
            return Err(format!(
                "invalid JPEG: a segment of length {length} at byte {i}"
            ));
        }
        i += length;
        if i > bytes.len() {
            return Err(truncated());
        }
        if marker == 0xDA {
            // Entropy-coded data: 0xFF is followed by 0x00 (stuffing) or a restart marker
            // inside it; anything else is the next marker.
            loop {
                let at = i + bytes[i..]
                    .iter()
                    .position(|&v| v == 0xFF)
                    .ok_or_else(truncated)?;
                match bytes.get(at + 1) {
                    None => return Err(truncated()),
                    Some(0x00 | 0xD0..=0xD7) => i = at + 2,
                    Some(_) => {
                        i = at;
                        break;
                    }
                }
            }
        }
    }
}

/// Refuses empty images and images over [`MAX_PIXELS`].
fn check_size(w: u32, h: u32) -> Result<(), String> {
    if w == 0 || h == 0 {
        return Err("the image is empty".into());
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(format!(
            "{w}x{h} pixels is over the limit of {MAX_PIXELS} pixels"
        ));
    }
    Ok(())
}

/// A crop rectangle `(left, top, width, height)` in pixels of the decoded image.
type CropBox = (f64, f64, f64, f64);

/// torchvision's `RandomResizedCrop` rectangle: area `min_scale`-100% of the image, aspect
/// ratio 3/4-4/3 (log-uniform), 10 tries, then the centre square.
fn random_crop(w: u32, h: u32, min_scale: f64, rng: &mut Rng) -> CropBox {
    let (wf, hf) = (w as f64, h as f64);
    let (lo, hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = wf * hf * rng.random_range(min_scale..=1.0);
        let ratio = rng.random_range(lo..=hi).exp();
        let cw = (target * ratio).sqrt().round();
        let ch = (target / ratio).sqrt().round();
        if cw >= 1.0 && ch >= 1.0 && cw <= wf && ch <= hf {
            let x = rng.random_range(0..=(w - cw as u32)) as f64;
            let y = rng.random_range(0..=(h - ch as u32)) as f64;
            return (x, y, cw, ch);
        }
    }
    let s = wf.min(hf);
    ((wf - s) / 2.0, (hf - s) / 2.0, s, s)
}

/// The evaluation rectangle: the centre `size` square of the image scaled to shorter side
/// `resize`, in pixels of the image as it is.
fn center_crop(w: u32, h: u32, size: usize, resize: usize) -> CropBox {
    let side = w.min(h) as f64 * size as f64 / resize as f64;
    ((w as f64 - side) / 2.0, (h as f64 - side) / 2.0, side, side)
}

impl ImageFolder {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Keeps the first `n` images.
    pub fn truncate(&mut self, n: usize) {
        self.files.truncate(n);
        self.labels.truncate(n);
    }

    /// Decodes, crops, resizes, flips and normalizes one file into `out`.
    fn load(
        &self,
        path: &Path,
        augment: Option<&mut Rng>,
        out: &mut Vec<f32>,
    ) -> Result<(), String> {
        let bytes = files::read(path, files::IMAGE_BYTES).map_err(|e| e.to_string())?;
        let min_side = match self.reduced_decode {
            true => self.resize as u32,
            false => u32::MAX,
        };
        let image = decode(&bytes, min_side)?;
        let (w, h) = (image.width, image.height);
        let (crop, flip) = match augment {
            Some(rng) if self.augment => {
                let crop = random_crop(w, h, self.min_scale, rng);
                (crop, rng.random_bool(0.5))
            }
            _ => (center_crop(w, h, self.size, self.resize), false),
        };
        let src =
            Image::from_vec_u8(w, h, image.pixels, PixelType::U8x3).map_err(|e| e.to_string())?;
        let side = self.size as u32;
        let mut dst = Image::new(side, side, PixelType::U8x3);
        let (x, y, cw, ch) = crop;
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
            .crop(x, y, cw, ch);
        Resizer::new()
            .resize(&src, &mut dst, &options)
            .map_err(|e| e.to_string())?;
        let pixels = dst.buffer();
        let n = self.size;
        for c in 0..3 {
            let (m, s) = (self.mean[c], self.std[c]);
            let table: [f32; 256] = std::array::from_fn(|v| ((v as f64 / 255.0 - m) / s) as f32);
            for row in pixels.chunks_exact(3 * n) {
                match flip {
                    false => out.extend(row.chunks_exact(3).map(|p| table[p[c] as usize])),
                    true => out.extend(row.chunks_exact(3).rev().map(|p| table[p[c] as usize])),
                }
            }
        }
        Ok(())
    }
}

impl Source for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn classes(&self) -> usize {
        self.classes.len()
    }
    fn shape(&self) -> [usize; 3] {
        [3, self.size, self.size]
    }
    fn label(&self, index: usize) -> usize {
        self.labels[index] as usize
    }
    fn class_names(&self) -> Vec<String> {
        self.classes.clone()
    }
    fn read(
        &self,
        index: usize,
        augment: Option<&mut Rng>,
        out: &mut Vec<f32>,
    ) -> Result<Item, DataError> {
        let path = &self.files[index];
        let start = out.len();
        match (self.load(path, augment, out), self.on_bad_image) {
            (Ok(()), _) => Ok(Item::Read),
            (Err(e), OnBadImage::Skip) => {
                out.truncate(start);
                warn!("skipping {}: {e}", path.display());
                Ok(Item::Skipped(format!("{}: {e}", path.display())))
            }
            (Err(e), OnBadImage::Fail) => Err(folder_error(
                path,
                format!(
                    "cannot decode the image ({e}); fix or remove it, or set \
                     data.image_folder.on_bad_image = \"skip\""
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::loader::read_batch;
    use biofeedback_core::init::seeded_rng;
    use image::{GrayImage, Luma, RgbImage};

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
            image::Rgb([value.wrapping_add(10 * x as u8), 255 - value, 15 * y as u8])
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

    fn both(
        dir: &Path,
        section: &ImageFolderSection,
    ) -> Result<(ImageFolder, ImageFolder), DataError> {
        let f = open(dir, section, Splits::Both)?;
        Ok((f.train.unwrap(), f.eval))
    }

    /// Every example of `set`, through the evaluation transform.
    fn read_all(set: &ImageFolder) -> Result<Vec<f32>, DataError> {
        let indices: Vec<usize> = (0..set.len()).collect();
        read_batch(set, 0, &indices, None).map(|b| b.x)
    }

    #[test]
    fn reads_the_cifar_folder_sample_with_a_class_subset_and_limit() {
        let section = ImageFolderSection {
            first_classes: Some(3),
            per_class_limit: Some(5),
            ..small(32)
        };
        let (train, test) = both(&shared("cifar10-folder-sample"), &section).unwrap();
        assert_eq!(train.len(), 15);
        assert_eq!(test.len(), 15);
        assert_eq!(train.dim(), 3 * 32 * 32);
        let mut labels = train.labels.clone();
        labels.dedup();
        assert_eq!(labels, [0, 1, 2]);
        assert_eq!(read_all(&test).unwrap().len(), 15 * 3 * 32 * 32);
    }

    #[test]
    fn reads_the_imagenet_sample_without_split_folders() {
        let section = ImageFolderSection {
            image_size: 64,
            resize: 72,
            holdout_every: 2,
            ..Default::default()
        };
        let (train, eval) = both(&shared("imagenet-sample"), &section).unwrap();
        assert_eq!(train.classes.len(), 19);
        assert_eq!(train.len() + eval.len(), 20);
        let x = read_all(&train).unwrap();
        assert_eq!(x.len(), train.len() * 3 * 64 * 64);
        assert!(x.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn a_reduced_scale_jpeg_decode_matches_the_full_one() {
        // The ImageNet sample's photos are about 512 pixels: for a 128 side they decode at
        // half or quarter scale.
        let dir = shared("imagenet-sample");
        let class = subfolders(&dir).unwrap().remove(0);
        let file = image_files(&dir.join(class)).unwrap().remove(0);
        let bytes = std::fs::read(&file).unwrap();
        let reduced = decode(&bytes, 128).unwrap();
        let full = decode(&bytes, 100_000).unwrap();
        assert!(reduced.width < full.width && reduced.width.min(reduced.height) >= 128);
        let set = ImageFolder {
            files: vec![file.clone()],
            labels: vec![0],
            classes: vec!["x".into()],
            augment: false,
            size: 112,
            resize: 128,
            reduced_decode: true,
            min_scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            on_bad_image: OnBadImage::Fail,
        };
        let mut x = Vec::new();
        set.load(&file, None, &mut x).unwrap();
        // Decoding fully and cropping the same region gives nearly the same pixels.
        let mut y = Vec::new();
        let image = decode(&bytes, 100_000).unwrap();
        let crop = center_crop(image.width, image.height, 112, 128);
        let src =
            Image::from_vec_u8(image.width, image.height, image.pixels, PixelType::U8x3).unwrap();
        let mut dst = Image::new(112, 112, PixelType::U8x3);
        Resizer::new()
            .resize(
                &src,
                &mut dst,
                &ResizeOptions::new()
                    .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
                    .crop(crop.0, crop.1, crop.2, crop.3),
            )
            .unwrap();
        for c in 0..3 {
            y.extend(dst.buffer().chunks_exact(3).map(|p| p[c] as f32 / 255.0));
        }
        let mean_abs: f32 =
            x.iter().zip(&y).map(|(a, b)| (a - b).abs()).sum::<f32>() / x.len() as f32;
        assert!(mean_abs < 0.03, "mean absolute difference {mean_abs}");
    }

    #[test]
    fn augmentation_is_reproducible_from_the_seed_and_differs_across_seeds() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path());
        let (train, _) = both(dir.path(), &small(8)).unwrap();
        let one = |seed| {
            let mut out = Vec::new();
            train
                .read(0, Some(&mut seeded_rng(seed)), &mut out)
                .unwrap();
            out
        };
        assert_eq!(one(1), one(1));
        assert!((2..6).any(|s| one(s) != one(1)));
        assert_eq!(one(1).len(), 3 * 64);
    }

    #[test]
    fn a_corrupt_image_is_named_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path());
        let bad = dir.path().join("train/a/broken.jpg");
        std::fs::write(&bad, b"\xff\xd8\xff not really a jpeg").unwrap();
        let (train, _) = both(dir.path(), &small(8)).unwrap();
        assert_eq!(train.len(), 5, "scanning opens nothing");
        let e = read_all(&train).unwrap_err().to_string();
        assert!(
            e.contains("broken.jpg") && e.contains("on_bad_image"),
            "{e}"
        );
        let section = ImageFolderSection {
            on_bad_image: OnBadImage::Skip,
            ..small(8)
        };
        let (train, _) = both(dir.path(), &section).unwrap();
        let batch = read_batch(&train, 0, &(0..5).collect::<Vec<_>>(), None).unwrap();
        assert_eq!(batch.len(), 4);
        assert_eq!(batch.skipped.len(), 1);
        assert!(batch.skipped[0].contains("broken.jpg"));
    }

    #[test]
    fn a_truncated_jpeg_is_a_bad_image() {
        let dir = shared("cifar10-folder-sample/train/cat");
        let file = image_files(&dir).unwrap().remove(0);
        let bytes = std::fs::read(file).unwrap();
        assert!(decode(&bytes, 8).is_ok());
        for keep in [bytes.len() / 10, bytes.len() * 9 / 10, bytes.len() - 2] {
            let e = decode(&bytes[..keep], 8).err().unwrap();
            assert!(e.contains("truncated JPEG"), "{keep} bytes: {e}");
        }
    }

    #[test]
    fn a_jpeg_with_data_after_its_end_marker_is_read_and_a_cut_one_is_not() {
        let dir = shared("cifar10-folder-sample/train/cat");
        let file = image_files(&dir).unwrap().remove(0);
        let bytes = std::fs::read(file).unwrap();
        let plain = decode(&bytes, 8).unwrap().pixels;
        // A motion photo: 64 KB of video after the image, with end markers and fill bytes in it.
        let mut motion = bytes.clone();
        motion.extend((0..65536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        motion.extend([0xFF, 0xD9, 0xFF, 0xFF, 0x00]);
        assert_eq!(decode(&motion, 8).unwrap().pixels, plain);
        assert_eq!(jpeg_end(&motion).unwrap(), jpeg_end(&bytes).unwrap());
        // An APP1 segment (an EXIF thumbnail) holding a whole small JPEG, end marker included,
        // right after the start marker: a file cut inside its own scan is still truncated.
        let mut app1 = vec![0xFF, 0xE1];
        let thumbnail = [&[0xFF, 0xD8][..], &[0x11; 40], &[0xFF, 0xD9]].concat();
        app1.extend(((thumbnail.len() + 2) as u16).to_be_bytes());
        app1.extend(&thumbnail);
        let with_exif = [&bytes[..2], &app1[..], &bytes[2..]].concat();
        assert_eq!(decode(&with_exif, 8).unwrap().pixels, plain);
        let cut = &with_exif[..with_exif.len() - 200];
        assert!(decode(cut, 8).err().unwrap().contains("truncated JPEG"));
    }

    #[test]
    fn an_image_over_the_pixel_limit_is_refused_before_decoding() {
        // A valid 1x1 PNG whose header claims 20000 x 20000 pixels.
        let mut png = Vec::new();
        RgbImage::new(1, 1)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png[16..20].copy_from_slice(&20000u32.to_be_bytes());
        png[20..24].copy_from_slice(&20000u32.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..29]);
        png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        let e = decode(&png, 8).err().unwrap();
        assert!(e.contains("20000x20000") && e.contains("limit"), "{e}");
        // An extreme aspect ratio is cropped and resized without a huge intermediate.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/thin.png");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        RgbImage::new(1, 20000).save(&path).unwrap();
        let set = ImageFolder {
            files: vec![path.clone()],
            labels: vec![0],
            classes: vec!["a".into()],
            augment: true,
            size: 224,
            resize: 256,
            reduced_decode: true,
            min_scale: 0.08,
            mean: [0.0; 3],
            std: [1.0; 3],
            on_bad_image: OnBadImage::Fail,
        };
        let mut out = Vec::new();
        set.read(0, Some(&mut seeded_rng(1)), &mut out).unwrap();
        set.read(0, None, &mut out).unwrap();
        assert_eq!(out.len(), 2 * 3 * 224 * 224);
    }

    #[test]
    fn an_empty_class_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path());
        std::fs::create_dir_all(dir.path().join("train/c")).unwrap();
        std::fs::create_dir_all(dir.path().join("val/c")).unwrap();
        let e = both(dir.path(), &small(8)).unwrap_err().to_string();
        assert!(e.contains("/c") && e.contains("empty class folder"), "{e}");
    }

    #[test]
    fn unknown_or_repeated_classes_in_the_subset_are_named() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path());
        let section = ImageFolderSection {
            classes: vec!["a".into(), "zebra".into()],
            ..small(8)
        };
        let e = both(dir.path(), &section).unwrap_err().to_string();
        assert!(e.contains("`zebra`") && e.contains("a, b"), "{e}");
        let section = ImageFolderSection {
            classes: vec!["a".into(), "a".into()],
            ..small(8)
        };
        let e = both(dir.path(), &section).unwrap_err().to_string();
        assert!(e.contains("`a` is named twice"), "{e}");
    }

    #[test]
    fn a_class_file_chooses_and_orders_the_classes() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path());
        std::fs::write(
            dir.path().join("subset.txt"),
            "# mine\nb  second class\na\n",
        )
        .unwrap();
        let section = ImageFolderSection {
            classes_file: Some("subset.txt".into()),
            ..small(8)
        };
        let (train, eval) = both(dir.path(), &section).unwrap();
        assert_eq!(train.classes, ["b", "a"]);
        assert!(train.files[0].to_string_lossy().contains("train/b/"));
        assert_eq!(eval.labels, [0, 0, 1, 1]);
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
            write_png(&root.join(split).join("zèbre").join("0.png"), 3);
        }
        let (train, _) = both(root, &small(8)).unwrap();
        assert_eq!(train.len(), 3);
        let x = read_all(&train).unwrap();
        assert_eq!(x.len(), 3 * 3 * 64);
        // The gray image (the second file in sorted order) has equal channels.
        let s = ImageFolderSection::default();
        let raw: Vec<f64> = (0..3)
            .map(|c| x[3 * 64 + c * 64] as f64 * s.std[c] + s.mean[c])
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
        let e = both(dir.path(), &small(8)).unwrap_err().to_string();
        assert!(
            e.contains("no held-out split") && e.contains("`val`"),
            "{e}"
        );
    }

    /// `train/<wnid>/` class folders and a flat `val/` of ILSVRC2012_val_*.JPEG files.
    fn imagenet_layout(root: &Path) {
        for (c, wnid) in ["n01440764", "n01443537", "n01484850"].iter().enumerate() {
            for i in 0..2 {
                write_png(
                    &root.join(format!("train/{wnid}/{wnid}_{i}.JPEG")),
                    40 * c as u8,
                );
            }
        }
        std::fs::create_dir_all(root.join("val")).unwrap();
        for k in 1..=4 {
            let path = root.join(format!("val/ILSVRC2012_val_{k:08}.JPEG"));
            // PNG bytes under a JPEG name: the format is told by the bytes.
            write_png(&path, k as u8);
        }
    }

    #[test]
    fn a_flat_imagenet_validation_folder_is_labelled_by_the_solution_csv() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ILSVRC/Data/CLS-LOC");
        imagenet_layout(&root);
        std::fs::write(
            dir.path().join("LOC_val_solution.csv"),
            "ImageId,PredictionString\n\
             ILSVRC2012_val_00000001,n01484850 1 2 3 4 n01484850 5 6 7 8\n\
             ILSVRC2012_val_00000002,n01440764 1 2 3 4\n\
             ILSVRC2012_val_00000003,n09999999 1 2 3 4\n\
             ILSVRC2012_val_00000004,n01443537 1 2 3 4\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("LOC_synset_mapping.txt"),
            "n01440764 tench, Tinca tinca\nn01443537 goldfish\nn01484850 great white shark\n",
        )
        .unwrap();
        let (train, eval) = both(&root, &small(8)).unwrap();
        assert_eq!(train.classes, ["n01440764", "n01443537", "n01484850"]);
        // Sorted by class; the image of a class outside the subset is left out.
        assert_eq!(eval.labels, [0, 1, 2]);
        assert!(eval.files[0].ends_with("ILSVRC2012_val_00000002.JPEG"));
        let section = ImageFolderSection {
            first_classes: Some(2),
            ..small(8)
        };
        let (_, eval) = both(&root, &section).unwrap();
        assert_eq!(eval.labels, [0, 1]);
    }

    #[test]
    fn solution_csv_quotes_duplicates_and_foreign_labels_are_read_or_named() {
        let dir = tempfile::tempdir().unwrap();
        imagenet_layout(dir.path());
        let csv = dir.path().join("LOC_val_solution.csv");
        let write = |rows: &str| {
            std::fs::write(&csv, format!("\"ImageId\",\"PredictionString\"\n{rows}")).unwrap()
        };
        // Quoted fields, and an id listed twice with the same class.
        write(
            "\"ILSVRC2012_val_00000001\",\"n01484850 1 2 3 4\"\n\
             \"ILSVRC2012_val_00000002\",\"n01440764 1 2 3 4\"\n\
             ILSVRC2012_val_00000002,n01440764 5 6 7 8\n\
             ILSVRC2012_val_00000003,n01443537 1 2 3 4\n\
             ILSVRC2012_val_00000004,n01443537 1 2 3 4\n",
        );
        let (_, eval) = both(dir.path(), &small(8)).unwrap();
        assert_eq!(eval.labels, [0, 1, 1, 2]);
        // The same id with two classes.
        write(
            "ILSVRC2012_val_00000001,n01484850 1 2 3 4\n\
             ILSVRC2012_val_00000001,n01440764 1 2 3 4\n",
        );
        let e = both(dir.path(), &small(8)).unwrap_err().to_string();
        assert!(
            e.contains("LOC_val_solution.csv: line 3")
                && e.contains("n01440764 here and n01484850 on line 2"),
            "{e}"
        );
        // Labels that name none of the class folders.
        write(
            "ILSVRC2012_val_00000001,n09999999 1 2 3 4\n\
             ILSVRC2012_val_00000002,n09999998 1 2 3 4\n\
             ILSVRC2012_val_00000003,n09999999 1 2 3 4\n\
             ILSVRC2012_val_00000004,n09999999 1 2 3 4\n",
        );
        let e = both(dir.path(), &small(8)).unwrap_err().to_string();
        assert!(
            e.contains("LOC_val_solution.csv: labels none of the images")
                && e.contains("n01440764")
                && e.contains("n09999999"),
            "{e}"
        );
    }

    #[test]
    fn class_folders_must_be_utf8_and_names_without_control_characters() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path());
        let odd = std::ffi::OsStr::from_bytes(b"caf\xe9");
        write_png(&dir.path().join("train").join(odd).join("0.png"), 1);
        let e = both(dir.path(), &small(8)).unwrap_err().to_string();
        assert!(e.contains("not UTF-8") && e.contains("rename it"), "{e}");
        std::fs::remove_dir_all(dir.path().join("train").join(odd)).unwrap();
        write_png(&dir.path().join("train/a/line\nbreak.png"), 1);
        let e = both(dir.path(), &small(8)).unwrap_err().to_string();
        assert!(
            e.contains("\"line\\nbreak.png\"") && e.contains("control character"),
            "{e}"
        );
    }

    #[test]
    fn the_devkit_ground_truth_maps_ilsvrc2012_ids_to_wnids() {
        let dir = tempfile::tempdir().unwrap();
        imagenet_layout(dir.path());
        // IDs 449 (n01440764, tench), 1 (n02119789, kit fox), 450 (n01443537), 442
        // (n01484850).
        std::fs::write(
            dir.path().join("ILSVRC2012_validation_ground_truth.txt"),
            "449\n1\n450\n442\n",
        )
        .unwrap();
        let (_, eval) = both(dir.path(), &small(8)).unwrap();
        assert_eq!(eval.labels, [0, 1, 2]);
        assert!(eval.files[2].ends_with("ILSVRC2012_val_00000004.JPEG"));
        let wnids: Vec<&str> = ILSVRC2012_WNIDS.lines().collect();
        assert_eq!((wnids[0], wnids[489]), ("n02119789", "n01751748"));
        std::fs::write(
            dir.path().join("ILSVRC2012_validation_ground_truth.txt"),
            "449\nkit fox\n",
        )
        .unwrap();
        let e = both(dir.path(), &small(8)).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("ILSVRC2012_ID"), "{e}");
    }

    #[test]
    fn only_the_held_out_split_is_needed_for_evaluation() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path());
        std::fs::remove_dir_all(dir.path().join("train")).unwrap();
        let f = open(dir.path(), &small(8), Splits::Eval).unwrap();
        assert!(f.train.is_none());
        assert_eq!(f.eval.classes, ["a", "b"]);
        assert_eq!(read_all(&f.eval).unwrap().len(), 4 * 3 * 64);
    }
}
