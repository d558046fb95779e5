//! `table`: a [`KTable`] of a topic, materialized in a store.

use crate::builder::{StreamsBuilder, TopicRef};
use crate::config::{Consumed, Materialized};
use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::processors::upsert;
use crate::serdes::{choose, nullable, require};

impl StreamsBuilder {
    /// A table of `topic` (a changelog: the latest value per key; a null value deletes the key),
    /// with the default serdes of `K` and `V` and a store named `<topic>-STATE-STORE-<n>`.
    ///
    /// ```
    /// use rill_core::streams::serde::{OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table::<String, String>("users");
    /// let store = users.store_name().unwrap().to_string();
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("users", StringSerde, OptionSerde(StringSerde));
    /// input.pipe_input("u1".into(), Some("alice".into()))?;
    /// input.pipe_input("u2".into(), Some("bob".into()))?;
    /// input.pipe_input("u1".into(), None)?; // tombstone
    /// assert_eq!(driver.key_value_store::<String, String>(&store)?, vec![("u2".to_string(), "bob".to_string())]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn table<K: Clone + 'static, V: Clone + 'static>(&self, topic: &str) -> KTable<K, V> {
        self.table_with(topic, Consumed::default(), Materialized::default())
    }

    /// A table of `topic` read with `consumed`'s serdes into the store `materialized` declares.
    pub fn table_with<K: Clone + 'static, V: Clone + 'static>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let mut st = self.state.borrow_mut();
        let source = st.name(consumed.name, "KSTREAM-SOURCE-");
        let node = st.name(None, "KTABLE-SOURCE-");
        let store = st.name(materialized.name.clone(), &format!("{topic}-STATE-STORE-"));
        let keys = choose(&consumed.keys, &materialized.keys);
        let values = choose(&consumed.values, &materialized.values);
        let sources = vec![TopicRef::User(topic.to_string())];
        let how = "table_with(topic, Consumed::with(keys, values), ..)";
        match (require(&keys, &source, "key", how), require(&nullable(&values), &source, "value", how)) {
            (Ok(k), Ok(v)) => {
                st.source::<K, Option<V>>(&source, sources.clone(), k.clone(), v, consumed.extractor);
                st.processor(&node, vec![source.clone()], upsert(&store, true, |_: &K, v: Option<V>, _| Ok(v)));
                let plain = values.clone().expect("required above");
                st.store(&store, &materialized, k, plain, vec![node.clone()], sources.clone());
            }
            (Err(e), _) | (_, Err(e)) => st.fail(e),
        }
        drop(st);
        let stream: KStream<K, V> = KStream {
            state: self.state.clone(),
            node: source,
            keys: None,
            values: None,
            sources,
            key_changed: false,
            next_name: None,
        };
        KTable::new(&stream, node, Some(store), keys, values)
    }
}
