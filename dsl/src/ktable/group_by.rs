//! `group_by` on a table: re-group rows by a new key, for aggregations that add new rows and
//! subtract replaced ones.

use rill_core::streams::record::Record;

use crate::config::Grouped;
use crate::grouped::KGroupedTable;
use crate::ktable::{Change, KTable};
use crate::processors::supplier;
use crate::serdes::choose;

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    /// Re-group the rows by the `(key, value)` pair `f` maps each to. Each update of a row
    /// sends the old row's pair to be subtracted, then the new one's to be added (through a
    /// repartition topic), so the aggregate always reflects the table's current rows.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// // Users per city, from a table user -> city.
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("user-city")
    ///     .group_by(|_user, city| (city.clone(), 1i64))
    ///     .count()
    ///     .to_stream()
    ///     .to("users-per-city");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("user-city", StringSerde, OptionSerde(StringSerde));
    /// let out = driver.create_output_topic("users-per-city", StringSerde, OptionSerde(I64Serde));
    /// input.pipe_input("alice".into(), Some("paris".into()))?;
    /// input.pipe_input("bob".into(), Some("paris".into()))?;
    /// input.pipe_input("alice".into(), Some("rome".into()))?; // moves: paris -1, rome +1
    /// input.pipe_input("bob".into(), None)?; // leaves: paris -1
    /// let s = |c: &str, n| (c.to_string(), Some(n));
    /// assert_eq!(out.read_all(), vec![s("paris", 1), s("paris", 2), s("paris", 1), s("rome", 1), s("paris", 0)]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn group_by<KR: Clone + 'static, VR: Clone + 'static>(
        &self,
        f: impl Fn(&K, &V) -> (KR, VR) + Send + Sync + 'static,
    ) -> KGroupedTable<KR, VR> {
        self.group_by_with(f, Grouped::default())
    }

    /// [`group_by`](Self::group_by) with the repartition topic's serdes and name.
    pub fn group_by_with<KR: Clone + 'static, VR: Clone + 'static>(
        &self,
        f: impl Fn(&K, &V) -> (KR, VR) + Send + Sync + 'static,
        grouped: Grouped<KR, VR>,
    ) -> KGroupedTable<KR, VR> {
        let name = self.state.borrow_mut().name(None, "KTABLE-SELECT-");
        self.state.borrow_mut().processor(
            &name,
            vec![self.node.clone()],
            supplier(move |ctx, r: Record<K, Change<V>>| {
                let Record { key, value, timestamp, headers } = r;
                if let Some(old) = &value.old {
                    let (k, v) = f(&key, old);
                    let change = Change { new: None, old: Some(v) };
                    ctx.forward(Record { key: k, value: change, timestamp, headers: headers.clone() })?;
                }
                if let Some(new) = &value.new {
                    let (k, v) = f(&key, new);
                    ctx.forward(Record { key: k, value: Change { new: Some(v), old: None }, timestamp, headers })?;
                }
                Ok(())
            }),
        );
        KGroupedTable {
            state: self.state.clone(),
            node: name,
            sources: self.sources.clone(),
            name: grouped.name.or_else(|| self.next_name.clone()),
            keys: choose(&grouped.keys, &None),
            values: choose(&grouped.values, &None),
        }
    }
}
