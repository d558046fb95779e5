//! `join`, `left_join` and `outer_join` of two tables on their key (Kafka Streams' KTable-KTable
//! equi-join): a table of joined values, updated whenever either side changes.
//!
//! Each side's changes go to a processor of its own (`KTABLE-JOINTHIS-`, `KTABLE-JOINOTHER-`;
//! `LEFT`/`OUTER` for the other kinds), which looks the key up in the other side's store and
//! forwards the [`Change`] of the result, new and old; a merge node (`KTABLE-MERGE-`) is the
//! result table. Both sides must be stored: a table that is not (a `filter` or `map_values`
//! result, another join) is materialized into a store of its own first (`KTABLE-MATERIALIZE-`),
//! where Kafka Streams would read it through its parent's store. Rill's stores keep no
//! timestamps, so each side also keeps the time of its rows' last update in a store
//! `<processor>-timestamps`: a result takes the later of its two rows' times, as in Kafka
//! Streams 2.3 and later.

use std::marker::PhantomData;
use std::sync::Arc;

use rill_core::streams::error::Result;
use rill_core::streams::processor::{Processor, ProcessorContext};
use rill_core::streams::record::Record;
use rill_core::streams::task::StoreId;

use crate::builder::TopicRef;
use crate::config::Materialized;
use crate::ktable::{Change, KTable};
use crate::nulls::{is_null, null_test, NullTest};
use crate::processors::{supplier, upsert};
use crate::serdes::{choose, default_serde, require};

/// A joiner as one side sees it: its own value and the other side's, either maybe absent; `None`
/// when the pair makes no result for this kind of join.
type SideJoiner<V, VO, VR> = Arc<dyn Fn(Option<&V>, Option<&VO>) -> Option<VR> + Send + Sync>;

/// One side of a table-table join: records the time of this side's update, looks the key up on
/// the other side and forwards the change of the joined row.
struct JoinSide<K, V, VO, VR> {
    /// The other side's values, this side's timestamps, the other side's timestamps.
    stores: [String; 3],
    ids: Option<[StoreId; 3]>,
    joiner: SideJoiner<V, VO, VR>,
    key_null: NullTest<K>,
    _types: PhantomData<fn(K, V, VO)>,
}

impl<K, V, VO, VR> Processor<K, Change<V>, K, Change<VR>> for JoinSide<K, V, VO, VR>
where
    K: Clone + 'static,
    V: Clone + 'static,
    VO: Clone + 'static,
    VR: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<()> {
        let [a, b, c] = &self.stores;
        self.ids = Some([ctx.store_id(a)?, ctx.store_id(b)?, ctx.store_id(c)?]);
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>, r: Record<K, Change<V>>) -> Result<()> {
        let [other_values, own_times, other_times] = self.ids.expect("init ran");
        // A null key joins nothing (Kafka Streams drops the record).
        if is_null(&self.key_null, &r.key) {
            return Ok(());
        }
        let times = ctx.store_by_id::<K, i64>(own_times)?;
        match r.value.new {
            Some(_) => times.put(&r.key, &r.timestamp)?,
            None => {
                times.delete(&r.key)?;
            }
        }
        let Change { new, old } = r.value;
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        let other = ctx.store_by_id::<K, VO>(other_values)?.get(&r.key)?;
        let other_time = match other {
            Some(_) => ctx.store_by_id::<K, i64>(other_times)?.get(&r.key)?.unwrap_or(-1),
            None => -1,
        };
        let change = Change {
            new: (self.joiner)(new.as_ref(), other.as_ref()),
            old: (self.joiner)(old.as_ref(), other.as_ref()),
        };
        // No result before and none now: nothing to delete (a tombstone only for a row that was).
        if change.new.is_none() && change.old.is_none() {
            return Ok(());
        }
        ctx.forward(Record { key: r.key, value: change, timestamp: r.timestamp.max(other_time), headers: r.headers })
    }
}

/// The three kinds of table-table join, by their processors' name prefixes.
#[derive(Clone, Copy)]
enum Kind {
    Inner,
    Left,
    Outer,
}

impl Kind {
    fn prefixes(self) -> (&'static str, &'static str) {
        match self {
            Kind::Inner => ("KTABLE-JOINTHIS-", "KTABLE-JOINOTHER-"),
            Kind::Left => ("KTABLE-LEFTTHIS-", "KTABLE-LEFTOTHER-"),
            Kind::Outer => ("KTABLE-OUTERTHIS-", "KTABLE-OUTEROTHER-"),
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    /// The inner join with `other` on the key: a row `joiner(value, other_value)` for every key
    /// both tables hold, updated whenever either side changes; a key leaving either side is
    /// deleted from the result (a tombstone). The result's timestamp is the later of the two
    /// rows'. Both tables must be co-partitioned (the built topology lists their topics in
    /// `copartition_groups`).
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table::<String, String>("user-names");
    /// let scores = builder.table::<String, i64>("user-scores");
    /// names.join(&scores, |name, score| format!("{name}: {score}")).to_stream().to("leaderboard");
    /// let built = builder.build("app")?;
    /// assert_eq!(built.copartition_groups.len(), 1);
    /// let driver = TopologyTestDriver::new(built)?;
    /// let n = driver.create_input_topic("user-names", StringSerde, OptionSerde(StringSerde));
    /// let s = driver.create_input_topic("user-scores", StringSerde, OptionSerde(I64Serde));
    /// let out = driver.create_output_topic("leaderboard", StringSerde, OptionSerde(StringSerde));
    /// n.pipe_input_at("u1".into(), Some("ann".into()), 10)?; // no score yet: nothing
    /// s.pipe_input_at("u1".into(), Some(7), 20)?;
    /// s.pipe_input_at("u1".into(), Some(9), 15)?;
    /// n.pipe_input_at("u1".into(), None, 30)?; // gone from one side: deleted
    /// let rows: Vec<_> = out.read_records().into_iter().map(|r| (r.value, r.timestamp)).collect();
    /// assert_eq!(rows, vec![(Some("ann: 7".to_string()), 20), (Some("ann: 9".to_string()), 15), (None, 30)]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn join<VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.join_tables(other, Kind::Inner, move |v, o| Some(joiner(v?, o?)))
    }

    /// The left join with `other` on the key: a row `joiner(value, other_value)` for every key of
    /// this table, `None` as the other value while `other` lacks the key. Updates on either side
    /// update the result; a key leaving this table is deleted from it. Timestamps and
    /// co-partitioning as in [`join`](Self::join).
    ///
    /// ```
    /// use rill_core::streams::serde::{OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table::<String, String>("users");
    /// let emails = builder.table::<String, String>("emails");
    /// users
    ///     .left_join(&emails, |user, email| format!("{user} <{}>", email.map_or("no email", |e| e.as_str())))
    ///     .to_stream()
    ///     .to("contacts");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let u = driver.create_input_topic("users", StringSerde, OptionSerde(StringSerde));
    /// let e = driver.create_input_topic("emails", StringSerde, OptionSerde(StringSerde));
    /// let out = driver.create_output_topic("contacts", StringSerde, OptionSerde(StringSerde));
    /// u.pipe_input("u1".into(), Some("ann".into()))?;
    /// e.pipe_input("u1".into(), Some("ann@example.com".into()))?;
    /// e.pipe_input("u1".into(), None)?;
    /// assert_eq!(
    ///     out.read_values(),
    ///     vec![Some("ann <no email>".to_string()), Some("ann <ann@example.com>".to_string()), Some("ann <no email>".to_string())]
    /// );
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn left_join<VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.join_tables(other, Kind::Left, move |v, o| Some(joiner(v?, o)))
    }

    /// The outer join with `other` on the key: a row `joiner(value, other_value)` for every key
    /// either table holds, `None` for the side that lacks it; a key leaving both is deleted.
    /// Timestamps and co-partitioning as in [`join`](Self::join).
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// // Stock per item across two warehouses.
    /// let builder = StreamsBuilder::new();
    /// let north = builder.table::<String, i64>("stock-north");
    /// let south = builder.table::<String, i64>("stock-south");
    /// north.outer_join(&south, |n, s| n.unwrap_or(&0) + s.unwrap_or(&0)).to_stream().to("stock-total");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let n = driver.create_input_topic("stock-north", StringSerde, OptionSerde(I64Serde));
    /// let s = driver.create_input_topic("stock-south", StringSerde, OptionSerde(I64Serde));
    /// let out = driver.create_output_topic("stock-total", StringSerde, OptionSerde(I64Serde));
    /// s.pipe_input("tea".into(), Some(5))?;
    /// n.pipe_input("tea".into(), Some(2))?;
    /// s.pipe_input("tea".into(), None)?;
    /// n.pipe_input("tea".into(), None)?;
    /// assert_eq!(out.read_values(), vec![Some(5), Some(7), Some(2), None]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn outer_join<VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.join_tables(other, Kind::Outer, move |v, o| (v.is_some() || o.is_some()).then(|| joiner(v, o)))
    }

    fn join_tables<VO: Clone + 'static, VR: Clone + 'static>(
        &self,
        other: &KTable<K, VO>,
        kind: Kind,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> Option<VR> + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let (this_prefix, other_prefix) = kind.prefixes();
        let (this_name, other_name, merge) = {
            let mut st = self.state.borrow_mut();
            match &self.next_name {
                Some(n) => (format!("{n}-join-this"), format!("{n}-join-other"), n.clone()),
                None => (st.name(None, this_prefix), st.name(None, other_prefix), st.name(None, "KTABLE-MERGE-")),
            }
        };
        let this_store = self.ensure_store();
        let other_store = other.ensure_store();
        let keys = choose(&self.keys, &other.keys);
        let key_null = null_test(&keys);
        let sources: Vec<TopicRef> = self.sources.iter().chain(&other.sources).cloned().collect();
        let (this_times, other_times) = (format!("{this_name}-timestamps"), format!("{other_name}-timestamps"));
        let joiner: SideJoiner<V, VO, VR> = Arc::new(joiner);
        let reversed: SideJoiner<VO, V, VR> = {
            let j = joiner.clone();
            Arc::new(move |o, v| j(v, o))
        };
        let mut st = self.state.borrow_mut();
        let (Some(this_store), Some(other_store)) = (this_store, other_store) else {
            // The missing serde was reported; the build fails.
            drop(st);
            return self.derive(merge, None);
        };
        st.processor(&this_name, vec![self.node.clone()], {
            let stores = [other_store.clone(), this_times.clone(), other_times.clone()];
            let key_null = key_null.clone();
            move || JoinSide::<K, V, VO, VR> {
                stores: stores.clone(),
                ids: None,
                joiner: joiner.clone(),
                key_null: key_null.clone(),
                _types: PhantomData,
            }
        });
        st.processor(&other_name, vec![other.node.clone()], {
            let stores = [this_store.clone(), other_times.clone(), this_times.clone()];
            move || JoinSide::<K, VO, V, VR> {
                stores: stores.clone(),
                ids: None,
                joiner: reversed.clone(),
                key_null: key_null.clone(),
                _types: PhantomData,
            }
        });
        st.processor(
            &merge,
            vec![this_name.clone(), other_name.clone()],
            supplier(|ctx, r: Record<K, Change<VR>>| ctx.forward(r)),
        );
        let how = "a source's Consumed::with(keys, values)";
        match require(&keys, &this_name, "key", how) {
            Ok(k) => {
                let times = default_serde::<i64>().expect("i64 has a default serde");
                for store in [&this_times, &other_times] {
                    let both = vec![this_name.clone(), other_name.clone()];
                    st.store(store, &Materialized::default(), k.clone(), times.clone(), both, sources.clone());
                }
            }
            Err(e) => st.fail(e),
        }
        st.connect(&other_store, &this_name, &self.sources);
        st.connect(&this_store, &other_name, &other.sources);
        st.copartition(sources.clone());
        drop(st);
        KTable {
            state: self.state.clone(),
            node: merge,
            store: None,
            keys,
            values: None,
            sources,
            next_name: None,
            window_close: None,
        }
    }

    /// The name of a store holding this table: its own, or a new one kept up to date by a
    /// processor after it (`KTABLE-MATERIALIZE-...`). `None` (and the build fails, saying why)
    /// if a serde to store it with is missing.
    pub(crate) fn ensure_store(&self) -> Option<String> {
        if let Some(store) = &self.store {
            return Some(store.clone());
        }
        let mut st = self.state.borrow_mut();
        let name = st.name(None, "KTABLE-MATERIALIZE-");
        let store = st.name(None, "KTABLE-MATERIALIZE-STATE-STORE-");
        let how = "a serde the DSL knows (a table read with Consumed::with, or an aggregation with Materialized::with)";
        let keys = choose(&self.keys, &None);
        let values = choose(&self.values, &None);
        match (require(&keys, &store, "key", how), require(&values, &store, "value", how)) {
            (Ok(k), Ok(v)) => {
                st.processor(&name, vec![self.node.clone()], upsert(&store, true, |_: &K, c: Change<V>, _| Ok(c.new)));
                st.store(&store, &Materialized::default(), k, v, vec![name], self.sources.clone());
                Some(store)
            }
            (Err(e), _) | (_, Err(e)) => {
                st.fail(e);
                None
            }
        }
    }
}
