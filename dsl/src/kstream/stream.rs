//! `stream`: a [`KStream`] reading one topic, several, or every topic matching a pattern.

use rill_core::streams::error::StreamsError;

use crate::builder::{StreamsBuilder, TopicRef};
use crate::config::Consumed;
use crate::kstream::KStream;
use crate::serdes::{choose, require};

impl StreamsBuilder {
    /// A stream of `topic`, read with the default serdes of `K` and `V` (see
    /// [`default_serde`](crate::serdes::default_serde)).
    ///
    /// ```
    /// use rill_core::streams::serde::{StringSerde, UnitSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<(), String>("text-lines").to("copy");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("text-lines", UnitSerde, StringSerde);
    /// let output = driver.create_output_topic("copy", UnitSerde, StringSerde);
    /// input.pipe_input((), "hello".to_string())?;
    /// assert_eq!(output.read_value(), Some("hello".to_string()));
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn stream<K: Clone + 'static, V: Clone + 'static>(&self, topic: &str) -> KStream<K, V> {
        self.stream_with(&[topic], Consumed::default())
    }

    /// A stream of every record of `topics`, read with `consumed`'s serdes.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_dsl::{Consumed, StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream_with(&["a", "b"], Consumed::with(StringSerde, I64Serde)).to("both");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let (a, b) = (driver.create_input_topic("a", StringSerde, I64Serde), driver.create_input_topic("b", StringSerde, I64Serde));
    /// let out = driver.create_output_topic("both", StringSerde, I64Serde);
    /// a.pipe_input("x".into(), 1)?;
    /// b.pipe_input("y".into(), 2)?;
    /// assert_eq!(out.read_all(), vec![("x".to_string(), 1), ("y".to_string(), 2)]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn stream_with<K: Clone + 'static, V: Clone + 'static>(
        &self,
        topics: &[&str],
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let mut s = self.state.borrow_mut();
        let name = s.name(consumed.name, "KSTREAM-SOURCE-");
        let keys = choose(&consumed.keys, &None);
        let values = choose(&consumed.values, &None);
        let sources: Vec<TopicRef> = topics.iter().map(|t| TopicRef::User(t.to_string())).collect();
        let how = "StreamsBuilder::stream_with(topics, Consumed::with(keys, values))";
        match (require(&keys, &name, "key", how), require(&values, &name, "value", how)) {
            (Ok(k), Ok(v)) => s.source(&name, sources.clone(), k, v, consumed.extractor),
            (Err(e), _) | (_, Err(e)) => s.fail(e),
        }
        if topics.is_empty() {
            s.fail(StreamsError::Topology(format!("{name}: a stream needs at least one topic")));
        }
        drop(s);
        KStream { state: self.state.clone(), node: name, keys, values, sources, key_changed: false, next_name: None }
    }

    /// A stream of every topic whose whole name matches the regex `pattern` (Kafka's
    /// `stream(Pattern)`), read with `consumed`'s serdes. Topics created later that match join
    /// while the application runs (checked every `consumer.metadata.max.age.ms`); at start at
    /// least one must exist. Records of all matching topics with the same partition number go
    /// to one task.
    ///
    /// ```
    /// use rill_core::streams::serde::StringSerde;
    /// use rill_dsl::{Consumed, StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream_pattern("logs-.*", Consumed::with(StringSerde, StringSerde)).to("all-logs");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let web = driver.create_input_topic("logs-web", StringSerde, StringSerde);
    /// let db = driver.create_input_topic("logs-db", StringSerde, StringSerde);
    /// let out = driver.create_output_topic("all-logs", StringSerde, StringSerde);
    /// web.pipe_input("GET".into(), "/".into())?;
    /// db.pipe_input("SELECT".into(), "1".into())?;
    /// assert_eq!(out.read_values(), vec!["/".to_string(), "1".to_string()]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn stream_pattern<K: Clone + 'static, V: Clone + 'static>(
        &self,
        pattern: &str,
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let mut s = self.state.borrow_mut();
        let name = s.name(consumed.name, "KSTREAM-SOURCE-");
        let keys = choose(&consumed.keys, &None);
        let values = choose(&consumed.values, &None);
        let how = "StreamsBuilder::stream_pattern(pattern, Consumed::with(keys, values))";
        match (require(&keys, &name, "key", how), require(&values, &name, "value", how)) {
            (Ok(k), Ok(v)) => s.source_pattern(&name, pattern, k, v, consumed.extractor),
            (Err(e), _) | (_, Err(e)) => s.fail(e),
        }
        drop(s);
        // Which topics it reads is known only at run time: no co-partitioning check covers it.
        KStream {
            state: self.state.clone(),
            node: name,
            keys,
            values,
            sources: Vec::new(),
            key_changed: false,
            next_name: None,
        }
    }
}
