//! ResNet-18 and ResNet-50, and the CIFAR ResNets 20/32/44/56 (He et al. 2016) of feedback
//! convolutions, with train-mode BatchNorm and explicit backward passes.
//!
//! ```text
//! stem     imagenet: conv 7x7/2 (64w) → norm-act → max-pool 3x3/2     (224x224 inputs)
//!          cifar:    conv 3x3/1 (64w) → norm-act                      (32x32 inputs)
//! layer1-4 basic blocks [2, 2, 2, 2] (ResNet-18) or bottlenecks [3, 4, 6, 3] (ResNet-50),
//!          widths 64w, 128w, 256w, 512w, stride 2 from layer2 on, projection shortcut
//!          (1x1 conv + BatchNorm, its own B) where the shape changes
//! layer1-3 CIFAR ResNet-(6n+2): n basic blocks per stage at widths 16w', 32w', 64w'
//!          (`width` = 16 is the paper's), stride 2 from layer2 on, projection shortcuts
//!          (He et al.'s option B; their CIFAR table used option A, zero-padding)
//! head     global average pool → fc (a feedback linear layer)
//! ```
//!
//! `w` is the width multiplier (`width / 64`), so small CPU runs are possible. A unit is a
//! conv followed by BatchNorm and ReLU, in the order of [`BnPosition`]; the last unit of a
//! block has no ReLU of its own: the block's output is `relu(main + shortcut)`.
//!
//! Backward: every conv and the fc send the teaching signal through their own `B`;
//! BatchNorm (in [`BnFeedback`] mode), ReLU, pooling and the residual additions (the delta goes
//! to both branches and is summed at the fork) use their exact local rules. Layer names follow
//! torchvision: `conv1`, `layer3.1.conv2`, `layer2.0.downsample`, `fc`.

use crate::mlp::Path;
use crate::network::{FeedbackNetwork, LayerAlignment};
use biofeedback_core::init::Rng;
use biofeedback_core::mirror::{MirrorConfig, mirror_step, mirror_step_conv};
use biofeedback_core::optim::{BnMomentum, ConvMomentum, step_bn, step_conv};
use biofeedback_core::pool::{MaxPoolCache, global_avg_pool, global_avg_pool_backward};
use biofeedback_core::{
    Activation, BatchNorm2d, BnBackward, BnCache, BnFeedback, Error, FeedbackConv2d,
    FeedbackLinear, Init, LinearGrads, MaxPool2d, Rule, Sgd, SgdConfig, Visitor,
};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Which ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Depth {
    /// Basic blocks `[2, 2, 2, 2]`.
    #[serde(rename = "resnet18")]
    ResNet18,
    /// Bottleneck blocks `[3, 4, 6, 3]`, expansion 4.
    #[serde(rename = "resnet50")]
    ResNet50,
    /// The CIFAR ResNet-(6n+2) with `n` basic blocks in each of 3 stages (n = 3, 5, 7, 9:
    /// ResNet-20, 32, 44, 56), widths `width`, `2 width`, `4 width`.
    #[serde(rename = "cifar")]
    Cifar(usize),
}

/// One conv unit of the plan: name, input and output channels, kernel, stride, whether a
/// ReLU follows.
type UnitSpec = (String, usize, usize, usize, usize, bool);

/// The units of a ResNet, input first: the stem, then per block its main units and its
/// projection shortcut; and the classifier's input width.
struct Plan {
    stem: UnitSpec,
    blocks: Vec<(Vec<UnitSpec>, Option<UnitSpec>)>,
    features: usize,
}

/// The first layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stem {
    /// 7x7 stride-2 conv and a 3x3 stride-2 max-pool (ImageNet-sized inputs).
    #[default]
    Imagenet,
    /// 3x3 stride-1 conv, no pool (32x32 inputs such as CIFAR-10).
    Cifar,
}

/// Where BatchNorm sits relative to the ReLU in a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BnPosition {
    /// conv → BatchNorm → ReLU (He et al.; better for sign symmetry).
    #[default]
    BeforeRelu,
    /// conv → ReLU → BatchNorm (the paper's main runs).
    AfterRelu,
}

/// The architecture of a [`ResNet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// ResNet-18 or ResNet-50.
    pub depth: Depth,
    /// The stem.
    pub stem: Stem,
    /// Channels of the stem and layer1 (64 in the paper; smaller for CPU runs).
    pub width: usize,
    /// Input channels (3).
    pub in_channels: usize,
    /// Number of classes.
    pub classes: usize,
    /// The learning rule of every conv and linear layer.
    pub rule: Rule,
    /// Weight (and feedback) initialisation.
    pub init: Init,
    /// How BatchNorm passes the teaching signal.
    pub bn_feedback: BnFeedback,
    /// BatchNorm before or after the ReLU.
    pub bn_position: BnPosition,
}

/// A conv with its BatchNorm and (optionally) ReLU.
#[derive(Debug, Clone)]
pub struct Unit {
    /// The conv's name, e.g. `layer3.1.conv2`.
    pub name: String,
    /// The feedback conv.
    pub conv: FeedbackConv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm2d,
    /// Whether a ReLU follows (all units but the last of a block).
    pub relu: bool,
}

/// A residual block: units in sequence, and a projection shortcut where the shape changes.
#[derive(Debug, Clone)]
pub struct Block {
    /// Two (basic) or three (bottleneck) units.
    pub units: Vec<Unit>,
    /// The projection shortcut, if any.
    pub shortcut: Option<Unit>,
}

/// A ResNet of feedback layers; see the module docs.
#[derive(Debug, Clone)]
pub struct ResNet {
    /// The stem's unit (`conv1`).
    pub stem: Unit,
    /// Whether the stem ends with a max-pool.
    pub stem_pool: bool,
    /// The residual blocks, layer1 first.
    pub blocks: Vec<Block>,
    /// The classifier.
    pub fc: FeedbackLinear,
    /// BatchNorm's feedback mode.
    pub bn_feedback: BnFeedback,
    /// BatchNorm's position.
    pub bn_position: BnPosition,
}

/// What the backward pass of one unit needs.
#[derive(Debug, Clone)]
pub struct UnitCache {
    x: Tensor<4>,
    bn: BnCache,
    /// ReLU output (for its mask), if the unit has one.
    relu_out: Option<Tensor<4>>,
}

/// What [`ResNet::backward`] needs from [`ResNet::forward_train`].
#[derive(Debug, Clone)]
pub struct ResNetCache {
    stem: UnitCache,
    pool: Option<MaxPoolCache>,
    /// Per block: unit caches, shortcut cache, block output (after the ReLU).
    blocks: Vec<(Vec<UnitCache>, Option<UnitCache>, Tensor<4>)>,
    /// Input of the global pool's size, `[h, w]`.
    pooled_from: [usize; 2],
    /// The fc's input, `[n, c]`.
    features: Tensor<2>,
}

/// Gradients of one unit.
#[derive(Debug, Clone)]
pub struct UnitGrads {
    /// Kernel gradient (also Kolen-Pollack's `B` gradient).
    pub conv: Tensor<4>,
    /// `gamma` and `beta` gradients.
    pub bn: BnBackward,
}

/// The result of [`ResNet::backward`].
#[derive(Debug, Clone)]
pub struct ResNetBackward {
    /// One entry per unit in [`ResNet::units`] order.
    pub units: Vec<UnitGrads>,
    /// The classifier's gradients.
    pub fc: LinearGrads,
    /// Per unit: the teaching signal at the conv's input (`conv_transpose(delta, B)`), when
    /// computed (not for the stem unless asked for).
    pub deltas: Vec<Option<Tensor<4>>>,
    /// The teaching signal at the fc's input, `[n, c]`.
    pub fc_delta: Tensor<2>,
    /// Per unit: the teaching signal at the conv's output, `[n, c_out, h', w']`.
    pub conv_out_deltas: Vec<Tensor<4>>,
}

impl ResNetCache {
    /// The input of every unit's conv, in [`ResNet::units`] order.
    pub fn unit_inputs(&self) -> Vec<&Tensor<4>> {
        let mut inputs = vec![&self.stem.x];
        for (units, short, _) in &self.blocks {
            inputs.extend(units.iter().map(|u| &u.x));
            inputs.extend(short.iter().map(|u| &u.x));
        }
        inputs
    }
}

impl ResNetConfig {
    /// The units this config describes, without building them.
    fn plan(&self) -> Plan {
        let w = self.width.max(1);
        let stem = match self.stem {
            Stem::Imagenet => ("conv1".to_string(), self.in_channels, w, 7, 2, true),
            Stem::Cifar => ("conv1".to_string(), self.in_channels, w, 3, 1, true),
        };
        let (counts, expansion) = match self.depth {
            Depth::ResNet18 => (vec![2; 4], 1),
            Depth::ResNet50 => (vec![3, 4, 6, 3], 4),
            Depth::Cifar(n) => (vec![n.max(1); 3], 1),
        };
        let mut blocks = Vec::new();
        let mut c_in = w;
        for (i, &count) in counts.iter().enumerate() {
            let mid = w << i;
            let c_out = mid * expansion;
            for j in 0..count {
                let s = if i > 0 && j == 0 { 2 } else { 1 };
                let name = |part: &str| format!("layer{}.{j}.{part}", i + 1);
                let units = match self.depth {
                    Depth::ResNet18 | Depth::Cifar(_) => vec![
                        (name("conv1"), c_in, mid, 3, s, true),
                        (name("conv2"), mid, c_out, 3, 1, false),
                    ],
                    Depth::ResNet50 => vec![
                        (name("conv1"), c_in, mid, 1, 1, true),
                        (name("conv2"), mid, mid, 3, s, true),
                        (name("conv3"), mid, c_out, 1, 1, false),
                    ],
                };
                let shortcut = (s != 1 || c_in != c_out)
                    .then(|| (name("downsample"), c_in, c_out, 1, s, false));
                blocks.push((units, shortcut));
                c_in = c_out;
            }
        }
        Plan {
            stem,
            blocks,
            features: c_in,
        }
    }

    /// The number of trained parameters (conv kernels, BatchNorm scales and shifts, the
    /// classifier's weight and bias), counted without building the network.
    pub fn parameter_count(&self) -> u128 {
        let plan = self.plan();
        let unit =
            |&(_, c_in, c_out, k, _, _): &UnitSpec| (c_in * c_out * k * k + 2 * c_out) as u128;
        let blocks: u128 = plan
            .blocks
            .iter()
            .map(|(units, short)| {
                units.iter().map(unit).sum::<u128>() + short.as_ref().map_or(0, unit)
            })
            .sum();
        unit(&plan.stem) + blocks + ((plan.features + 1) * self.classes) as u128
    }

    /// Builds the network, drawing every tensor from `rng`.
    ///
    /// # Errors
    /// [`Error::RuleNotSupported`] for `dfa`: its output error has no path through BatchNorm
    /// and the residual sums defined here.
    pub fn init(&self, rng: &mut Rng, device: &Device) -> Result<ResNet, Error> {
        if self.rule == Rule::Dfa {
            return Err(Error::RuleNotSupported {
                rule: self.rule.name(),
                network: "a ResNet",
                why: "direct feedback alignment is defined here for MLPs (model.kind = \"mlp\")",
            });
        }
        let unit = |(name, c_in, c_out, k, s, relu): UnitSpec, rng: &mut Rng| Unit {
            name,
            conv: FeedbackConv2d::new(c_in, c_out, k, s, k / 2, self.rule, self.init, rng, device),
            bn: BatchNorm2d::new(c_out, device),
            relu,
        };
        let plan = self.plan();
        let stem = unit(plan.stem, rng);
        let mut blocks = Vec::new();
        for (units, shortcut) in plan.blocks {
            let units = units.into_iter().map(|u| unit(u, rng)).collect();
            let shortcut = shortcut.map(|u| unit(u, rng));
            blocks.push(Block { units, shortcut });
        }
        let fc = FeedbackLinear::new(
            plan.features,
            self.classes,
            self.rule,
            self.init,
            rng,
            device,
        );
        Ok(ResNet {
            stem,
            stem_pool: self.stem == Stem::Imagenet,
            blocks,
            fc,
            bn_feedback: self.bn_feedback,
            bn_position: self.bn_position,
        })
    }
}

impl Unit {
    fn forward_train(&self, x: Tensor<4>, position: BnPosition) -> (Tensor<4>, UnitCache) {
        let z = self.conv.forward(x.clone());
        let relu = |t: Tensor<4>| Activation::Relu.forward(t);
        let (out, bn, relu_out) = match (position, self.relu) {
            (_, false) => {
                let (y, bn) = self.bn.forward_train(z);
                (y, bn, None)
            }
            (BnPosition::BeforeRelu, true) => {
                let (y, bn) = self.bn.forward_train(z);
                let a = relu(y);
                (a.clone(), bn, Some(a))
            }
            (BnPosition::AfterRelu, true) => {
                let a = relu(z);
                let (y, bn) = self.bn.forward_train(a.clone());
                (y, bn, Some(a))
            }
        };
        (out, UnitCache { x, bn, relu_out })
    }

    fn forward_eval(&self, x: Tensor<4>, position: BnPosition) -> Tensor<4> {
        let z = self.conv.forward(x);
        let relu = |t: Tensor<4>| Activation::Relu.forward(t);
        match (position, self.relu) {
            (_, false) => self.bn.forward_eval(z),
            (BnPosition::BeforeRelu, true) => relu(self.bn.forward_eval(z)),
            (BnPosition::AfterRelu, true) => self.bn.forward_eval(relu(z)),
        }
    }

    /// Gradients, the delta at the conv's output, and the delta at the unit's input (if a
    /// feedback kernel is given).
    fn backward(
        &self,
        cache: &UnitCache,
        delta: Tensor<4>,
        position: BnPosition,
        mode: BnFeedback,
        feedback: Option<Tensor<4>>,
    ) -> (UnitGrads, Tensor<4>, Option<Tensor<4>>) {
        let relu_back = |g: Tensor<4>| match &cache.relu_out {
            Some(a) => Activation::Relu.backward(a.clone(), g),
            None => g,
        };
        let (bn, dz) = match position {
            BnPosition::BeforeRelu => {
                let bn = self.bn.backward(&cache.bn, relu_back(delta), mode);
                let dz = bn.delta_in.clone();
                (bn, dz)
            }
            BnPosition::AfterRelu => {
                let bn = self.bn.backward(&cache.bn, delta, mode);
                let dz = relu_back(bn.delta_in.clone());
                (bn, dz)
            }
        };
        let back = self
            .conv
            .backward_through(cache.x.clone(), dz.clone(), feedback);
        (
            UnitGrads {
                conv: back.weight,
                bn,
            },
            dz,
            back.delta_in,
        )
    }
}

impl ResNet {
    /// Every unit in a fixed order: the stem, then per block its units and its shortcut.
    pub fn units(&self) -> Vec<&Unit> {
        let mut units = vec![&self.stem];
        for block in &self.blocks {
            units.extend(block.units.iter());
            units.extend(block.shortcut.iter());
        }
        units
    }

    /// [`ResNet::units`], mutable.
    pub fn units_mut(&mut self) -> Vec<&mut Unit> {
        let mut units = vec![&mut self.stem];
        for block in &mut self.blocks {
            units.extend(block.units.iter_mut());
            units.extend(block.shortcut.iter_mut());
        }
        units
    }

    /// Logits in evaluation mode (BatchNorm with running statistics).
    ///
    /// # Shapes
    /// `x`: `[n, c, h, w]` → `[n, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let p = self.bn_position;
        let mut h = self.stem.forward_eval(x, p);
        if self.stem_pool {
            h = MaxPool2d::STEM.forward(h).0;
        }
        for block in &self.blocks {
            let mut main = h.clone();
            for unit in &block.units {
                main = unit.forward_eval(main, p);
            }
            let short = match &block.shortcut {
                Some(unit) => unit.forward_eval(h, p),
                None => h,
            };
            h = Activation::Relu.forward(main + short);
        }
        self.fc.forward(global_avg_pool(h))
    }

    /// Logits in training mode (BatchNorm with batch statistics) and the cache for
    /// [`ResNet::backward`].
    pub fn forward_train(&self, x: Tensor<4>) -> (Tensor<2>, ResNetCache) {
        let p = self.bn_position;
        let (mut h, stem) = self.stem.forward_train(x, p);
        let pool = self.stem_pool.then(|| {
            let (y, cache) = MaxPool2d::STEM.forward(h.clone());
            h = y;
            cache
        });
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let mut main = h.clone();
            let mut caches = Vec::with_capacity(block.units.len());
            for unit in &block.units {
                let (y, cache) = unit.forward_train(main, p);
                caches.push(cache);
                main = y;
            }
            let (short, short_cache) = match &block.shortcut {
                Some(unit) => {
                    let (y, cache) = unit.forward_train(h, p);
                    (y, Some(cache))
                }
                None => (h, None),
            };
            h = Activation::Relu.forward(main + short);
            blocks.push((caches, short_cache, h.clone()));
        }
        let [_, _, hh, ww] = h.dims();
        let features = global_avg_pool(h);
        let logits = self.fc.forward(features.clone());
        let cache = ResNetCache {
            stem,
            pool,
            blocks,
            pooled_from: [hh, ww],
            features,
        };
        (logits, cache)
    }

    /// Folds the batch statistics of a training step into every BatchNorm's running ones.
    pub fn track_running_stats(&mut self, cache: &ResNetCache) {
        self.stem.bn.track(&cache.stem.bn);
        for (block, (units, short, _)) in self.blocks.iter_mut().zip(&cache.blocks) {
            for (unit, c) in block.units.iter_mut().zip(units) {
                unit.bn.track(&c.bn);
            }
            if let (Some(unit), Some(c)) = (block.shortcut.as_mut(), short) {
                unit.bn.track(&c.bn);
            }
        }
    }

    /// The explicit backward pass from `dL/dlogits`: through each layer's own `B` and the
    /// configured BatchNorm feedback ([`Path::Own`]), or through `W` everywhere with the exact
    /// BatchNorm backward ([`Path::Exact`], backprop). `input_delta` asks for the delta at the
    /// image too.
    pub fn backward(
        &self,
        cache: &ResNetCache,
        dlogits: Tensor<2>,
        path: Path,
        input_delta: bool,
    ) -> ResNetBackward {
        // Exact backprop, the reference of the delta angles, takes BatchNorm's full backward
        // even when the rule trains through the sigma approximation (SPEC section 4).
        let mode = match path {
            Path::Own => self.bn_feedback,
            Path::Exact => BnFeedback::Exact,
        };
        let p = self.bn_position;
        let fc_feedback = match path {
            Path::Own => self.fc.effective_feedback(),
            Path::Exact => self.fc.weight.clone(),
        };
        let fc_back =
            FeedbackLinear::backward_through(cache.features.clone(), dlogits, Some(fc_feedback));
        let fc_delta = fc_back
            .delta_in
            .clone()
            .expect("a feedback tensor was given");
        let mut delta = global_avg_pool_backward(fc_delta.clone(), cache.pooled_from);
        let kernel = |unit: &Unit| match path {
            Path::Own => unit.conv.effective_feedback(),
            Path::Exact => unit.conv.weight.clone(),
        };
        // Filled in reverse order, reversed at the end.
        let mut grads = Vec::new();
        let mut deltas = Vec::new();
        let mut out_deltas = Vec::new();
        for (block, (units, short_cache, out)) in self.blocks.iter().zip(&cache.blocks).rev() {
            let d_sum = Activation::Relu.backward(out.clone(), delta);
            let mut short_delta = d_sum.clone();
            if let (Some(unit), Some(c)) = (&block.shortcut, short_cache) {
                let (g, dz, d_in) = unit.backward(c, d_sum.clone(), p, mode, Some(kernel(unit)));
                let d_in = d_in.expect("a feedback kernel was given");
                grads.push(g);
                out_deltas.push(dz);
                deltas.push(Some(d_in.clone()));
                short_delta = d_in;
            }
            let mut main = d_sum;
            for (unit, c) in block.units.iter().zip(units).rev() {
                let (g, dz, d_in) = unit.backward(c, main, p, mode, Some(kernel(unit)));
                let d_in = d_in.expect("a feedback kernel was given");
                grads.push(g);
                out_deltas.push(dz);
                deltas.push(Some(d_in.clone()));
                main = d_in;
            }
            delta = main + short_delta;
        }
        if let Some(pool) = &cache.pool {
            delta = MaxPool2d::STEM.backward(pool, delta);
        }
        let stem_kernel = input_delta.then(|| kernel(&self.stem));
        let (g, dz, d_in) = self.stem.backward(&cache.stem, delta, p, mode, stem_kernel);
        grads.push(g);
        out_deltas.push(dz);
        deltas.push(d_in);
        // Pushed as stem ← [u1 .. un, shortcut] per block, each reversed: reversing the
        // whole lists gives the [`ResNet::units`] order.
        grads.reverse();
        deltas.reverse();
        out_deltas.reverse();
        ResNetBackward {
            units: grads,
            fc: fc_back.grads,
            deltas,
            fc_delta,
            conv_out_deltas: out_deltas,
        }
    }
}

/// SGD state of a [`ResNet`].
#[derive(Debug, Clone)]
pub struct ResNetOptim {
    /// The hyper-parameters.
    pub config: SgdConfig,
    /// Per unit (in [`ResNet::units`] order): the conv's and the BatchNorm's velocities.
    pub units: Vec<(ConvMomentum, BnMomentum)>,
    /// The classifier (a one-layer [`Sgd`]).
    pub fc: Sgd,
}

impl FeedbackNetwork for ResNet {
    type Input = Tensor<4>;
    type Cache = ResNetCache;
    type Backward = ResNetBackward;
    type Optim = ResNetOptim;

    /// `[n, c h w]` as images `[n, c, h, w]`.
    fn input(x: Tensor<2>, [c, h, w]: [usize; 3]) -> Tensor<4> {
        let n = x.dims()[0];
        x.reshape([n, c, h, w])
    }

    fn optim(&self, config: SgdConfig) -> ResNetOptim {
        ResNetOptim {
            config,
            units: vec![Default::default(); self.units().len()],
            fc: Sgd::new(config, 1),
        }
    }

    fn train_step(
        &mut self,
        optim: &mut ResNetOptim,
        cache: ResNetCache,
        dlogits: Tensor<2>,
        lr: f64,
    ) {
        let back = ResNet::backward(self, &cache, dlogits, Path::Own, false);
        self.track_running_stats(&cache);
        let config = optim.config;
        for ((unit, grads), (conv_v, bn_v)) in self
            .units_mut()
            .into_iter()
            .zip(back.units)
            .zip(&mut optim.units)
        {
            step_conv(config, &mut unit.conv, grads.conv, conv_v, lr);
            step_bn(config, &mut unit.bn, &grads.bn, bn_v, lr);
        }
        optim.fc.step(0, &mut self.fc, back.fc, lr);
    }

    /// Every conv through ReLU on noise maps big enough for its kernel to slide (8x8, 16x16
    /// for the 7x7 stem), then the classifier through `output` on `head_batch_size` noise
    /// vectors (default `batch_size`).
    fn mirror(&mut self, config: &MirrorConfig, output: Activation, rng: &mut Rng) {
        for unit in self.units_mut() {
            let side = (2 * unit.conv.kernel() + 2).max(8);
            mirror_step_conv(&mut unit.conv, Activation::Relu, config, side, rng);
        }
        let head = MirrorConfig {
            batch_size: config.head_batch_size.unwrap_or(config.batch_size),
            ..*config
        };
        mirror_step(&mut self.fc, output, &head, rng);
    }

    fn redraws(&self) -> bool {
        self.fc.feedback.redraws()
    }

    fn redraw(&mut self, rng: &mut Rng) {
        for unit in self.units_mut() {
            unit.conv.feedback.redraw(rng);
        }
        self.fc.feedback.redraw(rng);
    }

    /// `fc`, then every unit under its name (conv, then BatchNorm as `<name>.bn.*`).
    fn visit(&mut self, optim: &mut ResNetOptim, f: &mut Visitor<'_>) {
        self.fc.visit("model.fc", f);
        optim.fc.state[0].visit("optim.fc", &self.fc, f);
        for (unit, (conv_v, bn_v)) in self.units_mut().into_iter().zip(&mut optim.units) {
            let name = &unit.name;
            unit.conv.visit(&format!("model.{name}"), f);
            unit.bn.visit(&format!("model.{name}"), f);
            conv_v.visit(&format!("optim.{name}"), &unit.conv, f);
            bn_v.visit(&format!("optim.{name}"), &unit.bn, f);
        }
    }

    fn describe(&self) -> String {
        format!(
            "ResNet with {} conv layers (stem width {})",
            self.units().len(),
            self.stem.conv.c_out()
        )
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        ResNet::forward(self, x)
    }

    fn forward_train(&self, x: Tensor<4>) -> (Tensor<2>, ResNetCache) {
        ResNet::forward_train(self, x)
    }

    fn backward(
        &self,
        cache: &ResNetCache,
        dlogits: Tensor<2>,
        path: Path,
        input_delta: bool,
    ) -> ResNetBackward {
        ResNet::backward(self, cache, dlogits, path, input_delta)
    }

    /// Every conv under its own name, then `fc`; the deltas are those at each layer's input
    /// (`conv_transpose(delta, B)`).
    fn layer_alignment(&self, cache: &ResNetCache, dlogits: Tensor<2>) -> Vec<LayerAlignment> {
        let own = self.backward(cache, dlogits.clone(), Path::Own, true);
        let exact = self.backward(cache, dlogits.clone(), Path::Exact, true);
        let inputs = cache.unit_inputs();
        let mut rows: Vec<LayerAlignment> = self
            .units()
            .into_iter()
            .enumerate()
            .map(|(k, unit)| {
                let upstream = own.conv_out_deltas[k].clone();
                let feedback = unit.conv.effective_feedback();
                let through = |kernel: Tensor<4>| {
                    unit.conv.delta_through(upstream.clone(), kernel, inputs[k])
                };
                LayerAlignment::measure(
                    unit.name.clone(),
                    feedback.clone(),
                    unit.conv.weight.clone(),
                    own.deltas[k].clone().expect("input deltas were asked for"),
                    exact.deltas[k]
                        .clone()
                        .expect("input deltas were asked for"),
                    (through(feedback), through(unit.conv.weight.clone())),
                )
            })
            .collect();
        let feedback = self.fc.effective_feedback();
        let through = |b: Tensor<2>| dlogits.clone().matmul(b.transpose());
        rows.push(LayerAlignment::measure(
            "fc".into(),
            feedback.clone(),
            self.fc.weight.clone(),
            own.fc_delta,
            exact.fc_delta,
            (through(feedback), through(self.fc.weight.clone())),
        ));
        rows
    }
}
