//! The feedback linear layer: a dense layer whose backward pass uses its own `B`.

use crate::feedback::Feedback;
use crate::init::{Init, Rng};
use crate::rule::Rule;
use burn::tensor::{Device, Tensor};

/// A fully connected layer with a separate feedback path.
///
/// Storage follows Burn's `nn::Linear`: `weight` is `[d_in, d_out]`, i.e. `W^T` in the paper's
/// notation (`y = W x + b` with `W` of shape `[d_out, d_in]`). The feedback tensor `B` has the
/// shape of `W^T` too, so `B` and `weight` have the same shape and
/// *backprop is `B = weight`*.
///
/// ```text
/// forward:   y        = x · weight + bias                       x: [batch, d_in], y: [batch, d_out]
/// backward:  delta_in = delta · B^T                              delta: [batch, d_out]
///            dweight  = x^T · delta          (= (delta y_l^T)^T, the local rule)
///            dbias    = sum_batch delta
/// ```
#[derive(Debug, Clone)]
pub struct FeedbackLinear {
    /// Forward weight `W^T`, shape `[d_in, d_out]`.
    pub weight: Tensor<2>,
    /// Bias, shape `[d_out]`.
    pub bias: Tensor<1>,
    /// The feedback path: what `B` is (`[d_in, d_out]`, or `[d_in, classes]` for `dfa`)
    /// and how it learns.
    pub feedback: Feedback<2>,
}

/// Parameter gradients of one [`FeedbackLinear`] step.
#[derive(Debug, Clone)]
pub struct LinearGrads {
    /// `x^T · delta`, shape `[d_in, d_out]`. For Kolen-Pollack this is also `B`'s gradient
    /// (`dB = -eta y_l delta^T`, which in this storage is the same tensor).
    pub weight: Tensor<2>,
    /// `sum_batch delta`, shape `[d_out]`.
    pub bias: Tensor<1>,
}

/// The result of [`FeedbackLinear::backward`].
#[derive(Debug, Clone)]
pub struct LinearBackward {
    /// The parameter gradients.
    pub grads: LinearGrads,
    /// `delta · B^T`, shape `[batch, d_in]`, if it was asked for.
    pub delta_in: Option<Tensor<2>>,
}

impl FeedbackLinear {
    /// A layer with weight and (for the rules that store one) feedback drawn independently
    /// from `init`, and a zero bias. With `dfa` its `B` is `[d_in, d_out]`, right for the
    /// output layer, whose delta is the output error; a hidden layer of a `dfa` network is
    /// built by [`FeedbackLinear::direct`].
    ///
    /// # Shapes
    /// `weight` and `feedback`: `[d_in, d_out]`; `bias`: `[d_out]`.
    pub fn new(
        d_in: usize,
        d_out: usize,
        rule: Rule,
        init: Init,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let weight = init.tensor([d_in, d_out], d_in, d_out, rng, device);
        let feedback = Feedback::new(rule, [d_in, d_out], d_in, d_out, init, rng, device);
        Self {
            weight,
            bias: Tensor::zeros([d_out], device),
            feedback,
        }
    }

    /// A hidden layer of a direct-feedback-alignment network with `classes` outputs: its
    /// fixed random `B`, `[d_in, classes]`, is drawn from the weight's distribution and maps
    /// the output error to this layer's input.
    pub fn direct(
        d_in: usize,
        d_out: usize,
        classes: usize,
        init: Init,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let weight = init.tensor([d_in, d_out], d_in, d_out, rng, device);
        let feedback = Feedback::new(Rule::Dfa, [d_in, classes], d_in, d_out, init, rng, device);
        Self {
            weight,
            bias: Tensor::zeros([d_out], device),
            feedback,
        }
    }

    /// The learning rule of this layer.
    pub fn rule(&self) -> Rule {
        self.feedback.rule()
    }

    /// Input width `d_in`.
    pub fn d_in(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Output width `d_out`.
    pub fn d_out(&self) -> usize {
        self.weight.dims()[1]
    }

    /// `x · weight + bias`.
    ///
    /// # Shapes
    /// `x`: `[batch, d_in]` → `[batch, d_out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.clone()) + self.bias.clone().unsqueeze::<2>()
    }

    /// The feedback tensor this rule uses now ([`Feedback::matrix`]), shape `[d_in, d_out]`
    /// (the shape of `W^T`; `[d_in, classes]` for a hidden `dfa` layer).
    pub fn effective_feedback(&self) -> Tensor<2> {
        self.feedback.matrix(&self.weight)
    }

    /// The backward pass through this rule's own feedback path.
    ///
    /// `x` is the input the forward pass saw, `delta` the gradient of the loss with respect to
    /// the layer's output (pre-activation). `delta_in` is computed only when `want_delta_in`
    /// (the first layer of a network needs none during training).
    ///
    /// # Shapes
    /// `x`: `[batch, d_in]`, `delta`: `[batch, d_out]`, `delta_in`: `[batch, d_in]`.
    pub fn backward(&self, x: Tensor<2>, delta: Tensor<2>, want_delta_in: bool) -> LinearBackward {
        let feedback = want_delta_in.then(|| self.effective_feedback());
        Self::backward_through(x, delta, feedback)
    }

    /// The backward pass through an explicit feedback tensor (`None`: no `delta_in`).
    /// `Some(weight)` gives exact backprop whatever the rule; the alignment metrics use that.
    pub fn backward_through(
        x: Tensor<2>,
        delta: Tensor<2>,
        feedback: Option<Tensor<2>>,
    ) -> LinearBackward {
        let delta_in = feedback.map(|b| delta.clone().matmul(b.transpose()));
        let weight = x.transpose().matmul(delta.clone());
        let bias = delta.sum_dim(0).squeeze_dim::<1>(0);
        LinearBackward {
            grads: LinearGrads { weight, bias },
            delta_in,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::seeded_rng;
    use crate::tensor_io::to_vec;

    fn device() -> Device {
        Device::flex()
    }

    #[test]
    fn ss_feedback_has_the_signs_of_w_transpose_and_the_init_scale() {
        let device = device();
        let mut rng = seeded_rng(3);
        let layer = FeedbackLinear::new(7, 5, Rule::Ss, Init::LecunNormal, &mut rng, &device);
        let w = to_vec(layer.weight.clone());
        let b = to_vec(layer.effective_feedback());
        let s = (1.0f64 / 7f64.sqrt()) as f32;
        for (wi, bi) in w.iter().zip(&b) {
            assert_eq!(wi.signum(), bi.signum());
            assert!((bi.abs() - s).abs() < 1e-6);
        }
    }

    #[test]
    fn bp_feedback_is_the_weight_and_fa_feedback_is_independent() {
        let device = device();
        let mut rng = seeded_rng(4);
        let bp = FeedbackLinear::new(6, 4, Rule::Bp, Init::Uniform, &mut rng, &device);
        assert_eq!(to_vec(bp.effective_feedback()), to_vec(bp.weight.clone()));
        let fa = FeedbackLinear::new(6, 4, Rule::Fa, Init::Uniform, &mut rng, &device);
        assert_ne!(to_vec(fa.effective_feedback()), to_vec(fa.weight.clone()));
    }

    #[test]
    fn backward_uses_the_feedback_tensor() {
        let device = device();
        let mut rng = seeded_rng(5);
        let mut fa = FeedbackLinear::new(3, 2, Rule::Fa, Init::Uniform, &mut rng, &device);
        fa.feedback = Feedback::Fa(Tensor::from_floats(
            [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
            &device,
        ));
        let x = Tensor::<2>::from_floats([[1.0, 2.0, 3.0]], &device);
        let delta = Tensor::<2>::from_floats([[2.0, -1.0]], &device);
        let out = fa.backward(x, delta, true);
        assert_eq!(to_vec(out.delta_in.unwrap()), vec![2.0, -1.0, 1.0]);
        assert_eq!(
            to_vec(out.grads.weight),
            vec![2.0, -1.0, 4.0, -2.0, 6.0, -3.0]
        );
        assert_eq!(to_vec(out.grads.bias), vec![2.0, -1.0]);
    }
}
