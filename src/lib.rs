//! # biofeedback
//!
//! Deep learning *without weight transport*, on Burn. This facade re-exports the workspace's
//! crates and holds the workspace-level integration tests (`tests/`):
//!
//! - [`core`]: feedback layers, the learning rules, mirror mode, alignment metrics;
//! - [`models`]: networks built from them;
//! - [`trainer`]: configs, data, the training loop behind the `biofeedback` command.

pub use biofeedback_core as core;
pub use biofeedback_models as models;
pub use biofeedback_trainer as trainer;
