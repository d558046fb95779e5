//! The session window aggregation processor (Kafka's `KStreamSessionWindowAggregate`).
//!
//! A record at `t` finds the key's sessions within the inactivity gap (ending at or after
//! `t - gap`, starting at or before `t + gap`), merges their aggregates and bounds into one
//! session with its own value, and replaces them: each merged session is deleted and forwarded
//! as a tombstone (new `None`, old its aggregate) at its end time, then the new session is
//! forwarded at its end. A record whose merged session ends before stream time minus grace is
//! dropped (counted).

use std::marker::PhantomData;
use std::sync::Arc;

use rill_core::streams::error::Result;
use rill_core::streams::processor::{Processor, ProcessorContext};
use rill_core::streams::record::Record;
use rill_core::streams::task::StoreId;
use rill_core::streams::window::{find_sessions, Window, Windowed};

use super::time::Fold;
use crate::ktable::Change;
use crate::windows::SessionWindows;

/// Merges a session's aggregate into the one being built (`None`: nothing merged yet).
pub(crate) type Merge<K, VA> = Arc<dyn Fn(&K, Option<VA>, VA) -> VA + Send + Sync>;

pub(crate) struct SessionWindowAggregate<K, V, VA> {
    store: String,
    id: Option<StoreId>,
    windows: SessionWindows,
    fold: Fold<K, V, VA>,
    merge: Merge<K, VA>,
    observed: i64,
    _types: PhantomData<fn(K, V, VA)>,
}

pub(crate) fn supplier<K: 'static, V: 'static, VA: 'static>(
    store: &str,
    windows: SessionWindows,
    fold: Fold<K, V, VA>,
    merge: Merge<K, VA>,
) -> impl Fn() -> SessionWindowAggregate<K, V, VA> + Send + Sync + 'static {
    let store = store.to_string();
    move || SessionWindowAggregate {
        store: store.clone(),
        id: None,
        windows,
        fold: fold.clone(),
        merge: merge.clone(),
        observed: -1,
        _types: PhantomData,
    }
}

impl<K, V, VA> Processor<K, V, Windowed<K>, Change<VA>> for SessionWindowAggregate<K, V, VA>
where
    K: Clone + PartialEq + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<()> {
        self.id = Some(ctx.store_id(&self.store)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>, record: Record<K, V>) -> Result<()> {
        let id = self.id.expect("init ran");
        let ts = record.timestamp;
        self.observed = self.observed.max(ts);
        let close = self.observed - self.windows.grace;
        let gap = self.windows.gap;
        let store = ctx.store_by_id::<Windowed<K>, VA>(id)?;
        let found = find_sessions(store, &record.key, ts - gap, ts + gap)?;
        let fresh = Window::new(ts, ts);
        let mut merged_window = fresh;
        let mut merged: Option<VA> = None;
        for (w, agg) in &found {
            merged = Some((self.merge)(&record.key, merged, agg.clone()));
            merged_window = Window::new(merged_window.start.min(w.window.start), merged_window.end.max(w.window.end));
        }
        if merged_window.end < close {
            tracing::debug!(store = %self.store, ts, end = merged_window.end, close, "record for a closed session dropped");
            ctx.record_dropped();
            return Ok(());
        }
        if merged_window != fresh {
            for (w, agg) in found {
                ctx.store_by_id::<Windowed<K>, VA>(id)?.delete(&w)?;
                let end = w.window.end;
                let change = Change { new: None, old: Some(agg) };
                ctx.forward(Record { key: w, value: change, timestamp: end, headers: record.headers.clone() })?;
            }
        }
        let agg = (self.fold)(&record.key, record.value, merged);
        let key = Windowed::new(record.key, merged_window);
        ctx.store_by_id::<Windowed<K>, VA>(id)?.put(&key, &agg)?;
        let change = Change { new: Some(agg), old: None };
        ctx.forward(Record { key, value: change, timestamp: merged_window.end, headers: record.headers })
    }
}
