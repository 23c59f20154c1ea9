//! The gitgate proxy-wasm filter: a thin adapter between Envoy and `gitgate-core`.
//!
//! One module serves two plugin instances, told apart by their `root_id`:
//!
//! - `gitgate_basic_auth`, placed before jwt_authn, rewrites `Authorization: Basic
//!   b64(user:<jwt>)` to `Authorization: Bearer <jwt>`;
//! - `gitgate`, placed after jwt_authn, gates `git-receive-pack` requests: it streams the body
//!   through `gitgate_core::gate`, asks the approval service once per push, and either lets the
//!   push through or answers with a report-status that refuses every ref; and it masks secrets
//!   in the responses of every request on a masked path, through `gitgate_core::mask`.
//!
//! Build with `cargo build -p gitgate-filter --target wasm32-wasip1 --release`. Everything that
//! does not touch the host (configuration decoding, the Basic-auth rewrite) builds and is tested
//! natively; the host glue exists only on wasm32.

pub mod basic_auth;
pub mod plugin_config;
pub mod service_token;

#[cfg(target_arch = "wasm32")]
mod audit;
#[cfg(target_arch = "wasm32")]
mod filter;
#[cfg(target_arch = "wasm32")]
mod host;
#[cfg(target_arch = "wasm32")]
mod mask;
#[cfg(target_arch = "wasm32")]
mod no_thin;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    filter::start();
}}
