//! `select_key`: a new key for every record, the value untouched.

use crate::kstream::KStream;

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Re-key each record with `f(key, value)`. Grouping by key afterwards repartitions.
    ///
    /// ```
    /// use rill_core::streams::serde::StringSerde;
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("orders").select_key(|_, order| order.split(':').next().unwrap().to_string()).to("by-customer");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("orders", StringSerde, StringSerde);
    /// let output = driver.create_output_topic("by-customer", StringSerde, StringSerde);
    /// input.pipe_input("o1".into(), "alice:tea".into())?;
    /// assert_eq!(output.read_key_value(), Some(("alice".to_string(), "alice:tea".to_string())));
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn select_key<KR: Clone + 'static>(&self, f: impl Fn(&K, &V) -> KR + Send + Sync + 'static) -> KStream<KR, V> {
        let node = self.stateless("KSTREAM-KEY-SELECT-", move |ctx, r| {
            let key = f(&r.key, &r.value);
            ctx.forward(r.with_key(key))
        });
        let mut s = self.derive(node, None, self.values.clone());
        s.key_changed = true;
        s
    }
}
