//! `merge`: one stream with the records of two.

use rill_core::streams::record::Record;

use crate::kstream::KStream;
use crate::processors::supplier;

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// The records of this stream and of `other`, interleaved as they arrive.
    ///
    /// ```
    /// use rill_core::streams::serde::StringSerde;
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// let web = builder.stream::<String, String>("web-clicks");
    /// let app = builder.stream::<String, String>("app-clicks");
    /// web.merge(&app).to("clicks");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let w = driver.create_input_topic("web-clicks", StringSerde, StringSerde);
    /// let a = driver.create_input_topic("app-clicks", StringSerde, StringSerde);
    /// let out = driver.create_output_topic("clicks", StringSerde, StringSerde);
    /// w.pipe_input("u1".into(), "home".into())?;
    /// a.pipe_input("u2".into(), "cart".into())?;
    /// assert_eq!(out.read_values(), vec!["home".to_string(), "cart".to_string()]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let name = self.name_for("KSTREAM-MERGE-");
        self.state.borrow_mut().processor(
            &name,
            vec![self.node.clone(), other.node.clone()],
            supplier(|ctx, r: Record<K, V>| ctx.forward(r)),
        );
        let keys = self.keys.clone().or_else(|| other.keys.clone());
        let values = self.values.clone().or_else(|| other.values.clone());
        let mut s = self.derive(name, keys, values);
        s.sources.extend(other.sources.iter().cloned());
        s.key_changed |= other.key_changed;
        s
    }
}
