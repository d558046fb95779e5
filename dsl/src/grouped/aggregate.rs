//! `aggregate`: fold the values per key into an aggregate of another type.

use std::sync::Arc;

use crate::config::Materialized;
use crate::grouped::{KGroupedStream, KGroupedTable};
use crate::ktable::{Change, KTable};
use crate::serdes::SerdeSlot;

impl<K: Clone + 'static, V: Clone + 'static> KGroupedStream<K, V> {
    /// Fold each key's values into an aggregate, starting from `init()`: `add(key, value, aggregate)`.
    /// The store needs a serde for `VR` (its default, or [`Materialized::with`]).
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_dsl::{Materialized, StreamsBuilder, TopologyTestDriver};
    ///
    /// // Total characters typed per user.
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("messages")
    ///     .group_by_key()
    ///     .aggregate_with(|| 0i64, |_, msg, total| total + msg.len() as i64, Materialized::as_("chars"));
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("messages", StringSerde, StringSerde);
    /// input.pipe_input("ann".into(), "hi".into())?;
    /// input.pipe_input("ann".into(), "hello".into())?;
    /// assert_eq!(driver.key_value_store::<String, i64>("chars")?, vec![("ann".to_string(), 7)]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn aggregate<VR: Clone + 'static>(
        &self,
        init: impl Fn() -> VR + Send + Sync + 'static,
        add: impl Fn(&K, V, VR) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.aggregate_with(init, add, Materialized::default())
    }

    /// [`aggregate`](Self::aggregate) into the store `materialized` declares.
    pub fn aggregate_with<VR: Clone + 'static>(
        &self,
        init: impl Fn() -> VR + Send + Sync + 'static,
        add: impl Fn(&K, V, VR) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let prefixes = ("KSTREAM-AGGREGATE-", "KSTREAM-AGGREGATE-STATE-STORE-");
        let none: SerdeSlot<VR> = None;
        self.aggregate_into(prefixes, materialized, none, move |k, v, agg| {
            Ok(Some(add(k, v, agg.unwrap_or_else(&init))))
        })
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KGroupedTable<K, V> {
    /// Fold each key's rows into an aggregate, starting from `init()`: `add(key, value, agg)` for
    /// a row that arrives, `subtract(key, value, agg)` for one that leaves.
    ///
    /// ```
    /// use rill_core::streams::serde::{OptionSerde, StringSerde};
    /// use rill_dsl::{Materialized, StreamsBuilder, TopologyTestDriver};
    ///
    /// // The members of each team as a comma-separated list, from member -> team.
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("member-team")
    ///     .group_by(|member, team| (team.clone(), member.clone()))
    ///     .aggregate_with(
    ///         String::new,
    ///         |_, m, list| if list.is_empty() { m } else { format!("{list},{m}") },
    ///         |_, m, list| list.split(',').filter(|x| *x != m).collect::<Vec<_>>().join(","),
    ///         Materialized::as_("teams"),
    ///     );
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("member-team", StringSerde, OptionSerde(StringSerde));
    /// input.pipe_input("ann".into(), Some("red".into()))?;
    /// input.pipe_input("ben".into(), Some("red".into()))?;
    /// input.pipe_input("ann".into(), None)?;
    /// assert_eq!(driver.key_value_store::<String, String>("teams")?, vec![("red".to_string(), "ben".to_string())]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn aggregate<VR: Clone + 'static>(
        &self,
        init: impl Fn() -> VR + Send + Sync + 'static,
        add: impl Fn(&K, V, VR) -> VR + Send + Sync + 'static,
        subtract: impl Fn(&K, V, VR) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.aggregate_with(init, add, subtract, Materialized::default())
    }

    /// [`aggregate`](Self::aggregate) into the store `materialized` declares.
    pub fn aggregate_with<VR: Clone + 'static>(
        &self,
        init: impl Fn() -> VR + Send + Sync + 'static,
        add: impl Fn(&K, V, VR) -> VR + Send + Sync + 'static,
        subtract: impl Fn(&K, V, VR) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let prefixes = ("KTABLE-AGGREGATE-", "KTABLE-AGGREGATE-STATE-STORE-");
        let none: SerdeSlot<VR> = None;
        let (add, subtract) = (Arc::new(add), Arc::new(subtract));
        self.aggregate_into(prefixes, materialized, none, move |k, change: Change<V>, agg| {
            let agg = match (change.old, agg) {
                (Some(old), Some(agg)) => Some(subtract(k, old, agg)),
                (_, agg) => agg,
            };
            Ok(match change.new {
                Some(new) => Some(add(k, new, agg.unwrap_or_else(&init))),
                None => agg,
            })
        })
    }
}
