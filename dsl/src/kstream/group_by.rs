//! `group_by_key` and `group_by`: group a stream for aggregation.

use crate::config::Grouped;
use crate::grouped::KGroupedStream;
use crate::kstream::KStream;
use crate::serdes::choose;

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Group by the current key. If an operator changed the key since the stream was read, the
    /// aggregation repartitions first.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key().count().to_stream().to("clicks-per-user");
    /// let built = builder.build("app")?;
    /// assert_eq!(built.repartition_topics().count(), 0, "keys unchanged: no repartition");
    /// let driver = TopologyTestDriver::new(built)?;
    /// let input = driver.create_input_topic("clicks", StringSerde, StringSerde);
    /// let out = driver.create_output_topic("clicks-per-user", StringSerde, OptionSerde(I64Serde));
    /// input.pipe_input("alice".into(), "/home".into())?;
    /// input.pipe_input("alice".into(), "/cart".into())?;
    /// assert_eq!(out.read_values(), vec![Some(1), Some(2)]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn group_by_key(&self) -> KGroupedStream<K, V> {
        self.group_by_key_with(Grouped::default())
    }

    /// [`group_by_key`](Self::group_by_key) with the repartition topic's serdes and name.
    pub fn group_by_key_with(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.clone(),
            repartition: self.key_changed,
            name: grouped.name.or_else(|| self.next_name.clone()),
            keys: choose(&grouped.keys, &self.keys),
            values: choose(&grouped.values, &self.values),
        }
    }

    /// Group by the key `f` picks; the aggregation repartitions through
    /// `<application.id>-<name>-repartition`.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
    /// use rill_dsl::{Grouped, StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("orders")
    ///     .group_by_with(|_, item| item.clone(), Grouped::named("by-item"))
    ///     .count()
    ///     .to_stream()
    ///     .to("orders-per-item");
    /// let built = builder.build("shop")?;
    /// assert_eq!(built.repartition_topics().collect::<Vec<_>>(), vec!["shop-by-item-repartition"]);
    /// let driver = TopologyTestDriver::new(built)?;
    /// let input = driver.create_input_topic("orders", StringSerde, StringSerde);
    /// let out = driver.create_output_topic("orders-per-item", StringSerde, OptionSerde(I64Serde));
    /// input.pipe_input("o1".into(), "tea".into())?;
    /// input.pipe_input("o2".into(), "tea".into())?;
    /// assert_eq!(out.read_all(), vec![("tea".to_string(), Some(1)), ("tea".to_string(), Some(2))]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn group_by<KR: Clone + 'static>(
        &self,
        f: impl Fn(&K, &V) -> KR + Send + Sync + 'static,
    ) -> KGroupedStream<KR, V> {
        self.group_by_with(f, Grouped::default())
    }

    /// [`group_by`](Self::group_by) with the repartition topic's serdes and name.
    pub fn group_by_with<KR: Clone + 'static>(
        &self,
        f: impl Fn(&K, &V) -> KR + Send + Sync + 'static,
        grouped: Grouped<KR, V>,
    ) -> KGroupedStream<KR, V> {
        let name = grouped.name.or_else(|| self.next_name.clone());
        let selected = self.named_opt(None).select_key(f);
        KGroupedStream {
            repartition: true,
            name,
            keys: choose(&grouped.keys, &None),
            values: choose(&grouped.values, &self.values),
            stream: selected,
        }
    }

    fn named_opt(&self, name: Option<String>) -> Self {
        Self { next_name: name, ..self.clone() }
    }
}
