//! Learning-rate schedules, evaluated per step.

use serde::{Deserialize, Serialize};

/// The shape of the learning rate over training (after the optional linear warmup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// `lr` throughout.
    Constant,
    /// `lr * gamma^k` after the k-th milestone epoch (the paper: x0.1 after 32, 62, 82).
    Step,
    /// `lr * (1 + cos(pi * t)) / 2` with `t` the fraction of training done after warmup.
    Cosine,
}

/// Everything a schedule needs.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    /// Peak learning rate.
    pub lr: f64,
    /// Shape after warmup.
    pub schedule: Schedule,
    /// Epochs of linear warmup from `lr / steps_per_epoch` to `lr` (0: none).
    pub warmup_epochs: f64,
    /// Epochs after which [`Schedule::Step`] multiplies by `gamma`.
    pub milestones: Vec<usize>,
    /// Factor of [`Schedule::Step`].
    pub gamma: f64,
    /// Total epochs.
    pub epochs: usize,
}

/// Epochs done before `step` (from 0) of epoch `epoch` (from 1), fractions counted.
fn epochs_done(epoch: usize, step: usize, steps: usize) -> f64 {
    (epoch - 1) as f64 + step as f64 / steps as f64
}

impl LrSchedule {
    /// Whether `step` (from 0) of epoch `epoch` (from 1) is in the linear warm-up.
    pub fn warming_up(&self, epoch: usize, step: usize, steps: usize) -> bool {
        epochs_done(epoch, step, steps) < self.warmup_epochs
    }

    /// The learning rate at `step` (from 0) of epoch `epoch` (from 1), with `steps` steps per
    /// epoch.
    pub fn lr(&self, epoch: usize, step: usize, steps: usize) -> f64 {
        let t = epochs_done(epoch, step, steps);
        if t < self.warmup_epochs {
            return self.lr * (t + 1.0 / steps as f64) / self.warmup_epochs;
        }
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Step => {
                let passed = self.milestones.iter().filter(|&&m| m < epoch).count();
                self.lr * self.gamma.powi(passed as i32)
            }
            Schedule::Cosine => {
                let span = (self.epochs as f64 - self.warmup_epochs).max(1e-9);
                let frac = ((t - self.warmup_epochs) / span).clamp(0.0, 1.0);
                self.lr * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(schedule: Schedule, warmup: f64) -> LrSchedule {
        LrSchedule {
            lr: 1.0,
            schedule,
            warmup_epochs: warmup,
            milestones: vec![2, 3],
            gamma: 0.1,
            epochs: 4,
        }
    }

    #[test]
    fn step_schedule_cuts_after_each_milestone() {
        let s = sched(Schedule::Step, 0.0);
        assert_eq!(s.lr(1, 0, 10), 1.0);
        assert_eq!(s.lr(2, 9, 10), 1.0);
        assert!((s.lr(3, 0, 10) - 0.1).abs() < 1e-12);
        assert!((s.lr(4, 5, 10) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn cosine_falls_from_lr_to_zero_after_warmup() {
        let s = sched(Schedule::Cosine, 1.0);
        assert!((s.lr(1, 0, 10) - 0.1).abs() < 1e-12);
        assert!((s.lr(1, 9, 10) - 1.0).abs() < 1e-12);
        assert!((s.lr(2, 0, 10) - 1.0).abs() < 1e-12);
        assert!((s.lr(3, 5, 10) - 0.5).abs() < 1e-12);
        assert!(s.lr(4, 9, 10) < 0.01);
        assert_eq!(sched(Schedule::Constant, 0.0).lr(4, 9, 10), 1.0);
    }
}
