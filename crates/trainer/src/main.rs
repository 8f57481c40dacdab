//! `biofeedback`: train networks without weight transport.

use anyhow::{Context, Result};
use biofeedback_trainer::config::Config;
use biofeedback_trainer::device::DeviceChoice;
use biofeedback_trainer::run_dir::{self, RunDir};
use biofeedback_trainer::train::Trainer;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tracing::info;

/// Deep learning without weight transport: backprop, feedback alignment, sign symmetry,
/// weight mirrors and Kolen-Pollack, with per-layer alignment metrics.
#[derive(Debug, Parser)]
#[command(name = "biofeedback", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a network from a TOML experiment file.
    Train {
        /// The experiment file, e.g. configs/mnist-mlp-kp.toml.
        #[arg(long)]
        config: PathBuf,
        /// Override a config key, e.g. --set optim.lr=0.1 (repeatable).
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        overrides: Vec<String>,
        /// Where tensors live.
        #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
        device: DeviceChoice,
        /// Run directory (default: runs/<run.name>, suffixed if it exists).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,biofeedback=info,biofeedback_trainer=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            config,
            overrides,
            device,
            out,
        } => train(config, overrides, device, out),
    }
}

fn train(
    config_path: PathBuf,
    overrides: Vec<String>,
    device: DeviceChoice,
    out: Option<PathBuf>,
) -> Result<()> {
    let config = Config::load(&config_path, &overrides)?;
    let out = out.unwrap_or_else(|| run_dir::fresh_run_dir("runs".as_ref(), &config.run.name));
    let epochs = config.run.epochs;
    info!(
        "{}: rule {} on {:?}, device {:?}",
        config.run.name, config.algorithm.rule, config.data.dataset, device
    );
    let device = device.create()?;
    let mut trainer = Trainer::new(config, device)?;
    info!(
        "data: {} training, {} test examples; network {:?}",
        trainer.data.train.len(),
        trainer.data.test.len(),
        trainer
            .config
            .mlp(trainer.data.train.dim, trainer.data.train.classes)
            .widths()
    );
    let mut dir = RunDir::create(&out, &trainer.config)
        .with_context(|| format!("cannot create run directory {}", out.display()))?;
    trainer.run(|report| -> Result<()> {
        info!("{}", run_dir::summary_line(report, epochs));
        dir.record(report)
            .with_context(|| format!("cannot write to {}", dir.path.display()))
    })?;
    info!("run directory: {}", out.display());
    Ok(())
}
