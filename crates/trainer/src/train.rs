//! The training loop: engaged mode (forward, explicit backward through each layer's `B`,
//! SGD) and, for weight mirrors, mirror mode before training and after every minibatch.

use crate::config::{BestMetric, Config};
use crate::data::{self, DataError, Dataset, Split};
use crate::network::Network;
use biofeedback_core::Rule;
use biofeedback_core::init::{Rng, seeded_rng};
use biofeedback_core::tensor_io::{scalar, to_vec};
use biofeedback_models::Loss;
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use std::time::Instant;
use thiserror::Error;

/// Figures of one epoch (errors in percent).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's minibatches.
    pub train_loss: f64,
    /// Top-1 error on the training minibatches as they were seen, in percent.
    pub train_top1_error: f64,
    /// Mean test loss.
    pub test_loss: f64,
    /// Test top-1 error, percent.
    pub test_top1_error: f64,
    /// Test top-5 error, percent.
    pub test_top5_error: f64,
    /// Wall time of the epoch's training (mirror steps included), seconds.
    pub seconds: f64,
    /// Training examples per second.
    pub examples_per_second: f64,
}

impl EpochMetrics {
    /// The value of `metric` in this epoch (lower is better).
    pub fn value(&self, metric: BestMetric) -> f64 {
        match metric {
            BestMetric::TestTop1Error => self.test_top1_error,
            BestMetric::TestTop5Error => self.test_top5_error,
            BestMetric::TestLoss => self.test_loss,
            BestMetric::TrainLoss => self.train_loss,
        }
    }
}

/// The best epoch so far by the config's `checkpoint.metric`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BestEpoch {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// The metric's value then.
    pub value: f64,
}

/// Alignment of one layer's feedback with backprop (SPEC section 4), in degrees.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerAlignment {
    /// Layer name (`fc1`, `fc2`, ...).
    pub layer: String,
    /// Angle between `vec(B)` and `vec(W^T)`.
    pub weight_angle_deg: f64,
    /// Angle between the rule's `delta` at this layer's input and exact backprop's, on the
    /// fixed evaluation batch (whole batch as one vector).
    pub delta_angle_global_deg: f64,
    /// Angle between the same upstream `delta` sent through `B` and through `W^T`.
    pub delta_angle_local_deg: f64,
    /// `|B| / |W|`.
    pub norm_ratio: f64,
}

/// What one epoch produced.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// Accuracy, loss and time.
    pub metrics: EpochMetrics,
    /// One entry per layer, input first.
    pub layers: Vec<LayerAlignment>,
}

/// A training run that could not go on.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The data could not be loaded.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The loss became NaN or infinite.
    #[error(
        "the training loss became {value} at epoch {epoch}, step {step}: training diverged \
         (lower optim.lr, or check the data)"
    )]
    NonFiniteLoss {
        /// Epoch, from 1.
        epoch: usize,
        /// Step within the epoch, from 1.
        step: usize,
        /// The loss value.
        value: f64,
    },
    /// The data does not fit the model.
    #[error("{0}")]
    Shape(String),
}

/// The state of a run: data, network, optimizer and random generator.
pub struct Trainer {
    /// The resolved config.
    pub config: Config,
    /// The device everything runs on.
    pub device: Device,
    /// Training and test data on the host.
    pub data: Split,
    /// The network with its optimizer state.
    pub net: Network,
    /// Generator of shuffling, augmentation and mirror noise, re-seeded from
    /// `(run.seed, epoch)` at the start of every epoch. Host-side, so a run depends on
    /// nothing another thread draws.
    pub rng: Rng,
    /// Epochs completed (0 before training; restored from a checkpoint on resume).
    pub epochs_done: usize,
    /// The best epoch so far by `checkpoint.metric`.
    pub best: Option<BestEpoch>,
    loss: Loss,
    eval_x: Tensor<2>,
    eval_t: Tensor<2>,
}

impl Trainer {
    /// Loads the data and builds the network the config describes on `device`.
    pub fn new(config: Config, device: Device) -> Result<Self, TrainError> {
        let data = data::load(&config.data)?;
        Self::with_data(config, device, data)
    }

    /// Like [`Trainer::new`] with data already in memory.
    pub fn with_data(config: Config, device: Device, data: Split) -> Result<Self, TrainError> {
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
            data.train.classes,
            &mut rng,
            &device,
        )?;
        let n_eval = config.metrics.eval_batch.min(data.train.len());
        let (x, t) = data.train.gather(&(0..n_eval).collect::<Vec<_>>());
        let eval_x = matrix(x, n_eval, data.train.dim, &device);
        let eval_t = matrix(t, n_eval, data.train.classes, &device);
        Ok(Self {
            loss: config.model.loss,
            config,
            device,
            data,
            net,
            rng,
            epochs_done: 0,
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
        mut on_epoch: impl FnMut(&Self, &EpochReport) -> Result<(), E>,
    ) -> Result<Vec<EpochReport>, E> {
        if self.epochs_done == 0 {
            self.mirror_phase();
        }
        let mut reports = Vec::new();
        for epoch in self.epochs_done + 1..=self.config.run.epochs {
            let report = self.epoch(epoch)?;
            self.epochs_done = epoch;
            let value = report.metrics.value(self.config.checkpoint.metric);
            if self.best.is_none_or(|b| value < b.value) {
                self.best = Some(BestEpoch { epoch, value });
            }
            on_epoch(self, &report)?;
            reports.push(report);
        }
        Ok(reports)
    }

    /// The mirror steps before training (`wm` only): `mirror.steps_before` plus
    /// `mirror.epochs_before` epochs' worth of minibatches.
    pub fn mirror_phase(&mut self) {
        if self.config.algorithm.rule == Rule::Wm {
            let per_epoch = self.data.train.len().div_ceil(self.config.optim.batch_size);
            let steps =
                self.config.mirror.steps_before + self.config.mirror.epochs_before * per_epoch;
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
        let (train_loss, train_top1_error, seconds) = self.train_epoch(epoch)?;
        let (test_loss, test_top1_error, test_top5_error) = self.evaluate(&self.data.test);
        let n = self.data.train.len() as f64;
        Ok(EpochReport {
            metrics: EpochMetrics {
                epoch,
                train_loss,
                train_top1_error,
                test_loss,
                test_top1_error,
                test_top5_error,
                seconds,
                examples_per_second: n / seconds,
            },
            layers: self.alignment(),
        })
    }

    /// Trains one epoch; returns the mean loss, the top-1 error (percent) over the batches
    /// as seen, and the seconds taken.
    ///
    /// The host generator (shuffling, augmentation, mirror noise) and the device's are
    /// re-seeded from
    /// `(run.seed, epoch)` first, so an epoch depends only on the parameters and optimizer
    /// state it starts from: a run resumed from a checkpoint repeats the uninterrupted run.
    pub fn train_epoch(&mut self, epoch: usize) -> Result<(f64, f64, f64), TrainError> {
        let start = Instant::now();
        let seed = epoch_seed(self.config.run.seed, epoch);
        self.rng = seeded_rng(seed);
        self.device.seed(seed);
        let train = &self.data.train;
        let mut order: Vec<usize> = (0..train.len()).collect();
        if self.config.data.shuffle {
            order.shuffle(&mut self.rng);
        }
        let batch = self.config.optim.batch_size;
        let schedule = self.config.lr_schedule();
        let steps = order.len().div_ceil(batch);
        let mirror = self.config.mirror();
        let mirror_steps = match self.config.algorithm.rule {
            Rule::Wm => self.config.mirror.steps_per_batch,
            _ => 0,
        };
        let bar = progress(steps as u64, &format!("epoch {epoch}"));
        let mut loss_sum = 0.0;
        let mut correct = Tensor::<1, Int>::zeros([1], &self.device);
        for (step, indices) in order.chunks(batch).enumerate() {
            let (x, t) = train.gather_train(indices, &mut self.rng);
            let x = matrix(x, indices.len(), train.dim, &self.device);
            let t = matrix(t, indices.len(), train.classes, &self.device);
            let (logits, cache) = self.net.forward_train(x);
            correct = correct
                + logits
                    .clone()
                    .argmax(1)
                    .equal(t.clone().argmax(1))
                    .int()
                    .sum();
            let (loss, dlogits) = self.loss.loss_and_grad(logits, t);
            let loss = scalar(loss);
            if !loss.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    epoch,
                    step: step + 1,
                    value: loss,
                });
            }
            loss_sum += loss * indices.len() as f64;
            self.net
                .step(cache, dlogits, schedule.lr(epoch, step, steps));
            if (step + 1) % self.config.mirror.every == 0 {
                for _ in 0..mirror_steps {
                    self.net.mirror(&mirror, self.loss, &mut self.rng);
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let n = train.len() as f64;
        let correct = correct.into_scalar::<i64>() as f64;
        Ok((
            loss_sum / n,
            100.0 * (1.0 - correct / n),
            start.elapsed().as_secs_f64(),
        ))
    }

    /// One mirror step for every layer, input first.
    pub fn mirror(&mut self) {
        self.net
            .mirror(&self.config.mirror(), self.loss, &mut self.rng);
    }

    /// Mean loss, top-1 and top-5 error (percent) of the network on `set`.
    pub fn evaluate(&self, set: &Dataset) -> (f64, f64, f64) {
        let (mut loss, mut top1, mut top5) = (0.0, 0usize, 0usize);
        let indices: Vec<usize> = (0..set.len()).collect();
        for chunk in indices.chunks(self.net.eval_chunk()) {
            let (x, _) = set.gather(chunk);
            let logits = to_vec(
                self.net
                    .forward(matrix(x, chunk.len(), set.dim, &self.device)),
            );
            for (row, &i) in logits.chunks_exact(set.classes).zip(chunk) {
                let label = set.labels[i] as usize;
                loss += self.loss.example_loss(row, label);
                let above = row.iter().filter(|&&z| z > row[label]).count();
                top1 += usize::from(above >= 1);
                top5 += usize::from(above >= 5);
            }
        }
        let n = set.len() as f64;
        (loss / n, 100.0 * top1 as f64 / n, 100.0 * top5 as f64 / n)
    }

    /// Weight angles, delta angles and norm ratios of every layer on the fixed evaluation
    /// batch (SPEC section 4).
    pub fn alignment(&self) -> Vec<LayerAlignment> {
        self.net
            .alignment(self.loss, self.eval_x.clone(), self.eval_t.clone())
    }
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
