//! gitgate's approval service: the verdict API the Envoy filter calls for every push, the
//! policy that decides, the ticket store, and the pages where reviewers approve or deny held
//! updates; plus a development token issuer.
//!
//! Run it with `gitgate serve` (see the crate README). Tests build the router with
//! [`app::app`] and drive it with `tower::ServiceExt::oneshot`, without a socket.

pub mod app;
pub mod audit;
pub mod audit_cmd;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod filter_auth;
pub mod holds;
pub mod issuer;
pub mod mask_cmd;
pub mod oidc;
pub mod pages;
pub mod policy;
pub mod replay_cmd;
pub mod scan_cmd;
pub mod serve;
pub mod session;
pub mod store;
pub mod templates;
pub mod verdicts;
pub mod webhooks;

pub use app::{AppState, Settings, app};
