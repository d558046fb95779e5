//! `map`: a new key and value for every record.

use crate::kstream::KStream;

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Replace each record's key and value with what `f` returns. The key changes, so grouping
    /// by key afterwards repartitions.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_dsl::{Produced, StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("words")
    ///     .map(|_, word| (word.len() as i64, word.to_uppercase()))
    ///     .to_with("by-length", Produced::with(I64Serde, StringSerde));
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("words", StringSerde, StringSerde);
    /// let output = driver.create_output_topic("by-length", I64Serde, StringSerde);
    /// input.pipe_input("k".into(), "rill".into())?;
    /// assert_eq!(output.read_key_value(), Some((4, "RILL".to_string())));
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn map<KR: Clone + 'static, VR: Clone + 'static>(
        &self,
        f: impl Fn(K, V) -> (KR, VR) + Send + Sync + 'static,
    ) -> KStream<KR, VR> {
        let node = self.stateless("KSTREAM-MAP-", move |ctx, r| {
            let (k, v) = f(r.key, r.value);
            ctx.forward(rill_core::streams::record::Record {
                key: k,
                value: v,
                timestamp: r.timestamp,
                headers: r.headers,
            })
        });
        let mut s = self.derive(node, None, None);
        s.key_changed = true;
        s
    }
}
