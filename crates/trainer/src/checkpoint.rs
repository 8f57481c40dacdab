//! Checkpoints: everything a run needs to continue exactly, in one
//! [safetensors](https://huggingface.co/docs/safetensors) file written atomically.
//!
//! ```text
//! tensors (f32, little-endian, row-major), named once by `Network::visit` and the layers'
//! own visits (`biofeedback_core::visit`); MLP layers are `fc1`, `fc2`, ... as in
//! alignment.csv (format 1 called them `0`, `1`, ...: read and renamed)
//!   model.fc<k>.weight     [d_in, d_out]   W^T of layer k (the input layer is fc1)
//!   model.fc<k>.bias       [d_out]
//!   model.fc<k>.feedback   [d_in, d_out]   what the feedback keeps: B for fa / wm / kp,
//!                                          [d_in, classes] for a hidden dfa layer, |R| for
//!                                          frsf / brsf; none for bp / ss / usf (B from W)
//!   optim.fc<k>.weight     velocities of SGD with momentum, where they exist
//!   optim.fc<k>.bias
//!   optim.fc<k>.feedback   Kolen-Pollack's B
//! ResNets: per conv, under its name (`conv1`, `layer3.1.conv2`, `layer2.0.downsample`):
//!   model.<name>.weight, model.<name>.feedback      [c_out, c_in, k, k]
//!   model.<name>.bn.{gamma,beta,running_mean,running_var}   [c_out]
//!   optim.<name>.{weight,feedback,bn.gamma,bn.beta}   velocities
//!   and the classifier as model.fc.* / optim.fc.*, as for an MLP layer
//! metadata (strings)
//!   format = "biofeedback-checkpoint-2", version, epoch (completed), config (resolved TOML),
//!   best_epoch, best_value (by checkpoint.metric)
//!   inside an epoch (checkpoint.every_steps / every_minutes), the progress into epoch+1:
//!   step (steps done), loss_sum, correct, seen, seconds, data_wait
//!   sha256: SHA-256 of every other metadata pair (sorted by key) and every tensor (sorted by
//!   name: name, shape, little-endian bytes), checked on load, so a flipped byte or an edited
//!   header is refused
//! ```
//!
//! The header's keys are written in sorted order, so identical states give identical files.
//!
//! The weight-mirror state is the `B` tensors themselves (the mirror phase before training is
//! done once `epoch >= 1`). The random state is the seed and the epoch: every epoch re-seeds
//! the host generator of shuffling, augmentation and mirror noise (and the device's) from
//! `(run.seed, epoch)` (see
//! [`crate::train::epoch_seed`]), so nothing else is needed to repeat the rest of a run.

use crate::atomic::write_atomically;
use crate::config::{Config, ConfigError};
use crate::data::{Source, Sources};
use crate::train::{BestEpoch, EpochProgress, Trainer};
use biofeedback_core::Slot;
use biofeedback_core::tensor_io::to_vec;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use thiserror::Error;
use tracing::warn;

/// The value of the `format` metadata key.
pub const FORMAT: &str = "biofeedback-checkpoint-2";

/// The format before MLP layers were named as in `alignment.csv` (`model.0.*` for today's
/// `model.fc1.*`): read, its names translated after the checksum is verified.
pub const FORMAT_1: &str = "biofeedback-checkpoint-1";

/// `name` of a format-1 checkpoint in today's naming: `model.<k>.x` → `model.fc<k+1>.x` (the
/// same for `optim.`); ResNet names are unchanged.
fn format_1_name(name: &str) -> String {
    let mut parts = name.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(head @ ("model" | "optim")), Some(k), Some(rest)) => match k.parse::<usize>() {
            Ok(k) => format!("{head}.fc{}.{rest}", k + 1),
            Err(_) => name.to_string(),
        },
        _ => name.to_string(),
    }
}

/// A checkpoint that could not be written, read or applied.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a complete biofeedback checkpoint.
    #[error("checkpoint {path} is not a valid biofeedback checkpoint: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The checkpoint does not fit the network the config describes.
    #[error("checkpoint {path}: tensor {name}: {message}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// What was expected.
        message: String,
    },
    /// Resuming would change what the run was trained as.
    #[error(
        "checkpoint {path}: {what}; the run was trained with the checkpoint's values (resume \
         with --allow-changes to continue with the new ones anyway)"
    )]
    Changed {
        /// The file.
        path: PathBuf,
        /// Which keys changed, from what to what.
        what: String,
    },
    /// The data do not match what the checkpoint's network was trained on.
    #[error("checkpoint {path}: {what}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What differs.
        what: String,
    },
    /// The config stored in the checkpoint (with overrides) is invalid.
    #[error("checkpoint {path}: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: ConfigError,
    },
}

/// SHA-256 (hex) of `meta` (sorted by key, without `sha256`) and `tensors` (sorted by name:
/// name, shape, little-endian f32 bytes), each field length-prefixed.
fn digest(meta: &BTreeMap<String, String>, tensors: &BTreeMap<String, HostTensor>) -> String {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    for (k, v) in meta.iter().filter(|(k, _)| k.as_str() != "sha256") {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    for (name, t) in tensors {
        field(name.as_bytes());
        let shape: Vec<u8> = t
            .shape
            .iter()
            .flat_map(|d| (*d as u64).to_le_bytes())
            .collect();
        field(&shape);
        let data: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        field(&data);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `file` (a safetensors file) with its JSON header's keys in sorted order (the crate writes
/// metadata from a `HashMap`, in a random order), padded to the same length.
fn sorted_header(mut file: Vec<u8>) -> Vec<u8> {
    let n = u64::from_le_bytes(file[..8].try_into().expect("8 bytes")) as usize;
    let Ok(header) = serde_json::from_slice::<serde_json::Value>(&file[8..8 + n]) else {
        return file;
    };
    // serde_json's map is sorted by key.
    let Ok(mut sorted) = serde_json::to_vec(&header) else {
        return file;
    };
    if sorted.len() > n {
        return file;
    }
    sorted.resize(n, b' ');
    file[8..8 + n].copy_from_slice(&sorted);
    file
}

/// A tensor on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its elements, row-major.
    pub data: Vec<f32>,
}

/// `t` copied to the host.
fn host<const D: usize>(t: &Tensor<D>) -> HostTensor {
    HostTensor {
        shape: t.dims().to_vec(),
        data: to_vec(t.clone()),
    }
}

/// `t` on `device`; its shape was checked against the network's (rank `D`).
fn tensor<const D: usize>(t: HostTensor, device: &Device) -> Tensor<D> {
    let shape: [usize; D] = t
        .shape
        .try_into()
        .expect("the shape was checked against the network's");
    Tensor::from_data(TensorData::new(t.data, shape), device)
}

/// A checkpoint in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The file it came from (or goes to), for messages.
    pub path: PathBuf,
    /// Epochs completed.
    pub epoch: usize,
    /// The resolved config of the run, as TOML.
    pub config_toml: String,
    /// The project version that wrote it.
    pub version: String,
    /// The best epoch so far.
    pub best: Option<BestEpoch>,
    /// Progress into epoch `epoch + 1` (zero at an epoch boundary).
    pub progress: EpochProgress,
    /// The tensors by name.
    pub tensors: BTreeMap<String, HostTensor>,
    /// The data the run trained on: its training examples and class names (absent from
    /// checkpoints of earlier versions).
    pub data: Option<DataShape>,
}

/// What a checkpoint records of the data its run trained on, to refuse a resume on a training
/// set that changed (files added or removed) and an evaluation on other classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataShape {
    /// Examples of the training split.
    pub train_examples: usize,
    /// Class names in label order.
    pub classes: Vec<String>,
}

impl DataShape {
    /// The shape of the data `sources`.
    pub fn of(sources: &Sources) -> Self {
        Self {
            train_examples: sources.train.len(),
            classes: sources.test.class_names(),
        }
    }
}

/// How the class lists `now` and `then` (the checkpoint's) differ, if they do.
fn class_difference(now: &[String], then: &[String]) -> Option<String> {
    if now.len() != then.len() {
        return Some(format!(
            "the data have {} classes, the checkpoint's run had {}",
            now.len(),
            then.len()
        ));
    }
    let k = now.iter().zip(then).position(|(a, b)| a != b)?;
    Some(format!(
        "class {k} is `{}` in the data and `{}` in the checkpoint's run (the labels mean other \
         classes)",
        now[k], then[k]
    ))
}

impl Checkpoint {
    /// Captures the state of `trainer` (to be written to `path`): every tensor that
    /// [`crate::network::Network::visit`] names, velocities where they exist.
    pub fn capture(trainer: &Trainer, path: &Path) -> Self {
        let mut tensors = BTreeMap::new();
        // Tensors are handles: the clone shares their buffers.
        trainer.net.clone().visit(&mut |name, slot| {
            let t = match slot {
                Slot::R1(t) => Some(host(t)),
                Slot::R2(t) => Some(host(t)),
                Slot::R4(t) => Some(host(t)),
                Slot::State1(v, _) => v.as_ref().map(host),
                Slot::State2(v, _) => v.as_ref().map(host),
                Slot::State4(v, _) => v.as_ref().map(host),
            };
            if let Some(t) = t {
                tensors.insert(name.to_string(), t);
            }
        });
        Self {
            path: path.to_path_buf(),
            epoch: trainer.epochs_done,
            config_toml: trainer.config.to_toml(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            best: trainer.best,
            progress: trainer.progress,
            tensors,
            data: Some(DataShape::of(&trainer.data)),
        }
    }

    /// Writes the checkpoint to `self.path` atomically: a temporary file beside it is
    /// written and synced, then renamed over the old one, so an interrupted write leaves the
    /// previous checkpoint intact.
    pub fn save(&self) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: self.path.clone(),
            source,
        };
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let raw = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name.clone(), raw, t.shape.clone())
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(name, raw, shape)| {
                TensorView::new(Dtype::F32, shape.clone(), raw)
                    .map(|view| (name.as_str(), view))
                    .map_err(|e| CheckpointError::Format {
                        path: self.path.clone(),
                        message: format!("tensor {name}: {e}"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut meta = BTreeMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("version".to_string(), self.version.clone()),
            ("epoch".to_string(), self.epoch.to_string()),
            ("config".to_string(), self.config_toml.clone()),
        ]);
        if let Some(best) = self.best {
            meta.insert("best_epoch".into(), best.epoch.to_string());
            meta.insert("best_value".into(), best.value.to_string());
        }
        let p = &self.progress;
        if p.step > 0 {
            for (key, value) in [
                ("step", p.step.to_string()),
                ("loss_sum", p.loss_sum.to_string()),
                ("correct", p.correct.to_string()),
                ("seen", p.seen.to_string()),
                ("seconds", p.seconds.to_string()),
                ("data_wait", p.data_wait.to_string()),
            ] {
                meta.insert(key.into(), value);
            }
        }
        if let Some(data) = &self.data {
            meta.insert("train_examples".into(), data.train_examples.to_string());
            let classes =
                serde_json::to_string(&data.classes).map_err(|e| CheckpointError::Format {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?;
            meta.insert("classes".into(), classes);
        }
        for (name, t) in &self.tensors {
            if let Some(v) = t.data.iter().find(|v| !v.is_finite()) {
                return Err(CheckpointError::Format {
                    path: self.path.clone(),
                    message: format!("tensor {name} holds {v}: a diverged network is not saved"),
                });
            }
        }
        meta.insert("sha256".into(), digest(&meta, &self.tensors));
        let file = safetensors::serialize(views, Some(meta.into_iter().collect::<HashMap<_, _>>()))
            .map_err(|e| CheckpointError::Format {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        let file = sorted_header(file);
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        write_atomically(&self.path, &file).map_err(io)
    }

    /// Reads and checks the checkpoint at `path`.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = crate::files::read(path, crate::files::CHECKPOINT_BYTES).map_err(|source| {
            CheckpointError::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let format = |message: String| CheckpointError::Format {
            path: path.to_path_buf(),
            message,
        };
        let file = SafeTensors::deserialize(&bytes).map_err(|e| {
            format(format!(
                "{e} ({} bytes; a truncated or foreign file?)",
                bytes.len()
            ))
        })?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |key: &str| {
            meta.get(key)
                .cloned()
                .ok_or_else(|| format(format!("metadata key `{key}` is missing")))
        };
        let found = get("format")?;
        if found != FORMAT && found != FORMAT_1 {
            return Err(format(format!(
                "format is `{found}`, expected `{FORMAT}` (or `{FORMAT_1}`, which this version \
                 reads); it was written by biofeedback {}",
                meta.get("version")
                    .map_or("of unknown version", |v| v.as_str())
            )));
        }
        let number = |key: &str| -> Result<f64, CheckpointError> {
            let text = get(key)?;
            text.parse()
                .map_err(|_| format(format!("metadata `{key}` = `{text}` is not a number")))
        };
        let epoch = number("epoch")? as usize;
        let best = match meta.contains_key("best_epoch") {
            true => Some(BestEpoch {
                epoch: number("best_epoch")? as usize,
                value: number("best_value")?,
            }),
            false => None,
        };
        let progress = match meta.contains_key("step") {
            true => EpochProgress {
                step: number("step")? as usize,
                loss_sum: number("loss_sum")?,
                correct: number("correct")? as u64,
                seen: number("seen")? as u64,
                seconds: number("seconds")?,
                data_wait: number("data_wait")?,
            },
            false => EpochProgress::default(),
        };
        let data = match (meta.get("train_examples"), meta.get("classes")) {
            (Some(_), Some(classes)) => Some(DataShape {
                train_examples: number("train_examples")? as usize,
                classes: serde_json::from_str(classes).map_err(|e| {
                    format(format!("metadata `classes` is not a list of names: {e}"))
                })?,
            }),
            _ => None,
        };
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(format(format!(
                    "tensor {name} is {:?}, expected F32",
                    view.dtype()
                )));
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(
                name,
                HostTensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        let stored: BTreeMap<String, String> = meta
            .iter()
            .filter(|(k, _)| k.as_str() != "sha256")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match meta.get("sha256") {
            Some(sum) => {
                let computed = digest(&stored, &tensors);
                if *sum != computed {
                    return Err(format(format!(
                        "checksum mismatch (stored {sum}, computed {computed}): the file was \
                         changed or corrupted after it was written"
                    )));
                }
            }
            None => warn!(
                "checkpoint {} has no checksum (written before checksums existed)",
                path.display()
            ),
        }
        for (name, t) in &tensors {
            if let Some(v) = t.data.iter().find(|v| !v.is_finite()) {
                return Err(format(format!("tensor {name} holds {v}")));
            }
        }
        if found == FORMAT_1 {
            tensors = tensors
                .into_iter()
                .map(|(name, t)| (format_1_name(&name), t))
                .collect();
        }
        Ok(Self {
            path: path.to_path_buf(),
            epoch,
            config_toml: get("config")?,
            version: get("version")?,
            best,
            progress,
            tensors,
            data,
        })
    }

    /// Checks a resume on `sources`: the training split must hold as many examples as the
    /// run trained on, and the classes must be the same, in the same order, unless
    /// `allow_changes`. Checkpoints of earlier versions record neither.
    pub fn check_data(
        &self,
        sources: &Sources,
        allow_changes: bool,
    ) -> Result<(), CheckpointError> {
        let (Some(then), false) = (&self.data, allow_changes) else {
            return Ok(());
        };
        let now = DataShape::of(sources);
        let what = match class_difference(&now.classes, &then.classes) {
            Some(d) => d,
            None if now.train_examples != then.train_examples => format!(
                "the training split holds {} examples now and held {} (files added or removed \
                 under data.dir?)",
                now.train_examples, then.train_examples
            ),
            None => return Ok(()),
        };
        Err(CheckpointError::Changed {
            path: self.path.clone(),
            what,
        })
    }

    /// Checks that `set` (the data an evaluation reads) has the classes the checkpoint's run
    /// trained on, by name and order (where the checkpoint records them).
    pub fn check_classes(&self, set: &dyn Source) -> Result<(), CheckpointError> {
        let Some(then) = &self.data else {
            return Ok(());
        };
        match class_difference(&set.class_names(), &then.classes) {
            Some(what) => Err(CheckpointError::Data {
                path: self.path.clone(),
                what,
            }),
            None => Ok(()),
        }
    }

    /// The run's config stored in the checkpoint, with `overrides` applied and checked.
    pub fn config(&self, overrides: &[String]) -> Result<Config, CheckpointError> {
        Config::from_toml(&self.config_toml, &self.path, overrides).map_err(|source| {
            CheckpointError::Config {
                path: self.path.clone(),
                source,
            }
        })
    }

    /// Keys that a resumed run may change without changing what it trains: its length, where
    /// the data is and how it is loaded, how often it checkpoints.
    pub const RESUMABLE_KEYS: [&str; 9] = [
        "run.epochs",
        "data.dir",
        "data.workers",
        "data.prefetch",
        "data.image_folder.workers",
        "checkpoint.every",
        "checkpoint.every_steps",
        "checkpoint.every_minutes",
        "checkpoint.save_best",
    ];

    /// Checks a resume: the run directory's `config.toml` (`dir_config`) must be the
    /// checkpoint's own (not a checkpoint copied in from another run), and `resumed` (the
    /// checkpoint's config with the overrides of this invocation) may differ from it only in
    /// [`Checkpoint::RESUMABLE_KEYS`], unless `allow_changes`.
    pub fn check_resume(
        &self,
        dir_config: &Config,
        resumed: &Config,
        allow_changes: bool,
    ) -> Result<(), CheckpointError> {
        let own = self.config(&[])?;
        let list = |d: Vec<(String, String, String)>| {
            d.iter()
                .filter(|(k, _, _)| !Self::RESUMABLE_KEYS.contains(&k.as_str()))
                .map(|(k, a, b)| format!("{k} = {a} here, {b} there"))
                .collect::<Vec<_>>()
        };
        let foreign = list(own.differences(dir_config));
        if !foreign.is_empty() {
            return Err(CheckpointError::Changed {
                path: self.path.clone(),
                what: format!(
                    "does not belong to the run directory beside it (a checkpoint copied from \
                     another run?): {}",
                    foreign.join(", ").replace(" there", " in its config.toml")
                ),
            });
        }
        let changed = list(own.differences(resumed));
        if !changed.is_empty() && !allow_changes {
            return Err(CheckpointError::Changed {
                path: self.path.clone(),
                what: format!(
                    "--set changes {}",
                    changed
                        .join(", ")
                        .replace(" here,", " in the checkpoint,")
                        .replace(" there", " now")
                ),
            });
        }
        Ok(())
    }

    /// Puts the checkpoint's parameters, feedback tensors, optimizer state, epoch and best
    /// epoch into `trainer`, whose network must have the same shapes (on any device).
    pub fn restore(&self, trainer: &mut Trainer) -> Result<(), CheckpointError> {
        let device = trainer.device.clone();
        let mut used = BTreeSet::new();
        let mut failed = None;
        trainer.net.visit(&mut |name, slot| {
            used.insert(name.to_string());
            if failed.is_none() {
                failed = self.fill(name, slot, &device).err();
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some(extra) = self.tensors.keys().find(|name| !used.contains(*name)) {
            let message = match extra.starts_with("model.") && extra.ends_with(".feedback") {
                true => format!(
                    "a stored feedback tensor, but rule `{}` keeps none",
                    trainer.config.algorithm.rule
                ),
                false => format!("not part of this network ({})", trainer.net.describe()),
            };
            return Err(CheckpointError::Mismatch {
                path: self.path.clone(),
                name: extra.clone(),
                message,
            });
        }
        trainer.epochs_done = self.epoch;
        trainer.best = self.best;
        trainer.progress = self.progress;
        Ok(())
    }

    /// The tensor `name`, which must exist with `shape`.
    fn required(&self, name: &str, shape: &[usize]) -> Result<HostTensor, CheckpointError> {
        let mismatch = |message: String| CheckpointError::Mismatch {
            path: self.path.clone(),
            name: name.to_string(),
            message,
        };
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| mismatch("missing from the checkpoint".into()))?;
        if t.shape != shape {
            return Err(mismatch(format!(
                "shape {:?} in the checkpoint, the network has {:?}",
                t.shape, shape
            )));
        }
        Ok(t.clone())
    }

    /// Replaces the tensor in `slot` with the checkpoint's `name`: required for a model
    /// tensor, optional for optimizer state; either must have the network's shape.
    fn fill(&self, name: &str, slot: Slot<'_>, device: &Device) -> Result<(), CheckpointError> {
        match slot {
            Slot::R1(t) => *t = tensor(self.required(name, &t.dims())?, device),
            Slot::R2(t) => *t = tensor(self.required(name, &t.dims())?, device),
            Slot::R4(t) => *t = tensor(self.required(name, &t.dims())?, device),
            Slot::State1(v, shape) => *v = self.optional(name, &shape)?.map(|t| tensor(t, device)),
            Slot::State2(v, shape) => *v = self.optional(name, &shape)?.map(|t| tensor(t, device)),
            Slot::State4(v, shape) => *v = self.optional(name, &shape)?.map(|t| tensor(t, device)),
        }
        Ok(())
    }

    /// The tensor `name` with `shape`, if the checkpoint has it.
    fn optional(&self, name: &str, shape: &[usize]) -> Result<Option<HostTensor>, CheckpointError> {
        match self.tensors.contains_key(name) {
            true => self.required(name, shape).map(Some),
            false => Ok(None),
        }
    }
}
