//! What masking did to one body, for counters and the audit log line: rule ids, fingerprints and
//! offsets, never a value.

use std::fmt;
use std::sync::Arc;

use gitgate_scan::Fingerprint;

use super::stream::Found;

/// How many masked secrets a report lists one by one; the count goes on past it.
pub const MAX_LISTED: usize = 16;

/// Where in the body a secret was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A text body.
    Text,
    /// A pkt-line text packet (ref line, negotiation line, `ERR`).
    PktLine,
    /// Side-band 2 (progress, hook output) or 3 (fatal error).
    Band(u8),
    /// A report-status line inside band 1 of a push answer.
    Report,
    /// A JSON string (offset of the string's opening quote).
    JsonString,
    /// A decoded base64 field of a JSON document (offset of its opening quote).
    Base64Field,
    /// The part of a body masked as text after its framing could not be followed.
    Fallback,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Text => f.write_str("text"),
            Place::PktLine => f.write_str("pkt-line"),
            Place::Band(band) => write!(f, "side-band {band}"),
            Place::Report => f.write_str("report-status"),
            Place::JsonString => f.write_str("json string"),
            Place::Base64Field => f.write_str("base64 field"),
            Place::Fallback => f.write_str("text fallback"),
        }
    }
}

/// One masked secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedSecret {
    /// The rule that found it.
    pub rule_id: Arc<str>,
    /// The keyed fingerprint of the value.
    pub fingerprint: Fingerprint,
    /// Body offset: of the secret itself in text, pkt-lines and side-band; of the enclosing
    /// string in JSON; within the report for report-status lines.
    pub offset: u64,
    /// Where it was.
    pub place: Place,
}

impl fmt::Display for MaskedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (fingerprint {}) in {} at byte {}",
            self.rule_id, self.fingerprint, self.place, self.offset
        )
    }
}

/// Why part of a body was masked as plain text instead of in its own format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// The pkt-line framing broke at this body offset.
    PktFraming {
        /// Offset of the bad length prefix.
        offset: u64,
    },
    /// The JSON could not be followed from this body offset (malformed, or nested deeper than
    /// the configured limit).
    Json {
        /// Offset of the byte that stopped the parser.
        offset: u64,
        /// What was wrong, lower case.
        reason: &'static str,
    },
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fallback::PktFraming { offset } => {
                write!(f, "pkt-line framing broke at byte {offset}")
            }
            Fallback::Json { offset, reason } => write!(f, "json {reason} at byte {offset}"),
        }
    }
}

/// Everything masking did to one body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskReport {
    /// Secrets masked (a secret found by two rules on the same bytes counts twice).
    pub masked: u64,
    /// The first [`MAX_LISTED`] of them.
    pub secrets: Vec<MaskedSecret>,
    /// Set when part of the body was masked as text.
    pub fallback: Option<Fallback>,
}

impl MaskReport {
    pub(crate) fn record(&mut self, found: &Found, offset: u64, place: Place) {
        self.masked = self.masked.saturating_add(1);
        if self.secrets.len() < MAX_LISTED {
            self.secrets.push(MaskedSecret {
                rule_id: Arc::clone(&found.rule_id),
                fingerprint: found.fingerprint,
                offset,
                place,
            });
        }
    }

    pub(crate) fn fall_back(&mut self, fallback: Fallback) {
        if self.fallback.is_none() {
            self.fallback = Some(fallback);
        }
    }
}
