//! Windowed aggregations: [`KGroupedStream::windowed_by`] with [`TimeWindows`] or
//! [`SlidingWindows`] gives a [`TimeWindowedKStream`], with [`SessionWindows`] a
//! [`SessionWindowedKStream`]; their `count`, `reduce` and `aggregate` give a table keyed by
//! [`Windowed<K>`], kept in a window or session store (`rill-state`'s time-segmented stores, with
//! `cleanup.policy=compact,delete` changelogs).
//!
//! As in Kafka Streams: a record is accepted while its window's end is after stream time minus
//! the grace period, else dropped and counted (`dropped_records`); every update of a window is
//! emitted unless the aggregation emits on window close; a result's timestamp is the largest
//! record timestamp in its window (the session end for sessions). Windowed keys serialize as
//! Kafka's (`TimeWindowedSerde`: key then start; `SessionWindowedSerde`: key, end, start).

mod session;
mod sliding;
mod time;

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use rill_core::streams::serde::{I64Serde, Serde, SerdeError, UnitSerde};
use rill_core::streams::window::{SessionWindowedSerde, TimeWindowedSerde, Windowed};
use rill_state::StoreBuilder;

use crate::config::Materialized;
use crate::grouped::KGroupedStream;
use crate::kstream::KStream;
use crate::ktable::{KTable, WindowClose};
use crate::serdes::{choose, require, ArcSerde, SerdeSlot, SharedSerde};
use crate::windows::{EmitStrategy, SessionWindows, SlidingWindows, TimeWindows};

/// An aggregate and the largest record timestamp that went into it (Kafka's
/// `ValueAndTimestamp`).
pub(crate) type Timestamped<V> = (V, i64);

/// [`Timestamped`] values as Kafka stores them: the timestamp (8 bytes big-endian), then the
/// value.
pub(crate) struct TimestampedSerde<V>(pub(crate) ArcSerde<V>);

impl<V: 'static> Serde<Timestamped<V>> for TimestampedSerde<V> {
    fn serialize(&self, (value, ts): &Timestamped<V>) -> Result<Bytes, SerdeError> {
        let v = self.0.serialize(value)?;
        let mut b = BytesMut::with_capacity(8 + v.len());
        b.put_i64(*ts);
        b.put_slice(&v);
        Ok(b.freeze())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Timestamped<V>, SerdeError> {
        let Some((ts, value)) = bytes.split_first_chunk::<8>() else {
            return Err(SerdeError {
                serde: "TimestampedSerde",
                op: "deserialize",
                what: format!("{} bytes, shorter than the 8-byte timestamp", bytes.len()),
            });
        };
        Ok((self.0.deserialize(value)?, i64::from_be_bytes(*ts)))
    }
}

/// What `windowed_by` accepts: each window kind gives its own windowed stream.
pub trait Windowing {
    /// The windowed stream of a `KGroupedStream<K, V>`.
    type Stream<K: Clone + 'static, V: Clone + 'static>;
    /// Window `grouped`.
    fn window<K: Clone + 'static, V: Clone + 'static>(self, grouped: &KGroupedStream<K, V>) -> Self::Stream<K, V>;
}

impl Windowing for TimeWindows {
    type Stream<K: Clone + 'static, V: Clone + 'static> = TimeWindowedKStream<K, V>;
    fn window<K: Clone + 'static, V: Clone + 'static>(
        self,
        grouped: &KGroupedStream<K, V>,
    ) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream { grouped: grouped.clone(), kind: TimeKind::Fixed(self), emit: EmitStrategy::default() }
    }
}

impl Windowing for SlidingWindows {
    type Stream<K: Clone + 'static, V: Clone + 'static> = TimeWindowedKStream<K, V>;
    fn window<K: Clone + 'static, V: Clone + 'static>(
        self,
        grouped: &KGroupedStream<K, V>,
    ) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream { grouped: grouped.clone(), kind: TimeKind::Sliding(self), emit: EmitStrategy::default() }
    }
}

impl Windowing for SessionWindows {
    type Stream<K: Clone + 'static, V: Clone + 'static> = SessionWindowedKStream<K, V>;
    fn window<K: Clone + 'static, V: Clone + 'static>(
        self,
        grouped: &KGroupedStream<K, V>,
    ) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream { grouped: grouped.clone(), windows: self }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KGroupedStream<K, V> {
    /// Aggregate per key and window: [`TimeWindows`] (tumbling or hopping) and
    /// [`SlidingWindows`] give a [`TimeWindowedKStream`], [`SessionWindows`] a
    /// [`SessionWindowedKStream`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_core::streams::window::{TimeWindowedSerde, Window, Windowed};
    /// use rill_dsl::{StreamsBuilder, TimeWindows, TopologyTestDriver};
    ///
    /// // Clicks per user per minute.
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
    ///     .count()
    ///     .to_stream()
    ///     .to("clicks-per-minute");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let clicks = driver.create_input_topic("clicks", StringSerde, StringSerde);
    /// let out = driver.create_output_topic("clicks-per-minute", TimeWindowedSerde::new(StringSerde, 60_000), I64Serde);
    /// clicks.pipe_input_at("ann".into(), "/a".into(), 1_000)?;
    /// clicks.pipe_input_at("ann".into(), "/b".into(), 59_000)?;
    /// clicks.pipe_input_at("ann".into(), "/c".into(), 61_000)?;
    /// let first = Windowed::new("ann".to_string(), Window::new(0, 60_000));
    /// let second = Windowed::new("ann".to_string(), Window::new(60_000, 120_000));
    /// assert_eq!(out.read_all(), vec![(first.clone(), 1), (first, 2), (second, 1)]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn windowed_by<W: Windowing>(&self, windows: W) -> W::Stream<K, V> {
        windows.window(self)
    }
}

#[derive(Clone, Copy)]
enum TimeKind {
    Fixed(TimeWindows),
    Sliding(SlidingWindows),
}

impl TimeKind {
    /// The window size the windowed serde rebuilds ends with.
    fn size(&self) -> i64 {
        match self {
            Self::Fixed(w) => w.size,
            Self::Sliding(w) => w.difference,
        }
    }
    /// How long the store keeps windows by default (Kafka's: size + grace; sliding windows
    /// `2 × difference + grace`).
    fn retention(&self) -> i64 {
        match self {
            Self::Fixed(w) => w.size + w.grace,
            Self::Sliding(w) => 2 * w.difference + w.grace,
        }
    }
    fn check(&self) -> Result<(), String> {
        match self {
            Self::Fixed(w) => w.check(),
            Self::Sliding(w) => w.check(),
        }
    }
}

/// A grouped stream in time windows, ready to aggregate per key and window.
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    kind: TimeKind,
    emit: EmitStrategy,
}

impl<K: Clone + PartialEq + 'static, V: Clone + 'static> TimeWindowedKStream<K, V> {
    /// Emit every update (the default) or only each window's final result once stream time
    /// passes its end plus grace (KIP-825; tumbling and hopping windows).
    pub fn emit_strategy(mut self, emit: EmitStrategy) -> Self {
        self.emit = emit;
        self
    }

    /// Records per key and window.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::default())
    }

    /// [`count`](Self::count) into the store `materialized` declares.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let i64s: SerdeSlot<i64> = Some(Arc::new(I64Serde));
        self.aggregate_into(materialized, i64s, Arc::new(|_: &K, _: V, n: Option<i64>| n.unwrap_or(0) + 1))
    }

    /// Combine each key's values per window with `reduce(aggregate, value)`; a window's first
    /// value is its start.
    pub fn reduce(&self, reduce: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<Windowed<K>, V> {
        self.reduce_with(reduce, Materialized::default())
    }

    /// [`reduce`](Self::reduce) into the store `materialized` declares.
    pub fn reduce_with(
        &self,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let carried = self.grouped.values.clone();
        self.aggregate_into(
            materialized,
            carried,
            Arc::new(move |_: &K, v: V, agg: Option<V>| match agg {
                Some(a) => reduce(a, v),
                None => v,
            }),
        )
    }

    /// Fold each key's values per window into an aggregate starting from `init()`.
    pub fn aggregate<VA: Clone + 'static>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        add: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_with(init, add, Materialized::default())
    }

    /// [`aggregate`](Self::aggregate) into the store `materialized` declares.
    pub fn aggregate_with<VA: Clone + 'static>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        add: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_into(
            materialized,
            None,
            Arc::new(move |k: &K, v: V, agg: Option<VA>| add(k, v, agg.unwrap_or_else(&init))),
        )
    }

    fn aggregate_into<VA: Clone + 'static>(
        &self,
        materialized: Materialized<K, VA>,
        carried: SerdeSlot<VA>,
        fold: time::Fold<K, V, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let g = &self.grouped;
        let store = g.stream.state.borrow_mut().name(materialized.name.clone(), "KSTREAM-AGGREGATE-STATE-STORE-");
        let name = g.stream.name_for("KSTREAM-AGGREGATE-");
        let input = g.input(&store);
        let keys = choose(&materialized.keys, &g.keys);
        let values = choose(&materialized.values, &carried);
        let how = "Materialized::with(keys, values)";
        let size = self.kind.size();
        let windowed_keys: SerdeSlot<Windowed<K>> =
            keys.clone().map(|k| Arc::new(TimeWindowedSerde::new(SharedSerde(k), size)) as ArcSerde<Windowed<K>>);
        let mut st = g.stream.state.borrow_mut();
        if let Err(e) = self.kind.check() {
            st.fail(rill_core::streams::error::StreamsError::Topology(format!("{name}: {e}")));
        }
        if self.emit == EmitStrategy::OnWindowClose && matches!(self.kind, TimeKind::Sliding(_)) {
            st.fail(rill_core::streams::error::StreamsError::Topology(format!(
                "{name}: emit_strategy(OnWindowClose) is for tumbling and hopping windows; use suppress on sliding windows"
            )));
        }
        match self.kind {
            TimeKind::Fixed(w) => {
                st.processor(&name, vec![input.node.clone()], time::supplier(&store, w, self.emit, fold))
            }
            TimeKind::Sliding(w) => st.processor(&name, vec![input.node.clone()], sliding::supplier(&store, w, fold)),
        }
        match (require(&keys, &store, "key", how), require(&values, &store, "value", how)) {
            (Ok(k), Ok(v)) => {
                let retention = materialized.retention_ms.unwrap_or(0).max(self.kind.retention());
                let decl = materialized.declare(StoreBuilder::window(&store, retention, segment_interval(retention)));
                let key_serde: ArcSerde<Windowed<K>> = Arc::new(TimeWindowedSerde::new(SharedSerde(k), size));
                let value_serde: ArcSerde<Timestamped<VA>> = Arc::new(TimestampedSerde(v));
                st.store_with(decl, key_serde, value_serde, vec![name.clone()], input.sources.clone());
                if self.emit == EmitStrategy::OnWindowClose {
                    let emit = materialized.declare(StoreBuilder::key_value(time::emit_time_store(&store)));
                    let unit: ArcSerde<()> = Arc::new(UnitSerde);
                    let i64s: ArcSerde<i64> = Arc::new(I64Serde);
                    st.store_with(emit, unit, i64s, vec![name.clone()], input.sources.clone());
                }
            }
            (Err(e), _) | (_, Err(e)) => st.fail(e),
        }
        drop(st);
        let grace = match self.kind {
            TimeKind::Fixed(w) => w.grace,
            TimeKind::Sliding(w) => w.grace,
        };
        let window_close = Some(WindowClose { grace, end: Arc::new(|k: &Windowed<K>| k.window.end) });
        // The window store holds values with their timestamps, not a table's plain values: joins
        // and other readers of `store` materialize this table instead.
        KTable { window_close, ..KTable::new(&input, name, None, windowed_keys, values) }
    }
}

/// A grouped stream in session windows, ready to aggregate per key and session.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
}

impl<K: Clone + PartialEq + 'static, V: Clone + 'static> SessionWindowedKStream<K, V> {
    /// Records per key and session.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::default())
    }

    /// [`count`](Self::count) into the store `materialized` declares.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let i64s: SerdeSlot<i64> = Some(Arc::new(I64Serde));
        self.aggregate_into(
            materialized,
            i64s,
            Arc::new(|_: &K, _: V, n: Option<i64>| n.unwrap_or(0) + 1),
            Arc::new(|_: &K, a: Option<i64>, b: i64| a.unwrap_or(0) + b),
        )
    }

    /// Combine each key's values per session with `reduce(aggregate, value)` (also used to
    /// merge two sessions' results).
    pub fn reduce(&self, reduce: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<Windowed<K>, V> {
        self.reduce_with(reduce, Materialized::default())
    }

    /// [`reduce`](Self::reduce) into the store `materialized` declares.
    pub fn reduce_with(
        &self,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let reduce = Arc::new(reduce);
        let r2 = reduce.clone();
        let carried = self.grouped.values.clone();
        self.aggregate_into(
            materialized,
            carried,
            Arc::new(move |_: &K, v: V, agg: Option<V>| match agg {
                Some(a) => reduce(a, v),
                None => v,
            }),
            Arc::new(move |_: &K, a: Option<V>, b: V| match a {
                Some(a) => r2(a, b),
                None => b,
            }),
        )
    }

    /// Fold each key's values per session into an aggregate starting from `init()`; when a
    /// record joins two sessions, `merge(key, a, b)` combines their aggregates.
    pub fn aggregate<VA: Clone + 'static>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        add: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merge: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_with(init, add, merge, Materialized::default())
    }

    /// [`aggregate`](Self::aggregate) into the store `materialized` declares.
    pub fn aggregate_with<VA: Clone + 'static>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        add: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merge: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let init = Arc::new(init);
        let init2 = init.clone();
        self.aggregate_into(
            materialized,
            None,
            Arc::new(move |k: &K, v: V, agg: Option<VA>| add(k, v, agg.unwrap_or_else(|| init()))),
            // As Kafka does: the first session merges into a fresh aggregate.
            Arc::new(move |k: &K, agg: Option<VA>, session: VA| merge(k, agg.unwrap_or_else(|| init2()), session)),
        )
    }

    fn aggregate_into<VA: Clone + 'static>(
        &self,
        materialized: Materialized<K, VA>,
        carried: SerdeSlot<VA>,
        fold: time::Fold<K, V, VA>,
        merge: session::Merge<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let g = &self.grouped;
        let store = g.stream.state.borrow_mut().name(materialized.name.clone(), "KSTREAM-AGGREGATE-STATE-STORE-");
        let name = g.stream.name_for("KSTREAM-AGGREGATE-");
        let input = g.input(&store);
        let keys = choose(&materialized.keys, &g.keys);
        let values = choose(&materialized.values, &carried);
        let how = "Materialized::with(keys, values)";
        let windowed_keys: SerdeSlot<Windowed<K>> =
            keys.clone().map(|k| Arc::new(SessionWindowedSerde(SharedSerde(k))) as ArcSerde<Windowed<K>>);
        let mut st = g.stream.state.borrow_mut();
        if let Err(e) = self.windows.check() {
            st.fail(rill_core::streams::error::StreamsError::Topology(format!("{name}: {e}")));
        }
        st.processor(&name, vec![input.node.clone()], session::supplier(&store, self.windows, fold, merge));
        match (require(&keys, &store, "key", how), require(&values, &store, "value", how)) {
            (Ok(k), Ok(v)) => {
                let retention = materialized.retention_ms.unwrap_or(0).max(self.windows.gap + self.windows.grace);
                let decl = materialized.declare(StoreBuilder::session(&store, retention));
                let key_serde: ArcSerde<Windowed<K>> = Arc::new(SessionWindowedSerde(SharedSerde(k)));
                st.store_with(decl, key_serde, v, vec![name.clone()], input.sources.clone());
            }
            (Err(e), _) | (_, Err(e)) => st.fail(e),
        }
        drop(st);
        let window_close =
            Some(WindowClose { grace: self.windows.grace, end: Arc::new(|k: &Windowed<K>| k.window.end) });
        // The window store holds values with their timestamps, not a table's plain values: joins
        // and other readers of `store` materialize this table instead.
        KTable { window_close, ..KTable::new(&input, name, None, windowed_keys, values) }
    }
}

/// Kafka's segment interval for a window store: half the retention, at least a minute.
fn segment_interval(retention: i64) -> i64 {
    (retention / 2).max(60_000)
}

impl<K: Clone + 'static, V: Clone + 'static> KGroupedStream<K, V> {
    /// The stream to aggregate: through the repartition topic (named after the grouping, else
    /// `store`) when the key changed.
    pub(crate) fn input(&self, store: &str) -> KStream<K, V> {
        if self.repartition {
            let topic = self.name.clone().unwrap_or_else(|| store.to_string());
            self.stream.through_topic(&topic, &self.keys, &self.values, None, "Grouped::with(keys, values)")
        } else {
            self.stream.clone()
        }
    }
}
