//! `process`: a processor of the Processor API inside a DSL program, with access to stores.

use rill_core::streams::processor::Processor;

use crate::builder::StreamsBuilder;
use crate::config::Materialized;
use crate::kstream::KStream;
use crate::serdes::require;

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Run a [`Processor`] made by `supplier` (once per task) on every record; it may use the
    /// stores named in `stores` (declared with [`StreamsBuilder::add_state_store`]) and forwards
    /// what it wants.
    ///
    /// ```
    /// use rill_core::streams::error::Result;
    /// use rill_core::streams::processor::{Processor, ProcessorContext};
    /// use rill_core::streams::record::Record;
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_dsl::{Materialized, StreamsBuilder, TopologyTestDriver};
    ///
    /// /// Emits each key's running total.
    /// struct Total;
    /// impl Processor<String, i64, String, i64> for Total {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, i64>) -> Result<()> {
    ///         let store = ctx.store::<String, i64>("totals")?;
    ///         let total = store.get(&r.key)?.unwrap_or(0) + r.value;
    ///         store.put(&r.key, &total)?;
    ///         ctx.forward(r.with_value(total))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.add_state_store(Materialized::<String, i64>::as_("totals"));
    /// builder.stream::<String, i64>("amounts").process(|| Total, &["totals"]).to("totals-out");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("amounts", StringSerde, I64Serde);
    /// let out = driver.create_output_topic("totals-out", StringSerde, I64Serde);
    /// input.pipe_input("a".into(), 2)?;
    /// input.pipe_input("a".into(), 3)?;
    /// assert_eq!(out.read_values(), vec![2, 5]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn process<KO, VO, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<KO, VO>
    where
        KO: Clone + 'static,
        VO: Clone + 'static,
        P: Processor<K, V, KO, VO>,
    {
        let name = self.name_for("KSTREAM-PROCESSOR-");
        let mut st = self.state.borrow_mut();
        st.processor(&name, vec![self.node.clone()], supplier);
        for store in stores {
            st.connect(store, &name, &self.sources);
        }
        drop(st);
        let mut s = self.derive(name, None, None);
        s.key_changed = true;
        s
    }
}

impl StreamsBuilder {
    /// Declare a key-value store for [`KStream::process`]; `materialized` must name it and give
    /// serdes unless `K` and `V` have defaults.
    pub fn add_state_store<K: 'static, V: 'static>(&self, materialized: Materialized<K, V>) {
        let mut st = self.state.borrow_mut();
        let Some(name) = materialized.name.clone() else {
            st.fail(rill_core::streams::error::StreamsError::Topology(
                "add_state_store: the store needs a name (Materialized::as_)".into(),
            ));
            return;
        };
        let keys = materialized.keys.clone().or_else(crate::serdes::default_serde::<K>);
        let values = materialized.values.clone().or_else(crate::serdes::default_serde::<V>);
        let how = "Materialized::as_(name).with_key_serde(..).with_value_serde(..)";
        match (require(&keys, &name, "key", how), require(&values, &name, "value", how)) {
            (Ok(k), Ok(v)) => st.store(&name, &materialized, k, v, Vec::new(), Vec::new()),
            (Err(e), _) | (_, Err(e)) => st.fail(e),
        }
    }
}
