//! `join` and `left_join` of a stream with a table, and `join_global` and `left_join_global`
//! with a global table: each record looks up the table's current row (Kafka Streams'
//! KStream-KTable and KStream-GlobalKTable joins).
//!
//! Only stream records trigger the join: a table update changes what later records find, never
//! what earlier ones got. A result keeps the stream record's key, timestamp and headers. Stream
//! records with a null value are dropped; with a null key (or, for a global table, a null key
//! from the key selector) an inner join drops them and a left join passes them on with no table
//! row, as Kafka Streams 3.7+ does (KIP-962). Null is what the serde writes as null (see
//! `nulls.rs`): `None` of an `Option`, `()`; types like `String` are never null.
//!
//! A stream-table join needs the two co-partitioned (the built topology lists the topics in
//! `copartition_groups`, checked at start); a stream whose key changed is first repartitioned
//! through `<application.id>-<name>-repartition` (`name`: the join's name, else the node the
//! stream comes out of). A global table holds every partition on every instance: no
//! co-partitioning, no repartition.

use std::marker::PhantomData;
use std::sync::Arc;

use rill_core::streams::error::Result;
use rill_core::streams::global::GlobalStoreReader;
use rill_core::streams::processor::{Processor, ProcessorContext};
use rill_core::streams::record::Record;
use rill_core::streams::task::StoreId;

use crate::builder::TopicRef;
use crate::global_ktable::GlobalKTable;
use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::nulls::{is_null, null_test, NullTest};

/// Picks the global table's key for a stream record.
type KeySelector<K, V, KG> = Arc<dyn Fn(&K, &V) -> KG + Send + Sync>;

/// The joiner, made total: `None` when the pair makes no result (an inner join with no row).
type StreamJoiner<V, VT, VR> = Arc<dyn Fn(V, Option<VT>) -> Option<VR> + Send + Sync>;

/// Joins each stream record with its key's row in a table's store.
struct StreamTableJoin<K, V, VT, VR> {
    store: String,
    id: Option<StoreId>,
    left: bool,
    joiner: StreamJoiner<V, VT, VR>,
    key_null: NullTest<K>,
    value_null: NullTest<V>,
    _types: PhantomData<fn(K, VT)>,
}

impl<K: Clone + 'static, V: 'static, VT: 'static, VR: Clone + 'static> Processor<K, V, K, VR>
    for StreamTableJoin<K, V, VT, VR>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<()> {
        self.id = Some(ctx.store_id(&self.store)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, VR>, r: Record<K, V>) -> Result<()> {
        if is_null(&self.value_null, &r.value) {
            return Ok(());
        }
        let row = if is_null(&self.key_null, &r.key) {
            if !self.left {
                return Ok(());
            }
            None
        } else {
            ctx.store_by_id::<K, VT>(self.id.expect("init ran"))?.get(&r.key)?
        };
        let Record { key, value, timestamp, headers } = r;
        match (self.joiner)(value, row) {
            Some(value) => ctx.forward(Record { key, value, timestamp, headers }),
            None => Ok(()),
        }
    }
}

/// Joins each stream record with the row of a global table under the key it selects.
struct StreamGlobalJoin<K, V, KG, VG, VR> {
    store: String,
    reader: Option<GlobalStoreReader<KG, VG>>,
    left: bool,
    select: KeySelector<K, V, KG>,
    joiner: StreamJoiner<V, VG, VR>,
    key_null: NullTest<K>,
    value_null: NullTest<V>,
    selected_null: NullTest<KG>,
}

impl<K, V, KG, VG, VR> Processor<K, V, K, VR> for StreamGlobalJoin<K, V, KG, VG, VR>
where
    K: Clone + 'static,
    V: 'static,
    KG: 'static,
    VG: 'static,
    VR: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<()> {
        self.reader = Some(ctx.global_store(&self.store)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, VR>, r: Record<K, V>) -> Result<()> {
        if is_null(&self.value_null, &r.value) || (!self.left && is_null(&self.key_null, &r.key)) {
            return Ok(());
        }
        let selected = (self.select)(&r.key, &r.value);
        let row = if is_null(&self.selected_null, &selected) {
            None
        } else {
            self.reader.as_ref().expect("init ran").get(&selected)?
        };
        let Record { key, value, timestamp, headers } = r;
        match (self.joiner)(value, row) {
            Some(value) => ctx.forward(Record { key, value, timestamp, headers }),
            None => Ok(()),
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// The inner join with `table`: each record whose key the table holds becomes
    /// `joiner(value, row)`; the others are dropped. See the module docs for nulls,
    /// co-partitioning and repartitioning.
    ///
    /// ```
    /// use rill_core::streams::serde::{OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// let regions = builder.table::<String, String>("user-regions");
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .join(&regions, |page, region| format!("{page} from {region}"))
    ///     .to("clicks-by-region");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let r = driver.create_input_topic("user-regions", StringSerde, OptionSerde(StringSerde));
    /// let clicks = driver.create_input_topic("clicks", StringSerde, StringSerde);
    /// let out = driver.create_output_topic("clicks-by-region", StringSerde, StringSerde);
    /// clicks.pipe_input_at("alice".into(), "/home".into(), 1)?; // no region yet: dropped
    /// r.pipe_input_at("alice".into(), Some("eu".into()), 2)?; // updates the table only
    /// clicks.pipe_input_at("alice".into(), "/cart".into(), 3)?;
    /// let got = out.read_records();
    /// assert_eq!(got.len(), 1);
    /// assert_eq!((got[0].value.as_str(), got[0].timestamp), ("/cart from eu", 3));
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn join<VT: Clone + 'static, VR: Clone + 'static>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.join_table(table, "KSTREAM-JOIN-", false, move |v, row| row.map(|t| joiner(v, t)))
    }

    /// The left join with `table`: every record becomes `joiner(value, row)`, `None` where the
    /// table lacks the key. See the module docs for nulls, co-partitioning and repartitioning.
    ///
    /// ```
    /// use rill_core::streams::serde::{OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// let regions = builder.table::<String, String>("user-regions");
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .left_join(&regions, |page, region| format!("{page} from {}", region.as_deref().unwrap_or("?")))
    ///     .to("clicks-by-region");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let r = driver.create_input_topic("user-regions", StringSerde, OptionSerde(StringSerde));
    /// let clicks = driver.create_input_topic("clicks", StringSerde, StringSerde);
    /// let out = driver.create_output_topic("clicks-by-region", StringSerde, StringSerde);
    /// clicks.pipe_input("alice".into(), "/home".into())?;
    /// r.pipe_input("alice".into(), Some("eu".into()))?;
    /// clicks.pipe_input("alice".into(), "/cart".into())?;
    /// assert_eq!(out.read_values(), vec!["/home from ?".to_string(), "/cart from eu".to_string()]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn left_join<VT: Clone + 'static, VR: Clone + 'static>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, Option<VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.join_table(table, "KSTREAM-LEFTJOIN-", true, move |v, row| Some(joiner(v, row)))
    }

    /// The inner join with the global table `global`: each record looks up the row under
    /// `key_selector(key, value)` and becomes `joiner(value, row)`; records finding no row are
    /// dropped. The result keeps the stream's key (and any pending repartition).
    ///
    /// ```
    /// use rill_core::streams::serde::{OptionSerde, StringSerde};
    /// use rill_dsl::{Consumed, Materialized, StreamsBuilder, TopologyTestDriver};
    ///
    /// // Orders (order id -> product id) with the product's name.
    /// let builder = StreamsBuilder::new();
    /// let products = builder.global_table_with::<String, String>(
    ///     "products",
    ///     Consumed::with(StringSerde, StringSerde),
    ///     Materialized::as_("products-store"),
    /// );
    /// builder
    ///     .stream::<String, String>("orders")
    ///     .join_global(&products, |_, product_id| product_id.clone(), |_, name| name)
    ///     .to("order-products");
    /// let built = builder.build("shop")?;
    /// assert!(built.copartition_groups.is_empty(), "a global table needs no co-partitioning");
    /// let driver = TopologyTestDriver::new(built)?;
    /// let p = driver.create_input_topic("products", StringSerde, OptionSerde(StringSerde));
    /// let orders = driver.create_input_topic("orders", StringSerde, StringSerde);
    /// let out = driver.create_output_topic("order-products", StringSerde, StringSerde);
    /// p.pipe_input("p1".into(), Some("tea".into()))?;
    /// orders.pipe_input("o1".into(), "p1".into())?;
    /// orders.pipe_input("o2".into(), "p2".into())?; // no such product: dropped
    /// assert_eq!(out.read_all(), vec![("o1".to_string(), "tea".to_string())]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn join_global<KG: Clone + 'static, VG: Clone + 'static, VR: Clone + 'static>(
        &self,
        global: &GlobalKTable<KG, VG>,
        key_selector: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(V, VG) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.join_global_table(global, "KSTREAM-JOIN-", false, key_selector, move |v, row| row.map(|g| joiner(v, g)))
    }

    /// The left join with the global table `global`: as [`join_global`](Self::join_global),
    /// but a record finding no row becomes `joiner(value, None)`.
    ///
    /// ```
    /// use rill_core::streams::serde::{OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// let products = builder.global_table::<String, String>("products");
    /// builder
    ///     .stream::<String, String>("orders")
    ///     .left_join_global(&products, |_, id| id.clone(), |id, name| name.unwrap_or(format!("unknown {id}")))
    ///     .to("order-products");
    /// let driver = TopologyTestDriver::new(builder.build("shop")?)?;
    /// let p = driver.create_input_topic("products", StringSerde, OptionSerde(StringSerde));
    /// let orders = driver.create_input_topic("orders", StringSerde, StringSerde);
    /// let out = driver.create_output_topic("order-products", StringSerde, StringSerde);
    /// p.pipe_input("p1".into(), Some("tea".into()))?;
    /// orders.pipe_input("o1".into(), "p1".into())?;
    /// orders.pipe_input("o2".into(), "p2".into())?;
    /// assert_eq!(out.read_values(), vec!["tea".to_string(), "unknown p2".to_string()]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn left_join_global<KG: Clone + 'static, VG: Clone + 'static, VR: Clone + 'static>(
        &self,
        global: &GlobalKTable<KG, VG>,
        key_selector: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(V, Option<VG>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.join_global_table(global, "KSTREAM-LEFTJOIN-", true, key_selector, move |v, row| Some(joiner(v, row)))
    }

    fn join_table<VT: Clone + 'static, VR: Clone + 'static>(
        &self,
        table: &KTable<K, VT>,
        prefix: &str,
        left: bool,
        joiner: impl Fn(V, Option<VT>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let name = self.name_for(prefix);
        let input = if self.key_changed {
            let topic = self.next_name.clone().unwrap_or_else(|| self.node.clone());
            let how = "repartition_with(Repartitioned::with(keys, values)) before the join";
            self.through_topic(&topic, &None, &None, None, how)
        } else {
            self.clone()
        };
        let store = table.ensure_store();
        let joiner: StreamJoiner<V, VT, VR> = Arc::new(joiner);
        let (key_null, value_null) = (null_test(&input.keys), null_test(&input.values));
        let mut st = self.state.borrow_mut();
        if let Some(store) = store {
            let s = store.clone();
            st.processor(&name, vec![input.node.clone()], move || StreamTableJoin::<K, V, VT, VR> {
                store: s.clone(),
                id: None,
                left,
                joiner: joiner.clone(),
                key_null: key_null.clone(),
                value_null: value_null.clone(),
                _types: PhantomData,
            });
            st.connect(&store, &name, &input.sources);
        }
        st.copartition(input.sources.iter().chain(&table.sources).cloned().collect::<Vec<TopicRef>>());
        drop(st);
        input.derive(name, input.keys.clone(), None)
    }

    fn join_global_table<KG: Clone + 'static, VG: Clone + 'static, VR: Clone + 'static>(
        &self,
        global: &GlobalKTable<KG, VG>,
        prefix: &str,
        left: bool,
        key_selector: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(V, Option<VG>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let name = self.name_for(prefix);
        let store = global.store_name().to_string();
        let select: KeySelector<K, V, KG> = Arc::new(key_selector);
        let joiner: StreamJoiner<V, VG, VR> = Arc::new(joiner);
        let (key_null, value_null) = (null_test(&self.keys), null_test(&self.values));
        let selected_null = null_test(&global.key_serde());
        self.state.borrow_mut().processor(
            &name,
            vec![self.node.clone()],
            move || StreamGlobalJoin::<K, V, KG, VG, VR> {
                store: store.clone(),
                reader: None,
                left,
                select: select.clone(),
                joiner: joiner.clone(),
                key_null: key_null.clone(),
                value_null: value_null.clone(),
                selected_null: selected_null.clone(),
            },
        );
        self.derive(name, self.keys.clone(), None)
    }
}
