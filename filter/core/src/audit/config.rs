//! The `audit` section of the gate's configuration.
//!
//! ```yaml
//! audit:
//!   enabled: true
//!   tick_ms: 200            # how often a worker sends a batch
//!   timeout_ms: 5000        # the events callout's timeout
//!   max_queue_events: 10000 # reads are dropped (and counted) beyond this; writes never
//!   max_queue_bytes: 16777216
//!   max_batch_events: 100
//!   max_batch_bytes: 1048576
//!   max_backoff_ms: 10000   # longest wait between retries after a failed batch
//!   max_refs: 100           # refs requested or advertised kept per event
//!   max_wants: 100          # object ids wanted kept per event
//!   max_shown_bytes: 4096   # text shown to the client kept per event
//!   max_request_bytes: 1048576 # bytes of an upload-pack request read (after inflating)
//! ```
//!
//! The events go to the approval service's cluster and authority (the `approval` section).

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The `audit` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Record every request; when false no event is built or sent.
    pub enabled: bool,
    /// The period of the root context's timer that sends batches, in milliseconds.
    pub tick_ms: u64,
    /// Timeout of one `POST /v1/events`, in milliseconds (never 0, which Envoy reads as none).
    pub timeout_ms: u64,
    /// Events queued per worker at most before reads are dropped.
    pub max_queue_events: usize,
    /// Bytes of encoded events queued per worker at most before reads are dropped.
    pub max_queue_bytes: usize,
    /// Events per batch at most.
    pub max_batch_events: usize,
    /// Bytes of encoded events per batch at most (a larger single event still goes alone).
    pub max_batch_bytes: usize,
    /// The longest wait between two attempts after failed batches, in milliseconds.
    pub max_backoff_ms: u64,
    /// Ref names kept per event.
    pub max_refs: usize,
    /// Wanted object ids kept per event.
    pub max_wants: usize,
    /// Bytes of text shown to the client kept per event.
    pub max_shown_bytes: usize,
    /// Bytes of an upload-pack request body read, after inflating a gzip body.
    pub max_request_bytes: u64,
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            enabled: true,
            tick_ms: 200,
            timeout_ms: 5000,
            max_queue_events: 10_000,
            max_queue_bytes: 16 << 20,
            max_batch_events: 100,
            max_batch_bytes: 1 << 20,
            max_backoff_ms: 10_000,
            max_refs: 100,
            max_wants: 100,
            max_shown_bytes: 4096,
            max_request_bytes: 1 << 20,
        }
    }
}

/// The shortest tick: a faster timer only burns CPU on every worker.
pub const MIN_TICK_MS: u64 = 10;

/// The longest tick and timeout: a minute.
pub const MAX_PERIOD_MS: u64 = 60_000;

/// The largest list cap: lists are kept per request until it ends.
pub const MAX_LIST_CAP: usize = 100_000;

/// Checks the section's ranges, naming the field at fault.
pub fn check(section: &AuditSection) -> Result<(), ConfigError> {
    let in_range = |field: &str, value: u64, min: u64, max: u64| {
        if (min..=max).contains(&value) {
            Ok(())
        } else {
            Err(ConfigError::new(
                format!("audit.{field}"),
                format!("must be between {min} and {max}"),
            ))
        }
    };
    in_range("tick_ms", section.tick_ms, MIN_TICK_MS, MAX_PERIOD_MS)?;
    in_range("timeout_ms", section.timeout_ms, 1, MAX_PERIOD_MS)?;
    in_range(
        "max_backoff_ms",
        section.max_backoff_ms,
        section.tick_ms,
        3_600_000,
    )?;
    let size = |value: usize| value as u64;
    in_range(
        "max_queue_events",
        size(section.max_queue_events),
        1,
        10_000_000,
    )?;
    in_range(
        "max_queue_bytes",
        size(section.max_queue_bytes),
        1024,
        1 << 30,
    )?;
    in_range(
        "max_batch_events",
        size(section.max_batch_events),
        1,
        size(section.max_queue_events),
    )?;
    in_range(
        "max_batch_bytes",
        size(section.max_batch_bytes),
        1024,
        64 << 20,
    )?;
    let cap = MAX_LIST_CAP as u64;
    in_range("max_refs", size(section.max_refs), 0, cap)?;
    in_range("max_wants", size(section.max_wants), 0, cap)?;
    in_range("max_shown_bytes", size(section.max_shown_bytes), 0, 1 << 20)?;
    in_range("max_request_bytes", section.max_request_bytes, 0, 64 << 20)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GateConfig;
    use serde_json::json;

    #[test]
    fn audit_is_on_by_default_with_bounded_queues() {
        let config = GateConfig::from_value(json!({"approval": {"cluster": "c"}})).expect("valid");
        assert_eq!(config.config.audit, AuditSection::default());
        assert!(config.config.audit.enabled);
        assert!(check(&AuditSection::default()).is_ok());
    }

    #[test]
    fn audit_settings_are_read_and_checked_by_name() {
        let config = GateConfig::from_value(json!({
            "approval": {"cluster": "c"},
            "audit": {"enabled": false, "tick_ms": 100, "max_refs": 5}
        }))
        .expect("valid");
        assert!(!config.config.audit.enabled);
        assert_eq!(config.config.audit.max_refs, 5);

        for (field, value) in [
            ("tick_ms", json!(5)),
            ("timeout_ms", json!(0)),
            ("max_queue_events", json!(0)),
            ("max_batch_events", json!(20_000)),
            ("max_backoff_ms", json!(50)),
        ] {
            let err = GateConfig::from_value(json!({
                "approval": {"cluster": "c"},
                "audit": {field: value}
            }))
            .expect_err("out of range");
            assert_eq!(err.field, format!("audit.{field}"));
        }
        let err = GateConfig::from_value(json!({
            "approval": {"cluster": "c"}, "audit": {"queue": 1}
        }))
        .expect_err("unknown");
        assert_eq!(err.field, "audit.queue");
    }
}
