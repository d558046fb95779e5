//! The tumbling/hopping window aggregation processor (Kafka's `KStreamWindowAggregate`).
//!
//! Each record updates every window holding its time that is still open (end after stream time
//! minus grace); windows already closed drop it (counted). On window update it forwards each
//! window's new and old aggregate; on window close it forwards nothing per record, and instead,
//! whenever stream time closes windows, their final aggregates, in window-start then key order.
//! The close time up to which results went out is kept in the key-value store
//! `<store>-emit-time` (changelogged like the window store), so a restart neither repeats nor
//! skips final results.

use std::marker::PhantomData;
use std::sync::Arc;

use rill_core::streams::error::Result;
use rill_core::streams::processor::{Processor, ProcessorContext};
use rill_core::streams::record::Record;
use rill_core::streams::task::StoreId;
use rill_core::streams::window::{Window, Windowed};

use super::Timestamped;
use crate::ktable::Change;
use crate::windows::{EmitStrategy, TimeWindows};

/// Folds a value into a window's aggregate (`None`: the window is new).
pub(crate) type Fold<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

/// The store holding how far final results were emitted, for window store `store`.
pub(crate) fn emit_time_store(store: &str) -> String {
    format!("{store}-emit-time")
}

pub(crate) struct TimeWindowAggregate<K, V, VA> {
    store: String,
    id: Option<StoreId>,
    emit_id: Option<StoreId>,
    windows: TimeWindows,
    emit: EmitStrategy,
    fold: Fold<K, V, VA>,
    /// The largest timestamp this processor has seen (its stream time).
    observed: i64,
    /// On window close: windows ending at or before this were emitted.
    emitted: i64,
    _types: PhantomData<fn(K, V, VA)>,
}

pub(crate) fn supplier<K: 'static, V: 'static, VA: 'static>(
    store: &str,
    windows: TimeWindows,
    emit: EmitStrategy,
    fold: Fold<K, V, VA>,
) -> impl Fn() -> TimeWindowAggregate<K, V, VA> + Send + Sync + 'static {
    let store = store.to_string();
    move || TimeWindowAggregate {
        store: store.clone(),
        id: None,
        emit_id: None,
        windows,
        emit,
        fold: fold.clone(),
        observed: -1,
        emitted: -1,
        _types: PhantomData,
    }
}

impl<K, V, VA> Processor<K, V, Windowed<K>, Change<VA>> for TimeWindowAggregate<K, V, VA>
where
    K: Clone + PartialEq + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<()> {
        self.id = Some(ctx.store_id(&self.store)?);
        if self.emit == EmitStrategy::OnWindowClose {
            let id = ctx.store_id(&emit_time_store(&self.store))?;
            self.emit_id = Some(id);
            self.emitted = ctx.store_by_id::<(), i64>(id)?.get(&())?.unwrap_or(-1);
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>, record: Record<K, V>) -> Result<()> {
        let id = self.id.expect("init ran");
        let ts = record.timestamp;
        self.observed = self.observed.max(ts);
        let close = self.observed - self.windows.grace;
        for (start, end) in self.windows.windows_for(ts) {
            if end <= close {
                tracing::debug!(store = %self.store, ts, start, end, close, "record for a closed window dropped");
                ctx.record_dropped();
                continue;
            }
            let wk = Windowed::new(record.key.clone(), Window::new(start, end));
            let store = ctx.store_by_id::<Windowed<K>, Timestamped<VA>>(id)?;
            let old = store.get(&wk)?;
            let (old_agg, new_ts) = match old {
                Some((agg, t)) => (Some(agg), t.max(ts)),
                None => (None, ts),
            };
            let new = (self.fold)(&record.key, record.value.clone(), old_agg.clone());
            store.put(&wk, &(new.clone(), new_ts))?;
            if self.emit == EmitStrategy::OnWindowUpdate {
                let change = Change { new: Some(new), old: old_agg };
                ctx.forward(Record { key: wk, value: change, timestamp: new_ts, headers: record.headers.clone() })?;
            }
        }
        if self.emit == EmitStrategy::OnWindowClose {
            self.emit_closed(ctx, id, close)?;
        }
        Ok(())
    }
}

impl<K, V, VA> TimeWindowAggregate<K, V, VA>
where
    K: Clone + PartialEq + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    /// Forward the final result of every window that ended in `(emitted, close]`.
    fn emit_closed(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        id: StoreId,
        close: i64,
    ) -> Result<()> {
        if close <= self.emitted || !self.window_ends_within(self.emitted, close) {
            return Ok(());
        }
        let store = ctx.store_by_id::<Windowed<K>, Timestamped<VA>>(id)?;
        let mut closed: Vec<(Windowed<K>, Timestamped<VA>)> =
            store.all()?.into_iter().filter(|(w, _)| w.window.end > self.emitted && w.window.end <= close).collect();
        // Stable: within one start, the store's key order stays.
        closed.sort_by_key(|(w, _)| w.window.start);
        self.emitted = close;
        if let Some(e) = self.emit_id {
            ctx.store_by_id::<(), i64>(e)?.put(&(), &close)?;
        }
        for (wk, (agg, ts)) in closed {
            let change = Change { new: Some(agg), old: None };
            ctx.forward(Record { key: wk, value: change, timestamp: ts, headers: Vec::new() })?;
        }
        Ok(())
    }

    /// Whether some window (aligned to the advance) ends in `(after, upto]`: windows end at
    /// `k × advance + size`.
    fn window_ends_within(&self, after: i64, upto: i64) -> bool {
        let (size, advance) = (self.windows.size, self.windows.advance);
        // The first aligned end after `after`.
        let k = if after < size { 0 } else { (after - size) / advance + 1 };
        k * advance + size <= upto
    }
}
