//! `global_table`: a [`GlobalKTable`], a table of a topic fully replicated on every application
//! instance.
//!
//! Unlike a [`KTable`](crate::KTable), a global table is not partitioned across instances: each
//! instance's global thread reads every partition of the topic into its own copy of the store,
//! before any task runs, and keeps it up to date. Any task can then look up any key, whatever
//! partition it processes (no co-partitioning, no repartition). The store has no changelog: the
//! topic is its changelog (Kafka Streams' source-topic-as-changelog), so the topic should be
//! compacted. Null values delete.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use rill_core::streams::error::Result;
use rill_core::streams::global::{GlobalStore, GlobalStoreInit, GlobalStoreSpec};
use rill_core::streams::processor::{Processor, ProcessorContext};
use rill_core::streams::record::Record;
use rill_core::streams::task::StoreId;
use rill_state::StoreBuilder;

use crate::builder::StreamsBuilder;
use crate::config::{Consumed, Materialized};
use crate::serdes::{choose, nullable, owned, require, ArcSerde, SerdeSlot};

/// A table of `K` to `V` replicated in full on every instance (see the module docs). It is a
/// handle for joins and lookups: its store's name and serdes.
pub struct GlobalKTable<K, V> {
    store: String,
    topic: String,
    keys: SerdeSlot<K>,
    values: SerdeSlot<V>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            topic: self.topic.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for GlobalKTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GlobalKTable({} <- {})", self.store, self.topic)
    }
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of the global store holding the table (for
    /// [`ProcessorContext::global_store`], interactive queries and the test driver).
    pub fn store_name(&self) -> &str {
        &self.store
    }
    /// The topic the table reads.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// The key serde of the store (`None` only if the program fails to build for want of one).
    pub fn key_serde(&self) -> Option<ArcSerde<K>> {
        self.keys.clone()
    }
    /// The value serde of the store (as for [`GlobalKTable::key_serde`]).
    pub fn value_serde(&self) -> Option<ArcSerde<V>> {
        self.values.clone()
    }
}

/// Keeps a global table's store up to date: a value is put, a null deletes.
struct GlobalUpsert<K, V> {
    store: String,
    id: Option<StoreId>,
    _types: PhantomData<fn(K, V)>,
}

impl<K: 'static, V: 'static> Processor<K, Option<V>, (), ()> for GlobalUpsert<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, (), ()>) -> Result<()> {
        self.id = Some(ctx.store_id(&self.store)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, (), ()>, r: Record<K, Option<V>>) -> Result<()> {
        let store = ctx.store_by_id::<K, V>(self.id.expect("init ran"))?;
        match &r.value {
            Some(v) => store.put(&r.key, v)?,
            None => {
                store.delete(&r.key)?;
            }
        }
        Ok(())
    }
}

impl StreamsBuilder {
    /// A global table of `topic` with the default serdes of `K` and `V` and a store named
    /// `<topic>-STATE-STORE-<n>` (see the module docs).
    ///
    /// Any processor can read it; here a stream of orders is enriched with each customer's name,
    /// whichever partition the order comes from:
    ///
    /// ```
    /// use rill_core::streams::error::Result;
    /// use rill_core::streams::global::GlobalStoreReader;
    /// use rill_core::streams::processor::{Processor, ProcessorContext};
    /// use rill_core::streams::record::Record;
    /// use rill_core::streams::serde::{OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// /// Replaces a customer id by the customer's name from the global table.
    /// struct Enrich(Option<GlobalStoreReader<String, String>>);
    /// impl Processor<String, String, String, String> for Enrich {
    ///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    ///         self.0 = Some(ctx.global_store("customers-store")?);
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    ///         let name = self.0.as_ref().unwrap().get(&r.value)?.unwrap_or_else(|| "unknown".into());
    ///         ctx.forward(r.with_value(name))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// let customers = builder.global_table_with::<String, String>(
    ///     "customers",
    ///     rill_dsl::Consumed::with(StringSerde, StringSerde),
    ///     rill_dsl::Materialized::as_("customers-store"),
    /// );
    /// assert_eq!(customers.store_name(), "customers-store");
    /// builder.stream::<String, String>("orders").process(|| Enrich(None), &[]).to("orders-by-name");
    /// let built = builder.build("shop")?;
    /// assert!(built.topology.describe().to_string().contains("for global store (will not generate tasks)"));
    ///
    /// let driver = TopologyTestDriver::new(built)?;
    /// let updates = driver.create_input_topic("customers", StringSerde, OptionSerde(StringSerde));
    /// let orders = driver.create_input_topic("orders", StringSerde, StringSerde);
    /// let out = driver.create_output_topic("orders-by-name", StringSerde, StringSerde);
    /// updates.pipe_input("c1".into(), Some("Ada".into()))?;
    /// updates.pipe_input("c2".into(), Some("Brian".into()))?;
    /// updates.pipe_input("c2".into(), None)?; // a tombstone deletes
    /// orders.pipe_input("o1".into(), "c1".into())?;
    /// orders.pipe_input("o2".into(), "c2".into())?;
    /// assert_eq!(out.read_values(), vec!["Ada".to_string(), "unknown".to_string()]);
    /// assert_eq!(driver.key_value_store::<String, String>("customers-store")?, vec![("c1".into(), "Ada".into())]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn global_table<K: Clone + 'static, V: Clone + 'static>(&self, topic: &str) -> GlobalKTable<K, V> {
        self.global_table_with(topic, Consumed::default(), Materialized::default())
    }

    /// A global table of `topic` read with `consumed`'s serdes into the store `materialized`
    /// declares: its name and serdes, RocksDB (the default: a restart reads only the topic's
    /// tail past the checkpoint) or in memory (read from the start at every start). Caching and
    /// logging settings do not apply: a global store is written through and has no changelog.
    pub fn global_table_with<K: Clone + 'static, V: Clone + 'static>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V> {
        let mut st = self.state.borrow_mut();
        let source = st.name(consumed.name, "KSTREAM-SOURCE-");
        let node = st.name(None, "KTABLE-SOURCE-");
        let store = st.name(materialized.name.clone(), &format!("{topic}-STATE-STORE-"));
        let keys = choose(&consumed.keys, &materialized.keys);
        let values = choose(&consumed.values, &materialized.values);
        let how = "global_table_with(topic, Consumed::with(keys, values), ..)";
        match (require(&keys, &source, "key", how), require(&values, &source, "value", how)) {
            (Ok(k), Ok(v)) => {
                let mut decl = StoreBuilder::key_value(&store);
                decl = if materialized.persistent { decl.persistent() } else { decl.in_memory() };
                let (topic, store, persistent) = (topic.to_string(), store.clone(), materialized.persistent);
                st.op(move |t, env| {
                    let driver = env.driver.clone();
                    let (fk, fv) = (k.clone(), v.clone());
                    let factory = move |init: &GlobalStoreInit| -> Result<Box<dyn GlobalStore<K, V>>> {
                        let config = driver.config.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        // The test driver keeps every store in memory.
                        let decl =
                            if driver.active.load(Ordering::Relaxed) { decl.clone().in_memory() } else { decl.clone() };
                        Ok(Box::new(decl.build_global(init, &config, owned(&fk), owned(&fv))?))
                    };
                    let spec = GlobalStoreSpec::new(&store, factory).persistent(persistent);
                    let value_serde = nullable(&Some(v)).expect("known");
                    let name = store.clone();
                    let supplier = move || GlobalUpsert::<K, V> { store: name.clone(), id: None, _types: PhantomData };
                    t.add_global_store(spec, &source, &topic, owned(&k), owned(&value_serde), &node, supplier)
                        .map(|_| ())
                });
            }
            (Err(e), _) | (_, Err(e)) => st.fail(e),
        }
        GlobalKTable { store, topic: topic.to_string(), keys, values }
    }
}
