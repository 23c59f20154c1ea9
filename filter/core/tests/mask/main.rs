//! Masking secrets in responses: every body format, split at every chunk boundary, checked for
//! validity in its format and for the absence of every planted secret.
//!
//! The credentials are fakes generated in the vendors' formats at run time; the GitHub bodies
//! are recordings (see `fixtures/github/README.md`).

mod json;
mod limits;
mod pktline;
mod plan;
mod robustness;
mod support;
mod text;
