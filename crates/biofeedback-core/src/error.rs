//! The error type of the core crate.

use thiserror::Error;

/// Errors raised by the core crate: bad shapes or values handed in by a caller.
#[derive(Debug, Error)]
pub enum Error {
    /// A tensor did not have the shape an operation needs.
    #[error("shape mismatch in {what}: expected {expected}, found {found}")]
    Shape {
        /// Which tensor or operation.
        what: String,
        /// The shape that was expected.
        expected: String,
        /// The shape that was found.
        found: String,
    },
    /// A name (rule, activation, init) that is not known.
    #[error("unknown {kind} `{found}`: expected one of {expected}")]
    UnknownName {
        /// What kind of name.
        kind: &'static str,
        /// The name given.
        found: String,
        /// The names accepted.
        expected: &'static str,
    },
    /// A rule that a kind of network cannot be trained with.
    #[error("rule `{rule}` does not apply to {network}: {why}")]
    RuleNotSupported {
        /// The rule's config name.
        rule: &'static str,
        /// The network, e.g. "a ResNet".
        network: &'static str,
        /// Why, and what to use instead.
        why: &'static str,
    },
    /// Reading a tensor back from the device failed.
    #[error("reading a tensor from the device failed: {0}")]
    Read(String),
}

/// `Result` with the core [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
