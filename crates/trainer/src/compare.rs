//! `biofeedback compare`: the final and best figures of several runs as Markdown tables.
//!
//! ```text
//! | run | rule | data | epochs | test top-1 err (final) | best (epoch) | top-5 (final) | ...
//! | layer angles (final): run | fc1 W | fc1 delta | fc2 W | ...
//! ```

use crate::aggregate::{self, Group, text};
use crate::records::figure_text;
use crate::run_record::{self, RunRecord};
use std::fmt::Write;

/// The Markdown tables comparing `runs`: figures, then the last epoch's angles per layer
/// (weight angle `W` and whole-network delta angle `delta`, degrees).
///
/// Where some runs differ only in their seed ([`aggregate::groups`]), tables of each group's
/// mean ± sd come first, then the runs one by one.
pub fn markdown(runs: &[RunRecord]) -> String {
    let mut out = String::new();
    let groups = aggregate::groups(runs);
    if aggregate::repeated(&groups) {
        out.push_str(&group_tables(&groups));
        out.push_str("\nEach run:\n\n");
    }
    out.push_str(
        "| run | rule | data | epochs | test top-1 err % (final) | test top-1 err % (best, epoch) \
         | test top-5 err % (final) | train loss (final) | test loss (final) | s/epoch \
         | directory |\n",
    );
    out.push_str("|---|---|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    for run in runs {
        let done = run.metrics.len();
        let epochs = format!("{done}/{}", run.epochs);
        let cells = match (run.last(), run.best_by_test_error()) {
            (Some(last), Some(best)) => {
                let seconds = run.metrics.iter().map(|m| m.seconds).sum::<f64>() / done as f64;
                format!(
                    "{:.2} | {:.2} ({}) | {:.2} | {:.4} | {:.4} | {:.1}",
                    last.test_top1_error,
                    best.test_top1_error,
                    best.epoch,
                    last.test_top5_error,
                    last.train_loss,
                    last.test_loss,
                    seconds
                )
            }
            _ => "- | - | - | - | - | -".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {epochs} | {cells} | {} |",
            run.name,
            run.rule,
            run.dataset,
            run.path.display()
        );
    }
    let layers = run_record::layers(runs);
    if layers.is_empty() {
        return out;
    }
    out.push_str(
        "\nAngles with backprop at the last epoch, degrees (W: weight angle between `B` and \
                  `W^T`; delta: the rule's teaching signal against backprop's):\n\n| run |",
    );
    for layer in &layers {
        let _ = write!(out, " {layer} W | {layer} delta |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(2 * layers.len()));
    out.push('\n');
    for run in runs {
        let _ = write!(out, "| {} |", run.name);
        for layer in &layers {
            match run.last_alignment(layer) {
                Some(a) => {
                    let _ = write!(
                        out,
                        " {} | {} |",
                        figure_text(a.weight_angle_deg, 1),
                        figure_text(a.delta_angle_global_deg, 1)
                    );
                }
                None => out.push_str(" - | - |"),
            }
        }
        out.push('\n');
    }
    out
}

/// The groups' mean ± sd: final and best errors and losses, then each layer's last angles.
pub fn group_tables(groups: &[Group<'_>]) -> String {
    let mut out = String::from(
        "Mean ± sd over the runs of each group (runs that differ only in `run.seed`; sd is the \
         sample standard deviation, n - 1):\n\n\
         | group | rule | data | n | epochs | test top-1 err % (final) | test top-1 err % (best) \
         | test top-5 err % (final) | train loss (final) | test loss (final) | s/epoch |\n\
         |---|---|---|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for g in groups {
        let first = g.runs[0];
        let epochs = match g.epochs_done() {
            (a, b) if a == b => format!("{a}/{}", first.epochs),
            (a, b) => format!("{a}-{b}/{}", first.epochs),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {epochs} | {} | {} | {} | {} | {} | {} |",
            g.label,
            first.rule,
            first.dataset,
            g.runs.len(),
            text(g.last(|m| m.test_top1_error), 2),
            text(g.best_error(), 2),
            text(g.last(|m| m.test_top5_error), 2),
            text(g.last(|m| m.train_loss), 4),
            text(g.last(|m| m.test_loss), 4),
            text(g.seconds_per_epoch(), 1),
        );
    }
    if let Some(bp) = aggregate::backprop_reference(groups) {
        out.push_str(
            "\nEach rule against backprop with the same seed: final test top-1 error % minus bp's, \
             mean ± sd of the paired differences (n pairs):\n\n\
             | group | rule | n | difference |\n|---|---|---:|---:|\n",
        );
        for g in groups.iter().filter(|g| !std::ptr::eq(*g, bp)) {
            let d = g.paired_difference(bp, |m| m.test_top1_error);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                g.label,
                g.runs[0].rule,
                d.map_or(0, |d| d.n),
                d.map_or("-".into(), |d| match d.sd.is_finite() {
                    true => format!("{:+.2} ± {:.2}", d.mean, d.sd),
                    false => format!("{:+.2}", d.mean),
                })
            );
        }
    }
    let runs: Vec<RunRecord> = groups
        .iter()
        .flat_map(|g| g.runs.iter().map(|r| (*r).clone()))
        .collect();
    let layers = run_record::layers(&runs);
    if layers.is_empty() {
        return out;
    }
    out.push_str(
        "\nAngles with backprop at the last epoch, degrees, mean ± sd over each group's runs \
         (W: weight angle; delta: the rule's teaching signal against backprop's):\n\n| group |",
    );
    for layer in &layers {
        let _ = write!(out, " {layer} W | {layer} delta |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(2 * layers.len()));
    out.push('\n');
    for g in groups {
        let _ = write!(out, "| {} |", g.label);
        for layer in &layers {
            let _ = write!(
                out,
                " {} | {} |",
                text(g.last_angle(layer, |a| a.weight_angle_deg), 1),
                text(g.last_angle(layer, |a| a.delta_angle_global_deg), 1)
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_record::AlignmentRow;
    use crate::train::EpochMetrics;

    fn run(name: &str, errors: &[f64], angle: f64) -> RunRecord {
        let metrics = errors
            .iter()
            .enumerate()
            .map(|(i, &e)| EpochMetrics {
                epoch: i + 1,
                train_loss: 0.1,
                train_top1_error: e,
                test_loss: 0.2,
                test_top1_error: e,
                test_top5_error: e / 10.0,
                seconds: 2.0,
                examples_per_second: 1.0,
                data_wait_seconds: 0.0,
            })
            .collect();
        RunRecord {
            path: name.into(),
            name: name.into(),
            rule: "kp".into(),
            dataset: "mnist".into(),
            epochs: 3,
            settings: Default::default(),
            metrics,
            alignment: vec![AlignmentRow {
                epoch: errors.len(),
                layer: "fc2".into(),
                weight_angle_deg: angle,
                delta_angle_global_deg: angle + 1.0,
                delta_angle_local_deg: angle,
                norm_ratio: 1.0,
            }],
        }
    }

    #[test]
    fn the_table_has_final_and_best_figures_and_angles() {
        let table = markdown(&[run("a", &[9.0, 5.0, 6.0], 3.12), run("b", &[], 0.0)]);
        assert!(
            table.contains("| a | kp | mnist | 3/3 | 6.00 | 5.00 (2) | 0.60 |"),
            "{table}"
        );
        assert!(table.contains("| b | kp | mnist | 0/3 | - |"), "{table}");
        // Which directory each row comes from (two runs may share a name).
        assert!(
            table.contains("| 2.0 | a |") && table.contains("| - | b |"),
            "{table}"
        );
        assert!(table.contains("| fc2 W | fc2 delta |"), "{table}");
        assert!(table.contains("| a | 3.1 | 4.1 |"), "{table}");
    }

    #[test]
    fn runs_that_differ_only_in_seed_get_mean_and_sd_before_the_runs() {
        let seeded = |mut r: RunRecord, seed: u64| {
            r.settings = [
                ("algorithm.rule".to_string(), "\"kp\"".to_string()),
                ("run.seed".to_string(), seed.to_string()),
            ]
            .into();
            r
        };
        let table = markdown(&[
            seeded(run("a", &[9.0, 5.0, 6.0], 3.0), 1),
            seeded(run("b", &[8.0, 7.0, 8.0], 5.0), 2),
        ]);
        // Final errors 6 and 8: mean 7, sd sqrt(((6-7)^2 + (8-7)^2) / 1) = 1.41; best 5 and 7.
        assert!(
            table.contains(
                "| kp | kp | mnist | 2 | 3/3 | 7.00 ± 1.41 | 6.00 ± 1.41 | 0.70 ± 0.14 |"
            ),
            "{table}"
        );
        // Weight angles 3 and 5, delta angles 4 and 6.
        assert!(table.contains("| kp | 4.0 ± 1.4 | 5.0 ± 1.4 |"), "{table}");
        assert!(table.contains("Each run:"), "{table}");
        assert!(table.contains("| a | kp | mnist | 3/3 | 6.00 |"), "{table}");
    }
}
