//! `to`: write the stream to a topic, fixed or chosen per record.

use std::sync::Arc;

use rill_core::streams::TopicChoice;

use crate::builder::{SinkTopic, TopicRef};
use crate::config::Produced;
use crate::kstream::KStream;
use crate::serdes::{choose, require};

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Write every record to `topic` with the serdes the stream carries (or the types'
    /// defaults).
    ///
    /// ```
    /// use rill_core::streams::serde::StringSerde;
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// driver.create_input_topic("in", StringSerde, StringSerde).pipe_input_at("k".into(), "v".into(), 42)?;
    /// let record = driver.create_output_topic("out", StringSerde, StringSerde).read_record().unwrap();
    /// assert_eq!((record.key, record.value, record.timestamp), ("k".to_string(), "v".to_string(), 42));
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn to(&self, topic: &str) {
        self.to_with(topic, Produced::default())
    }

    /// Write every record to `topic` as `produced` says (serdes, partitioner, sink name).
    pub fn to_with(&self, topic: &str, produced: Produced<K, V>) {
        self.sink(SinkTopic::Fixed(TopicRef::User(topic.to_string())), produced)
    }

    /// Write each record to the topic `choose(key, value)` names (the topics must exist).
    ///
    /// ```
    /// use rill_core::streams::serde::StringSerde;
    /// use rill_dsl::{Produced, StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("events").to_dynamic(|k, _| format!("events-{k}"), Produced::default());
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("events", StringSerde, StringSerde);
    /// input.pipe_input("eu".into(), "e1".into())?;
    /// input.pipe_input("us".into(), "e2".into())?;
    /// assert_eq!(driver.create_output_topic("events-us", StringSerde, StringSerde).read_values(), vec!["e2".to_string()]);
    /// assert_eq!(driver.create_output_topic("events-eu", StringSerde, StringSerde).read_values(), vec!["e1".to_string()]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn to_dynamic(
        &self,
        choose_topic: impl Fn(&K, &V) -> String + Send + Sync + 'static,
        produced: Produced<K, V>,
    ) {
        let chooser = TopicChoice::PerRecord(Arc::new(move |r: &rill_core::streams::record::Record<K, V>| {
            choose_topic(&r.key, &r.value)
        }));
        self.sink(SinkTopic::Chosen(chooser), produced)
    }

    fn sink(&self, topic: SinkTopic<K, V>, produced: Produced<K, V>) {
        let name = self.state.borrow_mut().name(produced.name.or_else(|| self.next_name.clone()), "KSTREAM-SINK-");
        let keys = choose(&produced.keys, &self.keys);
        let values = choose(&produced.values, &self.values);
        let how = "to_with(topic, Produced::with(keys, values))";
        let mut st = self.state.borrow_mut();
        match (require(&keys, &name, "key", how), require(&values, &name, "value", how)) {
            (Ok(k), Ok(v)) => st.sink(&name, &self.node, topic, k, v, produced.partitioner),
            (Err(e), _) | (_, Err(e)) => st.fail(e),
        }
    }
}
