//! Helpers of the command-line tests.

pub mod http;
