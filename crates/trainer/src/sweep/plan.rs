//! A sweep file and the points it spans.
//!
//! ```toml
//! name = "mnist-rules"                  # the sweep directory is runs/<name> (default: file stem)
//! base = "../mnist-mlp-bp.toml"         # the experiment every point starts from (relative to
//!                                       # this file)
//! [set]                                 # overrides of every point that reads them
//! run.epochs = 20
//! mirror.eta = 0.02                     # (wm's points only: the others read no mirror.*)
//!
//! [axes]                                # the grid: every combination of these values
//! algorithm.rule = ["bp", "fa", "ss", "wm", "kp"]
//! run.seed = [1, 2, 3]
//!
//! [[zip]]                               # paired axes: the i-th values go together
//! mirror.eta = [0.02, 0.04]
//! mirror.decay = [0.02, 0.04]
//!
//! [[exclude]]                           # points that match every key listed are left out
//! algorithm.rule = "bp"
//! ```
//!
//! The points are the Cartesian product of the axes (each key alone) and the `[[zip]]` groups
//! (their keys together): the axes in key order, then the groups in file order, then the
//! `run.seed` axis, the last one changing fastest (so the seeds of a setting come together). Each point is the base config with `[set]` and its values applied as
//! `--set` overrides (a `[set]` key that the point's model or rule does not read, such as
//! `mirror.*` for a rule other than `wm`, is left out of that point; one that no point reads
//! is an error), and its `run.name` `<sweep>-<point>` unless `[set]` or an axis names
//! one. A point's name (its run directory) is `<key>-<value>` for each swept key, joined by
//! `_` (`rule-bp_seed-1`), the key shortened to its last part where that is unambiguous.

use crate::config::{Config, ConfigError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A sweep file that cannot be used: unreadable, not valid TOML, an unknown key, an empty or
/// ill-typed axis, or a point that is not a valid experiment.
#[derive(Debug, Error)]
#[error("sweep file {path}: {message}")]
pub struct SweepError {
    /// The sweep file.
    pub path: PathBuf,
    /// What is wrong, naming the key.
    pub message: String,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    name: Option<String>,
    base: PathBuf,
    #[serde(default)]
    set: toml::Table,
    #[serde(default)]
    axes: toml::Table,
    #[serde(default)]
    zip: Vec<toml::Table>,
    #[serde(default)]
    exclude: Vec<toml::Table>,
}

/// The key of the seed axis, which changes fastest.
const SEED: &str = "run.seed";

/// One `section.key` and a value.
pub type Setting = (String, toml::Value);

/// A dimension of the grid: one axis, or a `[[zip]]` group of keys that vary together.
#[derive(Debug, Clone, PartialEq)]
pub struct Dim {
    /// The keys (one for an axis).
    pub keys: Vec<String>,
    /// The values: `values[i][k]` is key `k`'s `i`-th value.
    pub values: Vec<Vec<toml::Value>>,
}

/// One experiment of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Its name, which is its run directory's name inside the sweep directory.
    pub name: String,
    /// The swept keys and this point's values, in dimension order.
    pub settings: Vec<Setting>,
    /// The `--set` overrides that make it from the base config: `[set]`, its settings, and
    /// its `run.name`.
    pub overrides: Vec<String>,
    /// The resolved config (the base with the overrides), as `train` will check it.
    pub config: Config,
}

/// A parsed and checked sweep file.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The sweep file.
    pub path: PathBuf,
    /// `name` (default: the file's stem).
    pub name: String,
    /// The base experiment file (absolute).
    pub base: PathBuf,
    /// `[set]`, flattened.
    pub set: Vec<Setting>,
    /// The grid's dimensions, the last changing fastest.
    pub dims: Vec<Dim>,
    /// Every point, excluded ones left out, in grid order.
    pub points: Vec<Point>,
}

impl Sweep {
    /// Reads and checks the sweep file `path`: every point is loaded as `train --config
    /// <base> --set ...` would load it, so a point that is not a valid experiment is an error
    /// here, before anything runs.
    ///
    /// `overrides` (`section.key=value`, as `--set` takes them) are added to `[set]`, replacing
    /// a key it gives.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, SweepError> {
        let text = crate::files::read_to_string(path, crate::files::CONFIG_BYTES)
            .map_err(|e| error(path, format!("cannot read it: {e}")))?;
        Self::from_toml(&text, path, overrides)
    }

    /// [`Sweep::load`] of `text`, named `path` (the base is found relative to its folder).
    pub fn from_toml(text: &str, path: &Path, overrides: &[String]) -> Result<Self, SweepError> {
        let raw: RawSweep = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| format!("line {}: ", text[..s.start].matches('\n').count() + 1))
                .unwrap_or_default();
            error(path, format!("{line}{}", e.message().trim()))
        })?;
        let name = match raw.name {
            Some(n) => n,
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        check_name(&name).map_err(|why| error(path, format!("name = {name:?}: {why}")))?;
        let base = match path.parent() {
            Some(dir) if raw.base.is_relative() => dir.join(&raw.base),
            _ => raw.base.clone(),
        };
        // Absolute, so the points find it from any working directory.
        let base = std::path::absolute(&base)
            .map_err(|e| error(path, format!("base = {:?}: {e}", raw.base)))?;

        let mut set = leaves("set", &raw.set, path)?;
        for arg in overrides {
            let (key, raw_value) = arg
                .split_once('=')
                .ok_or_else(|| error(path, format!("--set {arg}: expected section.key=value")))?;
            let key = key.trim().to_string();
            let value = match toml::from_str::<toml::Table>(&format!("v = {raw_value}")) {
                Ok(mut t) => t.remove("v").expect("the key v was just parsed"),
                Err(_) => toml::Value::String(raw_value.trim().to_string()),
            };
            set.retain(|(k, _)| *k != key);
            set.push((key, value));
        }
        let mut dims = Vec::new();
        let mut axes = leaves("axes", &raw.axes, path)?;
        axes.sort_by(|a, b| a.0.cmp(&b.0));
        // The seed changes fastest: the runs that differ only in it come together.
        let seed = axes
            .iter()
            .position(|(k, _)| k == SEED)
            .map(|i| axes.remove(i));
        for (key, value) in axes {
            let values = axis_values(&format!("axes.{key}"), value, path)?;
            dims.push(Dim {
                keys: vec![key],
                values: values.into_iter().map(|v| vec![v]).collect(),
            });
        }
        for (i, group) in raw.zip.iter().enumerate() {
            let mut keys = leaves(&format!("zip #{}", i + 1), group, path)?;
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            if keys.is_empty() {
                return Err(error(path, format!("zip #{} lists no key", i + 1)));
            }
            let mut columns = Vec::new();
            for (key, value) in &keys {
                columns.push(axis_values(
                    &format!("zip #{} {key}", i + 1),
                    value.clone(),
                    path,
                )?);
            }
            let len = columns[0].len();
            if let Some((k, c)) = keys.iter().zip(&columns).find(|(_, c)| c.len() != len) {
                return Err(error(
                    path,
                    format!(
                        "zip #{}: {} has {} values and {} has {len}: the keys of a [[zip]] \
                         go together, so each needs the same number",
                        i + 1,
                        k.0,
                        c.len(),
                        keys[0].0
                    ),
                ));
            }
            dims.push(Dim {
                keys: keys.into_iter().map(|(k, _)| k).collect(),
                values: (0..len)
                    .map(|row| columns.iter().map(|c| c[row].clone()).collect())
                    .collect(),
            });
        }
        if let Some((key, value)) = seed {
            let values = axis_values(&format!("axes.{key}"), value, path)?;
            dims.push(Dim {
                keys: vec![key],
                values: values.into_iter().map(|v| vec![v]).collect(),
            });
        }
        let mut seen: Vec<&str> = set.iter().map(|(k, _)| k.as_str()).collect();
        for key in dims.iter().flat_map(|d| &d.keys) {
            if seen.contains(&key.as_str()) {
                return Err(error(
                    path,
                    format!("{key} is given twice (in [set], [axes] or a [[zip]]); give it once"),
                ));
            }
            seen.push(key);
        }
        for key in &seen {
            if key.split('.').count() < 2 {
                return Err(error(
                    path,
                    format!("`{key}` is not a config key (expected section.key, e.g. run.seed)"),
                ));
            }
        }
        let exclude = raw
            .exclude
            .iter()
            .enumerate()
            .map(|(i, table)| {
                let what = format!("exclude #{}", i + 1);
                let rows = leaves(&what, table, path)?;
                if rows.is_empty() {
                    return Err(error(path, format!("{what} lists no key")));
                }
                if let Some((k, _)) = rows
                    .iter()
                    .find(|(k, _)| !dims.iter().any(|d| d.keys.contains(k)))
                {
                    return Err(error(
                        path,
                        format!("{what}: {k} is not a swept key (an [axes] or [[zip]] key)"),
                    ));
                }
                Ok(rows)
            })
            .collect::<Result<Vec<_>, _>>()?;

        let short = short_names(&dims);
        let mut points = Vec::new();
        let mut used = vec![false; exclude.len()];
        let mut set_used = vec![false; set.len()];
        for settings in product(&dims) {
            let matches = |rule: &Vec<Setting>| {
                rule.iter()
                    .all(|(k, v)| settings.iter().any(|(sk, sv)| sk == k && sv == v))
            };
            let mut excluded = false;
            for (i, rule) in exclude.iter().enumerate() {
                if matches(rule) {
                    used[i] = true;
                    excluded = true;
                }
            }
            if excluded {
                continue;
            }
            let point_name = match settings.is_empty() {
                true => "base".to_string(),
                false => settings
                    .iter()
                    .map(|(k, v)| format!("{}-{}", short[k.as_str()], value_text(v)))
                    .collect::<Vec<_>>()
                    .join("_"),
            };
            // `[set]` keys that this point's model or rule does not read are left out of it
            // (`mirror.*` for the rules other than wm); every other error is the point's.
            let mut skipped: Vec<&str> = Vec::new();
            let (overrides, config) = loop {
                let mut overrides: Vec<String> = set
                    .iter()
                    .filter(|(k, _)| !skipped.contains(&k.as_str()))
                    .chain(&settings)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                if !seen.contains(&"run.name") {
                    overrides.push(format!(
                        "run.name={}",
                        toml::Value::String(format!("{name}-{point_name}"))
                    ));
                }
                match Config::load(&base, &overrides) {
                    Ok(config) => break (overrides, config),
                    Err(ConfigError::NotApplicable { key, .. })
                        if set.iter().any(|(k, _)| *k == key)
                            && !skipped.contains(&key.as_str()) =>
                    {
                        let k = set.iter().find(|(k, _)| *k == key).expect("found above");
                        skipped.push(k.0.as_str());
                    }
                    Err(e) => return Err(error(path, format!("point {point_name}: {e}"))),
                }
            };
            for (i, (k, _)) in set.iter().enumerate() {
                if !skipped.contains(&k.as_str()) {
                    set_used[i] = true;
                }
            }
            points.push(Point {
                name: point_name,
                settings,
                overrides,
                config,
            });
        }
        if let Some(i) = set_used
            .iter()
            .position(|u| !u)
            .filter(|_| !points.is_empty())
        {
            return Err(error(
                path,
                format!(
                    "[set] {}: no point reads it (its model or rule does not; see `biofeedback \
                     config show`)",
                    set[i].0
                ),
            ));
        }
        if let Some(i) = used.iter().position(|u| !u) {
            return Err(error(
                path,
                format!(
                    "exclude #{} matches no point (check its values against the axes)",
                    i + 1
                ),
            ));
        }
        for (i, p) in points.iter().enumerate() {
            if let Some(q) = points[..i].iter().find(|q| q.name == p.name) {
                return Err(error(
                    path,
                    format!(
                        "two points get the directory name {}: {} and {}",
                        p.name,
                        describe(&q.settings),
                        describe(&p.settings)
                    ),
                ));
            }
        }
        if points.is_empty() {
            return Err(error(
                path,
                "every point is excluded: nothing to run".into(),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            name,
            base,
            set,
            dims,
            points,
        })
    }

    /// The swept keys, in dimension order.
    pub fn keys(&self) -> Vec<&str> {
        self.dims
            .iter()
            .flat_map(|d| d.keys.iter().map(String::as_str))
            .collect()
    }
}

/// `key = value, key = value`.
pub fn describe(settings: &[Setting]) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn error(path: &Path, message: String) -> SweepError {
    SweepError {
        path: path.to_path_buf(),
        message,
    }
}

/// Refuses a sweep name that cannot be a directory name.
fn check_name(name: &str) -> Result<(), &'static str> {
    let fine = |c: char| c.is_ascii_alphanumeric() || "-_.+".contains(c);
    match name {
        "" => Err("a sweep needs a name"),
        n if n.starts_with('.') || !n.chars().all(fine) => {
            Err("expected letters, digits and - _ . + (it names the sweep's directory)")
        }
        _ => Ok(()),
    }
}

/// Every value of `table` by its dotted key (`algorithm.rule`), a nested table being a
/// section.
fn leaves(what: &str, table: &toml::Table, path: &Path) -> Result<Vec<Setting>, SweepError> {
    let mut out = Vec::new();
    crate::config::leaves("", table, &mut out);
    if let Some((k, _)) = out.iter().find(|(k, _)| k.is_empty()) {
        return Err(error(path, format!("{what}: an empty key {k:?}")));
    }
    Ok(out)
}

/// The values of an axis: a non-empty list.
fn axis_values(
    what: &str,
    value: toml::Value,
    path: &Path,
) -> Result<Vec<toml::Value>, SweepError> {
    match value {
        toml::Value::Array(values) if !values.is_empty() => Ok(values),
        toml::Value::Array(_) => Err(error(
            path,
            format!("{what} is empty: expected a list of at least one value"),
        )),
        other => Err(error(
            path,
            format!("{what} = {other}: expected a list of values (e.g. [1, 2, 3])"),
        )),
    }
}

/// The points' settings: the product of the dimensions, the last changing fastest.
fn product(dims: &[Dim]) -> Vec<Vec<Setting>> {
    let mut out: Vec<Vec<Setting>> = vec![Vec::new()];
    for dim in dims {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                dim.values.iter().map(move |row| {
                    let mut p = prefix.clone();
                    p.extend(dim.keys.iter().cloned().zip(row.iter().cloned()));
                    p
                })
            })
            .collect();
    }
    out
}

/// Each swept key's name in point names: its last part (`seed`), or the whole key where two
/// keys share a last part.
fn short_names(dims: &[Dim]) -> std::collections::HashMap<&str, String> {
    let keys: Vec<&str> = dims
        .iter()
        .flat_map(|d| d.keys.iter().map(String::as_str))
        .collect();
    let last = |k: &str| k.rsplit('.').next().unwrap_or(k).to_string();
    keys.iter()
        .map(|&k| {
            let clash = keys.iter().filter(|&&o| last(o) == last(k)).count() > 1;
            (k, if clash { k.to_string() } else { last(k) })
        })
        .collect()
}

/// A value as it appears in a point's name: strings bare, lists comma-joined, and anything
/// but letters, digits and `.+-,` as `_`.
fn value_text(v: &toml::Value) -> String {
    let raw = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    };
    raw.chars()
        .map(|c| match c.is_ascii_alphanumeric() || ".+-,".contains(c) {
            true => c,
            false => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sweep `text` over a base MNIST config written beside it.
    fn sweep(text: &str) -> Result<Sweep, SweepError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("base.toml"),
            "[run]\nname = \"m\"\nepochs = 2\n[data]\ndataset = \"mnist\"\n",
        )
        .unwrap();
        let path = dir.path().join("s.toml");
        let s = Sweep::from_toml(&format!("base = \"base.toml\"\n{text}"), &path, &[]);
        // Keep the folder for the points' configs, loaded above.
        drop(dir);
        s
    }

    fn names(s: &Sweep) -> Vec<&str> {
        s.points.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn axes_make_a_grid_in_key_order_the_last_fastest() {
        let s = sweep(
            "[axes]\nrun.seed = [1, 2]\nalgorithm.rule = [\"bp\", \"kp\"]\n[set]\nrun.epochs = 3\n",
        )
        .unwrap();
        assert_eq!(s.name, "s");
        assert_eq!(
            names(&s),
            [
                "rule-bp_seed-1",
                "rule-bp_seed-2",
                "rule-kp_seed-1",
                "rule-kp_seed-2"
            ]
        );
        let p = &s.points[2];
        assert_eq!(
            p.overrides,
            [
                "run.epochs=3",
                "algorithm.rule=\"kp\"",
                "run.seed=1",
                "run.name=\"s-rule-kp_seed-1\""
            ]
        );
        assert_eq!(p.config.run.epochs, 3);
        assert_eq!(p.config.run.seed, 1);
        assert_eq!(p.config.run.name, "s-rule-kp_seed-1");
        assert_eq!(p.config.algorithm.rule.to_string(), "kp");
    }

    #[test]
    fn zipped_keys_go_together_and_exclusions_drop_points() {
        let s = sweep(
            "[axes]\nalgorithm.rule = [\"bp\", \"wm\"]\n\
             [[zip]]\noptim.lr = [0.1, 0.05]\noptim.momentum = [0.9, 0.5]\n\
             [[exclude]]\nalgorithm.rule = \"bp\"\noptim.lr = 0.05\n",
        )
        .unwrap();
        assert_eq!(
            names(&s),
            [
                "rule-bp_lr-0.1_momentum-0.9",
                "rule-wm_lr-0.1_momentum-0.9",
                "rule-wm_lr-0.05_momentum-0.5"
            ]
        );
        assert_eq!(s.points[2].config.optim.momentum, 0.5);
        assert_eq!(s.keys(), ["algorithm.rule", "optim.lr", "optim.momentum"]);
        let s = sweep("[axes]\nrun.seed = [1, 2]\n[[zip]]\noptim.lr = [0.1, 0.05]\n").unwrap();
        assert_eq!(
            names(&s),
            [
                "lr-0.1_seed-1",
                "lr-0.1_seed-2",
                "lr-0.05_seed-1",
                "lr-0.05_seed-2"
            ]
        );
    }

    #[test]
    fn keys_sharing_a_last_part_keep_their_sections_in_names() {
        let s = sweep(
            "[axes]\noptim.batch_size = [64]\nmetrics.eval_batch = [100]\nmodel.hidden = [[32, 16]]\n",
        )
        .unwrap();
        assert_eq!(names(&s), ["eval_batch-100_hidden-32,16_batch_size-64"]);
        let s = sweep(
            "[axes]\noptim.batch_size = [64]\nmirror.batch_size = [8]\nalgorithm.rule = [\"wm\"]\n",
        )
        .unwrap();
        assert_eq!(
            names(&s),
            ["rule-wm_mirror.batch_size-8_optim.batch_size-64"]
        );
    }

    #[test]
    fn a_bad_sweep_file_is_one_error_naming_the_key() {
        for (text, expected) in [
            ("[axes]\nrun.seed = []\n", "axes.run.seed is empty"),
            (
                "[axes]\nrun.seed = 1\n",
                "axes.run.seed = 1: expected a list",
            ),
            ("[axes]\noptim.lr = [\"fast\"]\n", "optim.lr"),
            ("[axes]\noptim.learning_rate = [0.1]\n", "learning_rate"),
            ("[axis]\nrun.seed = [1]\n", "unknown field `axis`"),
            ("[axes]\nseed = [1]\n", "`seed` is not a config key"),
            (
                "[set]\nrun.seed = 2\n[axes]\nrun.seed = [1]\n",
                "run.seed is given twice",
            ),
            (
                "[[zip]]\noptim.lr = [0.1]\noptim.momentum = [0.9, 0.5]\n",
                "optim.momentum has 2 values",
            ),
            (
                "[axes]\nrun.seed = [1]\n[[exclude]]\noptim.lr = 0.1\n",
                "exclude #1: optim.lr is not a swept key",
            ),
            (
                "[axes]\nalgorithm.rule = [\"bp\"]\n[[exclude]]\nalgorithm.rule = \"bpp\"\n",
                "exclude #1 matches no point",
            ),
            (
                "[axes]\nalgorithm.rule = [\"bp\"]\n[[exclude]]\nalgorithm.rule = \"bp\"\n",
                "every point is excluded",
            ),
            ("name = \"a/b\"\n", "name = \"a/b\""),
            ("[axes]\nrun.seed = [1, 1]\n", "the directory name seed-1"),
            (
                "[axes]\nalgorithm.rule = [\"bp\"]\nmirror.eta = [0.1]\n",
                "mirror.eta does not apply",
            ),
        ] {
            let e = sweep(text).unwrap_err().to_string();
            assert!(
                e.contains(expected) && e.starts_with("sweep file ") && !e.contains('\n'),
                "{text}: {e}"
            );
        }
        let e = Sweep::from_toml("base = \"nowhere.toml\"\n", Path::new("s.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("nowhere.toml"), "{e}");
    }

    #[test]
    fn set_keys_go_to_the_points_that_read_them() {
        let s =
            sweep("[set]\nmirror.eta = 0.05\n[axes]\nalgorithm.rule = [\"bp\", \"wm\"]\n").unwrap();
        assert!(
            !s.points[0]
                .overrides
                .iter()
                .any(|o| o.starts_with("mirror"))
        );
        assert_eq!(s.points[1].overrides[0], "mirror.eta=0.05");
        assert_eq!(s.points[1].config.mirror.eta, 0.05);
        let e = sweep("[set]\nmirror.eta = 0.05\n[axes]\nalgorithm.rule = [\"bp\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[set] mirror.eta: no point reads it"), "{e}");
    }

    #[test]
    fn command_line_sets_replace_the_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.toml"), "[run]\nepochs = 2\n").unwrap();
        let text = "base = \"base.toml\"\n[set]\nrun.epochs = 5\n[axes]\nrun.seed = [1]\n";
        let path = dir.path().join("s.toml");
        let s = Sweep::from_toml(text, &path, &["run.epochs=3".into()]).unwrap();
        assert_eq!(s.points[0].config.run.epochs, 3);
        let e = Sweep::from_toml(text, &path, &["run.seed=2".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("run.seed is given twice"), "{e}");
    }

    #[test]
    fn every_shipped_sweep_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/sweeps");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let s = Sweep::load(&entry.unwrap().path(), &[]).unwrap_or_else(|e| panic!("{e}"));
            assert!(s.points.len() >= 9, "{}: {} points", s.name, s.points.len());
            // Every wm point gets the recipe's mirror section; no other point reads one.
            for p in &s.points {
                let rule = p.config.algorithm.rule.to_string();
                assert_eq!(
                    rule == "wm",
                    p.overrides.iter().any(|o| o.starts_with("mirror."))
                );
                // A sweep over the rules runs each rule's shipped recipe.
                let base = s.base.to_string_lossy().to_string();
                if s.name.ends_with("-rules") {
                    let shipped = base.replace("-bp.toml", &format!("-{rule}.toml"));
                    let shipped = Config::load(Path::new(&shipped), &[]).unwrap();
                    let differences: Vec<String> = shipped
                        .differences(&p.config)
                        .into_iter()
                        .map(|d| d.0)
                        .filter(|k| k != "run.name" && k != "run.seed")
                        .collect();
                    assert!(differences.is_empty(), "{}: {differences:?}", p.name);
                }
            }
            n += 1;
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn no_axes_is_one_point_named_base() {
        let s = sweep("").unwrap();
        assert_eq!(names(&s), ["base"]);
        assert_eq!(s.points[0].config.run.name, "s-base");
    }
}
