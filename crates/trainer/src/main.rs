//! `biofeedback`: train networks without weight transport.

use anyhow::{Context, Result, bail};
use biofeedback_core::Rule;
use biofeedback_models::Stem;
use biofeedback_trainer::bench::{self, BenchSpec};
use biofeedback_trainer::checkpoint::Checkpoint;
use biofeedback_trainer::config::Config;
use biofeedback_trainer::config::{DataSection, ModelKind};
use biofeedback_trainer::data;
use biofeedback_trainer::data::catalog::{self, Standard};
use biofeedback_trainer::data::download;
use biofeedback_trainer::data::root::DataRoot;
use biofeedback_trainer::device::{DeviceChoice, DeviceInfo};
use biofeedback_trainer::faults;
use biofeedback_trainer::logging::{self, LogFile};
use biofeedback_trainer::run_dir::{self, RunDir};
use biofeedback_trainer::run_record::RunRecord;
use biofeedback_trainer::sweep;
use biofeedback_trainer::train::{EpochReport, Trainer};
use biofeedback_trainer::{compare, plot};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// mimalloc as the allocator, keeping the memory it frees (see [`keep_freed_memory`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option `mi_option_purge_delay` (`mimalloc.h`: its position in `mi_option_e`,
/// the same in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to hand freed memory back to the OS. A training step frees and
/// allocates the same tensor sizes every step; glibc's `malloc` serves the large ones from
/// fresh `mmap` pages each time (220,000 page faults in 12 ResNet-18 steps, and the kernel
/// zeroing every page), mimalloc by default after a 1-second purge; kept, the next step
/// reuses them (1,400 page faults; the ResNet-18 step 1-5% faster at 32x32, 14% at 224, the
/// ResNet-20 step 21-26%: `docs/performance.md`). The
/// resident size stays at the run's peak, which it reaches in its first step anyway.
fn keep_freed_memory() {
    // SAFETY: `mi_option_set` stores one integer in mimalloc's option table (an atomic
    // store); the option number is that of `mimalloc.h`, and -1 is its documented value
    // for "no purging at all".
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}

/// Writes to standard output; a pipe closed by the reader (`| head`) ends the command
/// quietly (see `main`) instead of panicking as `print!` does.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*).map_err(anyhow::Error::from)?
    }};
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(anyhow::Error::from)?
    }};
}

/// Deep learning without weight transport: backprop, feedback alignment, sign symmetry,
/// weight mirrors and Kolen-Pollack, with per-layer alignment metrics.
#[derive(Debug, Parser)]
#[command(name = "biofeedback", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The folder of the standard data sets (`<DIR>/mnist`, `<DIR>/cifar10`...). Default:
    /// $BIOFEEDBACK_DATA, else the cache directory (~/.cache/biofeedback on Linux).
    #[arg(long, global = true, value_name = "DIR", alias = "root")]
    data_root: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a network from a TOML experiment file, or resume a run.
    Train {
        /// The experiment file, e.g. configs/mnist-mlp-kp.toml.
        #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
        config: Option<PathBuf>,
        /// Continue the run in this directory from its last checkpoint (to `run.epochs`, or
        /// a new count given with --set run.epochs=N).
        #[arg(long, value_name = "RUN_DIR")]
        resume: Option<PathBuf>,
        /// Override a config key, e.g. --set optim.lr=0.1 (repeatable).
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        overrides: Vec<String>,
        /// Where tensors live.
        #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
        device: DeviceChoice,
        /// Run directory (default: runs/<run.name>, suffixed if it exists). An existing,
        /// non-empty one is refused unless --overwrite.
        #[arg(long, conflicts_with = "resume")]
        out: Option<PathBuf>,
        /// Replace the records and checkpoints of the run in --out.
        #[arg(long, requires = "out")]
        overwrite: bool,
        /// With --resume: accept --set values that change what the run was trained as
        /// (e.g. algorithm.rule); the run is then a different experiment from there on.
        #[arg(long, requires = "resume")]
        allow_changes: bool,
        /// Fetch a standard data set (MNIST, Fashion-MNIST, CIFAR-10) that is not in its
        /// folder yet, as `biofeedback data download` does.
        #[arg(long)]
        download: bool,
        /// With --download: fetch from this base URL instead of the official locations.
        #[arg(long, value_name = "URL", requires = "download")]
        mirror: Option<String>,
    },
    /// Evaluate a checkpoint: test loss, top-1 and top-5 error, and each layer's angles.
    Eval {
        /// A checkpoint file, e.g. runs/mnist-mlp-kp/checkpoints/best.safetensors.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The data folder (default: the run's `data.dir`).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Override a key of the run's config, e.g. --set metrics.eval_batch=1000.
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        overrides: Vec<String>,
        /// Where tensors live.
        #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
        device: DeviceChoice,
    },
    /// Plot runs: loss, error, weight and delta angles per epoch (PNG and SVG). Runs that
    /// differ only in `run.seed` are drawn as one line (their mean) with a band (± sd).
    Plot {
        /// Run directories, or sweep directories; several are drawn on the same figures.
        #[arg(required = true, value_name = "RUN_DIR")]
        runs: Vec<PathBuf>,
        /// Folder for the figures (default: RUN_DIR/plots for one run, plots/ for several).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a Markdown table of the runs' final and best figures and their angles; runs that
    /// differ only in `run.seed` are also summarised as mean ± sd.
    Compare {
        /// Run directories, or sweep directories (each stands for its points' runs).
        #[arg(required = true, value_name = "RUN_DIR")]
        runs: Vec<PathBuf>,
    },
    /// Run every point of a sweep file (a base config, axes of values, paired axes,
    /// exclusions) as a run directory under one sweep directory. Run it again to resume: it
    /// skips the points that are done and resumes the others from their checkpoints.
    ///
    /// e.g. biofeedback sweep configs/sweeps/mnist-rules.toml --jobs 2
    Sweep {
        /// The sweep file, e.g. configs/sweeps/mnist-rules.toml.
        file: PathBuf,
        /// The sweep directory (default: runs/<name>); running the same sweep again into it
        /// resumes it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Points trained at once (each its own process; on the CPU the cores are divided
        /// among them).
        #[arg(long, default_value_t = 1, conflicts_with = "gpus")]
        jobs: usize,
        /// With --device wgpu/wgpu-vulkan: the discrete GPUs to use (wgpu's indices,
        /// comma-separated), one point on each at a time, e.g. --gpus 0,1,2,3.
        #[arg(long, value_delimiter = ',', value_name = "INDEX,...")]
        gpus: Vec<usize>,
        /// List the points and where each stands; start nothing.
        #[arg(long)]
        dry_run: bool,
        /// Add a key to the sweep's [set] for every point, e.g. --set run.epochs=4
        /// (repeatable; give it again when resuming).
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        overrides: Vec<String>,
        /// Where tensors live.
        #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
        device: DeviceChoice,
    },
    /// Write a one-page Markdown report of a sweep (tables of mean ± sd, figures with a band
    /// per group, the sweep file) into a folder.
    Report {
        /// The sweep directory.
        #[arg(value_name = "SWEEP_DIR")]
        sweep: PathBuf,
        /// Folder for report.md and its figures (default: SWEEP_DIR/report).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Training throughput on synthetic batches: images per second per rule on a device
    /// (after warm-up), as a Markdown table, or JSON.
    ///
    /// e.g. biofeedback bench --device wgpu --model resnet18 --image-size 224 --batch-size 256
    /// --steps 50 --rules bp,fa,ss,wm,kp
    Bench(BenchArgs),
    /// Work with experiment files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Fetch the standard data sets and see what is on disk.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Download a data set from its official location into the data root, verify every file
    /// against its published SHA-256, and move it into place (resumes an interrupted
    /// download).
    Download {
        /// mnist, fashion-mnist or cifar10.
        name: String,
        /// Fetch from this base URL instead (a file's URL is URL/<file name>).
        #[arg(long, value_name = "URL")]
        mirror: Option<String>,
        /// Put the files in this folder instead of <data root>/<name>.
        #[arg(long, value_name = "FOLDER")]
        dir: Option<PathBuf>,
    },
    /// The standard data sets: where they go under the data root, and whether each is
    /// there and verified.
    List,
}

/// The options of `bench`.
#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Where tensors live.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    /// The network (a `model.kind`).
    #[arg(long, value_enum, default_value_t = ModelKind::ResNet18)]
    model: ModelKind,
    /// Side of the square input images (ResNets).
    #[arg(long, default_value_t = 224)]
    image_size: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Timed steps per rule.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed steps per rule first (kernel compilation, autotune).
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Timed blocks the steps are split into (the table gives the median and the range).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Rules, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "bp,fa,ss,wm,kp")]
    rules: Vec<String>,
    /// ResNet width (64 is torchvision's).
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// ResNet stem: imagenet (7x7/2 + max-pool) or cifar (3x3/1).
    #[arg(long, value_enum, default_value_t = BenchStem::Imagenet)]
    stem: BenchStem,
    /// Number of classes.
    #[arg(long, default_value_t = 1000)]
    classes: usize,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

/// `--stem` of `bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchStem {
    Imagenet,
    Cifar,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the resolved config, every key with its value or default.
    Show {
        /// The experiment file.
        file: PathBuf,
        /// Override a config key (repeatable).
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        overrides: Vec<String>,
    },
}

fn main() {
    keep_freed_memory();
    let log = logging::init();
    match faults::setup_from_env() {
        Ok(set) if !set.is_empty() => warn!("fault injection: {}", set.join("; ")),
        Ok(_) => {}
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
    if let Err(e) = run(Cli::parse(), &log) {
        let closed_pipe = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if closed_pipe {
            std::process::exit(0);
        }
        let line = format!("error: {}", error_line(&e));
        log.line(&line);
        eprintln!("{line}");
        std::process::exit(1);
    }
}

/// The error and its causes on one line, `: `-separated, leaving out a cause whose text the
/// line already ends with (library errors often print their source themselves).
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

fn run(cli: Cli, log: &LogFile) -> Result<()> {
    let data_root = cli.data_root;
    match cli.command {
        Command::Train {
            config,
            resume,
            overrides,
            device,
            out,
            overwrite,
            allow_changes,
            download,
            mirror,
        } => {
            let start = match (config, resume) {
                (_, Some(dir)) => Start::Resume { dir, allow_changes },
                (Some(config), None) => Start::Fresh {
                    config,
                    out,
                    overwrite,
                },
                (None, None) => bail!("give --config FILE or --resume RUN_DIR"),
            };
            let data = DataChoice {
                root: data_root,
                download: download.then_some(download::Options { mirror }),
            };
            train(start, overrides, device, &data, log)
        }
        Command::Eval {
            checkpoint,
            data,
            overrides,
            device,
        } => eval(&checkpoint, data, data_root, overrides, device),
        Command::Data { command } => data_command(command, data_root),
        Command::Plot { runs, out } => {
            let records = load_runs(&runs)?;
            let out = out.unwrap_or_else(|| match runs.as_slice() {
                [one] => one.join("plots"),
                _ => PathBuf::from("plots"),
            });
            for file in plot::plot_runs(&records, &out)? {
                outln!("{}", file.display());
            }
            Ok(())
        }
        Command::Compare { runs } => {
            out!("{}", compare::markdown(&load_runs(&runs)?));
            Ok(())
        }
        Command::Sweep {
            file,
            out,
            jobs,
            gpus,
            dry_run,
            overrides,
            device,
        } => {
            let options = SweepOptions {
                out,
                jobs,
                gpus,
                dry_run,
                device,
                data_root,
            };
            sweep(&file, &overrides, options)
        }
        Command::Report { sweep, out } => {
            let out = out.unwrap_or_else(|| sweep.join("report"));
            let page = biofeedback_trainer::report::write(&sweep, &out)?;
            outln!("{}", page.display());
            Ok(())
        }
        Command::Bench(args) => bench(args),
        Command::Config {
            command: ConfigCommand::Show { file, overrides },
        } => {
            let config = Config::load(&file, &overrides)?;
            if let (None, Some(set)) = (&config.data.dir, Standard::of(config.data.dataset)) {
                let root = DataRoot::resolve(data_root.as_deref())?;
                outln!(
                    "# data.dir is not set: a run reads {}; data root: {root}",
                    root.folder(set.name).display()
                );
            }
            out!("{}", config.to_toml());
            Ok(())
        }
    }
}

/// `biofeedback bench`: prints the table (or JSON) of `args`.
fn bench(args: BenchArgs) -> Result<()> {
    let BenchArgs {
        device,
        model,
        image_size,
        batch_size,
        steps,
        warmup,
        rounds,
        rules,
        width,
        stem,
        classes,
        json,
    } = args;
    let rules = rules
        .iter()
        .map(|r| {
            r.trim().parse::<Rule>().map_err(|_| {
                anyhow::anyhow!("--rules: `{r}` is not a rule (expected bp, fa, ss, wm or kp)")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if batch_size == 0 || steps == 0 || width == 0 || classes == 0 || image_size == 0 {
        bail!("--batch-size, --steps, --width, --classes and --image-size must be at least 1");
    }
    let spec = BenchSpec {
        model,
        image_size,
        batch_size,
        steps,
        warmup,
        rounds,
        rules,
        width,
        stem: match stem {
            BenchStem::Imagenet => Stem::Imagenet,
            BenchStem::Cifar => Stem::Cifar,
        },
        classes,
    };
    let handle = device.create()?;
    let info = log_device(device, &handle);
    let report = bench::run(&spec, &handle, info, |row| {
        info!(
            "{}: {:.1} img/s ({:.4} s/step)",
            row.rule, row.images_per_second, row.seconds_per_step
        )
    })?;
    match json {
        true => outln!("{}", serde_json::to_string_pretty(&report)?),
        false => out!("{}", report.markdown()),
    }
    Ok(())
}

/// How a training run begins.
enum Start {
    /// From a config file, into a new run directory.
    Fresh {
        config: PathBuf,
        out: Option<PathBuf>,
        overwrite: bool,
    },
    /// From the last checkpoint of a run directory.
    Resume { dir: PathBuf, allow_changes: bool },
}

/// Where `train` finds its data: `--data-root`, and `--download` with its `--mirror`.
struct DataChoice {
    root: Option<PathBuf>,
    download: Option<download::Options>,
}

/// Points `section.dir` at the folder the run reads (a fresh run always; a resumed one when
/// `--data-root` names a new root for a standard set, or the checkpoint names no folder),
/// and with `--download` fetches a standard set into it.
fn prepare_data(section: &mut DataSection, choice: &DataChoice, fresh: bool) -> Result<()> {
    let standard = Standard::of(section.dataset);
    let moved = choice.root.is_some() && standard.is_some();
    if fresh || moved || section.dir.is_none() {
        if moved && !fresh {
            section.dir = None;
        }
        let root = DataRoot::resolve(choice.root.as_deref())?;
        data::resolve_dir(section, &root)?;
    }
    if let Some(options) = &choice.download {
        check_mirror(options.mirror.as_deref())?;
        let Some(set) = standard else {
            bail!(
                "--download: an image folder is not a standard data set (those are {}); \
                 data.dir must name a folder that holds it",
                Standard::names()
            );
        };
        let folder = section.dir.clone().context("data.dir is resolved above")?;
        let summary = download::download(&set, &folder, options).with_context(|| {
            format!(
                "--download: the {} data set could not be fetched (later, `{}` fetches it)",
                set.name,
                data::fetch_command(&set, &folder)
            )
        })?;
        report_download(&set, &folder, &summary);
    }
    Ok(())
}

/// Refuses a `--mirror` that is not an HTTP(S) URL.
fn check_mirror(mirror: Option<&str>) -> Result<()> {
    match mirror {
        Some(m) if !(m.starts_with("http://") || m.starts_with("https://")) => {
            bail!("--mirror {m}: expected an http:// or https:// base URL")
        }
        _ => Ok(()),
    }
}

/// Logs what a download did.
fn report_download(set: &Standard, folder: &Path, summary: &download::Summary) {
    match summary.fetched.len() {
        0 => info!("{}: verified in {}", set.name, folder.display()),
        n => info!(
            "{}: fetched and verified {n} file(s) into {} ({})",
            set.name,
            folder.display(),
            summary.fetched.join(", ")
        ),
    }
}

/// `biofeedback data list` and `data download`.
fn data_command(command: DataCommand, root: Option<PathBuf>) -> Result<()> {
    let root = DataRoot::resolve(root.as_deref())?;
    match command {
        DataCommand::List => {
            outln!("data root: {root}");
            for set in catalog::ALL {
                let folder = root.folder(set.name);
                outln!(
                    "{:<14} {}\n{:<14} {}",
                    set.name,
                    folder.display(),
                    "",
                    catalog::summary(&set, &folder)
                );
            }
        }
        DataCommand::Download { name, mirror, dir } => {
            let set = Standard::named(&name).with_context(|| {
                format!(
                    "data download: `{name}` is not a standard data set (expected one of {})",
                    Standard::names()
                )
            })?;
            check_mirror(mirror.as_deref())?;
            let folder = match dir {
                Some(d) => {
                    std::path::absolute(&d).with_context(|| format!("--dir {}", d.display()))?
                }
                None => root.folder(set.name),
            };
            let summary = download::download(&set, &folder, &download::Options { mirror })?;
            report_download(&set, &folder, &summary);
            outln!("{}: {}", set.name, catalog::summary(&set, &folder));
            outln!("{}", folder.display());
        }
    }
    Ok(())
}

fn train(
    start: Start,
    overrides: Vec<String>,
    choice: DeviceChoice,
    data: &DataChoice,
    log: &LogFile,
) -> Result<()> {
    let device = choice.create()?;
    let (mut trainer, mut dir) = match start {
        Start::Fresh {
            config,
            out,
            overwrite,
        } => {
            let mut config = Config::load(&config, &overrides)?;
            prepare_data(&mut config.data, data, true)?;
            let trainer = Trainer::new(config, device)?;
            let dir = match out {
                Some(out) => RunDir::create(&out, &trainer.config, overwrite)
                    .with_context(|| format!("cannot create run directory {}", out.display()))?,
                None => {
                    RunDir::create_fresh("runs".as_ref(), &trainer.config.run.name, &trainer.config)
                        .context("cannot create a run directory in runs/")?
                }
            };
            (trainer, dir)
        }
        Start::Resume {
            dir: path,
            allow_changes,
        } => {
            if !path.is_dir() {
                bail!("--resume {}: no such run directory", path.display());
            }
            let last = run_dir::last_checkpoint(&path);
            if std::fs::symlink_metadata(&last).is_err() {
                restart(&path, &overrides, data, device)?
            } else {
                let checkpoint = Checkpoint::load(&last)?;
                let mut config = checkpoint.config(&overrides)?;
                prepare_data(&mut config.data, data, false)?;
                let dir_config = Config::load_resolved(&path.join("config.toml"), &[])?;
                checkpoint.check_resume(&dir_config, &config, allow_changes)?;
                if checkpoint.epoch >= config.run.epochs && checkpoint.progress.step == 0 {
                    repair_best(&path, &checkpoint)?;
                    outln!(
                        "run {} is complete: it has done {} epochs and run.epochs is {}; \
                         nothing to do (continue it with --set run.epochs=N, N > {})",
                        path.display(),
                        checkpoint.epoch,
                        config.run.epochs,
                        checkpoint.epoch
                    );
                    return Ok(());
                }
                let mut trainer = Trainer::new(config, device)?;
                checkpoint.check_data(&trainer.data, allow_changes)?;
                checkpoint.restore(&mut trainer)?;
                let dir = RunDir::resume(&path, &trainer.config, checkpoint.epoch)
                    .with_context(|| format!("cannot reopen run directory {}", path.display()))?;
                (trainer, dir)
            }
        }
    };
    log.open(&dir.path.join("train.log"))
        .with_context(|| format!("cannot write {}", dir.path.join("train.log").display()))?;
    let command: Vec<String> = std::env::args_os()
        .map(|a| shell_quote(a.to_string_lossy().into_owned()))
        .collect();
    dir.record_command(&format!(
        "biofeedback {}: {}",
        env!("CARGO_PKG_VERSION"),
        command.join(" ")
    ))
    .with_context(|| format!("cannot write to {}", dir.path.display()))?;
    let config = &trainer.config;
    info!(
        "{}: rule {} on {:?}, run directory {}",
        config.run.name,
        config.algorithm.rule,
        config.data.dataset,
        dir.path.display()
    );
    log_device(choice, &trainer.device);
    for warning in config.warnings() {
        warn!("{warning}");
    }
    info!(
        "data: {} training, {} test examples; network {}",
        trainer.data.train.len(),
        trainer.data.test.len(),
        trainer.net.describe()
    );
    info!(
        "loader: {} workers, {} batches prefetched; {} steps per epoch",
        config.loader().workers,
        config.loader().prefetch,
        trainer.steps_per_epoch()
    );
    match (trainer.epochs_done, trainer.progress.step) {
        (0, 0) => {}
        (done, 0) => info!("resuming after epoch {done} of {}", config.run.epochs),
        (done, step) => info!(
            "resuming inside epoch {} of {}, after its step {step}",
            done + 1,
            config.run.epochs
        ),
    }
    let last = dir.last_checkpoint();
    trainer.run_hooked(
        |trainer| {
            Checkpoint::capture(trainer, &last).save()?;
            info!(
                "checkpoint at epoch {} step {}",
                trainer.epochs_done + 1,
                trainer.progress.step
            );
            Ok::<(), anyhow::Error>(())
        },
        |trainer, report| record_epoch(trainer, report, &mut dir),
    )?;
    info!("run directory: {}", dir.path.display());
    Ok(())
}

/// `--resume` of a run directory without a checkpoint (the run stopped before its first one:
/// killed, or out of disk space while writing it): the run starts again from epoch 1 with its
/// `config.toml`, which is where the uninterrupted run would be; its records are cut to
/// their headers and the temporaries of the interrupted write removed.
fn restart(
    path: &Path,
    overrides: &[String],
    data: &DataChoice,
    device: burn::tensor::Device,
) -> Result<(Trainer, RunDir)> {
    let config_path = path.join("config.toml");
    if std::fs::symlink_metadata(&config_path).is_err() {
        bail!(
            "--resume {}: nothing to resume: it holds no checkpoint and no config.toml (start \
             the run there with --config FILE --out {0})",
            path.display()
        );
    }
    let mut config = Config::load_resolved(&config_path, overrides)?;
    prepare_data(&mut config.data, data, false)?;
    info!(
        "{}: no checkpoint yet (the run stopped before its first one); starting it again from \
         epoch 1 with its config.toml",
        path.display()
    );
    let trainer = Trainer::new(config, device)?;
    let dir = RunDir::resume(path, &trainer.config, 0)
        .with_context(|| format!("cannot reopen run directory {}", path.display()))?;
    Ok((trainer, dir))
}

/// Logs an epoch and writes its rows, `results.json` and the checkpoints.
fn record_epoch(trainer: &Trainer, report: &EpochReport, dir: &mut RunDir) -> Result<()> {
    let config = &trainer.config;
    let epoch = report.metrics.epoch;
    info!("{}", run_dir::summary_line(report, config.run.epochs));
    let shown = dir.path.display().to_string();
    let context = || format!("cannot write to {shown}");
    dir.record(report).with_context(context)?;
    dir.write_results(config, report, trainer.best)
        .with_context(context)?;
    faults::point("epoch.recorded").with_context(context)?;
    // `best` before `last`: a kill between the two leaves `last` at the previous epoch, so a
    // resume redoes this epoch and writes both again; never a `best` older than its record.
    if config.checkpoint.save_best && trainer.best.is_some_and(|b| b.epoch == epoch) {
        Checkpoint::capture(trainer, &dir.best_checkpoint()).save()?;
    }
    if epoch.is_multiple_of(config.checkpoint.every) || epoch == config.run.epochs {
        Checkpoint::capture(trainer, &dir.last_checkpoint()).save()?;
    }
    Ok(())
}

/// A complete run whose `best` checkpoint is older than the best epoch `results.json` names
/// (a kill between the final writes of an earlier version) gets it back from `last` when
/// `last` is that epoch.
fn repair_best(dir: &Path, last: &Checkpoint) -> Result<()> {
    let best_path = dir.join("checkpoints").join("best.safetensors");
    let Some(best_epoch) = last.best.map(|b| b.epoch) else {
        return Ok(());
    };
    let stored = Checkpoint::load(&best_path).map(|c| c.epoch).ok();
    if stored != Some(best_epoch)
        && last.epoch == best_epoch
        && last.config(&[])?.checkpoint.save_best
    {
        let mut fixed = last.clone();
        fixed.path = best_path.clone();
        fixed.save()?;
        warn!(
            "{} was {}; rewrote it from last.safetensors (epoch {best_epoch}, the best)",
            best_path.display(),
            match stored {
                Some(e) => format!("from epoch {e}"),
                None => "missing or unreadable".into(),
            }
        );
    }
    Ok(())
}

/// Logs the backend and adapter; warns once when wgpu found only a software renderer.
fn log_device(choice: DeviceChoice, device: &burn::tensor::Device) -> DeviceInfo {
    let info = choice.describe(device);
    info!("device {info}");
    if info.software {
        warn!(
            "--device {}: only a software renderer ({}) was found, no GPU; it runs every \
             kernel on the CPU and is much slower than --device cpu",
            choice.name(),
            info.adapter
        );
    }
    info
}

fn eval(
    path: &Path,
    data: Option<PathBuf>,
    data_root: Option<PathBuf>,
    mut overrides: Vec<String>,
    choice: DeviceChoice,
) -> Result<()> {
    let checkpoint = Checkpoint::load(path)?;
    // --data names the folder itself; the root then plays no part.
    let data_root = data_root.filter(|_| data.is_none());
    if let Some(dir) = data {
        let dir = dir
            .to_str()
            .context("--data: the path is not valid UTF-8")?;
        overrides.push(format!("data.dir={}", toml_string(dir)));
    }
    let mut config = checkpoint.config(&overrides)?;
    let choice_of_data = DataChoice {
        root: data_root,
        download: None,
    };
    prepare_data(&mut config.data, &choice_of_data, false)?;
    let mut trainer = Trainer::for_eval(config, choice.create()?)?;
    checkpoint.check_classes(trainer.data.test.as_ref())?;
    checkpoint.restore(&mut trainer)?;
    let test = trainer.evaluate(&trainer.data.test)?;
    let when = match checkpoint.progress.step {
        0 => format!("epoch {}", checkpoint.epoch),
        step => format!("inside epoch {}, after step {step}", checkpoint.epoch + 1),
    };
    outln!(
        "{} ({when}, rule {}): test_loss {:.4}  test_top1_error {:.2}%  test_top5_error {:.2}%  \
         on {} test examples{}",
        path.display(),
        trainer.config.algorithm.rule,
        test.loss,
        test.top1_error,
        test.top5_error,
        test.read,
        match test.skipped {
            0 => String::new(),
            n => format!(" ({n} more could not be read and were skipped)"),
        }
    );
    outln!(
        "alignment on {} held-out examples drawn across classes:",
        trainer
            .config
            .metrics
            .eval_batch
            .min(trainer.data.test.len())
    );
    outln!("layer  weight_angle_deg  delta_angle_global_deg  delta_angle_local_deg  norm_ratio");
    for l in trainer.alignment() {
        let cell = biofeedback_trainer::records::figure_text;
        outln!(
            "{:<6} {:>16}  {:>22}  {:>21}  {:>10}",
            l.layer,
            cell(l.weight_angle_deg, 2),
            cell(l.delta_angle_global_deg, 2),
            cell(l.delta_angle_local_deg, 2),
            cell(l.norm_ratio, 4)
        );
    }
    Ok(())
}

/// Reads run directories back; a sweep directory stands for the run directories of its
/// points that have begun.
fn load_runs(dirs: &[PathBuf]) -> Result<Vec<RunRecord>> {
    let mut runs = Vec::new();
    for dir in dirs {
        match sweep::Manifest::load(dir)? {
            Some(manifest) => {
                let points = manifest.run_dirs(dir);
                if points.is_empty() {
                    bail!("{}: no point of this sweep has begun yet", dir.display());
                }
                for point in points {
                    runs.push(RunRecord::load(&point)?);
                }
            }
            None => runs.push(RunRecord::load(dir)?),
        }
    }
    Ok(runs)
}

/// The options of `sweep`.
struct SweepOptions {
    out: Option<PathBuf>,
    jobs: usize,
    gpus: Vec<usize>,
    dry_run: bool,
    device: DeviceChoice,
    data_root: Option<PathBuf>,
}

/// `biofeedback sweep`: plans the points, opens the sweep directory, runs what is left.
fn sweep(file: &Path, overrides: &[String], options: SweepOptions) -> Result<()> {
    let SweepOptions {
        out,
        mut jobs,
        gpus,
        dry_run,
        device,
        data_root,
    } = options;
    if jobs == 0 {
        bail!("--jobs 0: expected at least 1 point at a time");
    }
    if !gpus.is_empty() {
        if !matches!(device, DeviceChoice::Wgpu | DeviceChoice::WgpuVulkan) {
            bail!("--gpus: give --device wgpu or wgpu-vulkan too (the GPUs are wgpu's)");
        }
        jobs = gpus.len();
    }
    let plan = sweep::Sweep::load(file, overrides)?;
    let dir = out.unwrap_or_else(|| Path::new("runs").join(&plan.name));
    let _open = match dry_run {
        true => None,
        false => Some(sweep::SweepDir::open(&dir, &plan)?),
    };
    let statuses = plan
        .points
        .iter()
        .map(|p| sweep::status(&dir, p))
        .collect::<Result<Vec<_>, _>>()?;
    let count = |f: fn(&sweep::State) -> bool| statuses.iter().filter(|s| f(&s.state)).count();
    let (done, partial, running, new) = (
        count(|s| *s == sweep::State::Done),
        count(|s| matches!(s, sweep::State::Partial { .. })),
        count(|s| matches!(s, sweep::State::Running { .. })),
        count(|s| *s == sweep::State::New),
    );
    let summary = format!(
        "sweep {}: {} points in {}: {done} done, {partial} to resume, {new} to start{}",
        plan.name,
        plan.points.len(),
        dir.display(),
        match running {
            0 => String::new(),
            n => format!(", {n} running"),
        }
    );
    if dry_run {
        outln!("{summary}");
        for (point, status) in plan.points.iter().zip(&statuses) {
            outln!(
                "{:<40} {:<28} {}",
                point.name,
                status.state.to_string(),
                sweep::plan::describe(&point.settings)
            );
        }
        return Ok(());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match device {
        DeviceChoice::Cpu => sweep::runner::Launch::threads_for(jobs, cores),
        _ => None,
    };
    info!(
        "{summary}; {jobs} at a time{}",
        threads.map_or(String::new(), |t| match t {
            1 => ", 1 thread each".to_string(),
            t => format!(", {t} threads each"),
        })
    );
    let todo: Vec<sweep::runner::Job> = plan
        .points
        .iter()
        .zip(&statuses)
        .filter_map(|(point, status)| {
            sweep::train_args(&plan, point, status).map(|args| sweep::runner::Job {
                name: point.name.clone(),
                args,
            })
        })
        .collect();
    let mut global_args = Vec::new();
    if let Some(root) = data_root {
        global_args.push("--data-root".into());
        global_args.push(std::path::absolute(&root)?.into_os_string());
    }
    let device_name = clap::ValueEnum::to_possible_value(&device)
        .context("every device has a name")?
        .get_name()
        .to_string();
    let launch = sweep::runner::Launch {
        exe: sweep::runner::own_path().context("cannot find this program's own path")?,
        global_args,
        extra_args: vec!["--device".into(), device_name.into()],
        jobs,
        threads,
        gpus,
    };
    let outcomes = sweep::runner::run(&todo, &launch);
    let failed: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|e| (&o.name, e)))
        .collect();
    for (name, why) in &failed {
        warn!("point {name} failed: {why}");
    }
    if let Some((name, why)) = failed.first() {
        bail!(
            "{} of the {} points run failed (the first, {name}: {why}); the others are              recorded; run the sweep again to retry the failed ones",
            failed.len(),
            todo.len()
        );
    }
    outln!(
        "sweep {}: all {} points done in {} (biofeedback compare {2}; biofeedback report {2})",
        plan.name,
        plan.points.len(),
        dir.display()
    );
    Ok(())
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `arg` quoted for a POSIX shell where it needs quoting.
fn shell_quote(arg: String) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    match plain {
        true => arg,
        false => format!("'{}'", arg.replace('\'', "'\\''")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Option number 15 is mimalloc's purge delay: it holds that option's default (1000 ms in
    /// mimalloc 3) until [`keep_freed_memory`] sets it to -1.
    #[test]
    #[allow(unsafe_code)]
    fn the_option_set_is_mimallocs_purge_delay() {
        // SAFETY: reads one integer of mimalloc's option table.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(get(), 1000);
        keep_freed_memory();
        assert_eq!(get(), -1);
    }
}
