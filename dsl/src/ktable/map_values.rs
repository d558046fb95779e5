//! `map_values` on a table: a new value for every row.

use rill_core::streams::record::Record;

use crate::ktable::{Change, KTable};
use crate::processors::supplier;

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    /// A table of `f(value)` per row; deletes stay deletes.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, String>("names").map_values(|n| n.len() as i64).to_stream().to("name-lengths");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("names", StringSerde, OptionSerde(StringSerde));
    /// let out = driver.create_output_topic("name-lengths", StringSerde, OptionSerde(I64Serde));
    /// input.pipe_input("u1".into(), Some("alice".into()))?;
    /// input.pipe_input("u1".into(), None)?;
    /// assert_eq!(out.read_values(), vec![Some(5), None]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn map_values<VR: Clone + 'static>(&self, f: impl Fn(&V) -> VR + Send + Sync + 'static) -> KTable<K, VR> {
        let name = self.name_for("KTABLE-MAPVALUES-");
        self.state.borrow_mut().processor(
            &name,
            vec![self.node.clone()],
            supplier(move |ctx, r: Record<K, Change<V>>| {
                let value = Change { new: r.value.new.as_ref().map(&f), old: r.value.old.as_ref().map(&f) };
                ctx.forward(Record { key: r.key, value, timestamp: r.timestamp, headers: r.headers })
            }),
        );
        self.derive(name, None)
    }
}
