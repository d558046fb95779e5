//! The Processor API: a [`Processor`] handles one record at a time and forwards results to the
//! processors after it through its [`ProcessorContext`], which also reaches the task's state
//! stores, tells where the record came from, and schedules punctuations.
//!
//! Only [`Processor::process`] is required; `init`, `punctuate` and `close` have defaults.
//!
//! ```
//! use rill_core::streams::processor::{Processor, ProcessorContext};
//! use rill_core::streams::record::Record;
//! use rill_core::streams::error::Result;
//!
//! /// Upper-cases values and drops empty ones.
//! struct Shout;
//!
//! impl Processor<String, String, String, String> for Shout {
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
//!         if r.value.is_empty() {
//!             return Ok(());
//!         }
//!         let loud = r.value.to_uppercase();
//!         ctx.forward(r.with_value(loud))
//!     }
//! }
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use super::error::{Result, StreamsError};
use super::global::GlobalStoreReader;
use super::node::Node;
use super::record::{Record, RecordMetadata};
use super::store::KeyValueStore;
use super::task::{PunctuationId, PunctuationType, StoreId, TaskContext, TaskId};

/// A step of a topology: takes records of `(KIn, VIn)`, forwards records of `(KOut, VOut)`.
pub trait Processor<KIn, VIn, KOut, VOut>: 'static {
    /// Called once before the first record: look up stores, schedule punctuations.
    fn init(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Handle one record.
    fn process(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>, record: Record<KIn, VIn>) -> Result<()>;

    /// A punctuation scheduled with [`ProcessorContext::schedule`] is due; `timestamp` is the
    /// stream time or wall-clock time it fired at.
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        id: PunctuationId,
        timestamp: i64,
    ) -> Result<()> {
        let _ = (ctx, id, timestamp);
        Ok(())
    }

    /// Called once when the task closes.
    fn close(&mut self) {}
}

/// A downstream node taking records of `(K, V)`.
pub(crate) type Child<K, V> = Rc<RefCell<dyn Node<K, V>>>;

/// What a processor can do while it handles a record or a punctuation.
pub struct ProcessorContext<'a, K, V> {
    pub(crate) task: &'a mut TaskContext,
    pub(crate) children: &'a [(String, Child<K, V>)],
    pub(crate) node: &'a str,
    pub(crate) node_index: usize,
}

impl<K: Clone + 'static, V: Clone + 'static> ProcessorContext<'_, K, V> {
    /// Count a record this processor dropped on purpose (late for its window, null key where
    /// one is needed): Kafka Streams' `dropped-records` metric, per task.
    pub fn record_dropped(&mut self) {
        self.task.dropped_records += 1;
    }

    /// Send `record` to every processor after this one.
    pub fn forward(&mut self, record: Record<K, V>) -> Result<()> {
        let Some(((_, last), rest)) = self.children.split_last() else { return Ok(()) };
        for (_, child) in rest {
            child.borrow_mut().process(record.clone(), self.task)?;
        }
        last.borrow_mut().process(record, self.task)
    }

    /// Send `record` only to the child named `child` (branching).
    pub fn forward_to(&mut self, child: &str, record: Record<K, V>) -> Result<()> {
        let (_, c) = self.children.iter().find(|(n, _)| n == child).ok_or_else(|| {
            StreamsError::processing(self.node, format_args!("forward_to: {child} is not a child of {}", self.node))
        })?;
        c.borrow_mut().process(record, self.task)
    }
}

impl<K, V> ProcessorContext<'_, K, V> {
    /// This processor's name.
    pub fn name(&self) -> &str {
        self.node
    }

    /// The task this processor runs in.
    pub fn task_id(&self) -> TaskId {
        self.task.task_id()
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        self.task.application_id()
    }

    /// Input topic, partition and offset of the record being processed (none in a punctuation).
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.task.record_metadata()
    }

    /// The task's stream time: the largest timestamp it has processed.
    pub fn stream_time(&self) -> i64 {
        self.task.stream_time()
    }

    /// Wall-clock time as the task sees it (the test driver controls it).
    pub fn wall_clock_time(&self) -> i64 {
        self.task.wall_clock()
    }

    /// The id of the store named `name`, for [`ProcessorContext::store_by_id`] (one lookup by
    /// name in `init` instead of one per record).
    pub fn store_id(&self, name: &str) -> Result<StoreId> {
        self.task.store_id(name).ok_or_else(|| {
            if self.task.global_stores().contains(name) {
                StreamsError::processing(
                    self.node,
                    format_args!("{name} is a global store: processors read it with global_store, read-only"),
                )
            } else {
                StreamsError::processing(self.node, format_args!("no state store named {name} is connected to it"))
            }
        })
    }

    /// A read-only handle on the global store `name` (a GlobalKTable's store), typed as it was
    /// declared. Any processor of any task can read any global store; keep the handle (from
    /// `init`) rather than looking it up per record. Reads see the global thread's writes as
    /// they happen.
    pub fn global_store<KS: 'static, VS: 'static>(&self, name: &str) -> Result<GlobalStoreReader<KS, VS>> {
        match self.task.global_store::<KS, VS>(name) {
            Some(r) => r.map_err(|e| StreamsError::processing(self.node, e)),
            None => Err(StreamsError::processing(self.node, format_args!("there is no global store named {name}"))),
        }
    }

    /// The key-value store named `name`, typed as it was declared.
    pub fn store<KS: 'static, VS: 'static>(&mut self, name: &str) -> Result<&mut dyn KeyValueStore<KS, VS>> {
        let id = self.store_id(name)?;
        self.store_by_id(id)
    }

    /// The key-value store with id `id` (from [`ProcessorContext::store_id`]).
    pub fn store_by_id<KS: 'static, VS: 'static>(&mut self, id: StoreId) -> Result<&mut dyn KeyValueStore<KS, VS>> {
        let node = self.node;
        self.task.store::<KS, VS>(id).map_err(|e| StreamsError::processing(node, e))
    }

    /// Call [`Processor::punctuate`] every `interval`, on stream time (advanced by records) or
    /// wall-clock time.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> PunctuationId {
        self.task.schedule(self.node_index, interval, kind)
    }

    /// Stop a punctuation.
    pub fn cancel(&mut self, id: PunctuationId) {
        self.task.cancel(id)
    }
}
