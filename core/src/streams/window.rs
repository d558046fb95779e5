//! Windowed keys: a key with the time window it was aggregated in ([`Windowed<K>`]), their serdes
//! in Kafka's byte layouts, and the two lookups window and session stores need.
//!
//! Layouts (Kafka's, so the bytes on changelogs and output topics match Kafka Streams'):
//!
//! | serde | bytes | decoding needs |
//! |---|---|---|
//! | [`TimeWindowedSerde`] | `key ++ start` | the window size: `end = start + size` |
//! | [`SessionWindowedSerde`] | `key ++ end ++ start` | nothing |
//!
//! Times are 8 bytes big-endian and never negative in a window, so byte order is numeric order:
//! a store of windowed keys sorts by key bytes, then by time. A window store is therefore just a
//! [`KeyValueStore<Windowed<K>, V>`] over a time-segmented bytes store (`rill-state`), and one
//! key's windows are a byte range. That range can also hold entries of *other* keys (a key whose
//! bytes extend this key's, such as `"a\0..."` next to `"a"`), so read windows with
//! [`fetch_key_range`] and [`find_sessions`], which scan the range and keep exactly what was
//! asked for.
//!
//! ```
//! use rill_core::streams::serde::{Serde, StringSerde};
//! use rill_core::streams::window::{TimeWindowedSerde, Window, Windowed};
//!
//! let serde = TimeWindowedSerde::new(StringSerde, 60_000);
//! let w = Windowed::new("card-7".to_string(), Window::new(120_000, 180_000));
//! let bytes = serde.serialize(&w).unwrap();
//! assert_eq!(&bytes[..6], b"card-7");
//! assert_eq!(&bytes[6..], &120_000i64.to_be_bytes());
//! assert_eq!(serde.deserialize(&bytes).unwrap(), w);
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::serde::{Serde, SerdeError};
use super::store::{KeyValueStore, StoreResult};

/// Bytes of one time in a windowed key.
pub const TIME_BYTES: usize = 8;

/// A time window: `start` inclusive; `end` exclusive for time windows, inclusive for sessions
/// (Kafka's `TimeWindow` and `SessionWindow`). Milliseconds, never negative when stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// First millisecond of the window.
    pub start: i64,
    /// End of the window (see the type docs for inclusive or exclusive).
    pub end: i64,
}

impl Window {
    /// The window `[start, end)` (or `[start, end]` for a session).
    pub fn new(start: i64, end: i64) -> Self {
        Self { start, end }
    }
}

/// A key and the window it belongs to: the key type of windowed aggregations and of window and
/// session stores. Ordered by key, then window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// Its window.
    pub window: Window,
}

impl<K> Windowed<K> {
    /// `key` in `window`.
    pub fn new(key: K, window: Window) -> Self {
        Self { key, window }
    }
}

fn put_time(buf: &mut BytesMut, serde: &'static str, what: &str, t: i64) -> Result<(), SerdeError> {
    if t < 0 {
        return Err(SerdeError { serde, op: "serialize", what: format!("negative window {what} {t}") });
    }
    buf.put_i64(t);
    Ok(())
}

fn time_at(bytes: &[u8], at: usize) -> i64 {
    let arr: [u8; TIME_BYTES] = bytes[at..at + TIME_BYTES].try_into().expect("8 bytes");
    i64::from_be_bytes(arr)
}

/// Splits `bytes` into the inner key and `n` trailing times, or says why it cannot.
fn split_times<'a>(serde: &'static str, bytes: &'a [u8], n: usize) -> Result<(&'a [u8], usize), SerdeError> {
    let suffix = n * TIME_BYTES;
    if bytes.len() < suffix {
        let what = format!("{} bytes, shorter than the {suffix}-byte window suffix", bytes.len());
        return Err(SerdeError { serde, op: "deserialize", what });
    }
    let at = bytes.len() - suffix;
    Ok((&bytes[..at], at))
}

/// The start time of a time-windowed key's bytes (`key ++ start`), if it has one.
pub fn time_window_start(bytes: &[u8]) -> Option<i64> {
    let at = bytes.len().checked_sub(TIME_BYTES)?;
    Some(time_at(bytes, at))
}

/// The end time of a session-windowed key's bytes (`key ++ end ++ start`), if it has one.
pub fn session_window_end(bytes: &[u8]) -> Option<i64> {
    let at = bytes.len().checked_sub(2 * TIME_BYTES)?;
    Some(time_at(bytes, at))
}

/// Time-windowed keys as `inner key bytes ++ start` (8 bytes big-endian), Kafka's
/// `TimeWindowedSerde`. The end is not stored: decoding rebuilds it as `start + window_size`
/// (saturating), so the serde is made for one window size.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeWindowedSerde<S> {
    inner: S,
    window_size: i64,
}

impl<S> TimeWindowedSerde<S> {
    /// Windows of `window_size` ms over keys in `inner`'s format.
    pub fn new(inner: S, window_size: i64) -> Self {
        Self { inner, window_size }
    }
    /// The window size decoded keys get.
    pub fn window_size(&self) -> i64 {
        self.window_size
    }
}

impl<K: 'static, S: Serde<K>> Serde<Windowed<K>> for TimeWindowedSerde<S> {
    fn serialize(&self, value: &Windowed<K>) -> Result<Bytes, SerdeError> {
        let key = self.inner.serialize(&value.key)?;
        let mut buf = BytesMut::with_capacity(key.len() + TIME_BYTES);
        buf.put_slice(&key);
        put_time(&mut buf, "TimeWindowedSerde", "start", value.window.start)?;
        Ok(buf.freeze())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        let (key, at) = split_times("TimeWindowedSerde", bytes, 1)?;
        let start = time_at(bytes, at);
        let window = Window::new(start, start.saturating_add(self.window_size));
        Ok(Windowed::new(self.inner.deserialize(key)?, window))
    }
}

/// Session-windowed keys as `inner key bytes ++ end ++ start` (8 bytes big-endian each),
/// Kafka's session key layout: one key's sessions sort by end time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionWindowedSerde<S>(pub S);

impl<K: 'static, S: Serde<K>> Serde<Windowed<K>> for SessionWindowedSerde<S> {
    fn serialize(&self, value: &Windowed<K>) -> Result<Bytes, SerdeError> {
        let key = self.0.serialize(&value.key)?;
        let mut buf = BytesMut::with_capacity(key.len() + 2 * TIME_BYTES);
        buf.put_slice(&key);
        put_time(&mut buf, "SessionWindowedSerde", "end", value.window.end)?;
        put_time(&mut buf, "SessionWindowedSerde", "start", value.window.start)?;
        Ok(buf.freeze())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        let (key, at) = split_times("SessionWindowedSerde", bytes, 2)?;
        let window = Window::new(time_at(bytes, at + TIME_BYTES), time_at(bytes, at));
        Ok(Windowed::new(self.0.deserialize(key)?, window))
    }
}

/// The windows of `key` whose start is in `[from, to]`, ascending by start, from a store keyed
/// with [`TimeWindowedSerde`] (Kafka's `WindowStore::fetch(key, timeFrom, timeTo)`). Times
/// below 0 are read as 0.
///
/// One byte range holds them, `key ++ from` up to `key ++ (to + 1)`; entries of other keys that
/// fall inside it (keys extending `key`'s bytes, or that `key` extends) are filtered out. With
/// `to == i64::MAX` the scan runs to the end of the store.
pub fn fetch_key_range<K, V, S>(store: &S, key: &K, from: i64, to: i64) -> StoreResult<Vec<(Windowed<K>, V)>>
where
    K: Clone + PartialEq,
    S: KeyValueStore<Windowed<K>, V> + ?Sized,
{
    let from = from.max(0);
    if to < from {
        return Ok(Vec::new());
    }
    let lower = Windowed::new(key.clone(), Window::new(from, from));
    let upper = to.checked_add(1).map(|end| Windowed::new(key.clone(), Window::new(end, end)));
    let mut found = store.range(Some(&lower), upper.as_ref())?;
    found.retain(|(w, _)| w.key == *key && (from..=to).contains(&w.window.start));
    Ok(found)
}

/// The sessions of `key` that end at or after `earliest_end` and start at or before
/// `latest_start`, ascending by end, from a store keyed with [`SessionWindowedSerde`] (Kafka's
/// `SessionStore::findSessions`): the sessions a record at time `t` may merge with are
/// `find_sessions(store, key, t - gap, t + gap)`. Times below 0 are read as 0.
///
/// The scan covers `key ++ earliest_end ++ 0` up to `key ++ i64::MAX ++ i64::MAX` (exclusive)
/// and keeps exactly the sessions asked for.
pub fn find_sessions<K, V, S>(
    store: &S,
    key: &K,
    earliest_end: i64,
    latest_start: i64,
) -> StoreResult<Vec<(Windowed<K>, V)>>
where
    K: Clone + PartialEq,
    S: KeyValueStore<Windowed<K>, V> + ?Sized,
{
    if latest_start < 0 {
        return Ok(Vec::new());
    }
    let earliest_end = earliest_end.max(0);
    let lower = Windowed::new(key.clone(), Window::new(0, earliest_end));
    let upper = Windowed::new(key.clone(), Window::new(i64::MAX, i64::MAX));
    let mut found = store.range(Some(&lower), Some(&upper))?;
    found.retain(|(w, _)| w.key == *key && w.window.end >= earliest_end && w.window.start <= latest_start);
    Ok(found)
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
