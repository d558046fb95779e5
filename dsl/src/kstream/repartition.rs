//! `repartition`: send the stream through an internal topic, partitioned by its current key.

use crate::builder::TopicRef;
use crate::config::Repartitioned;
use crate::kstream::KStream;
use crate::serdes::{choose, require};

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Repartition by the current key through `<application.id>-<name>-repartition`
    /// (`KSTREAM-REPARTITION-0000000001` unless named), with as many partitions as the inputs.
    ///
    /// ```
    /// use rill_core::streams::serde::StringSerde;
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver, Repartitioned};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("orders")
    ///     .select_key(|_, v| v.clone())
    ///     .repartition_with(Repartitioned::named("by-item").with_partitions(6))
    ///     .to("orders-by-item");
    /// let built = builder.build("shop")?;
    /// assert_eq!(built.repartition_topics().collect::<Vec<_>>(), vec!["shop-by-item-repartition"]);
    /// let driver = TopologyTestDriver::new(built)?;
    /// let input = driver.create_input_topic("orders", StringSerde, StringSerde);
    /// let out = driver.create_output_topic("orders-by-item", StringSerde, StringSerde);
    /// input.pipe_input("o1".into(), "tea".into())?;
    /// assert_eq!(out.read_key_value(), Some(("tea".to_string(), "tea".to_string())));
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn repartition(&self) -> KStream<K, V> {
        self.repartition_with(Repartitioned::default())
    }

    /// [`repartition`](Self::repartition) with a name, a partition count or serdes.
    pub fn repartition_with(&self, r: Repartitioned<K, V>) -> KStream<K, V> {
        let name = self.state.borrow_mut().name(r.name.or_else(|| self.next_name.clone()), "KSTREAM-REPARTITION-");
        self.through_topic(&name, &r.keys, &r.values, r.partitions, "Repartitioned::with(keys, values)")
    }

    /// Send the stream through `<application.id>-<name>-repartition`.
    pub(crate) fn through_topic(
        &self,
        name: &str,
        keys: &crate::serdes::SerdeSlot<K>,
        values: &crate::serdes::SerdeSlot<V>,
        partitions: Option<i32>,
        how: &str,
    ) -> KStream<K, V> {
        let keys = choose(keys, &self.keys);
        let values = choose(values, &self.values);
        let mut st = self.state.borrow_mut();
        let op = format!("repartition {name}");
        let node = match (require(&keys, &op, "key", how), require(&values, &op, "value", how)) {
            (Ok(k), Ok(v)) => st.repartition(&self.node, name, k, v, partitions, self.sources.clone()),
            (Err(e), _) | (_, Err(e)) => {
                st.fail(e);
                self.node.clone()
            }
        };
        drop(st);
        let mut s = self.derive(node, keys, values);
        s.sources = vec![TopicRef::Repartition(name.to_string())];
        s.key_changed = false;
        s
    }
}
