//! `suppress`: hold a table's updates back, emitting each key's latest once its window closes
//! (final results) or once a time limit passed (Kafka's `KTableSuppressProcessor`).
//!
//! The buffer is a key-value store (`<name>-store`, changelogged, so a restart resumes with the
//! same updates waiting) holding per key the time it may go out, the record's timestamp and
//! the change; an in-memory index orders keys by that time. After each record (and on the wall
//! clock, if opted in) every key whose time has come is emitted, earliest first, with its
//! record's timestamp.

use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rill_core::streams::error::{Result, StreamsError};
use rill_core::streams::processor::{Processor, ProcessorContext};
use rill_core::streams::record::Record;
use rill_core::streams::serde::{Serde, SerdeError};
use rill_core::streams::task::{PunctuationId, PunctuationType, StoreId};
use rill_state::StoreBuilder;

use crate::config::Materialized;
use crate::ktable::{Change, ChangeSerde, KTable};
use crate::serdes::{require, ArcSerde};
use crate::suppressed::{Suppressed, Until, WhenFull};

/// One buffered update: when it may go out, its record's timestamp, the change.
type Buffered<V> = (i64, i64, Change<V>);

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    /// Hold updates back as `suppressed` says: [`Suppressed::until_window_closes`] for one
    /// final result per window (tables of windowed aggregations), or
    /// [`Suppressed::until_time_limit`] to emit each key at most once per time limit.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
    /// use rill_core::streams::window::{TimeWindowedSerde, Window, Windowed};
    /// use rill_dsl::{BufferConfig, StreamsBuilder, Suppressed, TimeWindows, TopologyTestDriver};
    ///
    /// // Payments per card per minute, final counts only.
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("payments")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(10)))
    ///     .count()
    ///     .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
    ///     .to_stream()
    ///     .to("payments-per-minute");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("payments", StringSerde, StringSerde);
    /// let out = driver.create_output_topic("payments-per-minute", TimeWindowedSerde::new(StringSerde, 60_000), OptionSerde(I64Serde));
    /// input.pipe_input_at("card-1".into(), "9.99".into(), 1_000)?;
    /// input.pipe_input_at("card-1".into(), "5.00".into(), 2_000)?;
    /// input.pipe_input_at("card-2".into(), "1.00".into(), 69_000)?; // [0, 60s) is still in grace
    /// assert!(out.read_record().is_none());
    /// input.pipe_input_at("card-2".into(), "1.00".into(), 70_000)?; // closes it
    /// let first = Windowed::new("card-1".to_string(), Window::new(0, 60_000));
    /// assert_eq!(out.read_key_value(), Some((first, Some(2))));
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn suppress(&self, suppressed: Suppressed) -> KTable<K, V> {
        let name = match suppressed.name {
            Some(n) => n.to_string(),
            None => self.name_for("KTABLE-SUPPRESS-"),
        };
        let store = format!("{name}-store");
        let mut st = self.state.borrow_mut();
        let deadline: Deadline<K> = match (suppressed.until, &self.window_close) {
            (Until::WindowCloses, Some(w)) => {
                let (end, grace) = (w.end.clone(), w.grace);
                Arc::new(move |k: &K, _ts: i64| end(k).saturating_add(grace))
            }
            (Until::WindowCloses, None) => {
                st.fail(StreamsError::Topology(format!(
                    "{name}: until_window_closes suppresses tables of windowed aggregations; use until_time_limit here"
                )));
                Arc::new(|_: &K, ts: i64| ts)
            }
            (Until::TimeLimit(limit), _) => Arc::new(move |_: &K, ts: i64| ts.saturating_add(limit)),
        };
        if suppressed.until == Until::WindowCloses && suppressed.buffer.when_full == WhenFull::EmitEarly {
            st.fail(StreamsError::Topology(format!(
                "{name}: until_window_closes cannot emit early when its buffer is full (that would break the one final result per window); use shut_down_when_full"
            )));
        }
        let how = "Materialized::with(keys, values) upstream, or the types' default serdes";
        match (require(&self.keys, &name, "key", how), require(&self.values, &name, "value", how)) {
            (Ok(k), Ok(v)) => {
                let value_serde: ArcSerde<Buffered<V>> = Arc::new(BufferedSerde(Arc::new(ChangeSerde(v))));
                let (keys, store_name) = (k.clone(), store.clone());
                let config = suppressed;
                st.processor(&name, vec![self.node.clone()], move || SuppressProcessor::<K, V> {
                    store: store_name.clone(),
                    id: None,
                    keys: keys.clone(),
                    deadline: deadline.clone(),
                    config,
                    index: BTreeSet::new(),
                    times: HashMap::new(),
                    bytes: 0,
                    stream_time: -1,
                    last_record_wall: 0,
                    wall_time: -1,
                    _types: PhantomData,
                });
                let decl = Materialized::<K, Buffered<V>>::default().declare(StoreBuilder::key_value(&store));
                st.store_with(decl, k, value_serde, vec![name.clone()], self.sources.clone());
            }
            (Err(e), _) | (_, Err(e)) => st.fail(e),
        }
        drop(st);
        KTable { node: name, store: None, next_name: None, ..self.clone() }
    }
}

type Deadline<K> = Arc<dyn Fn(&K, i64) -> i64 + Send + Sync>;

/// [`Buffered`] as bytes: the deadline and the timestamp (8 bytes big-endian each), then the
/// change.
struct BufferedSerde<V>(ArcSerde<Change<V>>);

impl<V: 'static> Serde<Buffered<V>> for BufferedSerde<V> {
    fn serialize(&self, (deadline, ts, change): &Buffered<V>) -> std::result::Result<Bytes, SerdeError> {
        let c = self.0.serialize(change)?;
        let mut b = BytesMut::with_capacity(16 + c.len());
        b.put_i64(*deadline);
        b.put_i64(*ts);
        b.put_slice(&c);
        Ok(b.freeze())
    }
    fn deserialize(&self, bytes: &[u8]) -> std::result::Result<Buffered<V>, SerdeError> {
        if bytes.len() < 16 {
            return Err(SerdeError {
                serde: "BufferedSerde",
                op: "deserialize",
                what: format!("{} bytes", bytes.len()),
            });
        }
        let mut b = bytes;
        let (deadline, ts) = (b.get_i64(), b.get_i64());
        Ok((deadline, ts, self.0.deserialize(b)?))
    }
}

struct SuppressProcessor<K, V> {
    store: String,
    id: Option<StoreId>,
    keys: ArcSerde<K>,
    deadline: Deadline<K>,
    config: Suppressed,
    /// (deadline, key bytes) of every buffered key, earliest first.
    index: BTreeSet<(i64, Bytes)>,
    /// Each buffered key's deadline and its size in bytes.
    times: HashMap<Bytes, (i64, usize)>,
    bytes: usize,
    stream_time: i64,
    /// Wall-clock time of the last record (for `close_on_wall_clock`).
    last_record_wall: i64,
    /// The wall-clock punctuation's latest time.
    wall_time: i64,
    _types: PhantomData<fn(K, V)>,
}

type Ctx<'a, K, V> = ProcessorContext<'a, K, Change<V>>;

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, Change<V>, K, Change<V>> for SuppressProcessor<K, V> {
    fn init(&mut self, ctx: &mut Ctx<'_, K, V>) -> Result<()> {
        let id = ctx.store_id(&self.store)?;
        self.id = Some(id);
        // What waited before a restart waits again.
        for (k, (deadline, _, change)) in ctx.store_by_id::<K, Buffered<V>>(id)?.all()? {
            let bytes = self.keys.serialize(&k)?;
            let size = bytes.len() + approx_size(&change);
            self.track(bytes, deadline, size);
        }
        if let Some(idle) = self.config.wall_clock_idle {
            ctx.schedule(Duration::from_millis(idle.clamp(1, 1_000) as u64), PunctuationType::WallClockTime);
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_, K, V>, record: Record<K, Change<V>>) -> Result<()> {
        let id = self.id.expect("init ran");
        let ts = record.timestamp;
        self.stream_time = self.stream_time.max(ts);
        self.last_record_wall = ctx.wall_clock_time();
        let bytes = self.keys.serialize(&record.key)?;
        let store = ctx.store_by_id::<K, Buffered<V>>(id)?;
        // A key keeps the deadline of its first waiting update (a time limit is not restarted);
        // its old value is the one before that first update.
        let (deadline, change) = match store.get(&record.key)? {
            Some((deadline, _, first)) => (deadline, Change { new: record.value.new, old: first.old }),
            None => ((self.deadline)(&record.key, ts), record.value),
        };
        let size = bytes.len() + approx_size(&change);
        store.put(&record.key, &(deadline, ts, change))?;
        self.track(bytes, deadline, size);
        self.make_room(ctx)?;
        let now = self.stream_time;
        self.emit_due(ctx, now)
    }

    fn punctuate(&mut self, ctx: &mut Ctx<'_, K, V>, _id: PunctuationId, now: i64) -> Result<()> {
        let Some(idle) = self.config.wall_clock_idle else { return Ok(()) };
        if self.wall_time < 0 || self.stream_time < 0 {
            self.wall_time = now;
            return Ok(());
        }
        let elapsed = now - self.wall_time;
        self.wall_time = now;
        if now - self.last_record_wall >= idle && elapsed > 0 {
            // No record for a while: time moves on with the wall clock.
            self.stream_time += elapsed;
            let t = self.stream_time;
            self.emit_due(ctx, t)?;
        }
        Ok(())
    }
}

impl<K: Clone + 'static, V: Clone + 'static> SuppressProcessor<K, V> {
    fn track(&mut self, bytes: Bytes, deadline: i64, size: usize) {
        if let Some((old_deadline, old_size)) = self.times.insert(bytes.clone(), (deadline, size)) {
            self.index.remove(&(old_deadline, bytes.clone()));
            self.bytes -= old_size;
        }
        self.bytes += size;
        self.index.insert((deadline, bytes));
    }

    /// Emit every buffered key whose deadline is at or before `now`, earliest first.
    fn emit_due(&mut self, ctx: &mut Ctx<'_, K, V>, now: i64) -> Result<()> {
        while let Some((deadline, _)) = self.index.first() {
            if *deadline > now {
                break;
            }
            self.emit_first(ctx)?;
        }
        Ok(())
    }

    fn emit_first(&mut self, ctx: &mut Ctx<'_, K, V>) -> Result<()> {
        let id = self.id.expect("init ran");
        let Some((_, bytes)) = self.index.pop_first() else { return Ok(()) };
        if let Some((_, size)) = self.times.remove(&bytes) {
            self.bytes -= size;
        }
        let key = self.keys.deserialize(&bytes)?;
        let store = ctx.store_by_id::<K, Buffered<V>>(id)?;
        let Some((_, ts, change)) = store.delete(&key)? else { return Ok(()) };
        ctx.forward(Record { key, value: change, timestamp: ts, headers: Vec::new() })
    }

    /// Keep the buffer within its bounds: emit the earliest early, or fail, as configured.
    fn make_room(&mut self, ctx: &mut Ctx<'_, K, V>) -> Result<()> {
        let b = self.config.buffer;
        let over =
            |p: &Self| b.max_records.is_some_and(|n| p.index.len() > n) || b.max_bytes.is_some_and(|n| p.bytes > n);
        while over(self) {
            match b.when_full {
                WhenFull::EmitEarly => self.emit_first(ctx)?,
                WhenFull::ShutDown => {
                    return Err(StreamsError::processing(
                        ctx.name(),
                        format_args!(
                            "suppression buffer full ({} keys, {} bytes; limits {:?} keys, {:?} bytes); raise the BufferConfig bounds",
                            self.index.len(),
                            self.bytes,
                            b.max_records,
                            b.max_bytes
                        ),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Roughly what a change takes in memory (values are not serialized twice to measure them).
fn approx_size<V>(change: &Change<V>) -> usize {
    let one = std::mem::size_of::<V>().max(1);
    one * (usize::from(change.new.is_some()) + usize::from(change.old.is_some())) + 16
}
