//! `biofeedback bench`: training throughput on synthetic batches, as timm's `benchmark.py`
//! measures it.
//!
//! For each rule: the network is built from the defaults of the config (with the model,
//! stem, width and rule asked for), one fixed batch of `N(0, 1)` images and cyclic labels is
//! put on the device, `warmup` training steps run (kernel compilation, autotune), then
//! `rounds` blocks of `steps / rounds` steps are timed, each ended by reading the loss back
//! (so the device's queue is drained). A step is what the trainer does per minibatch:
//! forward with train-mode BatchNorm, the rule's own backward, SGD with momentum (and for
//! `wm`, the mirror steps that follow each minibatch with the default schedule). Images per
//! second is `batch * steps_in_block / seconds` per block; the table gives the median and the
//! range over blocks.

use crate::config::{Config, ModelKind};
use crate::device::DeviceInfo;
use crate::network::Network;
use crate::train::TrainError;
use biofeedback_core::Rule;
use biofeedback_core::init::seeded_rng;
use biofeedback_core::tensor_io::to_vec;
use biofeedback_models::Stem;
use burn::tensor::{Device, Tensor, TensorData};
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use std::time::Instant;

/// What to measure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchSpec {
    /// `mlp`, `resnet18` or `resnet50`.
    pub model: ModelKind,
    /// Side of the square images (ResNets; an MLP takes 28x28 gray images).
    pub image_size: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Timed steps, split into `rounds` blocks.
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed blocks (at least 1).
    pub rounds: usize,
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// ResNet width (channels of the stem and layer1).
    pub width: usize,
    /// ResNet stem.
    pub stem: Stem,
    /// Number of classes.
    pub classes: usize,
}

/// One rule's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRow {
    /// The rule.
    pub rule: String,
    /// Median seconds per step over the blocks.
    pub seconds_per_step: f64,
    /// Median images per second over the blocks.
    pub images_per_second: f64,
    /// Slowest block's images per second.
    pub images_per_second_min: f64,
    /// Fastest block's images per second.
    pub images_per_second_max: f64,
    /// Time per step relative to `bp` (when `bp` was measured).
    pub time_vs_bp: Option<f64>,
}

/// A whole bench: what ran where, and the rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// The device.
    pub device: DeviceInfo,
    /// The project version.
    pub version: String,
    /// What was measured.
    pub spec: BenchSpec,
    /// One row per rule.
    pub rows: Vec<BenchRow>,
}

/// The config a bench of `rule` builds its network from.
pub fn bench_config(spec: &BenchSpec, rule: Rule) -> Config {
    let mut config = Config::default();
    config.model.kind = spec.model;
    config.model.width = spec.width;
    config.model.stem = spec.stem;
    config.optim.batch_size = spec.batch_size;
    config.optim.momentum = 0.9;
    config.optim.nesterov = true;
    config.optim.weight_decay = 1e-4;
    config.algorithm.rule = rule;
    config
}

/// The input shape of `spec`'s model: `[channels, side, side]`.
fn shape(spec: &BenchSpec) -> [usize; 3] {
    match spec.model {
        ModelKind::Mlp => [1, 28, 28],
        _ => [3, spec.image_size, spec.image_size],
    }
}

/// Runs the bench on `device`, calling `progress` with each finished row.
pub fn run(
    spec: &BenchSpec,
    device: &Device,
    info: DeviceInfo,
    mut progress: impl FnMut(&BenchRow),
) -> Result<BenchReport, TrainError> {
    let [c, h, w] = shape(spec);
    let dim = c * h * w;
    let n = spec.batch_size;
    let mut rng = seeded_rng(1);
    let values: Vec<f32> = (0..n * dim)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let x = Tensor::<2>::from_data(TensorData::new(values, [n, dim]), device);
    let mut onehot = vec![0.0f32; n * spec.classes];
    for row in 0..n {
        onehot[row * spec.classes + row % spec.classes] = 1.0;
    }
    let t = Tensor::<2>::from_data(TensorData::new(onehot, [n, spec.classes]), device);
    let rounds = spec.rounds.clamp(1, spec.steps.max(1));
    let per_round = spec.steps.max(1).div_ceil(rounds);
    let mut rows: Vec<BenchRow> = Vec::new();
    for &rule in &spec.rules {
        let config = bench_config(spec, rule);
        let mut net = Network::build(&config, [c, h, w], spec.classes, &mut rng, device)?;
        let mirror = config.mirror();
        let mirror_steps = match rule {
            Rule::Wm => config.mirror.steps_per_batch,
            _ => 0,
        };
        let loss_kind = config.model.loss;
        let mut step = |net: &mut Network| {
            let (logits, cache) = net.forward_train(x.clone());
            let (loss, dlogits) = loss_kind.loss_and_grad(logits, t.clone());
            net.step(cache, dlogits, 1e-3);
            for _ in 0..mirror_steps {
                net.mirror(&mirror, loss_kind, &mut rng);
            }
            loss
        };
        for _ in 0..spec.warmup {
            step(&mut net);
        }
        // Drain the queue before timing.
        let _ = to_vec(step(&mut net));
        let mut rates = Vec::with_capacity(rounds);
        let mut per_step = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let start = Instant::now();
            let mut last = None;
            for _ in 0..per_round {
                last = Some(step(&mut net));
            }
            let loss = to_vec(last.expect("at least one step"))[0];
            let seconds = start.elapsed().as_secs_f64();
            if !loss.is_finite() {
                return Err(TrainError::Shape(format!(
                    "bench of {rule}: the loss became {loss} on synthetic data"
                )));
            }
            per_step.push(seconds / per_round as f64);
            rates.push((n * per_round) as f64 / seconds);
        }
        let (rate, low, high) = median_and_range(&mut rates);
        let (seconds, _, _) = median_and_range(&mut per_step);
        let bp = rows
            .iter()
            .find(|r| r.rule == "bp")
            .map(|r| r.seconds_per_step);
        let row = BenchRow {
            rule: rule.name().to_string(),
            seconds_per_step: seconds,
            images_per_second: rate,
            images_per_second_min: low,
            images_per_second_max: high,
            time_vs_bp: match rule {
                Rule::Bp => Some(1.0),
                _ => bp.map(|bp| seconds / bp),
            },
        };
        progress(&row);
        rows.push(row);
    }
    Ok(BenchReport {
        device: info,
        version: env!("CARGO_PKG_VERSION").to_string(),
        spec: spec.clone(),
        rows,
    })
}

/// The median, smallest and largest of `values`.
fn median_and_range(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = match n % 2 {
        1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    };
    (median, values[0], values[n - 1])
}

impl BenchReport {
    /// The report as a Markdown table, the device and the settings above it.
    pub fn markdown(&self) -> String {
        let s = &self.spec;
        let model = match s.model {
            ModelKind::Mlp => "mlp 784-500-10".to_string(),
            kind => format!(
                "{} (width {}, {:?} stem)",
                toml::Value::try_from(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                s.width,
                s.stem
            ),
        }
        .to_lowercase();
        let [c, h, w] = shape(s);
        let mut out = format!(
            "biofeedback {} bench on {}\n{model}, input {c}x{h}x{w}, batch {}, {} classes, {} warm-up \
             + {} timed steps in {} blocks, synthetic data\n\n",
            self.version,
            self.device,
            s.batch_size,
            s.classes,
            s.warmup,
            s.steps,
            s.rounds.max(1)
        );
        out.push_str("| rule | s/step | img/s | img/s range | time vs bp |\n");
        out.push_str("|---|---:|---:|---:|---:|\n");
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {:.4} | {:.1} | {:.1}-{:.1} | {} |\n",
                r.rule,
                r.seconds_per_step,
                r.images_per_second,
                r.images_per_second_min,
                r.images_per_second_max,
                r.time_vs_bp.map_or("-".to_string(), |v| format!("{v:.2}x"))
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceChoice;

    #[test]
    fn a_tiny_bench_times_every_rule_and_relates_them_to_backprop() {
        let spec = BenchSpec {
            model: ModelKind::ResNet18,
            image_size: 16,
            batch_size: 4,
            steps: 4,
            warmup: 1,
            rounds: 2,
            rules: vec![Rule::Bp, Rule::Fa, Rule::Wm],
            width: 2,
            stem: Stem::Cifar,
            classes: 10,
        };
        let device = Device::flex();
        let info = DeviceChoice::Cpu.describe(&device);
        let mut seen = 0;
        let report = run(&spec, &device, info, |_| seen += 1).unwrap();
        assert_eq!(seen, 3);
        assert_eq!(report.rows[0].time_vs_bp, Some(1.0));
        let wm = &report.rows[2];
        assert!(wm.images_per_second > 0.0 && wm.time_vs_bp.is_some());
        assert!(wm.images_per_second_min <= wm.images_per_second);
        let table = report.markdown();
        assert!(table.contains("| rule | s/step | img/s |"), "{table}");
        assert!(table.contains("cpu (flex): host CPU"), "{table}");
        assert_eq!(table.lines().filter(|l| l.starts_with("| ")).count(), 4);
    }
}
