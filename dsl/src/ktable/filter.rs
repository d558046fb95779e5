//! `filter` on a table: keep the rows a predicate accepts; the others read as deleted.

use rill_core::streams::record::Record;

use crate::ktable::{Change, KTable};
use crate::processors::supplier;

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    /// A table of the rows for which `pred` is true. A row that stops matching is deleted
    /// (a `None` new value downstream); a change between two rejected values sends nothing.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("balances").filter(|_, b| *b < 0).to_stream().to("overdrawn");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("balances", StringSerde, OptionSerde(I64Serde));
    /// let out = driver.create_output_topic("overdrawn", StringSerde, OptionSerde(I64Serde));
    /// input.pipe_input("a".into(), Some(10))?; // never matched: nothing
    /// input.pipe_input("a".into(), Some(-5))?; // now matches
    /// input.pipe_input("a".into(), Some(3))?; // no longer: a tombstone
    /// assert_eq!(out.read_values(), vec![Some(-5), None]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn filter(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        self.filter_impl(move |k, v| pred(k, v))
    }

    /// A table of the rows for which `pred` is false.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock").filter_not(|_, n| *n == 0).to_stream().to("in-stock");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("stock", StringSerde, OptionSerde(I64Serde));
    /// let out = driver.create_output_topic("in-stock", StringSerde, OptionSerde(I64Serde));
    /// input.pipe_input("tea".into(), Some(3))?;
    /// input.pipe_input("tea".into(), Some(0))?;
    /// assert_eq!(out.read_values(), vec![Some(3), None]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn filter_not(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        self.filter_impl(move |k, v| !pred(k, v))
    }

    fn filter_impl(&self, keep: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        let name = self.name_for("KTABLE-FILTER-");
        self.state.borrow_mut().processor(
            &name,
            vec![self.node.clone()],
            supplier(move |ctx, r: Record<K, Change<V>>| {
                let new = r.value.new.filter(|v| keep(&r.key, v));
                let old = r.value.old.filter(|v| keep(&r.key, v));
                if new.is_none() && old.is_none() {
                    return Ok(());
                }
                ctx.forward(Record {
                    key: r.key,
                    value: Change { new, old },
                    timestamp: r.timestamp,
                    headers: r.headers,
                })
            }),
        );
        self.derive(name, self.values.clone())
    }
}
