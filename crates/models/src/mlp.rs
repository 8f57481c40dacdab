//! Multi-layer perceptron of feedback linear layers.

use crate::network::{FeedbackNetwork, LayerAlignment};
use biofeedback_core::init::Rng;
use biofeedback_core::mirror::{MirrorConfig, mirror_step};
use biofeedback_core::{
    Activation, FeedbackLinear, Init, LinearGrads, Rule, Sgd, SgdConfig, Visitor,
};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// The architecture of an [`Mlp`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Input width (784 for MNIST, 3072 for CIFAR-10).
    pub input: usize,
    /// Hidden widths, e.g. `[500]`.
    pub hidden: Vec<usize>,
    /// Number of classes (output width).
    pub classes: usize,
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Weight (and feedback) initialisation.
    pub init: Init,
    /// The learning rule of every layer.
    pub rule: Rule,
}

impl MlpConfig {
    /// A relu MLP with He-uniform init, trained by backprop; change the fields to taste.
    pub fn new(input: usize, hidden: Vec<usize>, classes: usize) -> Self {
        Self {
            input,
            hidden,
            classes,
            activation: Activation::Relu,
            init: Init::HeUniform,
            rule: Rule::Bp,
        }
    }

    /// Layer widths from input to output, e.g. `[784, 500, 10]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.input];
        w.extend(&self.hidden);
        w.push(self.classes);
        w
    }

    /// Builds the network, drawing every tensor from `rng`. With `dfa` every hidden layer's
    /// `B` is `[d_in, classes]` ([`FeedbackLinear::direct`]).
    pub fn init(&self, rng: &mut Rng, device: &Device) -> Mlp {
        let widths = self.widths();
        let last = widths.len() - 2;
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(k, w)| match self.rule {
                Rule::Dfa if k < last => {
                    FeedbackLinear::direct(w[0], w[1], self.classes, self.init, rng, device)
                }
                rule => FeedbackLinear::new(w[0], w[1], rule, self.init, rng, device),
            })
            .collect();
        Mlp {
            layers,
            activation: self.activation,
        }
    }
}

/// An MLP `x -> phi(x W_1^T + b_1) -> ... -> z` with a linear output `z` (the loss applies
/// the output nonlinearity).
#[derive(Debug, Clone)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<FeedbackLinear>,
    /// Hidden nonlinearity.
    pub activation: Activation,
}

/// What the backward pass needs from the forward pass: the input of every layer.
#[derive(Debug, Clone)]
pub struct MlpCache {
    /// `inputs[0] = x`, `inputs[k] = phi(z_{k-1})` for `k >= 1`; each `[batch, width_k]`.
    pub inputs: Vec<Tensor<2>>,
}

/// Which feedback path a backward pass takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Each layer's own `B` (the rule being trained).
    Own,
    /// `W^T` everywhere: exact backprop, the reference of the delta angles.
    Exact,
}

/// The result of [`Mlp::backward`].
#[derive(Debug, Clone)]
pub struct MlpBackward {
    /// Parameter gradients, one per layer, input first.
    pub grads: Vec<LinearGrads>,
    /// `deltas[k]`: the teaching signal arriving at the input side of layer `k` through
    /// layer `k`'s feedback: `dL/dz_{k-1}` for `k >= 1` (after `phi'`), `dL/dx` for `k = 0`
    /// (present only when asked for). Shapes `[batch, width_k]`.
    pub deltas: Vec<Option<Tensor<2>>>,
}

impl Mlp {
    /// The name of layer `k` (input first) in alignment records and checkpoints: `fc1`,
    /// `fc2`, ...
    pub fn layer_name(k: usize) -> String {
        format!("fc{}", k + 1)
    }

    /// Logits, `[batch, input]` → `[batch, classes]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_train(x).0
    }

    /// Logits and the cache for [`Mlp::backward`].
    pub fn forward_train(&self, x: Tensor<2>) -> (Tensor<2>, MlpCache) {
        let last = self.layers.len() - 1;
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut h = x;
        for (k, layer) in self.layers.iter().enumerate() {
            inputs.push(h.clone());
            let z = layer.forward(h);
            h = if k == last {
                z
            } else {
                self.activation.forward(z)
            };
        }
        (h, MlpCache { inputs })
    }

    /// The explicit backward pass from `dL/dz` of the output layer.
    ///
    /// With [`Path::Own`] the teaching signal crosses every layer through that layer's `B`
    /// (`delta_{l} = phi'(.) * (delta_{l+1} · B^T)`; for `dfa` the output error `e` goes to
    /// every layer directly, `delta_{l} = phi'(.) * (e · B_l^T)`); with [`Path::Exact`]
    /// through `W^T`.
    /// `input_delta` asks for `dL/dx` at the first layer too (training does not need it).
    ///
    /// # Shapes
    /// `dlogits`: `[batch, classes]`.
    pub fn backward(
        &self,
        cache: &MlpCache,
        dlogits: Tensor<2>,
        path: Path,
        input_delta: bool,
    ) -> MlpBackward {
        let n = self.layers.len();
        let mut grads = Vec::with_capacity(n);
        let mut deltas = vec![None; n];
        let error = dlogits.clone();
        let mut delta = Some(dlogits);
        for k in (0..n).rev() {
            let layer = &self.layers[k];
            let upstream = delta
                .take()
                .expect("every layer above the first passes a delta down");
            let x = cache.inputs[k].clone();
            let want = k > 0 || input_delta;
            let feedback = want.then(|| match path {
                Path::Own => layer.effective_feedback(),
                Path::Exact => layer.weight.clone(),
            });
            let back = if path == Path::Own && layer.feedback.is_direct() {
                let mut back = FeedbackLinear::backward_through(x.clone(), upstream, None);
                back.delta_in = feedback.map(|b| error.clone().matmul(b.transpose()));
                back
            } else {
                FeedbackLinear::backward_through(x.clone(), upstream, feedback)
            };
            grads.push(back.grads);
            delta = back.delta_in.map(|d| {
                if k > 0 {
                    self.activation.backward(x, d)
                } else {
                    d
                }
            });
            deltas[k] = delta.clone();
        }
        grads.reverse();
        MlpBackward { grads, deltas }
    }
}

impl FeedbackNetwork for Mlp {
    type Input = Tensor<2>;
    type Cache = MlpCache;
    type Backward = MlpBackward;
    type Optim = Sgd;

    fn input(x: Tensor<2>, _: [usize; 3]) -> Tensor<2> {
        x
    }

    fn optim(&self, config: SgdConfig) -> Sgd {
        Sgd::new(config, self.layers.len())
    }

    fn train_step(&mut self, sgd: &mut Sgd, cache: MlpCache, dlogits: Tensor<2>, lr: f64) {
        let back = Mlp::backward(self, &cache, dlogits, Path::Own, false);
        for (k, grads) in back.grads.into_iter().enumerate() {
            sgd.step(k, &mut self.layers[k], grads, lr);
        }
    }

    /// Hidden layers through the network's activation, the output layer through `output`.
    fn mirror(&mut self, config: &MirrorConfig, output: Activation, rng: &mut Rng) {
        let last = self.layers.len() - 1;
        let hidden = self.activation;
        for (k, layer) in self.layers.iter_mut().enumerate() {
            let activation = if k == last { output } else { hidden };
            mirror_step(layer, activation, config, rng);
        }
    }

    fn redraws(&self) -> bool {
        self.layers.iter().any(|l| l.feedback.redraws())
    }

    fn redraw(&mut self, rng: &mut Rng) {
        for layer in &mut self.layers {
            layer.feedback.redraw(rng);
        }
    }

    /// `fc1`, `fc2`, ... ([`Mlp::layer_name`]).
    fn visit(&mut self, sgd: &mut Sgd, f: &mut Visitor<'_>) {
        for (k, (layer, v)) in self.layers.iter_mut().zip(&mut sgd.state).enumerate() {
            let name = Mlp::layer_name(k);
            layer.visit(&format!("model.{name}"), f);
            v.visit(&format!("optim.{name}"), layer, f);
        }
    }

    /// `MLP [784, 500, 10]`.
    fn describe(&self) -> String {
        let mut widths = vec![self.layers[0].d_in()];
        widths.extend(self.layers.iter().map(FeedbackLinear::d_out));
        format!("MLP {widths:?}")
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        Mlp::forward(self, x)
    }

    fn forward_train(&self, x: Tensor<2>) -> (Tensor<2>, MlpCache) {
        Mlp::forward_train(self, x)
    }

    fn backward(
        &self,
        cache: &MlpCache,
        dlogits: Tensor<2>,
        path: Path,
        input_delta: bool,
    ) -> MlpBackward {
        Mlp::backward(self, cache, dlogits, path, input_delta)
    }

    /// `fc1`, `fc2`, ...: each layer's deltas at its input; for `dfa` the layer sends the
    /// output error through `B` (its local pair: that against the upstream delta through
    /// `W^T`).
    fn layer_alignment(&self, cache: &MlpCache, dlogits: Tensor<2>) -> Vec<LayerAlignment> {
        let own = self.backward(cache, dlogits.clone(), Path::Own, true);
        let exact = self.backward(cache, dlogits.clone(), Path::Exact, true);
        let n = self.layers.len();
        (0..n)
            .map(|k| {
                let layer = &self.layers[k];
                let feedback = layer.effective_feedback();
                // The rule's own teaching signal at this layer's output, and what the layer sends
                // down through `B`: that signal, or for `dfa` the output error.
                let upstream = if k + 1 == n {
                    dlogits.clone()
                } else {
                    own.deltas[k + 1]
                        .clone()
                        .expect("hidden layers pass deltas down")
                };
                let sent = match layer.feedback.is_direct() {
                    true => &dlogits,
                    false => &upstream,
                };
                let local = |b: Tensor<2>, signal: &Tensor<2>| {
                    let d = signal.clone().matmul(b.transpose());
                    if k > 0 {
                        self.activation.backward(cache.inputs[k].clone(), d)
                    } else {
                        d
                    }
                };
                LayerAlignment::measure(
                    Mlp::layer_name(k),
                    feedback.clone(),
                    layer.weight.clone(),
                    own.deltas[k].clone().expect("input deltas were asked for"),
                    exact.deltas[k]
                        .clone()
                        .expect("input deltas were asked for"),
                    (
                        local(feedback, sent),
                        local(layer.weight.clone(), &upstream),
                    ),
                )
            })
            .collect()
    }
}
