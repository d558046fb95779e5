//! Grouped streams and tables, and their aggregations into a [`KTable`]: [`KGroupedStream`]
//! (from `group_by_key` / `group_by` on a stream) and [`KGroupedTable`] (from `group_by` on a
//! table, where each update subtracts the old row and adds the new one).
//!
//! A grouping after a key change goes through the repartition topic
//! `<application.id>-<name>-repartition`, where `name` is the [`Grouped`](crate::Grouped) name,
//! else the store's name. One aggregation per file: `count`, `reduce`, `aggregate`, `cogroup`.

use rill_core::streams::error::Result;

use crate::builder::{Shared, TopicRef};
use crate::config::Materialized;
use crate::kstream::KStream;
use crate::ktable::{Change, ChangeSerde, KTable};
use crate::processors::upsert;
use crate::serdes::{choose, require, ArcSerde, SerdeSlot};

pub use cogroup::CogroupedKStream;

mod aggregate;
mod cogroup;
mod count;
mod reduce;

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) repartition: bool,
    pub(crate) name: Option<String>,
    pub(crate) keys: SerdeSlot<K>,
    pub(crate) values: SerdeSlot<V>,
}

impl<K, V> Clone for KGroupedStream<K, V> {
    fn clone(&self) -> Self {
        Self {
            stream: self.stream.clone(),
            repartition: self.repartition,
            name: self.name.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
        }
    }
}

/// A table re-grouped by a new key, ready to aggregate with an adder and a subtractor.
pub struct KGroupedTable<K, V> {
    pub(crate) state: Shared,
    /// The node emitting `(K, Change<V>)` for the repartition topic.
    pub(crate) node: String,
    pub(crate) sources: Vec<TopicRef>,
    pub(crate) name: Option<String>,
    pub(crate) keys: SerdeSlot<K>,
    pub(crate) values: SerdeSlot<V>,
}

impl<K: Clone + 'static, V: Clone + 'static> KGroupedStream<K, V> {
    /// Add the aggregation `proc_prefix...` folding each record into its key's entry of the
    /// store `materialized` declares.
    pub(crate) fn aggregate_into<VS: Clone + 'static>(
        &self,
        prefixes: (&str, &str),
        materialized: Materialized<K, VS>,
        carried: SerdeSlot<VS>,
        fold: impl Fn(&K, V, Option<VS>) -> Result<Option<VS>> + Send + Sync + 'static,
    ) -> KTable<K, VS> {
        let (proc_prefix, store_prefix) = prefixes;
        let store = self.stream.state.borrow_mut().name(materialized.name.clone(), store_prefix);
        let name = self.stream.name_for(proc_prefix);
        let input = self.input(&store);
        let keys = choose(&materialized.keys, &self.keys);
        let values = choose(&materialized.values, &carried);
        let how = "Materialized::with(keys, values)";
        let mut st = self.stream.state.borrow_mut();
        st.processor(&name, vec![input.node.clone()], upsert(&store, true, fold));
        match (require(&keys, &store, "key", how), require(&values, &store, "value", how)) {
            (Ok(k), Ok(v)) => st.store(&store, &materialized, k, v, vec![name.clone()], input.sources.clone()),
            (Err(e), _) | (_, Err(e)) => st.fail(e),
        }
        drop(st);
        KTable::new(&input, name, Some(store), keys, values)
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KGroupedTable<K, V> {
    /// Repartition the changes by their new key, then fold each into the store `materialized`
    /// declares (`fold` gets the change: subtract `old`, add `new`).
    pub(crate) fn aggregate_into<VS: Clone + 'static>(
        &self,
        prefixes: (&str, &str),
        materialized: Materialized<K, VS>,
        carried: SerdeSlot<VS>,
        fold: impl Fn(&K, Change<V>, Option<VS>) -> Result<Option<VS>> + Send + Sync + 'static,
    ) -> KTable<K, VS> {
        let (proc_prefix, store_prefix) = prefixes;
        let mut st = self.state.borrow_mut();
        let store = st.name(materialized.name.clone(), store_prefix);
        let name = st.name(None, proc_prefix);
        let topic = self.name.clone().unwrap_or_else(|| store.clone());
        let how = "group_by_with(f, Grouped::with(keys, values))";
        let op = format!("repartition {topic}");
        let (rk, rv) = (require(&self.keys, &op, "key", how), require(&self.values, &op, "value", how));
        let (source, sources) = match (rk, rv) {
            (Ok(k), Ok(v)) => {
                let changes: ArcSerde<Change<V>> = std::sync::Arc::new(ChangeSerde(v));
                let source = st.repartition(&self.node, &topic, k, changes, None, self.sources.clone());
                (source, vec![TopicRef::Repartition(topic)])
            }
            (Err(e), _) | (_, Err(e)) => {
                st.fail(e);
                (self.node.clone(), self.sources.clone())
            }
        };
        let keys = choose(&materialized.keys, &self.keys);
        let values = choose(&materialized.values, &carried);
        let how = "Materialized::with(keys, values)";
        st.processor(&name, vec![source], upsert(&store, true, fold));
        match (require(&keys, &store, "key", how), require(&values, &store, "value", how)) {
            (Ok(k), Ok(v)) => st.store(&store, &materialized, k, v, vec![name.clone()], sources.clone()),
            (Err(e), _) | (_, Err(e)) => st.fail(e),
        }
        drop(st);
        KTable { state: self.state.clone(), node: name, store: Some(store), keys, values, sources, next_name: None }
    }
}
