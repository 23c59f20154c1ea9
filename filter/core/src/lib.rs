//! gitgate's I/O-free core: everything the Envoy filter and the `gitgate` command share.
//!
//! Each module is one layer of the Git smart-HTTP protocol or of gitgate's own protocol. Parsers
//! are push-based: they are fed byte slices as they arrive and never do I/O, so they test
//! natively and run unchanged inside the proxy-wasm VM.

pub mod api;
