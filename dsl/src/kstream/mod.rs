//! [`KStream`]: an unbounded stream of records, each an independent event. One operator per
//! file, each with an example run on the [`TopologyTestDriver`](crate::TopologyTestDriver).

use rill_core::streams::error::Result;
use rill_core::streams::processor::ProcessorContext;
use rill_core::streams::record::Record;

use crate::builder::{Shared, TopicRef};
use crate::processors::supplier;
use crate::serdes::SerdeSlot;

mod filter;
mod flat_map;
mod flat_map_values;
mod foreach;
mod group_by;
mod join;
mod join_windowed;
mod map;
mod map_values;
mod merge;
mod peek;
mod process;
mod repartition;
mod select_key;
mod split;
mod stream;
mod to;
mod to_table;

pub use split::{Branches, SplitStream};

/// A stream of `(K, V)` records. Operators take `&self`, so a stream can feed several.
pub struct KStream<K, V> {
    pub(crate) state: Shared,
    /// The node whose output this stream is.
    pub(crate) node: String,
    pub(crate) keys: SerdeSlot<K>,
    pub(crate) values: SerdeSlot<V>,
    /// The topics this stream's records come from (partition counts of what it feeds).
    pub(crate) sources: Vec<TopicRef>,
    /// A key-changing operator ran since the last repartition: grouping by key repartitions.
    pub(crate) key_changed: bool,
    /// The name the next operator takes (see [`KStream::named`]).
    pub(crate) next_name: Option<String>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            node: self.node.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
            sources: self.sources.clone(),
            key_changed: self.key_changed,
            next_name: self.next_name.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for KStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KStream({})", self.node)
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// The same stream; the next operator called on it is named `name` instead of a generated
    /// `KSTREAM-...-0000000007`. Name the operators whose internal topics and stores must keep
    /// their names when the topology changes.
    pub fn named(&self, name: &str) -> Self {
        Self { next_name: Some(name.to_string()), ..self.clone() }
    }

    /// The name of the node this stream comes out of.
    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// A name for the next operator: the one given with [`KStream::named`], or a generated one.
    pub(crate) fn name_for(&self, prefix: &str) -> String {
        self.state.borrow_mut().name(self.next_name.clone(), prefix)
    }

    /// A stream out of node `node`, from the same sources.
    pub(crate) fn derive<K2, V2>(&self, node: String, keys: SerdeSlot<K2>, values: SerdeSlot<V2>) -> KStream<K2, V2> {
        KStream {
            state: self.state.clone(),
            node,
            keys,
            values,
            sources: self.sources.clone(),
            key_changed: self.key_changed,
            next_name: None,
        }
    }

    /// Add a stateless operator `prefix...` whose body is `body`; returns its node name.
    pub(crate) fn stateless<KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        prefix: &str,
        body: impl Fn(&mut ProcessorContext<'_, KO, VO>, Record<K, V>) -> Result<()> + Send + Sync + 'static,
    ) -> String {
        let name = self.name_for(prefix);
        self.state.borrow_mut().processor(&name, vec![self.node.clone()], supplier(body));
        name
    }
}
