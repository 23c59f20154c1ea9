//! gitgate's I/O-free core: everything the Envoy filter and the `gitgate` command share.
//!
//! Each module is one layer of the Git smart-HTTP protocol or of gitgate's own protocol. Parsers
//! are push-based: they are fed byte slices as they arrive and never do I/O, so they test
//! natively and run unchanged inside the proxy-wasm VM.
//!
//! Layers, bottom up: [`pktline`] and [`sideband`] framing; [`receive_pack`] (the command
//! section of a push), [`pack`] (where the pack ends) and [`gzip`]; [`pack_objects`] (the
//! objects of the pack, with [`delta`] and [`object`]); [`request`] and [`glob`]
//! (which requests are gated); [`api`], [`decision`], [`reason`] and [`report`] (the verdict and
//! the answer); [`withhold`] and [`gate`] (one push through the filter); [`config`] and
//! [`pairs`] (what the adapter reads from Envoy); [`mask`] (secrets masked in responses);
//! [`push_scan`] (secrets found in pushed objects);
//! [`fetch_scan`] (secrets in fetched packs, and the fetch policy).
//!
//! ```
//! use gitgate_core::receive_pack::{Parser, Progress};
//!
//! let mut parser = Parser::default();
//! assert_eq!(parser.feed(b"0000").unwrap(), Progress::Complete { consumed: 4 });
//! assert!(parser.section().unwrap().is_empty()); // the probe a large push starts with
//! ```

pub mod api;
pub mod audit;
pub mod config;
pub mod decision;
pub mod delta;
pub mod fetch_scan;
pub mod gate;
pub mod glob;
pub mod gzip;
pub mod mask;
pub mod no_thin;
pub mod object;
pub mod pack;
pub mod pack_objects;
pub mod pairs;
pub mod pktline;
pub mod push_scan;
pub mod reason;
pub mod receive_pack;
pub mod report;
pub mod request;
pub mod service_token;
pub mod sideband;
pub mod withhold;
