//! A layer's feedback: what its `B` is and how it learns, one variant per rule.
//!
//! Linear and conv layers hold a [`Feedback`] beside their weight; everything a rule means for
//! the feedback path is answered here: the `B` a backward pass uses ([`Feedback::matrix`]),
//! the tensor a checkpoint stores ([`Feedback::stored`]), the `B` that SGD trains with the
//! weight's gradient (Kolen-Pollack, [`Feedback::sgd_mut`]), the `B` that mirror mode trains
//! (weight mirror, [`Feedback::mirror_mut`]) and the draw after every step (brsf,
//! [`Feedback::redraw`]). A rule whose `B` has the weight's shape is a variant here and a name
//! in [`Rule`]; nothing else changes.

use crate::init::{Init, Rng};
use crate::rule::Rule;
use burn::tensor::{Device, Tensor};

/// How a random magnitude `|R|` is drawn: `|r|` for `r` from the layer's init distribution
/// at its fans (brsf draws a fresh one after every step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// The layer's init.
    pub init: Init,
    /// Its fan-in.
    pub fan_in: usize,
    /// Its fan-out.
    pub fan_out: usize,
}

impl Draw {
    /// `|R|` of `shape`, drawn on the host from `rng`.
    pub fn magnitude<const D: usize>(
        self,
        shape: [usize; D],
        rng: &mut Rng,
        device: &Device,
    ) -> Tensor<D> {
        self.init
            .tensor(shape, self.fan_in, self.fan_out, rng, device)
            .abs()
    }
}

/// The feedback path of one layer, `B` of the weight's storage shape (`[d_in, d_out]` for a
/// linear layer, the kernel's `[c_out, c_in, k, k]` for a conv; SPEC section 2).
///
/// | variant | `B` is | learns by |
/// |---|---|---|
/// | `Bp` | `W^T`, read every step | nothing (weight transport) |
/// | `Fa` | random at init | never changes |
/// | `Ss`, `Usf` | `sign(W)^T * s`, `s` the init std | follows `W`'s signs |
/// | `Frsf` | `sign(W)^T * \|R\|`, `R` drawn once | follows `W`'s signs |
/// | `Brsf` | `sign(W)^T * \|R\|` | `R` drawn afresh after every step |
/// | `Wm` | random at init | mirror mode |
/// | `Kp` | random at init | the weight's gradient and decay (SGD) |
/// | `Dfa` | random `[d_in, classes]` | never changes; sent the output error |
#[derive(Debug, Clone)]
pub enum Feedback<const D: usize> {
    /// Backprop: `B = W^T`.
    Bp,
    /// Feedback alignment: a fixed random `B`.
    Fa(Tensor<D>),
    /// Sign symmetry: `sign(W) * scale`.
    Ss {
        /// The layer's init std.
        scale: f32,
    },
    /// BioTorch's uniform sign-concordant feedback: `sign(W) * scale`, as [`Feedback::Ss`].
    Usf {
        /// The layer's init std.
        scale: f32,
    },
    /// Fixed random-magnitude sign-concordant feedback: `sign(W) * |R|`, `|R|` drawn once.
    Frsf {
        /// `|R|`.
        magnitude: Tensor<D>,
    },
    /// Batchwise random-magnitude sign-concordant feedback: `sign(W) * |R|`, a new `|R|`
    /// after every step.
    Brsf {
        /// The current `|R|`.
        magnitude: Tensor<D>,
        /// How the next one is drawn.
        draw: Draw,
    },
    /// Weight mirror: `B` learned in mirror mode.
    Wm(Tensor<D>),
    /// Kolen-Pollack: `B` learns the weight's update and decay.
    Kp(Tensor<D>),
    /// Direct feedback alignment: a fixed random `B` through which the layer receives the
    /// network's output error instead of the delta of the layer above; in a linear layer of
    /// a network it is `[d_in, classes]`.
    Dfa(Tensor<D>),
}

impl<const D: usize> Feedback<D> {
    /// The feedback of `rule` for a weight of `shape` with the given fans, drawing its tensor
    /// (if the rule has one) from `init` and `rng` after the weight. For `dfa`, `shape` is
    /// that of `B` (`[d_in, classes]`); for a lone layer (whose output error is its delta)
    /// it is the weight's and `dfa` is `fa`.
    pub fn new(
        rule: Rule,
        shape: [usize; D],
        fan_in: usize,
        fan_out: usize,
        init: Init,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let draw = Draw {
            init,
            fan_in,
            fan_out,
        };
        let mut random = || init.tensor(shape, fan_in, fan_out, rng, device);
        let scale = init.std(fan_in, fan_out) as f32;
        match rule {
            Rule::Bp => Self::Bp,
            Rule::Fa => Self::Fa(random()),
            Rule::Ss => Self::Ss { scale },
            Rule::Usf => Self::Usf { scale },
            Rule::Wm => Self::Wm(random()),
            Rule::Kp => Self::Kp(random()),
            Rule::Dfa => Self::Dfa(random()),
            Rule::Frsf => Self::Frsf {
                magnitude: draw.magnitude(shape, rng, device),
            },
            Rule::Brsf => Self::Brsf {
                magnitude: draw.magnitude(shape, rng, device),
                draw,
            },
        }
    }

    /// The rule this feedback follows.
    pub fn rule(&self) -> Rule {
        match self {
            Self::Bp => Rule::Bp,
            Self::Fa(_) => Rule::Fa,
            Self::Ss { .. } => Rule::Ss,
            Self::Usf { .. } => Rule::Usf,
            Self::Frsf { .. } => Rule::Frsf,
            Self::Brsf { .. } => Rule::Brsf,
            Self::Wm(_) => Rule::Wm,
            Self::Kp(_) => Rule::Kp,
            Self::Dfa(_) => Rule::Dfa,
        }
    }

    /// The `B` the rule uses now, given the forward weight (same storage shape, except `dfa`'s).
    pub fn matrix(&self, weight: &Tensor<D>) -> Tensor<D> {
        match self {
            Self::Bp => weight.clone(),
            Self::Ss { scale } | Self::Usf { scale } => weight.clone().sign().mul_scalar(*scale),
            Self::Frsf { magnitude } | Self::Brsf { magnitude, .. } => {
                weight.clone().sign() * magnitude.clone()
            }
            Self::Fa(b) | Self::Wm(b) | Self::Kp(b) | Self::Dfa(b) => b.clone(),
        }
    }

    /// Whether the layer is sent the network's output error (`dfa`) rather than the delta of
    /// the layer above.
    pub fn is_direct(&self) -> bool {
        matches!(self, Self::Dfa(_))
    }

    /// The tensor this feedback keeps (a checkpoint's `feedback`): `B` for `fa`, `wm`, `kp`,
    /// `dfa`; `|R|` for `frsf` and `brsf`; none for `bp`, `ss`, `usf`, which derive `B` from
    /// `W`.
    pub fn stored(&self) -> Option<&Tensor<D>> {
        match self {
            Self::Bp | Self::Ss { .. } | Self::Usf { .. } => None,
            Self::Frsf { magnitude } | Self::Brsf { magnitude, .. } => Some(magnitude),
            Self::Fa(b) | Self::Wm(b) | Self::Kp(b) | Self::Dfa(b) => Some(b),
        }
    }

    /// [`Feedback::stored`], to replace (a checkpoint being restored).
    pub fn stored_mut(&mut self) -> Option<&mut Tensor<D>> {
        match self {
            Self::Bp | Self::Ss { .. } | Self::Usf { .. } => None,
            Self::Frsf { magnitude } | Self::Brsf { magnitude, .. } => Some(magnitude),
            Self::Fa(b) | Self::Wm(b) | Self::Kp(b) | Self::Dfa(b) => Some(b),
        }
    }

    /// The `B` that SGD updates with the weight's own gradient and decay (Kolen-Pollack's:
    /// in this storage `dB` is the weight gradient itself; see [`crate::optim::Sgd`]).
    pub fn sgd_mut(&mut self) -> Option<&mut Tensor<D>> {
        match self {
            Self::Kp(b) => Some(b),
            _ => None,
        }
    }

    /// The `B` that mirror mode trains (weight mirror's; see [`crate::mirror`]).
    pub fn mirror_mut(&mut self) -> Option<&mut Tensor<D>> {
        match self {
            Self::Wm(b) => Some(b),
            _ => None,
        }
    }

    /// Whether [`Feedback::redraw`] changes anything (brsf).
    pub fn redraws(&self) -> bool {
        matches!(self, Self::Brsf { .. })
    }

    /// What the feedback does after every training step besides SGD: brsf draws a fresh
    /// `|R|` from `rng`; the others keep their state.
    pub fn redraw(&mut self, rng: &mut Rng) {
        if let Self::Brsf { magnitude, draw } = self {
            let device = magnitude.device();
            *magnitude = draw.magnitude(magnitude.dims(), rng, &device);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::seeded_rng;
    use crate::tensor_io::to_vec;

    fn feedback(rule: Rule, seed: u64) -> (Tensor<2>, Feedback<2>) {
        let device = Device::flex();
        let mut rng = seeded_rng(seed);
        let init = Init::HeUniform;
        let w = init.tensor([30, 20], 30, 20, &mut rng, &device);
        let f = Feedback::new(rule, [30, 20], 30, 20, init, &mut rng, &device);
        (w, f)
    }

    #[test]
    fn every_rule_names_itself_and_only_the_derived_ones_store_nothing() {
        for rule in Rule::ALL {
            let (_, f) = feedback(rule, 1);
            assert_eq!(f.rule(), rule);
            let derived = matches!(rule, Rule::Bp | Rule::Ss | Rule::Usf);
            assert_eq!(f.stored().is_none(), derived, "{rule}");
        }
    }

    /// The sign-concordant family: `B` has `W`'s signs everywhere; `usf` has one magnitude
    /// (the init std), `frsf` keeps its random magnitudes, `brsf` draws new ones each step.
    #[test]
    fn sign_concordant_feedback_has_the_weights_signs_and_its_own_magnitudes() {
        let signs_agree = |w: &Tensor<2>, b: &Tensor<2>| {
            let (w, b) = (to_vec(w.clone()), to_vec(b.clone()));
            w.iter().zip(&b).all(|(x, y)| x.signum() == y.signum())
        };
        let (w, usf) = feedback(Rule::Usf, 2);
        let b = usf.matrix(&w);
        assert!(signs_agree(&w, &b));
        let s = (2.0f64 / 30.0).sqrt() as f32;
        assert!(to_vec(b).iter().all(|v| (v.abs() - s).abs() < 1e-6));

        let (w, mut frsf) = feedback(Rule::Frsf, 3);
        let b0 = frsf.matrix(&w);
        assert!(signs_agree(&w, &b0));
        let magnitudes = to_vec(b0.clone().abs());
        let spread = magnitudes.iter().cloned().fold(0.0f32, f32::max)
            - magnitudes.iter().cloned().fold(f32::MAX, f32::min);
        assert!(spread > 0.1, "frsf magnitudes vary: {spread}");
        frsf.redraw(&mut seeded_rng(9));
        assert_eq!(to_vec(frsf.matrix(&w)), to_vec(b0), "frsf never redraws");

        let (w, mut brsf) = feedback(Rule::Brsf, 4);
        let b0 = brsf.matrix(&w);
        brsf.redraw(&mut seeded_rng(9));
        let b1 = brsf.matrix(&w);
        assert!(signs_agree(&w, &b0) && signs_agree(&w, &b1));
        assert_ne!(to_vec(b0), to_vec(b1.clone()), "brsf redraws |R|");
        // The same generator state gives the same draw (a resumed run repeats it).
        let (_, mut again) = feedback(Rule::Brsf, 4);
        again.redraw(&mut seeded_rng(9));
        assert_eq!(to_vec(again.matrix(&w)), to_vec(b1));
    }

    #[test]
    fn only_kolen_pollack_trains_b_by_sgd_and_only_the_mirror_in_mirror_mode() {
        for rule in Rule::ALL {
            let (_, mut f) = feedback(rule, 5);
            assert_eq!(f.sgd_mut().is_some(), rule == Rule::Kp, "{rule}");
            assert_eq!(f.mirror_mut().is_some(), rule == Rule::Wm, "{rule}");
            assert_eq!(f.is_direct(), rule == Rule::Dfa, "{rule}");
            assert_eq!(f.redraws(), rule == Rule::Brsf, "{rule}");
        }
    }
}
