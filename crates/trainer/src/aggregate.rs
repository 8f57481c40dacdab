//! Runs that differ only in their seed, summarised as mean ± standard deviation.
//!
//! Runs are grouped by every key of their `config.toml` except `run.seed` and `run.name`: the
//! runs of a group are the same experiment repeated with other seeds. A group's figure is the
//! mean over its runs and the sample standard deviation
//!
//! ```text
//! mean = (1/n) sum_i x_i        sd = sqrt( sum_i (x_i - mean)^2 / (n - 1) )
//! ```
//!
//! (undefined for one run). A group is labelled by the keys whose values tell the groups apart
//! (`rule=bp`), or by its rule where there is one group.

use crate::run_record::RunRecord;
use crate::train::EpochMetrics;
use std::collections::BTreeMap;

/// The keys that do not make runs different experiments.
pub const SEED_KEYS: [&str; 2] = ["run.seed", "run.name"];

/// The mean, sample standard deviation and count of some figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation (`n - 1` in the denominator); NaN when `n` is 1.
    pub sd: f64,
    /// How many figures.
    pub n: usize,
}

impl Summary {
    /// The summary of the finite `values` (a non-finite one is a run that diverged, which
    /// [`Summary::of_all`] counts); `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = match n {
            1 => f64::NAN,
            _ => (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt(),
        };
        Some(Self { mean, sd, n })
    }

    /// `mean ± sd` with `decimals` decimals, or the mean alone for one figure.
    pub fn text(&self, decimals: usize) -> String {
        match self.sd.is_finite() {
            true => format!("{:.decimals$} ± {:.decimals$}", self.mean, self.sd),
            false => format!("{:.decimals$}", self.mean),
        }
    }

    /// `mean - sd ..= mean + sd` (the mean alone for one figure).
    pub fn band(&self) -> (f64, f64) {
        match self.sd.is_finite() {
            true => (self.mean - self.sd, self.mean + self.sd),
            false => (self.mean, self.mean),
        }
    }
}

/// [`Summary::text`] of an optional summary, `-` for none.
pub fn text(summary: Option<Summary>, decimals: usize) -> String {
    summary.map_or("-".into(), |s| s.text(decimals))
}

/// Runs of one experiment under different seeds.
#[derive(Debug, Clone)]
pub struct Group<'a> {
    /// What tells this group apart from the others (`rule=bp, lr=0.05`).
    pub label: String,
    /// Its runs, in the order given.
    pub runs: Vec<&'a RunRecord>,
}

/// `runs` grouped by their settings other than [`SEED_KEYS`], groups in the order their first
/// runs come.
pub fn groups(runs: &[RunRecord]) -> Vec<Group<'_>> {
    // A run whose settings are unknown (none read) is a group of its own.
    let key = |r: &RunRecord| -> BTreeMap<String, String> {
        match r.settings.is_empty() {
            true => BTreeMap::from([("directory".into(), r.path.display().to_string())]),
            false => r
                .settings
                .iter()
                .filter(|(k, _)| !SEED_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    };
    let mut keys: Vec<BTreeMap<String, String>> = Vec::new();
    let mut members: Vec<Vec<&RunRecord>> = Vec::new();
    for run in runs {
        let k = key(run);
        match keys.iter().position(|o| *o == k) {
            Some(i) => members[i].push(run),
            None => {
                keys.push(k);
                members.push(vec![run]);
            }
        }
    }
    // The keys that tell the groups apart: those every group has, with values that differ
    // (a section only some rules read, wm's `mirror.*`, follows from the rule), else any.
    let differing: Vec<&String> = {
        let all: std::collections::BTreeSet<&String> = keys.iter().flat_map(|k| k.keys()).collect();
        let differs = |name: &&String| keys.iter().any(|k| k.get(*name) != keys[0].get(*name));
        let shared: Vec<&String> = all
            .iter()
            .copied()
            .filter(|name| keys.iter().all(|k| k.contains_key(*name)))
            .filter(differs)
            .collect();
        match shared.is_empty() {
            true => all.into_iter().filter(differs).collect(),
            false => shared,
        }
    };
    let last = |k: &str| k.rsplit('.').next().unwrap_or(k).to_string();
    let short = |k: &str| match differing.iter().filter(|o| last(o) == last(k)).count() {
        1 => last(k),
        _ => k.to_string(),
    };
    keys.iter()
        .zip(members)
        .map(|(k, runs)| {
            let label = match differing.is_empty() {
                true => runs[0].rule.clone(),
                false => differing
                    .iter()
                    .map(|d| {
                        let value = k
                            .get(*d)
                            .map_or("(none)".to_string(), |v| v.trim_matches('"').to_string());
                        format!("{}={value}", short(d))
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            Group { label, runs }
        })
        .collect()
}

/// The group of backprop runs that every other group can be set against seed by seed: the
/// only group whose rule is `bp`, where each other group differs from it in `algorithm.rule`
/// alone (and keys that only one side reads, such as wm's `mirror.*`).
pub fn backprop_reference<'g, 'a>(groups: &'g [Group<'a>]) -> Option<&'g Group<'a>> {
    let mut bp = groups
        .iter()
        .filter(|g| g.runs.iter().all(|r| r.rule == "bp"));
    let reference = bp.next()?;
    if bp.next().is_some() || groups.len() < 2 {
        return None;
    }
    let settings = |g: &Group<'_>| g.runs[0].settings.clone();
    let base = settings(reference);
    let comparable = groups.iter().all(|g| {
        let other = settings(g);
        other.iter().all(|(k, v)| {
            SEED_KEYS.contains(&k.as_str())
                || k == "algorithm.rule"
                || base.get(k).is_none_or(|b| b == v)
        })
    });
    comparable.then_some(reference)
}

/// Whether grouping says anything: some group holds more than one run.
pub fn repeated(groups: &[Group<'_>]) -> bool {
    groups.iter().any(|g| g.runs.len() > 1)
}

impl Group<'_> {
    /// The summary of `value` of each run's last epoch.
    pub fn last(&self, value: impl Fn(&EpochMetrics) -> f64) -> Option<Summary> {
        Summary::of(self.runs.iter().filter_map(|r| r.last()).map(value))
    }

    /// The summary of `value` of each run's last epoch minus that of the `reference` run with
    /// the same `run.seed` (runs without one are left out): the paired difference, whose
    /// spread leaves out what the seed does to both.
    pub fn paired_difference(
        &self,
        reference: &Group<'_>,
        value: impl Fn(&EpochMetrics) -> f64,
    ) -> Option<Summary> {
        let seed = |r: &RunRecord| r.settings.get("run.seed").cloned();
        Summary::of(self.runs.iter().filter_map(|r| {
            let twin = reference
                .runs
                .iter()
                .find(|b| seed(b).is_some() && seed(b) == seed(r))?;
            Some(value(r.last()?) - value(twin.last()?))
        }))
    }

    /// The summary of each run's best test top-1 error.
    pub fn best_error(&self) -> Option<Summary> {
        Summary::of(
            self.runs
                .iter()
                .filter_map(|r| r.best_by_test_error())
                .map(|m| m.test_top1_error),
        )
    }

    /// The summary of each run's mean seconds per epoch.
    pub fn seconds_per_epoch(&self) -> Option<Summary> {
        Summary::of(
            self.runs
                .iter()
                .filter(|r| !r.metrics.is_empty())
                .map(|r| r.metrics.iter().map(|m| m.seconds).sum::<f64>() / r.metrics.len() as f64),
        )
    }

    /// `(fewest, most)` epochs recorded by a run of the group.
    pub fn epochs_done(&self) -> (usize, usize) {
        let done = self.runs.iter().map(|r| r.metrics.len());
        (done.clone().min().unwrap_or(0), done.max().unwrap_or(0))
    }

    /// Per epoch, the summary of `value` over the runs that recorded that epoch.
    pub fn curve(&self, value: impl Fn(&EpochMetrics) -> f64) -> Vec<(usize, Summary)> {
        by_epoch(
            self.runs
                .iter()
                .flat_map(|r| &r.metrics)
                .map(|m| (m.epoch, value(m))),
        )
    }

    /// Per epoch, the summary of `angle` of `layer` over the runs.
    pub fn angle_curve(
        &self,
        layer: &str,
        angle: impl Fn(&crate::records::AlignmentRow) -> f64,
    ) -> Vec<(usize, Summary)> {
        by_epoch(
            self.runs
                .iter()
                .flat_map(|r| r.layer_rows(layer))
                .map(|a| (a.epoch, angle(a))),
        )
    }

    /// The summary of `angle` of `layer` at each run's last recorded epoch.
    pub fn last_angle(
        &self,
        layer: &str,
        angle: impl Fn(&crate::records::AlignmentRow) -> f64,
    ) -> Option<Summary> {
        Summary::of(
            self.runs
                .iter()
                .filter_map(|r| r.last_alignment(layer))
                .map(angle),
        )
    }
}

/// The summary of the figures of each epoch, `(epoch, figure)` pairs in any order.
fn by_epoch(figures: impl Iterator<Item = (usize, f64)>) -> Vec<(usize, Summary)> {
    let mut epochs: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for (epoch, figure) in figures {
        epochs.entry(epoch).or_default().push(figure);
    }
    epochs
        .into_iter()
        .filter_map(|(e, v)| Summary::of(v).map(|s| (e, s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rule: &str, seed: u64, errors: &[f64]) -> RunRecord {
        let settings = [
            ("algorithm.rule", format!("\"{rule}\"")),
            ("run.seed", seed.to_string()),
            ("run.name", format!("\"{rule}-{seed}\"")),
            ("optim.lr", "0.1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        RunRecord {
            path: format!("{rule}-{seed}").into(),
            name: format!("{rule}-{seed}"),
            rule: rule.into(),
            dataset: "mnist".into(),
            epochs: errors.len(),
            metrics: errors
                .iter()
                .enumerate()
                .map(|(i, &e)| EpochMetrics {
                    epoch: i + 1,
                    train_loss: 0.1,
                    train_top1_error: e,
                    test_loss: 0.2,
                    test_top1_error: e,
                    test_top5_error: 0.0,
                    seconds: 2.0 + seed as f64,
                    examples_per_second: 1.0,
                    data_wait_seconds: 0.0,
                })
                .collect(),
            alignment: Vec::new(),
            settings,
        }
    }

    #[test]
    fn mean_and_sample_standard_deviation_by_hand() {
        // 10, 12, 14: mean 12, squared deviations 4 + 0 + 4 = 8, over n - 1 = 2: sd 2.
        let s = Summary::of([10.0, 12.0, 14.0]).unwrap();
        assert_eq!((s.mean, s.sd, s.n), (12.0, 2.0, 3));
        assert_eq!(s.text(2), "12.00 ± 2.00");
        assert_eq!(s.band(), (10.0, 14.0));
        // 1.5 and 2.5: mean 2, sd sqrt((0.25 + 0.25) / 1) = 0.7071.
        let s = Summary::of([1.5, 2.5]).unwrap();
        assert!((s.sd - 0.5f64.sqrt()).abs() < 1e-12);
        let one = Summary::of([3.0, f64::NAN]).unwrap();
        assert_eq!((one.mean, one.n, one.text(1)), (3.0, 1, "3.0".to_string()));
        assert!(Summary::of([]).is_none());
    }

    #[test]
    fn runs_that_differ_only_in_seed_form_a_group_labelled_by_what_differs() {
        let runs = [
            run("bp", 1, &[20.0, 10.0]),
            run("kp", 1, &[30.0, 16.0]),
            run("bp", 2, &[22.0, 12.0]),
            run("kp", 2, &[34.0, 20.0]),
            run("bp", 3, &[24.0, 14.0]),
        ];
        let groups = groups(&runs);
        assert!(repeated(&groups));
        let labels: Vec<&str> = groups.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(labels, ["rule=bp", "rule=kp"]);
        // A key only some runs have (wm's mirror.*) does not label the groups.
        let mut wm = run("wm", 1, &[5.0]);
        wm.settings.insert("mirror.eta".into(), "0.02".into());
        let with_wm = [runs[0].clone(), wm];
        let labels: Vec<String> = super::groups(&with_wm)
            .into_iter()
            .map(|g| g.label)
            .collect();
        assert_eq!(labels, ["rule=bp", "rule=wm"]);
        assert_eq!(groups[0].runs.len(), 3);
        let bp = groups[0].last(|m| m.test_top1_error).unwrap();
        assert_eq!((bp.mean, bp.sd, bp.n), (12.0, 2.0, 3));
        let kp = groups[1].best_error().unwrap();
        assert_eq!((kp.mean, kp.n), (18.0, 2));
        assert!((kp.sd - 8.0f64.sqrt()).abs() < 1e-12);
        // Epoch 1 of bp: 20, 22, 24.
        let curve = groups[0].curve(|m| m.test_top1_error);
        assert_eq!(curve[0].0, 1);
        assert_eq!((curve[0].1.mean, curve[0].1.sd), (22.0, 2.0));
        // Seconds: 3, 4, 5 per epoch.
        assert_eq!(groups[0].seconds_per_epoch().unwrap().mean, 4.0);
        let single = [run("bp", 1, &[5.0]), run("fa", 1, &[9.0])];
        assert!(!repeated(&super::groups(&single)));
    }

    #[test]
    fn rules_are_set_against_backprop_seed_by_seed() {
        // Final errors: bp 10, 12, 14 (seeds 1-3); kp 11, 12.5, 15.5: differences 1, 0.5, 1.5,
        // mean 1, sd sqrt((0 + 0.25 + 0.25) / 2) = 0.5.
        let runs = [
            run("bp", 1, &[10.0]),
            run("bp", 2, &[12.0]),
            run("bp", 3, &[14.0]),
            run("kp", 3, &[15.5]),
            run("kp", 1, &[11.0]),
            run("kp", 2, &[12.5]),
        ];
        let groups = groups(&runs);
        let bp = backprop_reference(&groups).unwrap();
        assert_eq!(bp.label, "rule=bp");
        let d = groups[1]
            .paired_difference(bp, |m| m.test_top1_error)
            .unwrap();
        assert_eq!((d.mean, d.sd, d.n), (1.0, 0.5, 3));
        // Groups that differ in more than the rule are not set against bp.
        let mut other = run("kp", 1, &[11.0]);
        other.settings.insert("optim.lr".into(), "0.5".into());
        let mixed = [runs[0].clone(), other];
        assert!(backprop_reference(&super::groups(&mixed)).is_none());
    }

    #[test]
    fn one_group_is_labelled_by_its_rule() {
        let runs = [run("wm", 1, &[5.0]), run("wm", 2, &[7.0])];
        let g = groups(&runs);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].label, "wm");
    }
}
