//! The gitgate proxy-wasm filter.
