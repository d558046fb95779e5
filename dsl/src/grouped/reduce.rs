//! `reduce`: combine the values per key with a function of the same type.

use std::sync::Arc;

use crate::config::Materialized;
use crate::grouped::{KGroupedStream, KGroupedTable};
use crate::ktable::{Change, KTable};

impl<K: Clone + 'static, V: Clone + 'static> KGroupedStream<K, V> {
    /// Combine each key's values: the first is kept as is, each later one is `f(aggregate, value)`.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("bids").group_by_key().reduce(|best, bid| best.max(bid)).to_stream().to("best-bids");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("bids", StringSerde, I64Serde);
    /// let out = driver.create_output_topic("best-bids", StringSerde, OptionSerde(I64Serde));
    /// for bid in [5, 9, 7] {
    ///     input.pipe_input("lot-1".into(), bid)?;
    /// }
    /// assert_eq!(out.read_values(), vec![Some(5), Some(9), Some(9)]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn reduce(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V> {
        self.reduce_with(f, Materialized::default())
    }

    /// [`reduce`](Self::reduce) into the store `materialized` declares.
    pub fn reduce_with(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let prefixes = ("KSTREAM-REDUCE-", "KSTREAM-REDUCE-STATE-STORE-");
        let carried = self.values.clone();
        self.aggregate_into(prefixes, materialized, carried, move |_, v, agg| {
            Ok(Some(match agg {
                None => v,
                Some(agg) => f(agg, v),
            }))
        })
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KGroupedTable<K, V> {
    /// Combine each key's rows: `adder(aggregate, value)` for a row that arrives,
    /// `subtractor(aggregate, value)` for one that leaves (first the subtraction, then the
    /// addition, when a row changes). The first row is kept as is.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// // Total balance per region, from a table account -> (region, balance).
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("accounts")
    ///     .group_by(|_, v| {
    ///         let (region, balance) = v.split_once(':').unwrap();
    ///         (region.to_string(), balance.parse::<i64>().unwrap())
    ///     })
    ///     .reduce(|a, b| a + b, |a, b| a - b)
    ///     .to_stream()
    ///     .to("region-totals");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("accounts", StringSerde, OptionSerde(StringSerde));
    /// let out = driver.create_output_topic("region-totals", StringSerde, OptionSerde(I64Serde));
    /// input.pipe_input("acc1".into(), Some("eu:100".into()))?;
    /// input.pipe_input("acc2".into(), Some("eu:50".into()))?;
    /// input.pipe_input("acc1".into(), Some("eu:70".into()))?; // -100 then +70
    /// assert_eq!(out.read_values(), vec![Some(100), Some(150), Some(50), Some(120)]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn reduce(
        &self,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.reduce_with(adder, subtractor, Materialized::default())
    }

    /// [`reduce`](Self::reduce) into the store `materialized` declares.
    pub fn reduce_with(
        &self,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let prefixes = ("KTABLE-REDUCE-", "KTABLE-REDUCE-STATE-STORE-");
        let carried = self.values.clone();
        let (adder, subtractor) = (Arc::new(adder), Arc::new(subtractor));
        self.aggregate_into(prefixes, materialized, carried, move |_, change: Change<V>, agg| {
            let agg = match (change.old, agg) {
                (Some(old), Some(agg)) => Some(subtractor(agg, old)),
                (_, agg) => agg,
            };
            Ok(match change.new {
                Some(new) => Some(match agg {
                    None => new,
                    Some(agg) => adder(agg, new),
                }),
                None => agg,
            })
        })
    }
}
