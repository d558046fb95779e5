//! How [`KTable::suppress`](crate::KTable::suppress) holds updates back: until a window closes
//! (final results) or for a time limit, in a buffer of bounded size that a changelog makes
//! survive restarts.

use std::time::Duration;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What to do when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Emit the oldest buffered updates early to make room (time limits only).
    EmitEarly,
    /// Stop the stream thread with an error (the only choice for final results: emitting early
    /// would break the promise of one result per window).
    ShutDown,
}

/// Bounds of a suppression buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    pub(crate) max_records: Option<usize>,
    pub(crate) max_bytes: Option<usize>,
    pub(crate) when_full: WhenFull,
}

impl BufferConfig {
    /// No bound (memory grows with the number of keys waiting).
    pub fn unbounded() -> Self {
        Self { max_records: None, max_bytes: None, when_full: WhenFull::ShutDown }
    }
    /// At most `n` keys waiting.
    pub fn max_records(n: usize) -> Self {
        Self { max_records: Some(n), max_bytes: None, when_full: WhenFull::ShutDown }
    }
    /// At most `n` bytes of keys and values waiting.
    pub fn max_bytes(n: usize) -> Self {
        Self { max_records: None, max_bytes: Some(n), when_full: WhenFull::ShutDown }
    }
    /// When full, emit the oldest updates early (time limits only).
    pub fn emit_early_when_full(self) -> Self {
        Self { when_full: WhenFull::EmitEarly, ..self }
    }
    /// When full, stop with an error (the default).
    pub fn shut_down_when_full(self) -> Self {
        Self { when_full: WhenFull::ShutDown, ..self }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    WindowCloses,
    TimeLimit(i64),
}

/// A suppression: [`Suppressed::until_window_closes`] or [`Suppressed::until_time_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed {
    pub(crate) until: Until,
    pub(crate) buffer: BufferConfig,
    pub(crate) name: Option<&'static str>,
    /// Advance this suppression's time by the wall clock when no record has come for so long.
    pub(crate) wall_clock_idle: Option<i64>,
}

impl Suppressed {
    /// Hold each window's updates until stream time passes its end plus grace, then emit its
    /// final result once (tables of windowed aggregations only).
    pub fn until_window_closes(buffer: BufferConfig) -> Self {
        Self { until: Until::WindowCloses, buffer, name: None, wall_clock_idle: None }
    }

    /// Hold each key's updates for `limit` of stream time after the first one, then emit the
    /// latest (a rate limit on updates).
    pub fn until_time_limit(limit: Duration, buffer: BufferConfig) -> Self {
        Self { until: Until::TimeLimit(ms(limit)), buffer, name: None, wall_clock_idle: None }
    }

    /// Name the suppression processor and its buffer store (`<name>-store`).
    pub fn with_name(self, name: &'static str) -> Self {
        Self { name: Some(name), ..self }
    }

    /// Opt in to closing windows on the wall clock: when no record has reached this
    /// suppression for `idle` of wall-clock time, its time moves on with the wall clock, so final
    /// results of a partition that went quiet still come out. Kafka Streams only moves on with
    /// new records; this trades exact event-time semantics for timeliness (a record arriving
    /// after such a move may find its window already closed).
    pub fn close_on_wall_clock(self, idle: Duration) -> Self {
        Self { wall_clock_idle: Some(ms(idle).max(1)), ..self }
    }
}
