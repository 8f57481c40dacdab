//! The golden test: the shipped MNIST and CIFAR-10 ResNet configs, each trained for a few
//! steps on a slice of the real data, give the metrics, alignment figures and parameters that
//! were recorded in `tests/engine/golden.txt` before the feedback redesign (issue 12).
//!
//! Each line of the file is `config  fingerprint  train_loss  test_loss  abs_sum`: the
//! fingerprint is a 64-bit FNV-1a hash of the bits of every figure and every checkpoint tensor,
//! so a refactor that changes a single bit of a single weight changes it. Float results depend
//! on the CPU's SIMD kernels (AVX-512 against AVX2 sum in another order; the ResNets' losses
//! after a few steps move by up to 0.4% between the two), so there is one recording per family:
//! `golden.txt` for x86-64 CPUs with AVX-512 (x86-64-v4, the kernels `gemm` and `pulp` pick
//! there), `golden-avx2.txt` for those without (recorded on an AMD EPYC with AVX2 from the
//! code of commit 5069272, the same behaviour as `golden.txt`). On a machine whose bits still
//! differ from its family's recording the test falls back to the three figures at a relative
//! tolerance of 1e-4, still far below what any change of behaviour moves them by; with
//! `BIOFEEDBACK_GOLDEN_STRICT=1` it insists on the bits (how a refactor is checked).
//! `BIOFEEDBACK_GOLDEN_WRITE=1` rewrites this family's file: only for an intended change of
//! behaviour, said in the commit (then on a machine of each family).

use crate::common::{shipped_config, state};
use biofeedback::trainer::data::{self, Split};
use biofeedback::trainer::train::{TrainError, Trainer};
use burn::tensor::Device;
use std::fmt::Write as _;

/// The recording of this machine's SIMD family (see the module's documentation).
fn golden_file() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        let v4 = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512cd")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl");
        if !v4 {
            return "tests/engine/golden-avx2.txt";
        }
    }
    "tests/engine/golden.txt"
}

/// The shipped configs the redesign must preserve, with their slice of data: all five rules
/// on the MNIST MLP (784-500-10) and on the CIFAR-10 ResNet-20, and ResNet-18 (projection
/// shortcuts) with Kolen-Pollack.
const CASES: [&str; 11] = [
    "mnist-mlp-bp",
    "mnist-mlp-fa",
    "mnist-mlp-ss",
    "mnist-mlp-wm",
    "mnist-mlp-kp",
    "cifar10-resnet20-bp",
    "cifar10-resnet20-fa",
    "cifar10-resnet20-ss",
    "cifar10-resnet20-wm",
    "cifar10-resnet20-kp",
    "cifar10-resnet18-kp",
];

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn f64(&mut self, v: f64) {
        self.bytes(&v.to_bits().to_le_bytes());
    }
}

/// One case's figures: the fingerprint, the last epoch's train and test loss and the sum of
/// `|x|` over every tensor of the checkpoint.
#[derive(Debug, Clone, PartialEq)]
struct Figures {
    fingerprint: u64,
    train_loss: f64,
    test_loss: f64,
    abs_sum: f64,
}

fn run(case: &str) -> Figures {
    let mnist = case.starts_with("mnist");
    let mut overrides = vec![
        "run.epochs=2".to_string(),
        "metrics.eval_batch=64".to_string(),
    ];
    if case.contains("-wm") {
        overrides.push("mirror.steps_before=10".into());
    }
    let config = shipped_config(&format!("configs/{case}.toml"), &overrides);
    let mut split: Split = data::load(&config.data).expect("the data set loads");
    let (train, test) = if mnist { (1024, 200) } else { (256, 100) };
    split.train.truncate(train);
    split.test.truncate(test);
    let mut trainer = Trainer::with_data(config, Device::flex(), split).unwrap();
    let reports = trainer.run(|_| Ok::<_, TrainError>(())).unwrap();

    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    for report in &reports {
        let m = &report.metrics;
        for v in [
            m.train_loss,
            m.train_top1_error,
            m.test_loss,
            m.test_top1_error,
            m.test_top5_error,
        ] {
            hash.f64(v);
        }
        for l in &report.layers {
            hash.bytes(l.layer.as_bytes());
            for v in [
                l.weight_angle_deg,
                l.delta_angle_global_deg,
                l.delta_angle_local_deg,
                l.norm_ratio,
            ] {
                hash.f64(v);
            }
        }
    }
    let mut abs_sum = 0.0;
    for (name, values) in state(&trainer) {
        hash.bytes(recorded_name(&name).as_bytes());
        for v in values {
            hash.bytes(&v.to_bits().to_le_bytes());
            abs_sum += v.abs() as f64;
        }
    }
    let last = &reports.last().expect("two epochs ran").metrics;
    Figures {
        fingerprint: hash.0,
        train_loss: last.train_loss,
        test_loss: last.test_loss,
        abs_sum,
    }
}

/// A checkpoint tensor's name as the recording named it. The one intended change since: MLP
/// layers are `fc1`, `fc2`, ... in checkpoints as in `alignment.csv` (checkpoint format 2),
/// where the recording (format 1) had `0`, `1`, ...; values and order are unchanged.
fn recorded_name(name: &str) -> String {
    let mut parts = name.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(head), Some(layer), Some(rest)) => match layer
            .strip_prefix("fc")
            .and_then(|k| k.parse::<usize>().ok())
        {
            Some(k) => format!("{head}.{}.{rest}", k - 1),
            None => name.to_string(),
        },
        _ => name.to_string(),
    }
}

fn parse(line: &str) -> (String, Figures) {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 5, "{}: `{line}`", golden_file());
    let num = |s: &str| s.parse::<f64>().expect("a number");
    (
        f[0].to_string(),
        Figures {
            fingerprint: u64::from_str_radix(f[1], 16).expect("a hex fingerprint"),
            train_loss: num(f[2]),
            test_loss: num(f[3]),
            abs_sum: num(f[4]),
        },
    )
}

#[test]
fn the_shipped_configs_train_as_they_did_before_the_redesign() {
    let got: Vec<(&str, Figures)> = CASES.iter().map(|&c| (c, run(c))).collect();
    if std::env::var_os("BIOFEEDBACK_GOLDEN_WRITE").is_some() {
        let mut text = String::new();
        for (case, f) in &got {
            writeln!(
                text,
                "{case} {:016x} {:e} {:e} {:e}",
                f.fingerprint, f.train_loss, f.test_loss, f.abs_sum
            )
            .unwrap();
        }
        std::fs::write(golden_file(), text).unwrap();
        return;
    }
    let strict = std::env::var_os("BIOFEEDBACK_GOLDEN_STRICT").is_some();
    let golden: Vec<(String, Figures)> = std::fs::read_to_string(golden_file())
        .expect("the recording of this SIMD family")
        .lines()
        .map(parse)
        .collect();
    assert_eq!(
        golden.len(),
        CASES.len(),
        "{} has a line per case",
        golden_file()
    );
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * b.abs().max(1e-12);
    for ((case, f), (name, g)) in got.iter().zip(&golden) {
        assert_eq!(case, name, "{} lists the cases in order", golden_file());
        if f.fingerprint == g.fingerprint {
            continue;
        }
        assert!(!strict, "{case}: not bit-identical ({f:?} against {g:?})");
        assert!(
            close(f.train_loss, g.train_loss)
                && close(f.test_loss, g.test_loss)
                && close(f.abs_sum, g.abs_sum),
            "{case}: {f:?} against the recorded {g:?}"
        );
    }
}
