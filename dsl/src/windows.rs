//! Window specifications, as Kafka Streams defines them: [`TimeWindows`] (tumbling, or hopping
//! with an advance), [`SlidingWindows`] (aligned to records, both bounds inclusive),
//! [`SessionWindows`] (per-key sessions closed by an inactivity gap) and [`JoinWindows`] (for
//! stream-stream joins). Each has a grace period: a record is accepted while its window's end is
//! after stream time minus grace, and dropped (and counted) after that.
//!
//! Times are milliseconds since the epoch; durations are [`Duration`]s. Windows start at or
//! after 0.

use std::time::Duration;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Fixed-size windows: tumbling (`advance == size`) or hopping (`advance < size`), each
/// `[start, start + size)`, starts aligned to multiples of `advance` from the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    pub(crate) size: i64,
    pub(crate) advance: i64,
    pub(crate) grace: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` that accept no late record.
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        Self::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows of `size` that accept records up to `grace` after they end.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        let size = ms(size);
        Self { size, advance: size, grace: ms(grace) }
    }

    /// Hopping windows: a new window every `advance` (at most the size; checked when the
    /// windows are used).
    pub fn advance_by(self, advance: Duration) -> Self {
        Self { advance: ms(advance), ..self }
    }

    /// Window size in ms.
    pub fn size_ms(&self) -> i64 {
        self.size
    }

    /// Grace period in ms.
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.size <= 0 {
            return Err(format!("TimeWindows: the size must be positive, not {} ms", self.size));
        }
        if self.advance <= 0 || self.advance > self.size {
            return Err(format!(
                "TimeWindows: the advance must be positive and at most the size ({} ms), not {} ms",
                self.size, self.advance
            ));
        }
        Ok(())
    }

    /// The windows `[start, end)` holding `timestamp`, earliest first.
    pub fn windows_for(&self, timestamp: i64) -> Vec<(i64, i64)> {
        let mut start = ((timestamp - self.size + self.advance).max(0) / self.advance) * self.advance;
        let mut out = Vec::new();
        while start <= timestamp {
            out.push((start, start + self.size));
            start += self.advance;
        }
        out
    }
}

/// Windows of a fixed length aligned to records (KIP-450): for every record, the window
/// `[ts - difference, ts]` ending at it and, when later records exist, the one starting just
/// after it. Both bounds are inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    pub(crate) difference: i64,
    pub(crate) grace: i64,
}

impl SlidingWindows {
    /// Windows `difference` long that accept no late record.
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// Windows `difference` long that accept records up to `grace` after they end.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        Self { difference: ms(difference), grace: ms(grace) }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.difference < 0 || self.grace < 0 {
            return Err("SlidingWindows: the time difference and grace must not be negative".into());
        }
        Ok(())
    }
}

/// Per-key sessions: records less than `gap` apart belong to one session; a record bridging
/// two sessions merges them. Session bounds are the first and last record times (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    pub(crate) gap: i64,
    pub(crate) grace: i64,
}

impl SessionWindows {
    /// Sessions closed by `gap` of inactivity that accept no late record.
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        Self::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }

    /// Sessions closed by `gap` of inactivity that accept records up to `grace` after a
    /// session ended.
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        Self { gap: ms(gap), grace: ms(grace) }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.gap <= 0 || self.grace < 0 {
            return Err(format!("SessionWindows: the gap must be positive, not {} ms", self.gap));
        }
        Ok(())
    }
}

/// How close in time two records of a stream-stream join must be: the other side's record
/// joins if its time is within `[ts - before, ts + after]` of this one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    pub(crate) before: i64,
    pub(crate) after: i64,
    pub(crate) grace: i64,
}

impl JoinWindows {
    /// Records at most `difference` apart join; no late records.
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// Records at most `difference` apart join; records up to `grace` late are accepted.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        let d = ms(difference);
        Self { before: d, after: d, grace: ms(grace) }
    }

    /// Change how far before a left record a right record may be.
    pub fn before(self, before: Duration) -> Self {
        Self { before: ms(before), ..self }
    }

    /// Change how far after a left record a right record may be.
    pub fn after(self, after: Duration) -> Self {
        Self { after: ms(after), ..self }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.before + self.after < 0 || self.grace < 0 {
            return Err("JoinWindows: before + after must not be negative".into());
        }
        Ok(())
    }
}

/// When a windowed aggregation emits (KIP-825).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmitStrategy {
    /// Every update of a window (the default).
    #[default]
    OnWindowUpdate,
    /// Once per window, its final result, when stream time passes its end plus grace.
    OnWindowClose,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn tumbling_windows_hold_each_time_once() {
        let w = TimeWindows::of_size_with_no_grace(secs(10));
        assert_eq!(w.windows_for(0), [(0, 10)]);
        assert_eq!(w.windows_for(9), [(0, 10)]);
        assert_eq!(w.windows_for(10), [(10, 20)]);
    }

    #[test]
    fn hopping_windows_overlap() {
        let w = TimeWindows::of_size_with_no_grace(secs(10)).advance_by(secs(5));
        assert_eq!(w.windows_for(3), [(0, 10)]);
        assert_eq!(w.windows_for(7), [(0, 10), (5, 15)]);
        assert_eq!(w.windows_for(10), [(5, 15), (10, 20)]);
        assert!(TimeWindows::of_size_with_no_grace(secs(10)).advance_by(secs(11)).check().is_err());
        assert!(TimeWindows::of_size_with_no_grace(secs(0)).check().is_err());
    }
}
