//! `map_values`: a new value for every record, the key untouched.

use crate::kstream::KStream;

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Replace each record's value with `f(value)`; keys stay, so no repartition follows.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("words").map_values(|w| w.len() as i64).to("lengths");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("words", StringSerde, StringSerde);
    /// let output = driver.create_output_topic("lengths", StringSerde, I64Serde);
    /// input.pipe_input("a".into(), "rill".into())?;
    /// assert_eq!(output.read_key_value(), Some(("a".to_string(), 4)));
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn map_values<VR: Clone + 'static>(&self, f: impl Fn(V) -> VR + Send + Sync + 'static) -> KStream<K, VR> {
        let node = self.stateless("KSTREAM-MAPVALUES-", move |ctx, r| {
            let v = f(r.value);
            ctx.forward(rill_core::streams::record::Record {
                key: r.key,
                value: v,
                timestamp: r.timestamp,
                headers: r.headers,
            })
        });
        self.derive(node, self.keys.clone(), None)
    }

    /// [`map_values`](Self::map_values) with the key at hand (read-only).
    ///
    /// ```
    /// use rill_core::streams::serde::StringSerde;
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").map_values_with_key(|k, v| format!("{k}={v}")).to("out");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("in", StringSerde, StringSerde);
    /// let output = driver.create_output_topic("out", StringSerde, StringSerde);
    /// input.pipe_input("a".into(), "1".into())?;
    /// assert_eq!(output.read_value(), Some("a=1".to_string()));
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn map_values_with_key<VR: Clone + 'static>(
        &self,
        f: impl Fn(&K, V) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let node = self.stateless("KSTREAM-MAPVALUES-", move |ctx, r| {
            let v = f(&r.key, r.value);
            ctx.forward(rill_core::streams::record::Record {
                key: r.key,
                value: v,
                timestamp: r.timestamp,
                headers: r.headers,
            })
        });
        self.derive(node, self.keys.clone(), None)
    }
}
