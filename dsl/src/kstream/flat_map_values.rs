//! `flat_map_values`: zero or more new values for every record, the key untouched.

use rill_core::streams::record::Record;

use crate::kstream::KStream;

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Replace each record with one record per value `f` returns, keeping key, timestamp and
    /// headers.
    ///
    /// ```
    /// use rill_core::streams::serde::{StringSerde, UnitSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<(), String>("text-lines")
    ///     .flat_map_values(|line| line.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    ///     .to("words");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("text-lines", UnitSerde, StringSerde);
    /// let output = driver.create_output_topic("words", UnitSerde, StringSerde);
    /// input.pipe_input((), "hello rill".into())?;
    /// assert_eq!(output.read_values(), vec!["hello".to_string(), "rill".to_string()]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn flat_map_values<VR, I>(&self, f: impl Fn(V) -> I + Send + Sync + 'static) -> KStream<K, VR>
    where
        VR: Clone + 'static,
        I: IntoIterator<Item = VR>,
    {
        let node = self.stateless("KSTREAM-FLATMAPVALUES-", move |ctx, r: Record<K, V>| {
            let Record { key, value, timestamp, headers } = r;
            for value in f(value) {
                ctx.forward(Record { key: key.clone(), value, timestamp, headers: headers.clone() })?;
            }
            Ok(())
        });
        self.derive(node, self.keys.clone(), None)
    }
}
