//! `filter` and `filter_not`: keep the records a predicate accepts (or rejects).

use crate::kstream::KStream;

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Keep the records for which `pred` is true.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").filter(|_, amount| *amount >= 100).to("large");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("amounts", StringSerde, I64Serde);
    /// let output = driver.create_output_topic("large", StringSerde, I64Serde);
    /// for (k, v) in [("a", 5), ("b", 500), ("c", 100)] {
    ///     input.pipe_input(k.into(), v)?;
    /// }
    /// assert_eq!(output.read_all(), vec![("b".to_string(), 500), ("c".to_string(), 100)]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn filter(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        let node = self
            .stateless("KSTREAM-FILTER-", move |ctx, r| if pred(&r.key, &r.value) { ctx.forward(r) } else { Ok(()) });
        self.derive(node, self.keys.clone(), self.values.clone())
    }

    /// Keep the records for which `pred` is false.
    ///
    /// ```
    /// use rill_core::streams::serde::StringSerde;
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("lines").filter_not(|_, line| line.starts_with('#')).to("code");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("lines", StringSerde, StringSerde);
    /// let output = driver.create_output_topic("code", StringSerde, StringSerde);
    /// input.pipe_input("1".into(), "# note".into())?;
    /// input.pipe_input("2".into(), "let x = 1;".into())?;
    /// assert_eq!(output.read_all(), vec![("2".to_string(), "let x = 1;".to_string())]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn filter_not(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        let node = self
            .stateless("KSTREAM-FILTER-", move |ctx, r| if pred(&r.key, &r.value) { Ok(()) } else { ctx.forward(r) });
        self.derive(node, self.keys.clone(), self.values.clone())
    }
}
