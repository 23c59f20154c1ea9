//! Wall-clock time as unix milliseconds, with an offset that tests can move forward.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

/// The service's source of "now".
///
/// Every timestamp the service stores is unix milliseconds read from here, so a test can make
/// an approval expire by advancing the clock instead of sleeping. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Milliseconds added to the system time; only ever grows.
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// A clock that reads the system time.
    pub fn system() -> Self {
        Self::default()
    }

    /// Now, as unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        let system = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let system = i64::try_from(system).unwrap_or(i64::MAX);
        system.saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock and all its clones forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(duration_ms(by), Ordering::Relaxed);
    }
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
pub fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Formats unix milliseconds as RFC 3339 in UTC, to the second.
pub fn rfc3339(unix_ms: i64) -> String {
    let seconds = unix_ms.div_euclid(1000);
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{unix_ms}ms"))
}

/// A short human age such as `45s`, `12m`, `3h` or `2d` for the span between two instants.
pub fn age(since_ms: i64, now_ms: i64) -> String {
    let seconds = now_ms.saturating_sub(since_ms).max(0) / 1000;
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A duration in words, in the largest unit that divides it: `24 hours`, `90 minutes`.
pub fn in_words(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (count, unit) = match seconds {
        s if s >= 86_400 && s % 86_400 == 0 && s / 86_400 > 1 => (s / 86_400, "day"),
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_a_clone_moves_the_original() {
        let clock = Clock::system();
        let before = clock.now_ms();
        clock.clone().advance(Duration::from_secs(3600));
        assert!(clock.now_ms() >= before + 3_600_000);
    }

    #[test]
    fn ages_are_rounded_down_to_one_unit() {
        assert_eq!(age(0, 59_999), "59s");
        assert_eq!(age(0, 61_000), "1m");
        assert_eq!(age(0, 7_200_000), "2h");
        assert_eq!(age(0, 3 * 86_400_000), "3d");
        assert_eq!(age(10, 0), "0s");
    }

    #[test]
    fn durations_read_in_their_largest_whole_unit() {
        assert_eq!(in_words(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(in_words(Duration::from_secs(3 * 86_400)), "3 days");
        assert_eq!(in_words(Duration::from_secs(5400)), "90 minutes");
        assert_eq!(in_words(Duration::from_secs(3600)), "1 hour");
        assert_eq!(in_words(Duration::from_secs(61)), "61 seconds");
    }

    #[test]
    fn rfc3339_is_utc_to_the_second() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01Z");
    }
}
