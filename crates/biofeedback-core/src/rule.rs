//! The five learning rules: where a layer's feedback tensor `B` comes from.

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
}

impl Rule {
    /// All rules, in the order of the paper's tables.
    pub const ALL: [Rule; 5] = [Rule::Bp, Rule::Fa, Rule::Ss, Rule::Wm, Rule::Kp];

    /// The config name (`bp`, `fa`, `ss`, `wm`, `kp`).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Bp => "bp",
            Rule::Fa => "fa",
            Rule::Ss => "ss",
            Rule::Wm => "wm",
            Rule::Kp => "kp",
        }
    }

    /// Whether the layer stores a feedback tensor of its own (`fa`, `wm`, `kp`); `bp` and `ss`
    /// derive `B` from `W` at every step.
    pub fn stores_feedback(self) -> bool {
        matches!(self, Rule::Fa | Rule::Wm | Rule::Kp)
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
                expected: "bp, fa, ss, wm, kp",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_an_error() {
        for r in Rule::ALL {
            assert_eq!(r.name().parse::<Rule>().unwrap(), r);
        }
        let err = "xx".parse::<Rule>().unwrap_err().to_string();
        assert!(
            err.contains("`xx`") && err.contains("bp, fa, ss, wm, kp"),
            "{err}"
        );
    }
}
