//! The sliding window aggregation processor (Kafka's `KStreamSlidingWindowAggregate`, KIP-450).
//!
//! Windows are `[start, start + difference]`, both bounds inclusive, and exist only where
//! records make them: each record has a left window ending at it and, when a later record falls
//! within `difference` after it, a right window starting just after it. A record updates every
//! existing window that holds it, creates its own left window (from the aggregate of the
//! previous window's records still in range), its right window (a copy of the aggregate of the
//! later records it would hold) and the previous record's right window if that now holds
//! something. Records before `difference` (near the epoch) go to the window `[0, difference]`.
//! A record is dropped (counted) when even its right window closed; a window update is skipped
//! (counted) when that window closed.

use std::collections::HashSet;
use std::marker::PhantomData;

use rill_core::streams::error::{Result, StreamsError};
use rill_core::streams::processor::{Processor, ProcessorContext};
use rill_core::streams::record::Record;
use rill_core::streams::task::StoreId;
use rill_core::streams::window::{fetch_key_range, Window, Windowed};

use super::time::Fold;
use super::Timestamped;
use crate::ktable::Change;
use crate::windows::SlidingWindows;

pub(crate) struct SlidingWindowAggregate<K, V, VA> {
    store: String,
    id: Option<StoreId>,
    windows: SlidingWindows,
    fold: Fold<K, V, VA>,
    observed: i64,
    _types: PhantomData<fn(K, V, VA)>,
}

pub(crate) fn supplier<K: 'static, V: 'static, VA: 'static>(
    store: &str,
    windows: SlidingWindows,
    fold: Fold<K, V, VA>,
) -> impl Fn() -> SlidingWindowAggregate<K, V, VA> + Send + Sync + 'static {
    let store = store.to_string();
    move || SlidingWindowAggregate {
        store: store.clone(),
        id: None,
        windows,
        fold: fold.clone(),
        observed: -1,
        _types: PhantomData,
    }
}

type Ctx<'a, K, VA> = ProcessorContext<'a, Windowed<K>, Change<VA>>;

impl<K, V, VA> Processor<K, V, Windowed<K>, Change<VA>> for SlidingWindowAggregate<K, V, VA>
where
    K: Clone + PartialEq + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    fn init(&mut self, ctx: &mut Ctx<'_, K, VA>) -> Result<()> {
        self.id = Some(ctx.store_id(&self.store)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_, K, VA>, record: Record<K, V>) -> Result<()> {
        let ts = record.timestamp;
        self.observed = self.observed.max(ts);
        let close = self.observed - self.windows.grace;
        let diff = self.windows.difference;
        if ts + 1 + diff <= close {
            tracing::debug!(store = %self.store, ts, close, "record for closed sliding windows dropped");
            ctx.record_dropped();
            return Ok(());
        }
        if ts < diff {
            return self.process_early(ctx, record, close);
        }
        let mut pass = Pass::new(self, ctx, &record, close);
        let found = pass.fetch((ts - 2 * diff).max(0), ts + 1)?;
        let mut left_agg: Option<Timestamped<VA>> = None;
        let mut right_agg: Option<Timestamped<VA>> = None;
        let (mut left_exists, mut right_exists) = (false, false);
        let mut previous: Option<i64> = None;
        for (w, value) in found {
            let start = w.window.start;
            pass.starts.insert(start);
            let end = start + diff;
            let max_ts = value.1;
            if end < ts {
                left_agg = Some(value);
                previous = Some(max_ts);
            } else if end == ts {
                left_exists = true;
                if max_ts < ts {
                    previous = Some(max_ts);
                }
                pass.update(w.window, Some(value))?;
            } else if end > ts && start <= ts {
                right_agg = Some(value.clone());
                pass.update(w.window, Some(value))?;
            } else if start == ts + 1 {
                right_exists = true;
            } else {
                return Err(StreamsError::processing(
                    pass.name(),
                    format_args!("sliding windows: unexpected window starting at {start} for a record at {ts}"),
                ));
            }
        }
        // The previous record's right window, if it does not exist and now holds this record.
        if let Some(p) = previous {
            let start = p + 1;
            if !pass.starts.contains(&start) && start + diff >= ts {
                pass.update(Window::new(start, start + diff), None)?;
            }
        }
        // This record's left window.
        if !left_exists {
            let carried = match (&previous, left_agg) {
                (Some(p), Some((agg, _))) if ts - diff <= *p => Some((agg, ts)),
                _ => None,
            };
            pass.update(Window::new(ts - diff, ts), carried)?;
        }
        // This record's right window, if later records fall in it.
        if !right_exists {
            if let Some(agg) = right_agg.filter(|(_, t)| *t > ts) {
                pass.create_right(ts, agg)?;
            }
        }
        Ok(())
    }
}

impl<K, V, VA> SlidingWindowAggregate<K, V, VA>
where
    K: Clone + PartialEq + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    /// A record before `difference`: its left window would start below 0, so it goes to the
    /// combined window `[0, difference]`.
    fn process_early(&mut self, ctx: &mut Ctx<'_, K, VA>, record: Record<K, V>, close: i64) -> Result<()> {
        let ts = record.timestamp;
        let diff = self.windows.difference;
        let mut pass = Pass::new(self, ctx, &record, close);
        let found = pass.fetch(0, ts + 1)?;
        let mut combined: Option<(Window, Timestamped<VA>)> = None;
        let mut right_agg: Option<Timestamped<VA>> = None;
        let mut right_exists = false;
        let mut previous: Option<i64> = None;
        for (w, value) in found {
            let start = w.window.start;
            pass.starts.insert(start);
            if start == 0 {
                if value.1 < ts {
                    previous = Some(value.1);
                }
                combined = Some((w.window, value));
            } else if start <= ts {
                right_agg = Some(value.clone());
                pass.update(w.window, Some(value))?;
            } else if start == ts + 1 {
                right_exists = true;
            } else {
                return Err(StreamsError::processing(
                    pass.name(),
                    format_args!("sliding windows: unexpected window starting at {start} for an early record at {ts}"),
                ));
            }
        }
        // Without a right window found, the combined window holds only later records (if any
        // are later than this one).
        if right_agg.is_none() {
            right_agg = combined.as_ref().filter(|(_, (_, t))| *t > ts).map(|(_, v)| v.clone());
        }
        if !right_exists {
            if let Some(agg) = right_agg.filter(|(_, t)| *t > ts) {
                pass.create_right(ts, agg)?;
            }
        }
        if let Some(p) = previous {
            if !pass.starts.contains(&(p + 1)) {
                pass.update(Window::new(p + 1, p + 1 + diff), None)?;
            }
        }
        match combined {
            None => pass.update(Window::new(0, diff), None),
            Some((w, value)) => pass.update(w, Some(value)),
        }
    }
}

/// One record's pass over its key's windows.
struct Pass<'p, 'c, 'a, K, V, VA> {
    agg: &'p SlidingWindowAggregate<K, V, VA>,
    ctx: &'c mut Ctx<'a, K, VA>,
    record: &'p Record<K, V>,
    close: i64,
    starts: HashSet<i64>,
}

impl<'p, 'c, 'a, K, V, VA> Pass<'p, 'c, 'a, K, V, VA>
where
    K: Clone + PartialEq + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    fn new(
        agg: &'p SlidingWindowAggregate<K, V, VA>,
        ctx: &'c mut Ctx<'a, K, VA>,
        record: &'p Record<K, V>,
        close: i64,
    ) -> Self {
        Self { agg, ctx, record, close, starts: HashSet::new() }
    }

    fn name(&self) -> String {
        self.ctx.name().to_string()
    }

    fn id(&self) -> StoreId {
        self.agg.id.expect("init ran")
    }

    fn fetch(&mut self, from: i64, to: i64) -> Result<Vec<(Windowed<K>, Timestamped<VA>)>> {
        let id = self.id();
        let store = self.ctx.store_by_id::<Windowed<K>, Timestamped<VA>>(id)?;
        Ok(fetch_key_range(store, &self.record.key, from, to)?)
    }

    /// Fold the record into `window` holding `current` (`None`: a new window).
    fn update(&mut self, window: Window, current: Option<Timestamped<VA>>) -> Result<()> {
        let ts = self.record.timestamp;
        if window.end < self.close {
            tracing::debug!(
                start = window.start,
                end = window.end,
                close = self.close,
                "closed sliding window skipped"
            );
            self.ctx.record_dropped();
            return Ok(());
        }
        let (old, new_ts) = match current {
            Some((agg, t)) => (Some(agg), t.max(ts)),
            None => (None, ts),
        };
        let new = (self.agg.fold)(&self.record.key, self.record.value.clone(), old.clone());
        let key = Windowed::new(self.record.key.clone(), window);
        let id = self.id();
        self.ctx.store_by_id::<Windowed<K>, Timestamped<VA>>(id)?.put(&key, &(new.clone(), new_ts))?;
        let change = Change { new: Some(new), old };
        self.ctx.forward(Record { key, value: change, timestamp: new_ts, headers: self.record.headers.clone() })
    }

    /// The record's right window, a copy of `agg` (the later records it holds).
    fn create_right(&mut self, ts: i64, (agg, t): Timestamped<VA>) -> Result<()> {
        let diff = self.agg.windows.difference;
        let window = Window::new(ts + 1, ts + 1 + diff);
        let key = Windowed::new(self.record.key.clone(), window);
        let id = self.id();
        self.ctx.store_by_id::<Windowed<K>, Timestamped<VA>>(id)?.put(&key, &(agg.clone(), t))?;
        let change = Change { new: Some(agg), old: None };
        self.ctx.forward(Record { key, value: change, timestamp: t, headers: self.record.headers.clone() })
    }
}
