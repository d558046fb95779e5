//! `to_table`: read the stream as a changelog, each record the latest value of its key.

use crate::config::Materialized;
use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::processors::upsert;
use crate::serdes::{choose, require};

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// A table of the latest value per key, in a store (generated name; see
    /// [`to_table_with`](Self::to_table_with)). After a key change the stream is repartitioned
    /// first.
    ///
    /// ```
    /// use rill_core::streams::serde::{OptionSerde, StringSerde};
    /// use rill_dsl::{Materialized, StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("locations")
    ///     .to_table_with(Materialized::as_("latest-location"))
    ///     .to_stream()
    ///     .to("location-updates");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("locations", StringSerde, StringSerde);
    /// input.pipe_input("alice".into(), "paris".into())?;
    /// input.pipe_input("alice".into(), "rome".into())?;
    /// let store = driver.key_value_store::<String, String>("latest-location")?;
    /// assert_eq!(store, vec![("alice".to_string(), "rome".to_string())]);
    /// let out = driver.create_output_topic("location-updates", StringSerde, OptionSerde(StringSerde));
    /// assert_eq!(out.read_values(), vec![Some("paris".to_string()), Some("rome".to_string())]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn to_table(&self) -> KTable<K, V> {
        self.to_table_with(Materialized::default())
    }

    /// [`to_table`](Self::to_table) with the store `materialized` declares.
    pub fn to_table_with(&self, materialized: Materialized<K, V>) -> KTable<K, V> {
        let name = self.name_for("KSTREAM-TOTABLE-");
        let store = self.state.borrow_mut().name(materialized.name.clone(), "KSTREAM-TOTABLE-STATE-STORE-");
        let input = if self.key_changed {
            self.through_topic(
                &store,
                &materialized.keys,
                &materialized.values,
                None,
                "Materialized::with(keys, values)",
            )
        } else {
            self.clone()
        };
        let keys = choose(&materialized.keys, &input.keys);
        let values = choose(&materialized.values, &input.values);
        let how = "to_table_with(Materialized::with(keys, values))";
        let mut st = self.state.borrow_mut();
        st.processor(&name, vec![input.node.clone()], upsert(&store, false, |_: &K, v: V, _| Ok(Some(v))));
        match (require(&keys, &store, "key", how), require(&values, &store, "value", how)) {
            (Ok(k), Ok(v)) => st.store(&store, &materialized, k, v, vec![name.clone()], input.sources.clone()),
            (Err(e), _) | (_, Err(e)) => st.fail(e),
        }
        drop(st);
        KTable::new(&input, name, Some(store), keys, values)
    }
}
