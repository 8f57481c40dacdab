//! The training loop: engaged mode (forward, explicit backward through each layer's `B`,
//! SGD) and, for weight mirrors, mirror mode before training and after every minibatch.
//!
//! Batches come from the [`crate::data::loader`] on worker threads. The training loss and
//! accuracy accumulate on the device and are read to the host only every
//! [`READ_EVERY`] steps, at checkpoints and at the end of the epoch, so a GPU queue does not
//! stall on every step; a non-finite loss stops the run at the first read, naming the steps,
//! before anything is evaluated or saved.
//!
//! Everything random in an epoch is derived from `(run.seed, epoch)`: the shuffled order,
//! each example's crop and flip (from `(seed, epoch, batch, example)`), the mirror noise
//! after step `s` (from `(seed, epoch, s)`). So an epoch can be resumed at any step and
//! repeats the uninterrupted run bit for bit.

use crate::config::Config;
use crate::data::loader::{Batch, Batches, item_seed, read_batch};
use crate::data::{self, DataError, Source, Sources, Splits, across_classes};
use crate::network::Network;
use biofeedback_core::Rule;
use biofeedback_core::init::{Rng, seeded_rng};
use biofeedback_core::tensor_io::to_vec;
use biofeedback_models::Loss;
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use thiserror::Error;
use tracing::info;

/// Whether this process has logged its first training step.
static FIRST_STEP_LOGGED: AtomicBool = AtomicBool::new(false);

/// Steps between two reads of the device's loss and accuracy sums.
pub const READ_EVERY: usize = 50;

pub use crate::records::{BestEpoch, EpochMetrics, LayerAlignment};

/// What one epoch produced.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// Accuracy, loss and time.
    pub metrics: EpochMetrics,
    /// One entry per layer, input first.
    pub layers: Vec<LayerAlignment>,
}

impl From<crate::network::ShapeError> for TrainError {
    fn from(e: crate::network::ShapeError) -> Self {
        Self::Shape(e.0)
    }
}

/// A training run that could not go on.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The data could not be loaded.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The loss became NaN or infinite.
    #[error(
        "the training loss became {value} at epoch {epoch}, within steps {first}..={last}: \
         training diverged (lower optim.lr, or check the data)"
    )]
    NonFiniteLoss {
        /// Epoch, from 1.
        epoch: usize,
        /// The first step (from 1) since the last finite read.
        first: usize,
        /// The step of the read that found it.
        last: usize,
        /// The loss sum read.
        value: f64,
    },
    /// The training loss grew past `run.max_train_loss`.
    #[error(
        "the mean training loss of epoch {epoch} is {value:.4e}, above run.max_train_loss = \
         {bound:e}: training diverged (lower optim.lr, or raise the bound)"
    )]
    Diverged {
        /// Epoch, from 1.
        epoch: usize,
        /// The epoch's mean training loss.
        value: f64,
        /// The bound.
        bound: f64,
    },
    /// The network stopped being finite after the last read of the training loss (in the
    /// epoch's last steps): found before anything of the epoch is evaluated or recorded.
    #[error(
        "after epoch {epoch}, {what}: training diverged in the epoch's last steps (lower \
         optim.lr, or check the data); nothing of this epoch was recorded or saved"
    )]
    DivergedLate {
        /// Epoch, from 1.
        epoch: usize,
        /// What is not finite: a tensor, or the held-out loss.
        what: String,
    },
    /// A hook of the caller (a mid-epoch checkpoint) failed.
    #[error(transparent)]
    Hook(Box<dyn std::error::Error + Send + Sync>),
    /// The data does not fit the model.
    #[error("{0}")]
    Shape(String),
}

/// How far a run is into the epoch after [`Trainer::epochs_done`]: the steps done and the
/// sums of the figures so far (all zero at an epoch boundary). A mid-epoch checkpoint stores
/// it, so a resumed epoch reports what the uninterrupted one would.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EpochProgress {
    /// Training steps done in the epoch.
    pub step: usize,
    /// Sum over the steps done of the batch's mean loss times its size (an f32 sum of the
    /// device, held exactly).
    pub loss_sum: f64,
    /// Training examples classified correctly so far.
    pub correct: u64,
    /// Training examples seen so far.
    pub seen: u64,
    /// Training seconds so far.
    pub seconds: f64,
    /// Seconds spent waiting for data so far.
    pub data_wait: f64,
}

/// What an evaluation of a held-out set gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean loss over the examples read.
    pub loss: f64,
    /// Top-1 error over the examples read, percent.
    pub top1_error: f64,
    /// Top-5 error over the examples read, percent.
    pub top5_error: f64,
    /// Examples read.
    pub read: usize,
    /// Examples that could not be read (`on_bad_image = "skip"`).
    pub skipped: usize,
}

/// What the training part of an epoch gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainFigures {
    /// Mean training loss over the examples seen.
    pub loss: f64,
    /// Top-1 error over the examples as seen, percent.
    pub top1_error: f64,
    /// Examples seen.
    pub seen: u64,
    /// Wall seconds of the epoch's training.
    pub seconds: f64,
    /// Seconds waiting for the loader.
    pub data_wait: f64,
}

/// The state of a run: data, network, optimizer and random generator.
pub struct Trainer {
    /// The resolved config.
    pub config: Config,
    /// The device everything runs on.
    pub device: Device,
    /// Training and test data, read on demand.
    pub data: Sources,
    /// The network with its optimizer state.
    pub net: Network,
    /// Generator of the mirror phase before training (after the initialisation's draws).
    /// Epochs derive theirs from `(run.seed, epoch)`.
    pub rng: Rng,
    /// Epochs completed (0 before training; restored from a checkpoint on resume).
    pub epochs_done: usize,
    /// Progress inside the next epoch (restored from a mid-epoch checkpoint).
    pub progress: EpochProgress,
    /// The best epoch so far by `checkpoint.metric`.
    pub best: Option<BestEpoch>,
    loss: Loss,
    eval_x: Tensor<2>,
    eval_t: Tensor<2>,
}

impl Trainer {
    /// Opens the data (both splits) and builds the network the config describes on `device`.
    pub fn new(config: Config, device: Device) -> Result<Self, TrainError> {
        let data = data::open(&config.data, Splits::Both)?;
        Self::with_data(config, device, data)
    }

    /// A trainer for evaluating a checkpoint: only the held-out split is read, and the
    /// alignment batch is drawn from it.
    pub fn for_eval(config: Config, device: Device) -> Result<Self, TrainError> {
        let data = data::open(&config.data, Splits::Eval)?;
        Self::with_data(config, device, data)
    }

    /// Like [`Trainer::new`] with data already opened (an in-memory [`data::Split`] or
    /// [`Sources`]).
    pub fn with_data(
        config: Config,
        device: Device,
        data: impl Into<Sources>,
    ) -> Result<Self, TrainError> {
        let data: Sources = data.into();
        if data.train.is_empty() || data.test.is_empty() {
            return Err(TrainError::Shape(format!(
                "the data set is empty ({} training, {} test examples)",
                data.train.len(),
                data.test.len()
            )));
        }
        device.seed(config.run.seed);
        let mut rng = seeded_rng(config.run.seed);
        let net = Network::build(
            &config,
            data.train.shape(),
            data.train.classes(),
            &mut rng,
            &device,
        )?;
        // The fixed alignment batch: drawn across classes, read once through the
        // evaluation transform.
        let chosen = across_classes(data.train.as_ref(), config.metrics.eval_batch);
        let batch = read_batch(data.train.as_ref(), 0, &chosen, None)?;
        let mut skipped = Skipped::default();
        skipped.add(&batch);
        skipped.check("alignment-batch", batch.len(), 1.0)?;
        crate::data::loader::probe_workers(config.loader())?;
        let (eval_x, eval_t) = tensors(batch, data.train.as_ref(), &device);
        Ok(Self {
            loss: config.model.loss,
            config,
            device,
            data,
            net,
            rng,
            epochs_done: 0,
            progress: EpochProgress::default(),
            best: None,
            eval_x,
            eval_t,
        })
    }

    /// Runs every remaining epoch of the config (all of them on a fresh trainer, those after
    /// [`Trainer::epochs_done`] on a restored one), the mirror phase first for `wm`;
    /// `on_epoch` sees each report as soon as it exists (to write it, print it, stop early by
    /// returning an error).
    pub fn run<E: From<TrainError>>(
        &mut self,
        mut on_epoch: impl FnMut(&EpochReport) -> Result<(), E>,
    ) -> Result<Vec<EpochReport>, E> {
        self.run_with(|_, report| on_epoch(report))
    }

    /// Like [`Trainer::run`], with the trainer after each epoch passed to `on_epoch` as well
    /// (to checkpoint it).
    pub fn run_with<E: From<TrainError>>(
        &mut self,
        on_epoch: impl FnMut(&Self, &EpochReport) -> Result<(), E>,
    ) -> Result<Vec<EpochReport>, E> {
        self.run_hooked(|_| Ok(()), on_epoch)
    }

    /// Like [`Trainer::run_with`], and `on_checkpoint` sees the trainer inside an epoch
    /// whenever `checkpoint.every_steps` or `checkpoint.every_minutes` says a checkpoint is
    /// due (its [`Trainer::progress`] then says where in the epoch it is).
    pub fn run_hooked<E: From<TrainError>>(
        &mut self,
        mut on_checkpoint: impl FnMut(&Self) -> Result<(), E>,
        mut on_epoch: impl FnMut(&Self, &EpochReport) -> Result<(), E>,
    ) -> Result<Vec<EpochReport>, E> {
        if self.epochs_done == 0 && self.progress.step == 0 {
            self.mirror_phase();
        }
        let mut reports = Vec::new();
        for epoch in self.epochs_done + 1..=self.config.run.epochs {
            let train = self.train_epoch_hooked(epoch, &mut on_checkpoint)?;
            let report = self.report(epoch, train)?;
            self.epochs_done = epoch;
            self.progress = EpochProgress::default();
            let value = report.metrics.value(self.config.checkpoint.metric);
            if self.best.is_none_or(|b| value < b.value) {
                self.best = Some(BestEpoch { epoch, value });
            }
            on_epoch(self, &report)?;
            reports.push(report);
        }
        Ok(reports)
    }

    /// Steps per epoch: all batches of the training set, or `run.steps_per_epoch` if smaller.
    pub fn steps_per_epoch(&self) -> usize {
        let all = self.data.train.len().div_ceil(self.config.optim.batch_size);
        match self.config.run.steps_per_epoch {
            0 => all,
            cap => all.min(cap),
        }
    }

    /// The mirror steps before training (`wm` only): `mirror.steps_before` plus
    /// `mirror.epochs_before` epochs' worth of minibatches.
    pub fn mirror_phase(&mut self) {
        if self.config.algorithm.rule == Rule::Wm {
            let steps = self.config.mirror.steps_before
                + self.config.mirror.epochs_before * self.steps_per_epoch();
            let bar = progress(steps as u64, "mirror");
            for _ in 0..steps {
                self.mirror();
                bar.inc(1);
            }
            bar.finish_and_clear();
        }
    }

    /// One epoch of training followed by the test evaluation and the alignment metrics.
    pub fn epoch(&mut self, epoch: usize) -> Result<EpochReport, TrainError> {
        let train = self.train_epoch(epoch)?;
        self.report(epoch, train)
    }

    /// The report of epoch `epoch` after its training gave `train`; a loss past
    /// `run.max_train_loss` stops here, before anything is evaluated or recorded.
    fn report(&self, epoch: usize, train: TrainFigures) -> Result<EpochReport, TrainError> {
        let bound = self.config.run.max_train_loss;
        if bound > 0.0 && train.loss > bound {
            return Err(TrainError::Diverged {
                epoch,
                value: train.loss,
                bound,
            });
        }
        if let Some(name) = self.net.first_non_finite() {
            return Err(TrainError::DivergedLate {
                epoch,
                what: format!("tensor {name} holds a NaN or an infinity"),
            });
        }
        let test = self.evaluate(&self.data.test)?;
        if !test.loss.is_finite() {
            return Err(TrainError::DivergedLate {
                epoch,
                what: format!("the held-out loss is {}", test.loss),
            });
        }
        Ok(EpochReport {
            metrics: EpochMetrics {
                epoch,
                train_loss: train.loss,
                train_top1_error: train.top1_error,
                test_loss: test.loss,
                test_top1_error: test.top1_error,
                test_top5_error: test.top5_error,
                seconds: train.seconds,
                examples_per_second: train.seen as f64 / train.seconds,
                data_wait_seconds: train.data_wait,
            },
            layers: self.alignment(),
        })
    }

    /// Trains epoch `epoch` (from [`Trainer::progress`] on).
    pub fn train_epoch(&mut self, epoch: usize) -> Result<TrainFigures, TrainError> {
        self.train_epoch_hooked(epoch, &mut |_: &Self| Ok::<(), TrainError>(()))
    }

    /// The batches of epoch `epoch`: the training set in the order shuffled from the
    /// epoch's seed, cut into `optim.batch_size`, at most `run.steps_per_epoch` of them.
    pub fn epoch_plan(&self, epoch: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.data.train.len()).collect();
        if self.config.data.shuffle {
            order.shuffle(&mut seeded_rng(epoch_seed(self.config.run.seed, epoch)));
        }
        order
            .chunks(self.config.optim.batch_size)
            .take(self.steps_per_epoch())
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// Trains epoch `epoch` from step [`EpochProgress::step`], calling `on_checkpoint` when
    /// a mid-epoch checkpoint is due.
    pub fn train_epoch_hooked<E: From<TrainError>>(
        &mut self,
        epoch: usize,
        on_checkpoint: &mut impl FnMut(&Self) -> Result<(), E>,
    ) -> Result<TrainFigures, E> {
        let start = Instant::now();
        let seed = epoch_seed(self.config.run.seed, epoch);
        self.device.seed(seed);
        let plan = self.epoch_plan(epoch);
        let steps = plan.len();
        let first = self.progress.step;
        let at_start = self.progress;
        let train = self.data.train.clone();
        let mut batches =
            Batches::new(train.clone(), plan, first, Some(seed), self.config.loader());
        let schedule = self.config.lr_schedule();
        let mirror = self.config.mirror();
        let section = &self.config.mirror;
        // Mirror steps after minibatch `step`: more while the learning rate warms up, if asked.
        let mirror_steps = |step: usize| match self.config.algorithm.rule {
            Rule::Wm if schedule.warming_up(epoch, step, steps) => section
                .warmup_steps_per_batch
                .unwrap_or(section.steps_per_batch),
            Rule::Wm => section.steps_per_batch,
            _ => 0,
        };
        let mirror_seed = seed ^ 0x6D69_7272_6F72_0000;
        // brsf's |R| after step `s` comes from `(seed, s)`, so a resumed epoch repeats it.
        let redraw_seed = seed ^ 0x7265_6472_6177_0000;
        let bar = progress(steps as u64, &format!("epoch {epoch}"));
        bar.set_position(first as u64);
        let mut loss_sum = Tensor::<1>::from_data(
            TensorData::new(vec![self.progress.loss_sum as f32], [1]),
            &self.device,
        );
        let mut correct = Tensor::<1, Int>::from_data(
            TensorData::new(vec![self.progress.correct as i64], [1]),
            &self.device,
        );
        let mut seen = self.progress.seen;
        let mut skipped = Skipped::default();
        let mut last_read = first;
        let mut last_checkpoint = Instant::now();
        let every_steps = self.config.checkpoint.every_steps;
        let every_minutes = self.config.checkpoint.every_minutes;
        for step in first..steps {
            crate::faults::point("train.step").map_err(|e| TrainError::Hook(Box::new(e)))?;
            let batch = batches
                .next()
                .expect("the plan has this batch")
                .map_err(TrainError::from)?;
            skipped.add(&batch);
            if !batch.is_empty() {
                let n = batch.len();
                let (x, t) = tensors(batch, train.as_ref(), &self.device);
                let (logits, cache) = self.net.forward_train(x);
                correct = correct
                    + logits
                        .clone()
                        .argmax(1)
                        .equal(t.clone().argmax(1))
                        .int()
                        .sum();
                let (loss, dlogits) = self.loss.loss_and_grad(logits, t);
                loss_sum = loss_sum + loss * n as f32;
                seen += n as u64;
                self.net
                    .step(cache, dlogits, schedule.lr(epoch, step, steps));
                if self.net.redraws() {
                    self.net
                        .redraw(&mut seeded_rng(item_seed(redraw_seed, step, 0)));
                }
            }
            if step == first && !FIRST_STEP_LOGGED.swap(true, Ordering::Relaxed) {
                info!(
                    "first training step done ({:.1} s in its epoch, {:.1} s of it waiting for data)",
                    start.elapsed().as_secs_f64(),
                    batches.waited().as_secs_f64()
                );
            }
            if (step + 1) % self.config.mirror.every == 0 {
                let mut rng = seeded_rng(item_seed(mirror_seed, step, 0));
                for _ in 0..mirror_steps(step) {
                    self.net.mirror(&mirror, self.loss, &mut rng);
                }
            }
            let done = step + 1;
            let due = done < steps
                && ((every_steps > 0 && done.is_multiple_of(every_steps))
                    || (every_minutes > 0.0
                        && last_checkpoint.elapsed().as_secs_f64() >= 60.0 * every_minutes));
            if due || done == steps || done - last_read >= READ_EVERY {
                let sum = to_vec(loss_sum.clone())[0];
                if !sum.is_finite() {
                    return Err(TrainError::NonFiniteLoss {
                        epoch,
                        first: last_read + 1,
                        last: done,
                        value: sum as f64,
                    }
                    .into());
                }
                last_read = done;
                let wait = batches.waited().as_secs_f64();
                bar.set_message(format!(
                    "epoch {epoch} data wait {:.0}%",
                    100.0 * wait / (at_start.seconds + start.elapsed().as_secs_f64()).max(1e-9)
                ));
                if due {
                    self.progress = EpochProgress {
                        step: done,
                        loss_sum: sum as f64,
                        correct: correct.clone().into_scalar::<i64>() as u64,
                        seen,
                        seconds: at_start.seconds + start.elapsed().as_secs_f64(),
                        data_wait: at_start.data_wait + wait,
                    };
                    on_checkpoint(self)?;
                    last_checkpoint = Instant::now();
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        skipped
            .check(
                "training",
                (seen - at_start.seen) as usize,
                self.config.data.image_folder.max_skipped,
            )
            .map_err(TrainError::from)?;
        let loss_total = to_vec(loss_sum)[0] as f64;
        let correct = correct.into_scalar::<i64>() as f64;
        let n = seen.max(1) as f64;
        self.progress = EpochProgress::default();
        Ok(TrainFigures {
            loss: loss_total / n,
            top1_error: 100.0 * (1.0 - correct / n),
            seen,
            seconds: at_start.seconds + start.elapsed().as_secs_f64(),
            data_wait: at_start.data_wait + batches.waited().as_secs_f64(),
        })
    }

    /// One mirror step for every layer, input first.
    pub fn mirror(&mut self) {
        self.net
            .mirror(&self.config.mirror(), self.loss, &mut self.rng);
    }

    /// Mean loss, top-1 and top-5 error (percent) of the network on `set`, read through the
    /// evaluation transform by the loader. A tie with the true class's output, or a NaN
    /// output, counts as an error. A set of which nothing could be read, or more than
    /// `data.image_folder.max_skipped` of it, is an error ([`DataError::Unreadable`]): an
    /// evaluation of no examples is not a result.
    pub fn evaluate(&self, set: &Arc<dyn Source>) -> Result<Evaluation, DataError> {
        let (mut loss, mut top1, mut top5, mut n) = (0.0, 0usize, 0usize, 0usize);
        let mut skipped = Skipped::default();
        let classes = set.classes();
        let plan = data::loader::sequential_plan(set.len(), self.net.eval_chunk());
        for batch in Batches::new(set.clone(), plan, 0, None, self.config.loader()) {
            let batch = batch?;
            skipped.add(&batch);
            if batch.is_empty() {
                continue;
            }
            let x = matrix(batch.x, batch.labels.len(), set.dim(), &self.device);
            let logits = to_vec(self.net.forward(x));
            for (row, &label) in logits.chunks_exact(classes).zip(&batch.labels) {
                loss += self.loss.example_loss(row, label);
                let above = outranked(row, label);
                top1 += usize::from(above >= 1);
                top5 += usize::from(above >= 5);
            }
            n += batch.labels.len();
        }
        skipped.check("held-out", n, self.config.data.image_folder.max_skipped)?;
        let read = n;
        let n = n.max(1) as f64;
        Ok(Evaluation {
            loss: loss / n,
            top1_error: 100.0 * top1 as f64 / n,
            top5_error: 100.0 * top5 as f64 / n,
            read,
            skipped: skipped.count,
        })
    }

    /// The fixed alignment batch: inputs `[n, dim]` and one-hot targets `[n, classes]`.
    pub fn alignment_batch(&self) -> (&Tensor<2>, &Tensor<2>) {
        (&self.eval_x, &self.eval_t)
    }

    /// Weight angles, delta angles and norm ratios of every layer on the fixed alignment
    /// batch (SPEC section 4).
    pub fn alignment(&self) -> Vec<LayerAlignment> {
        self.net
            .alignment(self.loss, self.eval_x.clone(), self.eval_t.clone())
    }
}

/// The examples of a pass that could not be read, and the first one's reason.
#[derive(Debug, Default)]
struct Skipped {
    count: usize,
    first: Option<String>,
}

impl Skipped {
    /// Counts the examples `batch` left out.
    fn add(&mut self, batch: &Batch) {
        self.count += batch.skipped.len();
        if self.first.is_none() {
            self.first = batch.skipped.first().cloned();
        }
    }

    /// Refuses a pass over the `split` split that read nothing, or skipped more than the
    /// fraction `max` of its examples.
    fn check(&self, split: &'static str, read: usize, max: f64) -> Result<(), DataError> {
        let total = read + self.count;
        let over = self.count > 0 && (read == 0 || self.count as f64 > max * total as f64);
        match over {
            true => Err(DataError::Unreadable {
                split,
                skipped: self.count,
                total,
                max,
                first: self.first.clone().unwrap_or_default(),
            }),
            false => Ok(()),
        }
    }
}

/// How many classes rank at or above `label` in the outputs `row` (other than `label`
/// itself): ties and NaN outputs (no ordering with the true class's) count, so an example is
/// right at top-k only when fewer than `k` classes outrank it strictly or unorderably.
pub fn outranked(row: &[f32], label: usize) -> usize {
    let own = row[label];
    row.iter()
        .enumerate()
        .filter(|&(k, &z)| k != label && z.partial_cmp(&own) != Some(std::cmp::Ordering::Less))
        .count()
}

/// The inputs `[n, dim]` and one-hot targets `[n, classes]` of `batch` on `device`.
fn tensors(batch: Batch, source: &dyn Source, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let classes = source.classes();
    let (n, t) = (batch.len(), batch.one_hot(classes));
    (
        matrix(batch.x, n, source.dim(), device),
        matrix(t, n, classes, device),
    )
}

/// The seed of epoch `epoch` of a run seeded with `seed` (SplitMix64 of the pair), distinct
/// from the initialisation's `seed`.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A `[rows, cols]` tensor from host values.
fn matrix(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_counts_ties_and_nan_against_the_true_class() {
        let row = [0.1, 0.5, 0.3, -1.0, 0.2, 0.0, 0.4];
        assert_eq!(outranked(&row, 1), 0, "the largest output");
        assert_eq!(
            outranked(&row, 2),
            2,
            "0.5 and 0.4 above: top-1 wrong, top-5 right"
        );
        assert_eq!(outranked(&row, 3), 6, "the smallest: wrong at top-5 too");
        assert_eq!(outranked(&[1.0, 1.0, 0.0], 0), 1, "a tie is an error");
        assert_eq!(outranked(&[f32::NAN, 0.0, 0.0], 1), 2, "NaN and the tie");
        assert_eq!(outranked(&[0.0, f32::NAN], 1), 1, "a NaN true output");
    }
}
