//! # biofeedback-trainer
//!
//! The library behind the `biofeedback` command: experiment configs ([`config`]), data sets in
//! their official formats ([`data`]), the training loop ([`train`]), run directories
//! ([`run_dir`]) with their checkpoints ([`checkpoint`]), throughput benches ([`bench`]), learning-rate schedules
//! ([`schedule`]), device selection ([`device`]), and reading runs back ([`run_record`]) to
//! plot them ([`plot`]) or compare them ([`compare`]).
//!
//! The trainer used as a library (what `biofeedback train --config configs/mnist-mlp-kp.toml`
//! does: load and override a config, resolve the data folder, train, see each epoch's
//! report) is `examples/04_trainer_as_library.rs`, compiled by `cargo test`.

pub mod aggregate;
pub mod atomic;
pub mod bench;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod data;
pub mod device;
pub mod faults;
pub mod files;
pub mod logging;
pub mod network;
pub mod plot;
pub mod records;
pub mod report;
pub mod run_dir;
pub mod run_record;
pub mod schedule;
pub mod sweep;
pub mod train;
