//! `count`: the number of records per key (streams) or of rows per key (tables).

use std::sync::Arc;

use rill_core::streams::serde::I64Serde;

use crate::config::Materialized;
use crate::grouped::{KGroupedStream, KGroupedTable};
use crate::ktable::{Change, KTable};
use crate::serdes::{ArcSerde, SerdeSlot};

fn i64_serde() -> SerdeSlot<i64> {
    Some(Arc::new(I64Serde) as ArcSerde<i64>)
}

impl<K: Clone + 'static, V: Clone + 'static> KGroupedStream<K, V> {
    /// Count records per key into a table (a store with a generated name).
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_dsl::{Materialized, StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("page-views").group_by_key().count_with(Materialized::as_("views"));
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("page-views", StringSerde, StringSerde);
    /// for page in ["/a", "/b", "/a"] {
    ///     input.pipe_input(page.into(), "v".into())?;
    /// }
    /// let counts = driver.key_value_store::<String, i64>("views")?;
    /// assert_eq!(counts, vec![("/a".to_string(), 2), ("/b".to_string(), 1)]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::default())
    }

    /// [`count`](Self::count) into the store `materialized` declares.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        let prefixes = ("KSTREAM-AGGREGATE-", "KSTREAM-AGGREGATE-STATE-STORE-");
        self.aggregate_into(prefixes, materialized, i64_serde(), |_, _, n| Ok(Some(n.unwrap_or(0) + 1)))
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KGroupedTable<K, V> {
    /// Count rows per new key: +1 for a row that arrives, -1 for one that leaves or moves away
    /// (a count can reach 0; the key stays).
    ///
    /// ```
    /// use rill_core::streams::serde::{OptionSerde, StringSerde};
    /// use rill_dsl::{Materialized, StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("member-team")
    ///     .group_by(|_, team| (team.clone(), ()))
    ///     .count_with(Materialized::as_("team-sizes"));
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("member-team", StringSerde, OptionSerde(StringSerde));
    /// input.pipe_input("ann".into(), Some("red".into()))?;
    /// input.pipe_input("ben".into(), Some("red".into()))?;
    /// input.pipe_input("ann".into(), Some("blue".into()))?;
    /// let sizes = driver.key_value_store::<String, i64>("team-sizes")?;
    /// assert_eq!(sizes, vec![("blue".to_string(), 1), ("red".to_string(), 1)]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::default())
    }

    /// [`count`](Self::count) into the store `materialized` declares.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        let prefixes = ("KTABLE-AGGREGATE-", "KTABLE-AGGREGATE-STATE-STORE-");
        self.aggregate_into(prefixes, materialized, i64_serde(), |_, change: Change<V>, n| {
            let mut n = n;
            if change.old.is_some() {
                n = n.map(|n| n - 1);
            }
            if change.new.is_some() {
                n = Some(n.unwrap_or(0) + 1);
            }
            Ok(n)
        })
    }
}
