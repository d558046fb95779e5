//! `flat_map`: zero or more new records, with new keys, for every record.

use rill_core::streams::record::Record;

use crate::kstream::KStream;

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Replace each record with the records `f` returns (same timestamp and headers). Keys
    /// change, so grouping by key afterwards repartitions.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("sentences")
    ///     .flat_map(|_, s| s.split_whitespace().map(|w| (w.to_string(), w.len() as i64)).collect::<Vec<_>>())
    ///     .to("word-lengths");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("sentences", StringSerde, StringSerde);
    /// let output = driver.create_output_topic("word-lengths", StringSerde, I64Serde);
    /// input.pipe_input("s1".into(), "to be".into())?;
    /// assert_eq!(output.read_all(), vec![("to".to_string(), 2), ("be".to_string(), 2)]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn flat_map<KR, VR, I>(&self, f: impl Fn(K, V) -> I + Send + Sync + 'static) -> KStream<KR, VR>
    where
        KR: Clone + 'static,
        VR: Clone + 'static,
        I: IntoIterator<Item = (KR, VR)>,
    {
        let node = self.stateless("KSTREAM-FLATMAP-", move |ctx, r: Record<K, V>| {
            for (key, value) in f(r.key, r.value) {
                ctx.forward(Record { key, value, timestamp: r.timestamp, headers: r.headers.clone() })?;
            }
            Ok(())
        });
        let mut s = self.derive(node, None, None);
        s.key_changed = true;
        s
    }
}
