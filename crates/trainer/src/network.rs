//! The network a run trains (an MLP or a ResNet) with its optimizer state, behind the few
//! operations the training loop needs: forward, the rule's own backward plus an SGD step,
//! mirror steps, and the alignment metrics.

use crate::config::{Config, ModelKind};
use crate::records::LayerAlignment;
use biofeedback_core::init::Rng;
use biofeedback_core::mirror::{mirror_step, mirror_step_conv};
use biofeedback_core::optim::{BnMomentum, ConvMomentum, step_bn, step_conv};
use biofeedback_core::{Activation, FeedbackLinear, MirrorConfig, Sgd, SgdConfig, Visitor};
use biofeedback_models::{
    FeedbackNetwork, Loss, Mlp, MlpCache, Path, ResNet, ResNetCache, ResNetConfig,
};
use burn::tensor::{Device, Tensor};

/// A network that cannot be built for its input: the shapes do not fit, or its state would not
/// fit in memory. Says which key to change.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ShapeError(pub String);

/// The shape of one example: `[channels, height, width]`.
pub type ImageShape = [usize; 3];

/// A network and its optimizer state.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per run: boxing would only add indirection
pub enum Network {
    /// A multi-layer perceptron on flattened inputs.
    Mlp {
        /// The network.
        model: Mlp,
        /// SGD with one velocity set per layer.
        sgd: Sgd,
    },
    /// A ResNet on images.
    ResNet {
        /// The network.
        model: ResNet,
        /// Velocities of each unit (in [`ResNet::units`] order) and of the classifier.
        state: ResNetState,
        /// The input shape.
        shape: ImageShape,
    },
}

/// SGD state of a [`ResNet`].
#[derive(Debug, Clone)]
pub struct ResNetState {
    /// The hyper-parameters.
    pub config: SgdConfig,
    /// Per unit: the conv's and the BatchNorm's velocities.
    pub units: Vec<(ConvMomentum, BnMomentum)>,
    /// The classifier (a one-layer [`Sgd`]).
    pub fc: Sgd,
}

/// What a training step keeps from the forward pass.
pub enum NetCache {
    /// An MLP's layer inputs.
    Mlp(MlpCache),
    /// A ResNet's caches.
    ResNet(Box<ResNetCache>),
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
        match config.model.kind {
            ModelKind::Mlp => {
                let model = config
                    .mlp(shape.iter().product(), classes)
                    .init(rng, device);
                let sgd = Sgd::new(sgd, model.layers.len());
                Ok(Self::Mlp { model, sgd })
            }
            _ => {
                let resnet = config.resnet(shape[0], classes);
                check_input_size(&resnet, shape)?;
                let model = resnet
                    .init(rng, device)
                    .map_err(|e| ShapeError(format!("{e} (algorithm.rule)")))?;
                let units = vec![Default::default(); model.units().len()];
                let state = ResNetState {
                    config: sgd,
                    units,
                    fc: Sgd::new(sgd, 1),
                };
                Ok(Self::ResNet {
                    model,
                    state,
                    shape,
                })
            }
        }
    }

    /// One line describing the architecture, for the log.
    pub fn describe(&self) -> String {
        match self {
            Self::Mlp { model, .. } => {
                let mut widths = vec![model.layers[0].d_in()];
                widths.extend(model.layers.iter().map(FeedbackLinear::d_out));
                format!("MLP {widths:?}")
            }
            Self::ResNet { model, shape, .. } => format!(
                "ResNet with {} conv layers (stem width {}), input {shape:?}",
                model.units().len(),
                model.stem.conv.c_out()
            ),
        }
    }

    /// `x` (`[n, c h w]`, flattened channel-major) as images `[n, c, h, w]`.
    fn images(x: Tensor<2>, [c, h, w]: ImageShape) -> Tensor<4> {
        let n = x.dims()[0];
        x.reshape([n, c, h, w])
    }

    /// Logits in evaluation mode (BatchNorm with running statistics).
    ///
    /// # Shapes
    /// `x`: `[n, c h w]` → `[n, classes]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Mlp { model, .. } => model.forward(x),
            Self::ResNet { model, shape, .. } => model.forward(Self::images(x, *shape)),
        }
    }

    /// Logits in training mode and the cache for [`Network::step`].
    pub fn forward_train(&self, x: Tensor<2>) -> (Tensor<2>, NetCache) {
        match self {
            Self::Mlp { model, .. } => {
                let (logits, cache) = model.forward_train(x);
                (logits, NetCache::Mlp(cache))
            }
            Self::ResNet { model, shape, .. } => {
                let (logits, cache) = model.forward_train(Self::images(x, *shape));
                (logits, NetCache::ResNet(Box::new(cache)))
            }
        }
    }

    /// The rule's own backward pass from `dlogits` and one SGD step with learning rate `lr`;
    /// BatchNorm's running statistics take in this batch.
    pub fn step(&mut self, cache: NetCache, dlogits: Tensor<2>, lr: f64) {
        match (self, cache) {
            (Self::Mlp { model, sgd }, NetCache::Mlp(cache)) => {
                let back = model.backward(&cache, dlogits, Path::Own, false);
                for (k, grads) in back.grads.into_iter().enumerate() {
                    sgd.step(k, &mut model.layers[k], grads, lr);
                }
            }
            (Self::ResNet { model, state, .. }, NetCache::ResNet(cache)) => {
                let back = model.backward(&cache, dlogits, Path::Own, false);
                model.track_running_stats(&cache);
                let config = state.config;
                for ((unit, grads), (conv_v, bn_v)) in model
                    .units_mut()
                    .into_iter()
                    .zip(back.units)
                    .zip(&mut state.units)
                {
                    step_conv(config, &mut unit.conv, grads.conv, conv_v, lr);
                    step_bn(config, &mut unit.bn, &grads.bn, bn_v, lr);
                }
                state.fc.step(0, &mut model.fc, back.fc, lr);
            }
            _ => unreachable!("a cache always comes from the same network"),
        }
    }

    /// Every tensor of the network and of its optimizer state, named once:
    /// `model.<layer>.*` and `optim.<layer>.*` with the layer names of `alignment.csv`
    /// (`fc1`, `fc2`, ... for an MLP; the unit names and `fc` for a ResNet). Checkpoints
    /// read and restore through it.
    pub fn visit(&mut self, f: &mut Visitor<'_>) {
        match self {
            Self::Mlp { model, sgd } => {
                for (k, (layer, v)) in model.layers.iter_mut().zip(&mut sgd.state).enumerate() {
                    let name = Mlp::layer_name(k);
                    layer.visit(&format!("model.{name}"), f);
                    v.visit(&format!("optim.{name}"), layer, f);
                }
            }
            Self::ResNet { model, state, .. } => {
                model.fc.visit("model.fc", f);
                state.fc.state[0].visit("optim.fc", &model.fc, f);
                for (unit, (conv_v, bn_v)) in model.units_mut().into_iter().zip(&mut state.units) {
                    let name = &unit.name;
                    unit.conv.visit(&format!("model.{name}"), f);
                    unit.bn.visit(&format!("model.{name}"), f);
                    conv_v.visit(&format!("optim.{name}"), &unit.conv, f);
                    bn_v.visit(&format!("optim.{name}"), &unit.bn, f);
                }
            }
        }
    }

    /// Whether the feedback changes after every step by a draw ([`Network::redraw`]).
    pub fn redraws(&self) -> bool {
        match self {
            Self::Mlp { model, .. } => model.layers[0].feedback.redraws(),
            Self::ResNet { model, .. } => model.fc.feedback.redraws(),
        }
    }

    /// What every layer's feedback does after a training step besides SGD
    /// ([`biofeedback_core::Feedback::redraw`]: brsf draws a new `|R|` from `rng`).
    pub fn redraw(&mut self, rng: &mut Rng) {
        match self {
            Self::Mlp { model, .. } => {
                for layer in &mut model.layers {
                    layer.feedback.redraw(rng);
                }
            }
            Self::ResNet { model, .. } => {
                for unit in model.units_mut() {
                    unit.conv.feedback.redraw(rng);
                }
                model.fc.feedback.redraw(rng);
            }
        }
    }

    /// One mirror step for every layer with a stored `B`, input first: noise (drawn from
    /// `rng`) through the layer and its nonlinearity (ReLU for hidden layers; for the output layer the loss's
    /// output nonlinearity).
    pub fn mirror(&mut self, config: &MirrorConfig, loss: Loss, rng: &mut Rng) {
        let output = match loss {
            Loss::CrossEntropy => Activation::Identity,
            Loss::SigmoidBce => Activation::Sigmoid,
        };
        match self {
            Self::Mlp { model, .. } => {
                let last = model.layers.len() - 1;
                let hidden = model.activation;
                for (k, layer) in model.layers.iter_mut().enumerate() {
                    let activation = if k == last { output } else { hidden };
                    mirror_step(layer, activation, config, rng);
                }
            }
            Self::ResNet { model, .. } => {
                for unit in model.units_mut() {
                    // Noise maps big enough for the kernel to slide: 8x8, 16x16 for the 7x7 stem.
                    let side = (2 * unit.conv.kernel() + 2).max(8);
                    mirror_step_conv(&mut unit.conv, Activation::Relu, config, side, rng);
                }
                mirror_step(&mut model.fc, output, config, rng);
            }
        }
    }

    /// Weight angles, delta angles and norm ratios of every conv and linear layer on the
    /// batch `(x, t)` (SPEC section 4).
    pub fn alignment(&self, loss: Loss, x: Tensor<2>, t: Tensor<2>) -> Vec<LayerAlignment> {
        match self {
            Self::Mlp { model, .. } => model.alignment(loss, x, t),
            Self::ResNet { model, shape, .. } => model.alignment(loss, Self::images(x, *shape), t),
        }
    }

    /// Examples per evaluation chunk (smaller for ResNets, whose activations are large).
    pub fn eval_chunk(&self) -> usize {
        match self {
            Self::Mlp { .. } => 1000,
            Self::ResNet { .. } => 100,
        }
    }
}

/// Parameters of the network `config` describes (weights, biases, BatchNorm), estimated
/// without building it.
pub fn parameter_count(config: &Config, shape: ImageShape, classes: usize) -> u128 {
    match config.model.kind {
        ModelKind::Mlp => {
            let mut widths = vec![shape.iter().product::<usize>() as u128];
            widths.extend(config.model.hidden.iter().map(|&h| h as u128));
            widths.push(classes as u128);
            widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
        }
        _ => config.resnet(shape[0], classes).parameter_count(),
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
