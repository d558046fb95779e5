//! `join_windowed`, `left_join_windowed`, `outer_join_windowed`: KStream-KStream joins of
//! records with equal keys close in time ([`JoinWindows`]), as Kafka Streams joins them.
//!
//! Both sides feed one join processor (their records tagged left or right), so the two share
//! stream time. Each record is kept in its side's window store (duplicates kept, retention
//! `before + after + grace`) and joined with the other side's records within the window: a left
//! record at `t` with right records in `[t - before, t + after]`, a right record at `t` with left
//! records in `[t - after, t + before]`. A result carries the later of the two timestamps.
//!
//! Left and outer joins emit a record without a partner only once its window has closed (Kafka's
//! fix for spurious left/outer results, KIP-633): until then it waits in the shared outer store,
//! keyed by time, side and key, and a partner arriving in time removes it. Whenever stream time
//! advances, every waiting record whose window (plus grace) has closed is emitted with `None` for
//! the missing side, at its own timestamp, in time order. A record that arrives after its window
//! closed and finds no partner is emitted at once. Records older than the store's retention are
//! not stored (they cannot be joined later) and are counted as dropped.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rill_core::streams::error::{Result, StreamsError};
use rill_core::streams::processor::{Processor, ProcessorContext};
use rill_core::streams::record::Record;
use rill_core::streams::serde::{Serde, SerdeError};
use rill_core::streams::task::StoreId;
use rill_core::streams::window::{fetch_key_range, TimeWindowedSerde, Window, Windowed};
use rill_state::StoreBuilder;

use crate::kstream::KStream;
use crate::processors::supplier;
use crate::serdes::{choose, require, ArcSerde, SharedSerde};
use crate::windows::JoinWindows;

/// A record of either side on its way to the join processor.
#[derive(Clone)]
pub(crate) enum Side<V1, V2> {
    Left(V1),
    Right(V2),
}

type Joiner<K, V1, V2, VR> = Arc<dyn Fn(&K, Option<V1>, Option<V2>) -> VR + Send + Sync>;

/// Which sides emit without a partner.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Inner,
    Left,
    Outer,
}

impl<K: Clone + PartialEq + 'static, V: Clone + 'static> KStream<K, V> {
    /// Join each record with the records of `other` that have its key and a time within
    /// `windows`; `joiner(key, this, other)` makes each result.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rill_core::streams::serde::StringSerde;
    /// use rill_dsl::{JoinWindows, StreamsBuilder, TopologyTestDriver};
    ///
    /// // Ad impressions joined with the clicks that follow within 10 seconds.
    /// let builder = StreamsBuilder::new();
    /// let views = builder.stream::<String, String>("impressions");
    /// let clicks = builder.stream::<String, String>("clicks");
    /// views
    ///     .join_windowed(&clicks, |_, view, click| format!("{view}->{click}"),
    ///         JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(10)))
    ///     .to("clicked-impressions");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let v = driver.create_input_topic("impressions", StringSerde, StringSerde);
    /// let c = driver.create_input_topic("clicks", StringSerde, StringSerde);
    /// let out = driver.create_output_topic("clicked-impressions", StringSerde, StringSerde);
    /// v.pipe_input_at("ad-1".into(), "shown".into(), 1_000)?;
    /// c.pipe_input_at("ad-1".into(), "clicked".into(), 4_000)?;
    /// c.pipe_input_at("ad-2".into(), "clicked".into(), 4_000)?;
    /// assert_eq!(out.read_record().map(|r| (r.value, r.timestamp)), Some(("shown->clicked".to_string(), 4_000)));
    /// assert!(out.read_record().is_none());
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn join_windowed<V2: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&K, V, V2) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        let joiner: Joiner<K, V, V2, VR> = Arc::new(move |k, a, b| {
            joiner(k, a.expect("inner joins pair two records"), b.expect("inner joins pair two records"))
        });
        self.windowed_join(other, joiner, windows, Kind::Inner)
    }

    /// Like [`join_windowed`](Self::join_windowed), and a record of this stream that finds no
    /// partner by the time its window closes is emitted as `joiner(key, this, None)`.
    pub fn left_join_windowed<V2: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&K, V, Option<V2>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        let joiner: Joiner<K, V, V2, VR> = Arc::new(move |k, a, b| joiner(k, a.expect("a left record"), b));
        self.windowed_join(other, joiner, windows, Kind::Left)
    }

    /// Like [`join_windowed`](Self::join_windowed), and a record of either stream that finds no
    /// partner by the time its window closes is emitted with `None` for the other side.
    pub fn outer_join_windowed<V2: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&K, Option<V>, Option<V2>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        self.windowed_join(other, Arc::new(joiner), windows, Kind::Outer)
    }

    fn windowed_join<V2: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KStream<K, V2>,
        joiner: Joiner<K, V, V2, VR>,
        windows: JoinWindows,
        kind: Kind,
    ) -> KStream<K, VR> {
        let name = self.name_for("KSTREAM-JOIN-");
        // Keys changed upstream: both sides go through a repartition topic first.
        let left = if self.key_changed {
            self.through_topic(&format!("{name}-left"), &self.keys, &self.values, None, "KStream::repartition_with")
        } else {
            self.clone()
        };
        let right = if other.key_changed {
            other.through_topic(&format!("{name}-right"), &other.keys, &other.values, None, "KStream::repartition_with")
        } else {
            other.clone()
        };
        let this_store = format!("{name}-this-store");
        let other_store = format!("{name}-other-store");
        let outer_store = format!("{name}-outer-store");
        let keys = choose(&left.keys, &right.keys);
        let mut st = self.state.borrow_mut();
        if let Err(e) = windows.check() {
            st.fail(StreamsError::Topology(format!("{name}: {e}")));
        }
        let tag_left = format!("{name}-this");
        let tag_right = format!("{name}-other");
        st.processor(
            &tag_left,
            vec![left.node.clone()],
            supplier(|ctx, r: Record<K, V>| {
                let Record { key, value, timestamp, headers } = r;
                ctx.forward(Record { key, value: Side::<V, V2>::Left(value), timestamp, headers })
            }),
        );
        st.processor(
            &tag_right,
            vec![right.node.clone()],
            supplier(|ctx, r: Record<K, V2>| {
                let Record { key, value, timestamp, headers } = r;
                ctx.forward(Record { key, value: Side::<V, V2>::Right(value), timestamp, headers })
            }),
        );
        let stores = (this_store.clone(), other_store.clone(), (kind != Kind::Inner).then(|| outer_store.clone()));
        st.processor(&name, vec![tag_left, tag_right], move || JoinProcessor {
            stores: stores.clone(),
            ids: None,
            windows,
            kind,
            joiner: joiner.clone(),
            stream_time: -1,
            min_waiting: i64::MAX,
            _types: PhantomData,
        });
        let how = "the streams' serdes (Consumed, or a repartition with Repartitioned::with)";
        let mut sources = left.sources.clone();
        sources.extend(right.sources.iter().cloned());
        match (
            require(&keys, &name, "key", how),
            require(&left.values, &name, "left value", how),
            require(&right.values, &name, "right value", how),
        ) {
            (Ok(k), Ok(v1), Ok(v2)) => {
                let retention = windows.before + windows.after + windows.grace;
                let size = windows.before + windows.after;
                let wk: ArcSerde<Windowed<K>> = Arc::new(TimeWindowedSerde::new(SharedSerde(k.clone()), size));
                let seg = (retention / 2).max(60_000);
                let this = StoreBuilder::window(&this_store, retention, seg);
                st.store_with(
                    this,
                    wk.clone(),
                    Arc::new(ListSerde(v1.clone())) as ArcSerde<Vec<V>>,
                    vec![name.clone()],
                    sources.clone(),
                );
                let that = StoreBuilder::window(&other_store, retention, seg);
                st.store_with(
                    that,
                    wk,
                    Arc::new(ListSerde(v2.clone())) as ArcSerde<Vec<V2>>,
                    vec![name.clone()],
                    sources.clone(),
                );
                if kind != Kind::Inner {
                    let outer = StoreBuilder::key_value(&outer_store);
                    let okeys: ArcSerde<Waiting<K>> = Arc::new(WaitingSerde(k));
                    let ovalues: ArcSerde<Vec<Side<V, V2>>> =
                        Arc::new(ListSerde(Arc::new(SideSerde(v1, v2)) as ArcSerde<Side<V, V2>>));
                    st.store_with(outer, okeys, ovalues, vec![name.clone()], sources.clone());
                }
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => st.fail(e),
        }
        st.copartition([left.sources.clone(), right.sources.clone()].concat());
        drop(st);
        let mut out = self.derive::<K, VR>(name, keys, None);
        out.sources = sources;
        out.key_changed = false;
        out
    }
}

/// A record waiting for a partner in the outer store: time first, so the store iterates in time
/// order; then the side (right before left at one time, as Kafka orders them); then the key.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Waiting<K> {
    time: i64,
    left: bool,
    key: K,
}

struct WaitingSerde<K>(ArcSerde<K>);

impl<K: 'static> Serde<Waiting<K>> for WaitingSerde<K> {
    fn serialize(&self, w: &Waiting<K>) -> std::result::Result<Bytes, SerdeError> {
        let key = self.0.serialize(&w.key)?;
        let mut b = BytesMut::with_capacity(9 + key.len());
        b.put_i64(w.time.max(0));
        b.put_u8(u8::from(w.left));
        b.put_slice(&key);
        Ok(b.freeze())
    }
    fn deserialize(&self, bytes: &[u8]) -> std::result::Result<Waiting<K>, SerdeError> {
        if bytes.len() < 9 {
            return Err(SerdeError {
                serde: "WaitingSerde",
                op: "deserialize",
                what: format!("{} bytes", bytes.len()),
            });
        }
        let mut b = bytes;
        let time = b.get_i64();
        let left = b.get_u8() == 1;
        Ok(Waiting { time, left, key: self.0.deserialize(b)? })
    }
}

/// Several values as one: a count, then each value's length and bytes (big-endian u32s).
struct ListSerde<V>(ArcSerde<V>);

impl<V: 'static> Serde<Vec<V>> for ListSerde<V> {
    fn serialize(&self, values: &Vec<V>) -> std::result::Result<Bytes, SerdeError> {
        let mut b = BytesMut::new();
        b.put_u32(values.len() as u32);
        for v in values {
            let v = self.0.serialize(v)?;
            b.put_u32(v.len() as u32);
            b.put_slice(&v);
        }
        Ok(b.freeze())
    }
    fn deserialize(&self, bytes: &[u8]) -> std::result::Result<Vec<V>, SerdeError> {
        let bad = |what: &str| SerdeError { serde: "ListSerde", op: "deserialize", what: what.to_string() };
        let mut b = bytes;
        if b.len() < 4 {
            return Err(bad("no count"));
        }
        let n = b.get_u32() as usize;
        let mut out = Vec::with_capacity(n.min(b.len() / 4));
        for _ in 0..n {
            if b.len() < 4 {
                return Err(bad("truncated length"));
            }
            let len = b.get_u32() as usize;
            if b.len() < len {
                return Err(bad("truncated value"));
            }
            out.push(self.0.deserialize(&b[..len])?);
            b.advance(len);
        }
        Ok(out)
    }
}

/// A left or right value: a side byte (1 left, 0 right), then the value.
struct SideSerde<V1, V2>(ArcSerde<V1>, ArcSerde<V2>);

impl<V1: 'static, V2: 'static> Serde<Side<V1, V2>> for SideSerde<V1, V2> {
    fn serialize(&self, s: &Side<V1, V2>) -> std::result::Result<Bytes, SerdeError> {
        let (tag, v) = match s {
            Side::Left(v) => (1u8, self.0.serialize(v)?),
            Side::Right(v) => (0u8, self.1.serialize(v)?),
        };
        let mut b = BytesMut::with_capacity(1 + v.len());
        b.put_u8(tag);
        b.put_slice(&v);
        Ok(b.freeze())
    }
    fn deserialize(&self, bytes: &[u8]) -> std::result::Result<Side<V1, V2>, SerdeError> {
        match bytes.split_first() {
            Some((1, v)) => Ok(Side::Left(self.0.deserialize(v)?)),
            Some((0, v)) => Ok(Side::Right(self.1.deserialize(v)?)),
            _ => Err(SerdeError { serde: "SideSerde", op: "deserialize", what: "no side byte".into() }),
        }
    }
}

struct JoinProcessor<K, V1, V2, VR> {
    /// This side's window store, the other side's, and the outer store (left/outer joins).
    stores: (String, String, Option<String>),
    ids: Option<(StoreId, StoreId, Option<StoreId>)>,
    windows: JoinWindows,
    kind: Kind,
    joiner: Joiner<K, V1, V2, VR>,
    /// Stream time over both sides.
    stream_time: i64,
    /// The earliest time waiting in the outer store (`i64::MAX`: maybe none).
    min_waiting: i64,
    _types: PhantomData<fn(K, V1, V2, VR)>,
}

type Ctx<'a, K, VR> = ProcessorContext<'a, K, VR>;

impl<K, V1, V2, VR> Processor<K, Side<V1, V2>, K, VR> for JoinProcessor<K, V1, V2, VR>
where
    K: Clone + PartialEq + 'static,
    V1: Clone + 'static,
    V2: Clone + 'static,
    VR: Clone + 'static,
{
    fn init(&mut self, ctx: &mut Ctx<'_, K, VR>) -> Result<()> {
        let (a, b, o) = &self.stores;
        let outer = match o {
            Some(o) => Some(ctx.store_id(o)?),
            None => None,
        };
        self.ids = Some((ctx.store_id(a)?, ctx.store_id(b)?, outer));
        if let Some(o) = outer {
            // Records left waiting before a restart: look at them at the next record.
            let waiting = ctx.store_by_id::<Waiting<K>, Vec<Side<V1, V2>>>(o)?.all()?;
            self.min_waiting = waiting.first().map_or(i64::MAX, |(w, _)| w.time);
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_, K, VR>, record: Record<K, Side<V1, V2>>) -> Result<()> {
        let (this_id, other_id, outer_id) = self.ids.expect("init ran");
        let ts = record.timestamp;
        self.stream_time = self.stream_time.max(ts);
        let w = self.windows;
        let retention = w.before + w.after + w.grace;
        let stored = ts > self.stream_time - retention;
        if !stored {
            ctx.record_dropped();
        }
        if ts == self.stream_time {
            if let Some(o) = outer_id {
                self.emit_closed(ctx, o, &record)?;
            }
        }
        let key = record.key.clone();
        match record.value {
            Side::Left(v) => {
                if stored {
                    append(ctx, this_id, &key, ts, v.clone())?;
                }
                let (from, to) = ((ts - w.before).max(0), (ts + w.after).max(0));
                let partners = fetch_key_range(ctx.store_by_id::<Windowed<K>, Vec<V2>>(other_id)?, &key, from, to)?;
                let found = !partners.is_empty();
                for (pw, values) in partners {
                    let t = pw.window.start;
                    self.unwait(ctx, outer_id, &key, t, false)?;
                    for other in values {
                        let out = (self.joiner)(&key, Some(v.clone()), Some(other));
                        ctx.forward(Record {
                            key: key.clone(),
                            value: out,
                            timestamp: ts.max(t),
                            headers: record.headers.clone(),
                        })?;
                    }
                }
                if !found && self.kind != Kind::Inner {
                    self.no_partner(ctx, outer_id, key, Side::Left(v), ts, to, record.headers)?;
                }
            }
            Side::Right(v) => {
                if stored {
                    append(ctx, other_id, &key, ts, v.clone())?;
                }
                let (from, to) = ((ts - w.after).max(0), (ts + w.before).max(0));
                let partners = fetch_key_range(ctx.store_by_id::<Windowed<K>, Vec<V1>>(this_id)?, &key, from, to)?;
                let found = !partners.is_empty();
                for (pw, values) in partners {
                    let t = pw.window.start;
                    self.unwait(ctx, outer_id, &key, t, true)?;
                    for this in values {
                        let out = (self.joiner)(&key, Some(this), Some(v.clone()));
                        ctx.forward(Record {
                            key: key.clone(),
                            value: out,
                            timestamp: ts.max(t),
                            headers: record.headers.clone(),
                        })?;
                    }
                }
                if !found && self.kind == Kind::Outer {
                    self.no_partner(ctx, outer_id, key, Side::Right(v), ts, to, record.headers)?;
                }
            }
        }
        Ok(())
    }
}

/// Keep `value` in the window store `id` under `key` at `ts` (beside the values already there).
fn append<K: Clone + PartialEq + 'static, V: Clone + 'static, VR: Clone + 'static>(
    ctx: &mut Ctx<'_, K, VR>,
    id: StoreId,
    key: &K,
    ts: i64,
    value: V,
) -> Result<()> {
    let at = Windowed::new(key.clone(), Window::new(ts, ts));
    let store = ctx.store_by_id::<Windowed<K>, Vec<V>>(id)?;
    let mut list = store.get(&at)?.unwrap_or_default();
    list.push(value);
    store.put(&at, &list)?;
    Ok(())
}

impl<K, V1, V2, VR> JoinProcessor<K, V1, V2, VR>
where
    K: Clone + PartialEq + 'static,
    V1: Clone + 'static,
    V2: Clone + 'static,
    VR: Clone + 'static,
{
    fn result(&self, key: &K, side: Side<V1, V2>) -> VR {
        match side {
            Side::Left(v) => (self.joiner)(key, Some(v), None),
            Side::Right(v) => (self.joiner)(key, None, Some(v)),
        }
    }

    /// A record found no partner: emit it now if its window already closed, else let it wait.
    #[allow(clippy::too_many_arguments)]
    fn no_partner(
        &mut self,
        ctx: &mut Ctx<'_, K, VR>,
        outer_id: Option<StoreId>,
        key: K,
        side: Side<V1, V2>,
        ts: i64,
        window_to: i64,
        headers: rill_core::streams::record::Headers,
    ) -> Result<()> {
        let Some(o) = outer_id.filter(|_| window_to >= self.stream_time) else {
            let value = self.result(&key, side);
            return ctx.forward(Record { key, value, timestamp: ts, headers });
        };
        let left = matches!(side, Side::Left(_));
        let w = Waiting { time: ts, left, key };
        let s = ctx.store_by_id::<Waiting<K>, Vec<Side<V1, V2>>>(o)?;
        let mut list = s.get(&w)?.unwrap_or_default();
        list.push(side);
        s.put(&w, &list)?;
        self.min_waiting = self.min_waiting.min(ts);
        Ok(())
    }

    /// A partner arrived for the records of `key` at time `t` on side `left`: they no longer wait.
    fn unwait(&self, ctx: &mut Ctx<'_, K, VR>, outer_id: Option<StoreId>, key: &K, t: i64, left: bool) -> Result<()> {
        let Some(o) = outer_id else { return Ok(()) };
        let w = Waiting { time: t, left, key: key.clone() };
        let s = ctx.store_by_id::<Waiting<K>, Vec<Side<V1, V2>>>(o)?;
        if s.get(&w)?.is_some() {
            s.delete(&w)?;
        }
        Ok(())
    }

    /// Emit every waiting record whose window (plus grace) closed, in time order.
    fn emit_closed(&mut self, ctx: &mut Ctx<'_, K, VR>, o: StoreId, record: &Record<K, Side<V1, V2>>) -> Result<()> {
        let w = self.windows;
        if self.min_waiting.saturating_add(w.after.max(w.before)).saturating_add(w.grace) >= self.stream_time {
            return Ok(());
        }
        let waiting = ctx.store_by_id::<Waiting<K>, Vec<Side<V1, V2>>>(o)?.all()?;
        self.min_waiting = i64::MAX;
        let (mut left_open, mut right_open) = (false, false);
        for (key, values) in waiting {
            if left_open && right_open {
                self.min_waiting = self.min_waiting.min(key.time);
                break;
            }
            // A left record looks ahead `after`, a right one `before`.
            let look = if key.left { w.after } else { w.before };
            if key.time + look + w.grace >= self.stream_time {
                if key.left {
                    left_open = true;
                } else {
                    right_open = true;
                }
                self.min_waiting = self.min_waiting.min(key.time);
                continue;
            }
            for side in values {
                let value = self.result(&key.key, side);
                ctx.forward(Record {
                    key: key.key.clone(),
                    value,
                    timestamp: key.time,
                    headers: record.headers.clone(),
                })?;
            }
            ctx.store_by_id::<Waiting<K>, Vec<Side<V1, V2>>>(o)?.delete(&key)?;
        }
        Ok(())
    }
}
