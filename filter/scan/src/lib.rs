//! gitgate-scan: the secret detection engine of gitgate.
//!
//! An I/O-free core that the Envoy filter (wasm32) and the command-line tool share:
//!
//! - [`rules::BUILTIN_RULES`]: rules for about a hundred kinds of credentials, each with
//!   keywords for a prefilter, an ASCII-only regex, and optional entropy and structural checks;
//! - [`ScanConfig`]: what platform teams write in YAML to add, disable or change rules and to
//!   allowlist values, compiled once by [`RuleSet::compile`];
//! - [`Scanner`]: fed chunks of any size, it finds secrets split across any boundary with
//!   bounded memory and reports each once to a [`Sink`], with absolute offsets, line, column and
//!   a keyed [`Fingerprint`], never the value.
//!
//! ```
//! use gitgate_scan::{RuleSet, scan_bytes};
//!
//! let rules = RuleSet::builtin().unwrap();
//! let text = concat!("STRIPE_KEY=sk_live_", "4wZ8rT1qYb6NcP2dKj9LmX3v\n");
//! let findings = scan_bytes(&rules, text.as_bytes());
//! assert_eq!(findings.len(), 1);
//! assert_eq!(&*findings[0].rule_id, "stripe-secret-key");
//! assert_eq!((findings[0].line, findings[0].column), (1, 12));
//! ```
//!
//! How the work is split: an Aho-Corasick automaton (DFA kind, ASCII case-insensitive) finds
//! every keyword; each hit runs its own rule's lazy-DFA regex on a window around it. The keyword
//! pass sets the speed; see the crate README for measured figures and known limits.

#![warn(missing_docs)]

pub mod allow;
pub mod config;
#[cfg(feature = "fake")]
pub mod fake;
pub mod fingerprint;
pub mod rule;
pub mod rules;
pub mod ruleset;
pub mod scanner;
pub mod validate;

use std::ops::Range;

pub use config::{AllowlistConfig, ConfigError, CustomRule, RuleOverride, ScanConfig};
pub use fingerprint::Fingerprint;
pub use rule::{AllowKinds, Family, RuleSpec, Validation};
pub use ruleset::{Rule, RuleSet};
pub use scanner::{Finding, FirstFinding, FnSink, Scanner, Sink};

/// Scans a whole buffer and returns every finding, in order of end offset.
pub fn scan_bytes(rules: &RuleSet, bytes: &[u8]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut scanner = Scanner::new(rules);
    let _ = scanner.feed(bytes, &mut findings);
    let _ = scanner.finish(&mut findings);
    findings
}

/// Whether a buffer holds any secret, stopping at the first.
pub fn contains_secret(rules: &RuleSet, bytes: &[u8]) -> Option<Finding> {
    let mut first = FirstFinding::default();
    let mut scanner = Scanner::new(rules);
    if scanner.feed(bytes, &mut first).is_continue() {
        let _ = scanner.finish(&mut first);
    }
    first.0
}

/// The byte ranges of secret values in `findings`, sorted and with overlaps merged: what a
/// masking caller overwrites.
pub fn secret_ranges(findings: &[Finding]) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = findings.iter().map(|f| f.secret.clone()).collect();
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}
