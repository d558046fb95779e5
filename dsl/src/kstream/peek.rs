//! `peek`: look at every record as it passes.

use crate::kstream::KStream;

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Call `f` on each record and pass it on unchanged (logging, metrics).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use rill_core::streams::serde::StringSerde;
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").peek(move |k, _| log.lock().unwrap().push(k.clone())).to("out");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("in", StringSerde, StringSerde);
    /// let output = driver.create_output_topic("out", StringSerde, StringSerde);
    /// input.pipe_input("a".into(), "1".into())?;
    /// assert_eq!(*seen.lock().unwrap(), vec!["a".to_string()]);
    /// assert_eq!(output.read_value(), Some("1".to_string()));
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let node = self.stateless("KSTREAM-PEEK-", move |ctx, r| {
            f(&r.key, &r.value);
            ctx.forward(r)
        });
        self.derive(node, self.keys.clone(), self.values.clone())
    }
}
