//! The nodes a task is made of: sources (bytes in), processors, sinks (bytes out). Edges are
//! typed: a node holds its children as `Rc<RefCell<dyn Node<K, V>>>`, so a record goes from one
//! processor to the next as a plain typed value, without boxing or copying.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;

use super::error::{Result, StreamsError};
use super::processor::{Child, Processor, ProcessorContext};
use super::record::{Headers, Record};
use super::serde::Serde;
use super::task::{PunctuationId, TaskContext};

/// A node taking typed records.
pub(crate) trait Node<K, V> {
    fn process(&mut self, record: Record<K, V>, task: &mut TaskContext) -> Result<()>;
}

/// What the task does with any node, whatever its types.
pub(crate) trait ErasedNode {
    fn init(&mut self, task: &mut TaskContext) -> Result<()>;
    fn punctuate(&mut self, id: PunctuationId, timestamp: i64, task: &mut TaskContext) -> Result<()>;
    fn close(&mut self);
}

/// A source: raw records in.
pub(crate) trait RawNode {
    fn process_raw(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: Headers,
        task: &mut TaskContext,
    ) -> Result<()>;
}

/// A user processor with its children.
pub(crate) struct ProcessorNode<P, KIn, VIn, KOut, VOut> {
    pub(crate) name: String,
    pub(crate) index: usize,
    pub(crate) processor: P,
    pub(crate) children: Vec<(String, Child<KOut, VOut>)>,
    pub(crate) _types: PhantomData<fn(KIn, VIn)>,
}

impl<P, KIn, VIn, KOut, VOut> Node<KIn, VIn> for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
{
    fn process(&mut self, record: Record<KIn, VIn>, task: &mut TaskContext) -> Result<()> {
        // The processor and the context borrow different fields.
        let Self { name, index, processor, children, .. } = self;
        let mut ctx = ProcessorContext { task, children, node: name, node_index: *index };
        processor.process(&mut ctx, record)
    }
}

impl<P, KIn, VIn, KOut, VOut> ErasedNode for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
{
    fn init(&mut self, task: &mut TaskContext) -> Result<()> {
        let Self { name, index, processor, children, .. } = self;
        let mut ctx = ProcessorContext { task, children, node: name, node_index: *index };
        processor.init(&mut ctx)
    }

    fn punctuate(&mut self, id: PunctuationId, timestamp: i64, task: &mut TaskContext) -> Result<()> {
        let Self { name, index, processor, children, .. } = self;
        let mut ctx = ProcessorContext { task, children, node: name, node_index: *index };
        processor.punctuate(&mut ctx, id, timestamp)
    }

    fn close(&mut self) {
        self.processor.close();
    }
}

/// Deserializes raw records of its topics and forwards them.
pub(crate) struct SourceNode<K, V> {
    pub(crate) name: String,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    pub(crate) children: Vec<(String, Child<K, V>)>,
}

impl<K: Clone + 'static, V: Clone + 'static> RawNode for SourceNode<K, V> {
    fn process_raw(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: Headers,
        task: &mut TaskContext,
    ) -> Result<()> {
        let de = |cause| StreamsError::Deserialization { source_node: self.name.clone(), cause };
        let k = match key {
            Some(b) => Some(self.key_serde.deserialize(b).map_err(de)?),
            None => self.key_serde.deserialize_null(),
        };
        let v = match value {
            Some(b) => Some(self.value_serde.deserialize(b).map_err(de)?),
            None => self.value_serde.deserialize_null(),
        };
        let (Some(key), Some(value)) = (k, v) else {
            // A null its serde cannot represent (declare an Option type to receive these).
            task.note_skipped_null();
            return Ok(());
        };
        let record = Record { key, value, timestamp, headers };
        let mut ctx = ProcessorContext { task, children: &self.children, node: &self.name, node_index: usize::MAX };
        ctx.forward(record)
    }
}

/// Names the output topic of a record.
pub type TopicNamer<K, V> = Arc<dyn Fn(&Record<K, V>) -> String + Send + Sync>;

/// Where a sink sends a record: one topic, or one chosen per record.
pub enum TopicChoice<K, V> {
    /// Always this topic.
    Fixed(String),
    /// The topic this function names for the record.
    PerRecord(TopicNamer<K, V>),
}

impl<K, V> Clone for TopicChoice<K, V> {
    fn clone(&self) -> Self {
        match self {
            Self::Fixed(t) => Self::Fixed(t.clone()),
            Self::PerRecord(f) => Self::PerRecord(f.clone()),
        }
    }
}

/// A partitioner choosing the partition of an output record from its serialized key and value
/// and the topic's partition count; `None` leaves it to the default (murmur2 of the key, as
/// Kafka's producer).
pub type Partitioner = Arc<dyn Fn(Option<&Bytes>, Option<&Bytes>, i32) -> Option<i32> + Send + Sync>;

/// Serializes records and hands them to the task's record collector.
pub(crate) struct SinkNode<K, V> {
    pub(crate) name: String,
    pub(crate) topic: TopicChoice<K, V>,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    pub(crate) partitioner: Option<Partitioner>,
}

impl<K: 'static, V: 'static> Node<K, V> for SinkNode<K, V> {
    fn process(&mut self, record: Record<K, V>, task: &mut TaskContext) -> Result<()> {
        let topic = match &self.topic {
            TopicChoice::Fixed(t) => t.clone(),
            TopicChoice::PerRecord(f) => f(&record),
        };
        let key = self.key_serde.serialize_nullable(&record.key)?;
        let value = self.value_serde.serialize_nullable(&record.value)?;
        let partition = match &self.partitioner {
            Some(p) => {
                let n = task
                    .partition_count(&topic)
                    .map_err(|e| StreamsError::Send { topic: topic.clone(), cause: e.to_string() })?;
                p(key.as_ref(), value.as_ref(), n)
            }
            None => None,
        };
        task.send(&self.name, &topic, partition, key, value, record.timestamp, record.headers)
    }
}
