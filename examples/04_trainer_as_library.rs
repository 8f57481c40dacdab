//! The trainer used as a library: a shipped experiment file, overridden as `--set` would,
//! trained on MNIST, with each epoch's report in hand (metrics and per-layer alignment).
//!
//! `cargo run --release --example 04_trainer_as_library -- [DATA_ROOT]`
//!
//! `DATA_ROOT` holds `mnist/` (default: `$BIOFEEDBACK_DATA`, else the cache directory; fetch
//! it with `biofeedback data download mnist`).

use anyhow::Context;
use biofeedback::trainer::config::Config;
use biofeedback::trainer::data::{self, root::DataRoot};
use biofeedback::trainer::train::{TrainError, Trainer};
use burn::tensor::Device;
use std::path::{Path, PathBuf};

fn main() -> anyhow::Result<()> {
    let flag = std::env::args().nth(1).map(PathBuf::from);
    let overrides = ["run.epochs=2", "model.hidden=[100]", "algorithm.rule=kp"].map(String::from);
    let mut config = Config::load(Path::new("configs/mnist-mlp-kp.toml"), &overrides)?;
    let root = DataRoot::resolve(flag.as_deref())?;
    data::resolve_dir(&mut config.data, &root).context("biofeedback data download mnist")?;
    let mut trainer = Trainer::new(config, Device::flex())?;
    trainer.run(|report| {
        let m = &report.metrics;
        println!(
            "epoch {}: test error {:.2}%, loss {:.4}",
            m.epoch, m.test_top1_error, m.test_loss
        );
        for layer in &report.layers {
            println!(
                "  {}: weight angle {:.1}, delta angle {:.1}, |B|/|W| {:.2}",
                layer.layer, layer.weight_angle_deg, layer.delta_angle_global_deg, layer.norm_ratio
            );
        }
        Ok::<_, TrainError>(())
    })?;
    Ok(())
}
