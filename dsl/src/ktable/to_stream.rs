//! `to_stream`: the table's changelog as a stream.

use rill_core::streams::record::Record;

use crate::kstream::KStream;
use crate::ktable::{Change, KTable};
use crate::processors::supplier;
use crate::serdes::nullable;

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    /// Every update of the table as a record: the key and its new value, `None` for a delete
    /// (written as a null value, a tombstone).
    ///
    /// ```
    /// use rill_core::streams::serde::{OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, String>("users").to_stream().to("user-changes");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("users", StringSerde, OptionSerde(StringSerde));
    /// let out = driver.create_output_topic("user-changes", StringSerde, OptionSerde(StringSerde));
    /// input.pipe_input("u1".into(), Some("alice".into()))?;
    /// input.pipe_input("u1".into(), None)?;
    /// assert_eq!(out.read_all(), vec![("u1".to_string(), Some("alice".to_string())), ("u1".to_string(), None)]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let name = self.name_for("KTABLE-TOSTREAM-");
        self.state.borrow_mut().processor(
            &name,
            vec![self.node.clone()],
            supplier(|ctx, r: Record<K, Change<V>>| {
                ctx.forward(Record { key: r.key, value: r.value.new, timestamp: r.timestamp, headers: r.headers })
            }),
        );
        KStream {
            state: self.state.clone(),
            node: name,
            keys: self.keys.clone(),
            values: nullable(&self.values),
            sources: self.sources.clone(),
            key_changed: false,
            next_name: None,
        }
    }
}
