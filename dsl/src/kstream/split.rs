//! `split`: route each record to the first branch whose predicate accepts it.

use std::collections::BTreeMap;
use std::sync::Arc;

use rill_core::streams::record::Record;

use crate::kstream::KStream;
use crate::processors::supplier;

type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// A split under construction: add branches, then end with a default branch or none.
pub struct SplitStream<K, V> {
    stream: KStream<K, V>,
    node: String,
    prefix: String,
    branches: Vec<(String, Predicate<K, V>)>,
}

/// The branches of a split, by name (`<prefix><name>`, or `<prefix><n>` for the n-th unnamed
/// branch, `<prefix>0` for an unnamed default branch; the prefix is the split's name plus `-`).
pub struct Branches<K, V> {
    map: BTreeMap<String, KStream<K, V>>,
}

impl<K, V> Branches<K, V> {
    /// The branch named `name`.
    pub fn get(&self, name: &str) -> Option<&KStream<K, V>> {
        self.map.get(name)
    }
    /// Branch names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
    /// Every branch by name.
    pub fn into_map(self) -> BTreeMap<String, KStream<K, V>> {
        self.map
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Start splitting the stream into branches (Kafka's `split()`): each record goes to the
    /// first branch whose predicate accepts it, else to the default branch, else nowhere.
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// let branches = builder
    ///     .stream::<String, i64>("numbers")
    ///     .named("sign")
    ///     .split()
    ///     .branch_named("negative", |_, v| *v < 0)
    ///     .branch_named("zero", |_, v| *v == 0)
    ///     .default_branch_named("positive");
    /// branches.get("sign-negative").unwrap().to("negatives");
    /// branches.get("sign-positive").unwrap().to("positives");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("numbers", StringSerde, I64Serde);
    /// let neg = driver.create_output_topic("negatives", StringSerde, I64Serde);
    /// let pos = driver.create_output_topic("positives", StringSerde, I64Serde);
    /// for v in [-1, 0, 2, -3] {
    ///     input.pipe_input("k".into(), v)?;
    /// }
    /// assert_eq!(neg.read_values(), vec![-1, -3]);
    /// assert_eq!(pos.read_values(), vec![2]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn split(&self) -> SplitStream<K, V> {
        let node = self.name_for("KSTREAM-BRANCH-");
        SplitStream { stream: self.clone(), prefix: format!("{node}-"), node, branches: Vec::new() }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> SplitStream<K, V> {
    /// A branch named `<prefix><n>` (n counts branches from 1).
    pub fn branch(self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        let name = (self.branches.len() + 1).to_string();
        self.branch_named(&name, pred)
    }

    /// A branch named `<prefix><name>`.
    pub fn branch_named(mut self, name: &str, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.branches.push((format!("{}{name}", self.prefix), Arc::new(pred)));
        self
    }

    /// End with a default branch `<prefix>0` for the records no predicate accepted.
    pub fn default_branch(self) -> Branches<K, V> {
        self.finish(Some("0"))
    }

    /// End with a default branch named `<prefix><name>`.
    pub fn default_branch_named(self, name: &str) -> Branches<K, V> {
        self.finish(Some(name))
    }

    /// End without a default branch: records no predicate accepts are dropped.
    pub fn no_default_branch(self) -> Branches<K, V> {
        self.finish(None)
    }

    fn finish(self, default: Option<&str>) -> Branches<K, V> {
        let Self { stream, node, prefix, branches } = self;
        let default = default.map(|d| format!("{prefix}{d}"));
        let routes = Arc::new(branches.clone());
        let fallback = default.clone();
        let mut st = stream.state.borrow_mut();
        st.processor(
            &node,
            vec![stream.node.clone()],
            supplier(move |ctx, r| match routes.iter().find(|(_, pred)| pred(&r.key, &r.value)) {
                Some((child, _)) => ctx.forward_to(child, r),
                None => match &fallback {
                    Some(child) => ctx.forward_to(child, r),
                    None => Ok(()),
                },
            }),
        );
        let mut map = BTreeMap::new();
        for name in branches.into_iter().map(|(n, _)| n).chain(default) {
            st.processor(&name, vec![node.clone()], supplier(|ctx, r: Record<K, V>| ctx.forward(r)));
            map.insert(name.clone(), stream.derive(name, stream.keys.clone(), stream.values.clone()));
        }
        Branches { map }
    }
}
