//! The network a run trains with its SGD state: any [`FeedbackNetwork`] of the models crate,
//! chosen once from the config. [`Trained`] holds a network and its state and is written once
//! for every kind; [`Network`] names the kinds a config can build and dispatches to it.

use crate::config::{Config, ModelKind};
use crate::records::LayerAlignment;
use biofeedback_core::init::Rng;
use biofeedback_core::tensor_io::to_vec;
use biofeedback_core::{Activation, MirrorConfig, SgdConfig, Slot, Visitor};
use biofeedback_models::{FeedbackNetwork, Loss, Mlp, MlpCache, ResNet, ResNetCache, ResNetConfig};
use burn::tensor::{Device, Tensor};

/// A network that cannot be built for its input: the shapes do not fit, or its state would not
/// fit in memory. Says which key to change.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ShapeError(pub String);

/// The shape of one example: `[channels, height, width]`.
pub type ImageShape = [usize; 3];

/// A network, its SGD state and the shape of its examples: everything the training loop
/// needs, for any [`FeedbackNetwork`].
#[derive(Debug, Clone)]
pub struct Trained<N: FeedbackNetwork> {
    /// The network.
    pub model: N,
    /// Its SGD state.
    pub optim: N::Optim,
    /// The shape of one example.
    pub shape: ImageShape,
}

impl<N: FeedbackNetwork> Trained<N> {
    /// `model` with fresh SGD state.
    pub fn new(model: N, sgd: SgdConfig, shape: ImageShape) -> Self {
        let optim = model.optim(sgd);
        Self {
            model,
            optim,
            shape,
        }
    }

    /// Logits in evaluation mode; `x` is `[n, c h w]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.model.forward(N::input(x, self.shape))
    }

    /// Logits in training mode and the cache for a step.
    pub fn forward_train(&self, x: Tensor<2>) -> (Tensor<2>, N::Cache) {
        self.model.forward_train(N::input(x, self.shape))
    }

    /// The rule's backward, BatchNorm statistics and SGD ([`FeedbackNetwork::train_step`]).
    pub fn step(&mut self, cache: N::Cache, dlogits: Tensor<2>, lr: f64) {
        self.model.train_step(&mut self.optim, cache, dlogits, lr);
    }

    /// Every tensor of the network and of its SGD state ([`FeedbackNetwork::visit`]).
    pub fn visit(&mut self, f: &mut Visitor<'_>) {
        self.model.visit(&mut self.optim, f);
    }

    /// The alignment figures on the batch `(x, t)`, `x` flattened.
    pub fn alignment(&self, loss: Loss, x: Tensor<2>, t: Tensor<2>) -> Vec<LayerAlignment> {
        self.model.alignment(loss, N::input(x, self.shape), t)
    }
}

/// A network of one of the kinds a config can build, with its SGD state.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per run: boxing would only add indirection
pub enum Network {
    /// A multi-layer perceptron on flattened inputs.
    Mlp(Trained<Mlp>),
    /// A ResNet on images.
    ResNet(Trained<ResNet>),
}

/// What a training step keeps from the forward pass.
pub enum NetCache {
    /// An MLP's layer inputs.
    Mlp(MlpCache),
    /// A ResNet's caches.
    ResNet(Box<ResNetCache>),
}

/// `$body` with `$t` bound to the [`Trained`] network, whatever its kind: the one place the
/// kinds are told apart, besides building and caches.
macro_rules! each {
    ($net:expr, $t:ident => $body:expr) => {
        match $net {
            Network::Mlp($t) => $body,
            Network::ResNet($t) => $body,
        }
    };
}

impl Network {
    /// The network `config` describes for examples of `shape` and `classes` classes.
    pub fn build(
        config: &Config,
        shape: ImageShape,
        classes: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Self, ShapeError> {
        check_memory(config, shape, classes)?;
        let sgd = config.sgd();
        match config.model.kind.depth() {
            None => {
                let model = config
                    .mlp(shape.iter().product(), classes)
                    .init(rng, device);
                Ok(Self::Mlp(Trained::new(model, sgd, shape)))
            }
            Some(depth) => {
                let resnet = config.resnet(depth, shape[0], classes);
                check_input_size(&resnet, shape)?;
                let model = resnet
                    .init(rng, device)
                    .map_err(|e| ShapeError(format!("{e} (algorithm.rule)")))?;
                Ok(Self::ResNet(Trained::new(model, sgd, shape)))
            }
        }
    }

    /// One line describing the architecture, for the log.
    pub fn describe(&self) -> String {
        match self {
            Self::Mlp(t) => t.model.describe(),
            Self::ResNet(t) => format!("{}, input {:?}", t.model.describe(), t.shape),
        }
    }

    /// Logits in evaluation mode (BatchNorm with running statistics).
    ///
    /// # Shapes
    /// `x`: `[n, c h w]` → `[n, classes]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        each!(self, t => t.forward(x))
    }

    /// Logits in training mode and the cache for [`Network::step`].
    pub fn forward_train(&self, x: Tensor<2>) -> (Tensor<2>, NetCache) {
        match self {
            Self::Mlp(t) => {
                let (logits, cache) = t.forward_train(x);
                (logits, NetCache::Mlp(cache))
            }
            Self::ResNet(t) => {
                let (logits, cache) = t.forward_train(x);
                (logits, NetCache::ResNet(Box::new(cache)))
            }
        }
    }

    /// The rule's own backward pass from `dlogits` and one SGD step with learning rate `lr`;
    /// BatchNorm's running statistics take in this batch.
    pub fn step(&mut self, cache: NetCache, dlogits: Tensor<2>, lr: f64) {
        match (self, cache) {
            (Self::Mlp(t), NetCache::Mlp(cache)) => t.step(cache, dlogits, lr),
            (Self::ResNet(t), NetCache::ResNet(cache)) => t.step(*cache, dlogits, lr),
            _ => unreachable!("a cache always comes from the same network"),
        }
    }

    /// Every tensor of the network and of its optimizer state, named once:
    /// `model.<layer>.*` and `optim.<layer>.*` with the layer names of `alignment.csv`
    /// (`fc1`, `fc2`, ... for an MLP; the unit names and `fc` for a ResNet). Checkpoints
    /// read and restore through it.
    pub fn visit(&mut self, f: &mut Visitor<'_>) {
        each!(self, t => t.visit(f))
    }

    /// Whether the feedback changes after every step by a draw ([`Network::redraw`]).
    pub fn redraws(&self) -> bool {
        each!(self, t => t.model.redraws())
    }

    /// What every layer's feedback does after a training step besides SGD
    /// ([`biofeedback_core::Feedback::redraw`]: brsf draws a new `|R|` from `rng`).
    pub fn redraw(&mut self, rng: &mut Rng) {
        each!(self, t => t.model.redraw(rng))
    }

    /// One mirror step for every layer, input first: noise (drawn from `rng`) through the
    /// layer and its nonlinearity (the network's for hidden layers; for the output layer the
    /// loss's output nonlinearity).
    pub fn mirror(&mut self, config: &MirrorConfig, loss: Loss, rng: &mut Rng) {
        let output = match loss {
            Loss::CrossEntropy => Activation::Identity,
            Loss::SigmoidBce => Activation::Sigmoid,
        };
        each!(self, t => t.model.mirror(config, output, rng))
    }

    /// Weight angles, delta angles and norm ratios of every conv and linear layer on the
    /// batch `(x, t)` (SPEC section 4).
    pub fn alignment(&self, loss: Loss, x: Tensor<2>, t: Tensor<2>) -> Vec<LayerAlignment> {
        each!(self, n => n.alignment(loss, x, t))
    }

    /// The name of a tensor of the network or of its SGD state that holds a NaN or an
    /// infinity (`model.fc2.weight`), if one does: one reduction per tensor and one read for
    /// all, then one read per tensor only when something is not finite.
    pub fn first_non_finite(&self) -> Option<String> {
        /// 0 where every element of `t` is finite, NaN otherwise (`x * 0` is NaN for NaN
        /// and infinities only).
        fn probe<const D: usize>(t: &Tensor<D>) -> Tensor<1> {
            t.clone().mul_scalar(0.0).sum()
        }
        let mut probes: Vec<(String, Tensor<1>)> = Vec::new();
        // Tensors are handles: the clone shares their buffers.
        self.clone().visit(&mut |name, slot| {
            let p = match slot {
                Slot::R1(t) => Some(probe(t)),
                Slot::R2(t) => Some(probe(t)),
                Slot::R4(t) => Some(probe(t)),
                Slot::State1(v, _) => v.as_ref().map(probe),
                Slot::State2(v, _) => v.as_ref().map(probe),
                Slot::State4(v, _) => v.as_ref().map(probe),
            };
            if let Some(p) = p {
                probes.push((name.to_string(), p));
            }
        });
        if probes.is_empty() {
            return None;
        }
        let all = Tensor::cat(probes.iter().map(|(_, p)| p.clone()).collect(), 0).sum();
        if to_vec(all)[0].is_finite() {
            return None;
        }
        probes
            .into_iter()
            .find(|(_, p)| !to_vec(p.clone())[0].is_finite())
            .map(|(name, _)| name)
    }

    /// Examples per evaluation chunk (smaller for ResNets, whose activations are large).
    pub fn eval_chunk(&self) -> usize {
        match self {
            Self::Mlp(_) => 1000,
            Self::ResNet(_) => 100,
        }
    }
}

/// Parameters of the network `config` describes (weights, biases, BatchNorm), estimated
/// without building it.
pub fn parameter_count(config: &Config, shape: ImageShape, classes: usize) -> u128 {
    match config.model.kind.depth() {
        None => {
            let mut widths = vec![shape.iter().product::<usize>() as u128];
            widths.extend(config.model.hidden.iter().map(|&h| h as u128));
            widths.push(classes as u128);
            widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
        }
        Some(depth) => config.resnet(depth, shape[0], classes).parameter_count(),
    }
}

/// Refuses a network whose parameters, feedback and optimizer state (about five copies of the
/// weights) would not fit in this machine's memory, with the figure, before allocating it.
fn check_memory(config: &Config, shape: ImageShape, classes: usize) -> Result<(), ShapeError> {
    let bytes = parameter_count(config, shape, classes) * 4 * 5;
    let available = total_memory().unwrap_or(64 << 30) as u128;
    if bytes > available {
        let gb = |b: u128| b as f64 / (1u64 << 30) as f64;
        return Err(ShapeError(format!(
            "the network ({}) needs about {:.1} GiB for its weights, feedback and optimizer \
             state, more than this machine's {:.1} GiB (check model.hidden / model.width)",
            match config.model.kind {
                ModelKind::Mlp => format!("model.hidden = {:?}", config.model.hidden),
                _ => format!("model.width = {}", config.model.width),
            },
            gb(bytes),
            gb(available)
        )));
    }
    Ok(())
}

/// Total memory of this machine (`MemTotal` of `/proc/meminfo`), if known.
fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuses inputs a ResNet would shrink to nothing.
fn check_input_size(config: &ResNetConfig, [c, h, w]: ImageShape) -> Result<(), ShapeError> {
    let min = match config.stem {
        biofeedback_models::Stem::Imagenet => 32,
        biofeedback_models::Stem::Cifar => 8,
    };
    if h < min || w < min {
        return Err(ShapeError(format!(
            "the images are {c}x{h}x{w}; a ResNet with the `{:?}` stem needs at least {min}x{min} \
             pixels (model.stem)",
            config.stem
        )));
    }
    Ok(())
}
