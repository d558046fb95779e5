//! `cogroup`: aggregate several grouped streams, each with its own aggregator, into one table.

use std::sync::Arc;

use rill_core::streams::record::Record;

use crate::builder::{Shared, TopicRef};
use crate::config::Materialized;
use crate::grouped::KGroupedStream;
use crate::ktable::{Change, KTable};
use crate::processors::{supplier, upsert};
use crate::serdes::{choose, require, SerdeSlot};

type Init<VR> = Arc<dyn Fn() -> VR + Send + Sync>;

/// Adds one input's nodes given the store and initializer: returns its aggregation node, the
/// topics it reads, and its key serde.
type AddInput<K, VR> = Box<dyn FnOnce(&str, usize, Init<VR>) -> (String, Vec<TopicRef>, SerdeSlot<K>)>;

/// Grouped streams being aggregated together (see [`KGroupedStream::cogroup`]).
pub struct CogroupedKStream<K, VR> {
    state: Shared,
    inputs: Vec<AddInput<K, VR>>,
}

impl<K: Clone + 'static, V: Clone + 'static> KGroupedStream<K, V> {
    /// Start a cogroup: this stream's records fold into the shared aggregate with `add`. Add
    /// more grouped streams with [`CogroupedKStream::cogroup`], then
    /// [`aggregate`](CogroupedKStream::aggregate). The inputs must be co-partitioned (the built
    /// topology lists them in `copartition_groups`).
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_dsl::{Materialized, StreamsBuilder, TopologyTestDriver};
    ///
    /// // Per customer: +amount for each purchase, -amount for each refund.
    /// let builder = StreamsBuilder::new();
    /// let purchases = builder.stream::<String, i64>("purchases").group_by_key();
    /// let refunds = builder.stream::<String, i64>("refunds").group_by_key();
    /// purchases
    ///     .cogroup(|_, amount, total: i64| total + amount)
    ///     .cogroup(&refunds, |_, amount, total| total - amount)
    ///     .aggregate_with(|| 0, Materialized::as_("net"))
    ///     .to_stream()
    ///     .to("net-spend");
    /// let built = builder.build("shop")?;
    /// assert_eq!(built.copartition_groups.len(), 1);
    /// let driver = TopologyTestDriver::new(built)?;
    /// let p = driver.create_input_topic("purchases", StringSerde, I64Serde);
    /// let r = driver.create_input_topic("refunds", StringSerde, I64Serde);
    /// p.pipe_input("ann".into(), 30)?;
    /// r.pipe_input("ann".into(), 10)?;
    /// p.pipe_input("ann".into(), 5)?;
    /// let out = driver.create_output_topic("net-spend", StringSerde, I64Serde);
    /// assert_eq!(out.read_values(), vec![30, 20, 25]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn cogroup<VR: Clone + 'static>(
        &self,
        add: impl Fn(&K, V, VR) -> VR + Send + Sync + 'static,
    ) -> CogroupedKStream<K, VR> {
        CogroupedKStream { state: self.stream.state.clone(), inputs: vec![self.cogroup_input(add)] }
    }

    fn cogroup_input<VR: Clone + 'static>(
        &self,
        add: impl Fn(&K, V, VR) -> VR + Send + Sync + 'static,
    ) -> AddInput<K, VR> {
        let grouped = KGroupedStream {
            stream: self.stream.clone(),
            repartition: self.repartition,
            name: self.name.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
        };
        let add = Arc::new(add);
        Box::new(move |store: &str, i: usize, init: Init<VR>| {
            let input = if grouped.repartition {
                let topic = grouped.name.clone().unwrap_or_else(|| format!("{store}-{i}"));
                grouped.stream.through_topic(
                    &topic,
                    &grouped.keys,
                    &grouped.values,
                    None,
                    "Grouped::with(keys, values)",
                )
            } else {
                grouped.stream.clone()
            };
            let name = input.name_for("COGROUPKSTREAM-AGGREGATE-");
            let fold = move |k: &K, v: V, agg: Option<VR>| Ok(Some(add(k, v, agg.unwrap_or_else(|| init()))));
            input.state.borrow_mut().processor(&name, vec![input.node.clone()], upsert(store, true, fold));
            (name, input.sources.clone(), choose(&grouped.keys, &input.keys))
        })
    }
}

impl<K: Clone + 'static, VR: Clone + 'static> CogroupedKStream<K, VR> {
    /// Add `other`, whose records fold into the aggregate with `add`.
    pub fn cogroup<V: Clone + 'static>(
        mut self,
        other: &KGroupedStream<K, V>,
        add: impl Fn(&K, V, VR) -> VR + Send + Sync + 'static,
    ) -> Self {
        self.inputs.push(other.cogroup_input(add));
        self
    }

    /// The aggregate per key, starting from `init()`, in a store with a generated name.
    pub fn aggregate(self, init: impl Fn() -> VR + Send + Sync + 'static) -> KTable<K, VR> {
        self.aggregate_with(init, Materialized::default())
    }

    /// The aggregate per key, in the store `materialized` declares.
    pub fn aggregate_with(
        self,
        init: impl Fn() -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let state = self.state.clone();
        let store = state.borrow_mut().name(materialized.name.clone(), "COGROUPKSTREAM-AGGREGATE-STATE-STORE-");
        let init: Init<VR> = Arc::new(init);
        let (mut nodes, mut sources, mut keys) = (Vec::new(), Vec::new(), None);
        for (i, add_input) in self.inputs.into_iter().enumerate() {
            let (node, topics, k) = add_input(&store, i, init.clone());
            nodes.push(node);
            sources.push(topics);
            keys = keys.or(k);
        }
        let keys = choose(&materialized.keys, &keys);
        let values = choose(&materialized.values, &None);
        let all_sources: Vec<TopicRef> = sources.iter().flatten().cloned().collect();
        let mut st = state.borrow_mut();
        let how = "Materialized::with(keys, values)";
        match (require(&keys, &store, "key", how), require(&values, &store, "value", how)) {
            (Ok(k), Ok(v)) => st.store(&store, &materialized, k, v, nodes.clone(), all_sources.clone()),
            (Err(e), _) | (_, Err(e)) => st.fail(e),
        }
        if sources.len() > 1 {
            st.copartition(all_sources.clone());
        }
        let merge = st.name(None, "COGROUPKSTREAM-MERGE-");
        st.processor(&merge, nodes, supplier(|ctx, r: Record<K, Change<VR>>| ctx.forward(r)));
        drop(st);
        KTable {
            state,
            node: merge,
            store: Some(store),
            keys,
            values,
            sources: all_sources,
            next_name: None,
            window_close: None,
        }
    }
}
