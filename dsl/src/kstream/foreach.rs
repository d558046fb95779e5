//! `foreach`: a terminal operator calling a function on every record.

use crate::kstream::KStream;

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Call `f` on each record; nothing follows.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let total = Arc::new(Mutex::new(0));
    /// let sum = total.clone();
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").foreach(move |_, v| *sum.lock().unwrap() += v);
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("amounts", StringSerde, I64Serde);
    /// input.pipe_input("a".into(), 3)?;
    /// input.pipe_input("b".into(), 4)?;
    /// assert_eq!(*total.lock().unwrap(), 7);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        self.stateless::<K, V>("KSTREAM-FOREACH-", move |_, r| {
            f(&r.key, &r.value);
            Ok(())
        });
    }
}
