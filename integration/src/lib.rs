//! Runs the real gitgate stack for end-to-end tests and the demo: the upstream Git server
//! (`gitgate-upstream`, which wraps `git http-backend`), the approval service (`gitgate serve`)
//! and Envoy with the gitgate filter, configured from the shipped `envoy/gitgate-local.yaml`.
//!
//! Tests start a [`Stack`] (or share one per test binary with [`Stack::shared`]), mint tokens
//! with [`Stack::token`], drive the real git client through [`Stack::git`], and look at what
//! reached the upstream: refs ([`Stack::upstream_ref`]), the `pre-receive` marker
//! ([`Stack::pre_receive_lines`]) and the request log ([`Stack::upstream_requests`]).
//!
//! The programs are taken from the default cargo target directory and `.venv` (build them with
//! `cargo xtask test`, or `cargo build -p gitgate -p gitgate-integration` and
//! `cargo xtask wasm`). Environment variables:
//!
//! - `GITGATE_BIN`, `GITGATE_UPSTREAM_BIN`, `GITGATE_FILTER_WASM`, `GITGATE_ENVOY`: use these
//!   programs instead (see [`Binaries`]);
//! - `GITGATE_KEEP_STATE=1`: keep each stack's temporary directory (repositories, database,
//!   logs, rendered `envoy.yaml`) after it stops, and print where it is.

pub mod cgi;
pub mod envoy;
mod error;
pub mod git;
pub mod http;
pub mod oidc;
pub mod paths;
pub mod process;
pub mod repo;
pub mod stack;
pub mod upstream;
pub mod upstream_log;

pub use error::{HarnessError, Result};
pub use git::{Git, GitOutput};
pub use http::HttpResponse;
pub use paths::{Binaries, workspace_root};
pub use repo::{Contents, ObjectFormat, RepoOptions};
pub use stack::{
    IdentityProvider, LogsOnFailure, PortChoice, Ports, Stack, StackOptions, TokenOptions,
};
pub use upstream::UpstreamServer;
pub use upstream_log::{AuthorizationSeen, Outcome, UpstreamRequest};
