//! The learning rules: where a layer's feedback tensor `B` comes from (what `B` is and how it
//! learns lives in [`crate::feedback::Feedback`]).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A learning rule for the feedback path (SPEC section 2).
///
/// | rule | `B` is | `B` learns by |
/// |---|---|---|
/// | [`Rule::Bp`] | `W^T`, read every step | nothing (weight transport) |
/// | [`Rule::Fa`] | random at init, same distribution as `W` | never changes |
/// | [`Rule::Ss`] | `sign(W)^T * s`, `s` the layer's init std | follows `W`'s signs |
/// | [`Rule::Wm`] | random at init | mirror mode: `dB = eta_B mean(x y^T) - lambda_WM B` |
/// | [`Rule::Kp`] | random at init | `dB = -eta y_l delta_{l+1}^T - lambda B` |
/// | [`Rule::Usf`] | `sign(W)^T * s`, as `ss` | follows `W`'s signs |
/// | [`Rule::Frsf`] | `sign(W)^T * \|R\|`, `R` drawn once | follows `W`'s signs |
/// | [`Rule::Brsf`] | `sign(W)^T * \|R\|`, `R` drawn after every step | follows `W`'s signs |
/// | [`Rule::Dfa`] | random `[width_l, classes]`, sent the output error | never changes |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Backprop: `B = W^T` (the reference).
    Bp,
    /// Feedback alignment (Lillicrap et al. 2016): fixed random `B`.
    Fa,
    /// Sign symmetry (Xiao et al. 2018): `B = sign(W)^T` times a fixed per-layer scale.
    Ss,
    /// Weight mirror (Akrout et al. 2019): `B` learned from noise in mirror mode.
    Wm,
    /// Kolen-Pollack (1994, as a local circuit in Akrout et al. 2019).
    Kp,
    /// Uniform sign-concordant feedback (BioTorch's `usf`, Moskovitz et al. 2018): `sign(W)^T`
    /// times the init std, the same `B` as [`Rule::Ss`] under BioTorch's name.
    Usf,
    /// Fixed random-magnitude sign-concordant feedback: `sign(W)^T * |R|`, `R` drawn once.
    Frsf,
    /// Batchwise random-magnitude sign-concordant feedback: `sign(W)^T * |R|`, `R` drawn
    /// afresh after every step.
    Brsf,
    /// Direct feedback alignment (Nokland 2016): every hidden layer receives the output
    /// error through its own fixed random matrix; MLPs only.
    Dfa,
}

impl Rule {
    /// All rules: the paper's five in the order of its tables, then those beyond it.
    pub const ALL: [Rule; 9] = [
        Rule::Bp,
        Rule::Fa,
        Rule::Ss,
        Rule::Wm,
        Rule::Kp,
        Rule::Usf,
        Rule::Frsf,
        Rule::Brsf,
        Rule::Dfa,
    ];

    /// The config names of [`Rule::ALL`], comma-separated.
    pub const NAMES: &str = "bp, fa, ss, wm, kp, usf, frsf, brsf, dfa";

    /// The config name (`bp`, `fa`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Bp => "bp",
            Rule::Fa => "fa",
            Rule::Ss => "ss",
            Rule::Wm => "wm",
            Rule::Kp => "kp",
            Rule::Usf => "usf",
            Rule::Frsf => "frsf",
            Rule::Brsf => "brsf",
            Rule::Dfa => "dfa",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rule {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        Rule::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| crate::Error::UnknownName {
                kind: "rule",
                found: s.to_string(),
                expected: Rule::NAMES,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_an_error() {
        let names: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.join(", "), Rule::NAMES);
        for r in Rule::ALL {
            assert_eq!(r.name().parse::<Rule>().unwrap(), r);
        }
        let err = "xx".parse::<Rule>().unwrap_err().to_string();
        assert!(err.contains("`xx`") && err.contains(Rule::NAMES), "{err}");
    }
}
