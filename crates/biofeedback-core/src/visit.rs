//! Every tensor of a layer and of its optimizer state, named once: checkpoints read and
//! replace them through these visits, so a new layer or a new piece of state is written in
//! one place.
//!
//! A visit calls `f(name, slot)` for each tensor under `prefix` (`"{prefix}.weight"`, ...);
//! the network above decides the prefix (`model.fc1`, `optim.layer1.0.conv1`).

use crate::batchnorm::BatchNorm2d;
use crate::conv::FeedbackConv2d;
use crate::linear::FeedbackLinear;
use crate::optim::{BnMomentum, ConvMomentum, LinearMomentum};
use burn::tensor::Tensor;

/// One named tensor, to read or to replace.
#[derive(Debug)]
pub enum Slot<'a> {
    /// A tensor the model always has (weights, biases, BatchNorm parameters and statistics,
    /// the feedback's stored tensor), rank 1.
    R1(&'a mut Tensor<1>),
    /// As [`Slot::R1`], rank 2.
    R2(&'a mut Tensor<2>),
    /// As [`Slot::R1`], rank 4.
    R4(&'a mut Tensor<4>),
    /// Optimizer state that exists once written (an SGD velocity), with the shape it has
    /// then, rank 1.
    State1(&'a mut Option<Tensor<1>>, [usize; 1]),
    /// As [`Slot::State1`], rank 2.
    State2(&'a mut Option<Tensor<2>>, [usize; 2]),
    /// As [`Slot::State1`], rank 4.
    State4(&'a mut Option<Tensor<4>>, [usize; 4]),
}

/// What a visit calls for every tensor.
pub type Visitor<'f> = dyn FnMut(&str, Slot<'_>) + 'f;

impl FeedbackLinear {
    /// `{prefix}.weight` `[d_in, d_out]`, `{prefix}.bias` `[d_out]` and, where the rule keeps
    /// one, `{prefix}.feedback` ([`crate::Feedback::stored`]).
    pub fn visit(&mut self, prefix: &str, f: &mut Visitor<'_>) {
        f(&format!("{prefix}.weight"), Slot::R2(&mut self.weight));
        f(&format!("{prefix}.bias"), Slot::R1(&mut self.bias));
        if let Some(b) = self.feedback.stored_mut() {
            f(&format!("{prefix}.feedback"), Slot::R2(b));
        }
    }
}

impl FeedbackConv2d {
    /// `{prefix}.weight` `[c_out, c_in, k, k]` and, where the rule keeps one,
    /// `{prefix}.feedback`.
    pub fn visit(&mut self, prefix: &str, f: &mut Visitor<'_>) {
        f(&format!("{prefix}.weight"), Slot::R4(&mut self.weight));
        if let Some(b) = self.feedback.stored_mut() {
            f(&format!("{prefix}.feedback"), Slot::R4(b));
        }
    }
}

impl BatchNorm2d {
    /// `{prefix}.bn.{gamma,beta,running_mean,running_var}`, each `[c]`.
    pub fn visit(&mut self, prefix: &str, f: &mut Visitor<'_>) {
        for (part, t) in [
            ("gamma", &mut self.gamma),
            ("beta", &mut self.beta),
            ("running_mean", &mut self.running_mean),
            ("running_var", &mut self.running_var),
        ] {
            f(&format!("{prefix}.bn.{part}"), Slot::R1(t));
        }
    }
}

impl LinearMomentum {
    /// The velocities of `layer`'s weight, bias and (Kolen-Pollack) feedback:
    /// `{prefix}.weight`, `{prefix}.bias`, `{prefix}.feedback`.
    pub fn visit(&mut self, prefix: &str, layer: &FeedbackLinear, f: &mut Visitor<'_>) {
        let shape = layer.weight.dims();
        f(
            &format!("{prefix}.weight"),
            Slot::State2(&mut self.weight, shape),
        );
        f(
            &format!("{prefix}.bias"),
            Slot::State1(&mut self.bias, [shape[1]]),
        );
        f(
            &format!("{prefix}.feedback"),
            Slot::State2(&mut self.feedback, shape),
        );
    }
}

impl ConvMomentum {
    /// The velocities of `layer`'s kernel and (Kolen-Pollack) feedback kernel.
    pub fn visit(&mut self, prefix: &str, layer: &FeedbackConv2d, f: &mut Visitor<'_>) {
        let shape = layer.weight.dims();
        f(
            &format!("{prefix}.weight"),
            Slot::State4(&mut self.weight, shape),
        );
        f(
            &format!("{prefix}.feedback"),
            Slot::State4(&mut self.feedback, shape),
        );
    }
}

impl BnMomentum {
    /// The velocities of `bn`'s `gamma` and `beta`: `{prefix}.bn.gamma`, `{prefix}.bn.beta`.
    pub fn visit(&mut self, prefix: &str, bn: &BatchNorm2d, f: &mut Visitor<'_>) {
        let shape = bn.gamma.dims();
        f(
            &format!("{prefix}.bn.gamma"),
            Slot::State1(&mut self.gamma, shape),
        );
        f(
            &format!("{prefix}.bn.beta"),
            Slot::State1(&mut self.beta, shape),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{Init, seeded_rng};
    use crate::rule::Rule;
    use burn::tensor::Device;

    fn names(visit: impl FnOnce(&mut Visitor<'_>)) -> Vec<String> {
        let mut out = Vec::new();
        visit(&mut |name: &str, _: Slot<'_>| out.push(name.to_string()));
        out
    }

    #[test]
    fn each_rule_names_the_tensors_it_keeps() {
        let device = Device::flex();
        for (rule, feedback) in [(Rule::Bp, false), (Rule::Kp, true), (Rule::Frsf, true)] {
            let mut layer =
                FeedbackLinear::new(4, 3, rule, Init::HeUniform, &mut seeded_rng(1), &device);
            let mut expected = vec!["m.fc1.weight", "m.fc1.bias"];
            if feedback {
                expected.push("m.fc1.feedback");
            }
            assert_eq!(names(|f| layer.visit("m.fc1", f)), expected, "{rule}");
        }
        let mut conv = FeedbackConv2d::new(
            2,
            3,
            3,
            1,
            1,
            Rule::Fa,
            Init::HeUniform,
            &mut seeded_rng(1),
            &device,
        );
        assert_eq!(names(|f| conv.visit("c", f)), ["c.weight", "c.feedback"]);
        let mut v = ConvMomentum::default();
        assert_eq!(
            names(|f| v.visit("o", &conv, f)),
            ["o.weight", "o.feedback"]
        );
    }
}
