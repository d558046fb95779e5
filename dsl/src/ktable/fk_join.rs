//! `join_fk` and `left_join_fk`: a table joined with another on a foreign key extracted from
//! each of its values (Kafka Streams' KTable-KTable foreign-key join, KIP-213). Orders joined
//! with the product each names, say: many left rows per right row, and the two tables need not
//! be co-partitioned.
//!
//! How it runs (Kafka Streams' design): each left change sends a subscription keyed by the
//! foreign key through `<application.id>-<name>-subscription-registration-topic`
//! (co-partitioned with the right table) carrying the left key, a hash of the left value and an
//! instruction; a row whose foreign key moved also unsubscribes from the old one. The right
//! side keeps the subscriptions in `<name>-subscription-store` (keyed by foreign key, then left
//! key) and answers each with its current row, and every subscriber whenever a row changes,
//! through `<application.id>-<name>-subscription-response-topic` (co-partitioned with the left
//! table; an answer goes to the partition that subscribed). The left side applies an answer
//! only while the hash still matches its current value: an answer to an older value is dropped,
//! since the newer value's answer is on its way, so results are right whatever order answers
//! come back in. Results are kept in a store, so the result table's updates carry old and new
//! values like the other table joins'; a tombstone is sent only for a key that had a result
//! (Kafka Streams may also send one for a key that never joined).
//!
//! `name` is the join's name ([`KTable::named`]), else generated:
//! `KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-<n>` and `...-RESPONSE-<n>` for the topics (plus
//! `-topic`), `KTABLE-FK-JOIN-SUBSCRIPTION-STATE-STORE-<n>` for the store. Rill's stores keep no
//! timestamps, so the right side also keeps its rows' times (`<store>-timestamps`): a result
//! takes the later of the two rows' times when a subscription is answered, the right row's when
//! the right row changed, as in Kafka Streams.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use rill_core::streams::record::Record;
use rill_core::streams::serde::BytesSerde;

use crate::builder::{SinkTopic, TopicRef};
use crate::config::Materialized;
use crate::ktable::KTable;
use crate::nulls::null_test;
use crate::processors::{supplier, upsert};
use crate::serdes::{choose, default_serde, nullable, require, ArcSerde};

mod murmur3;
mod processors;
mod wire;

use processors::{Extractor, FkJoiner, ForeignTableJoin, ResponseJoin, SubscriptionReceive, SubscriptionSend};
use wire::{Response, ResponseSerde, SubscriptionSerde};

/// The names of a foreign-key join's nodes, topics and stores.
struct Names {
    send: String,
    registration: String,
    store: String,
    receive: String,
    foreign: String,
    responses: String,
    response: String,
    result: String,
    output: String,
    output_store: String,
}

impl Names {
    fn new<K, V>(table: &KTable<K, V>, materialized: Option<String>) -> Self {
        let mut st = table.state.borrow_mut();
        match &table.next_name {
            Some(n) => Names {
                send: format!("{n}-subscription-registration-processor"),
                registration: format!("{n}-subscription-registration"),
                store: format!("{n}-subscription-store"),
                receive: format!("{n}-subscription-receive"),
                foreign: format!("{n}-foreign-table-join"),
                responses: format!("{n}-subscription-responses"),
                response: format!("{n}-subscription-response"),
                result: format!("{n}-result"),
                output: format!("{n}-output"),
                output_store: materialized.unwrap_or_else(|| format!("{n}-output-store")),
            },
            None => Names {
                send: st.name(None, "KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-SEND-"),
                registration: st.name(None, "KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-"),
                store: st.name(None, "KTABLE-FK-JOIN-SUBSCRIPTION-STATE-STORE-"),
                receive: st.name(None, "KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-"),
                foreign: st.name(None, "KTABLE-FK-JOIN-FOREIGN-TABLE-"),
                responses: st.name(None, "KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSES-"),
                response: st.name(None, "KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-"),
                result: st.name(None, "KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-RESOLVER-"),
                output: st.name(None, "KTABLE-FK-JOIN-OUTPUT-"),
                output_store: st.name(materialized, "KTABLE-FK-JOIN-OUTPUT-STATE-STORE-"),
            },
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    /// The inner join with `other` on a foreign key: each row `(k, v)` of this table joins the
    /// row of `other` whose key is `foreign_key(v)`, giving a row `(k, joiner(v, other_value))`.
    /// A row whose foreign key is missing from `other` (or null) has no result; the result
    /// follows changes on both sides: a row moving to another foreign key, a right row changing
    /// (every row referencing it is updated), a row leaving either side (a tombstone for a key
    /// that had a result). The tables need not be co-partitioned (see the module docs for the
    /// internal topics). The result is stored (`Materialized` via
    /// [`join_fk_with`](Self::join_fk_with)), so it needs a serde for `VR`.
    ///
    /// ```
    /// use rill_core::streams::serde::{OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// // Orders (order id -> product id) enriched with the product's name.
    /// let builder = StreamsBuilder::new();
    /// let orders = builder.table::<String, String>("orders");
    /// let products = builder.table::<String, String>("products");
    /// orders
    ///     .named("order-products")
    ///     .join_fk(&products, |product_id| product_id.clone(), |product_id, name| format!("{product_id}: {name}"))
    ///     .to_stream()
    ///     .to("order-details");
    /// let built = builder.build("shop")?;
    /// assert_eq!(
    ///     built.repartition_topics().collect::<Vec<_>>(),
    ///     vec!["shop-order-products-subscription-registration-topic", "shop-order-products-subscription-response-topic"]
    /// );
    /// let driver = TopologyTestDriver::new(built)?;
    /// let o = driver.create_input_topic("orders", StringSerde, OptionSerde(StringSerde));
    /// let p = driver.create_input_topic("products", StringSerde, OptionSerde(StringSerde));
    /// let out = driver.create_output_topic("order-details", StringSerde, OptionSerde(StringSerde));
    /// o.pipe_input("o1".into(), Some("p1".into()))?; // no product p1 yet: no result
    /// p.pipe_input("p1".into(), Some("tea".into()))?;
    /// o.pipe_input("o2".into(), Some("p1".into()))?;
    /// p.pipe_input("p1".into(), Some("green tea".into()))?; // both orders see it
    /// p.pipe_input("p1".into(), None)?; // gone: both results deleted
    /// let s = |k: &str, v: Option<&str>| (k.to_string(), v.map(str::to_string));
    /// assert_eq!(
    ///     out.read_all(),
    ///     vec![
    ///         s("o1", Some("p1: tea")),
    ///         s("o2", Some("p1: tea")),
    ///         s("o1", Some("p1: green tea")),
    ///         s("o2", Some("p1: green tea")),
    ///         s("o1", None),
    ///         s("o2", None),
    ///     ]
    /// );
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn join_fk<KO, VO, VR>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        KO: Clone + 'static,
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.join_fk_with(other, foreign_key, joiner, Materialized::default())
    }

    /// [`join_fk`](Self::join_fk) with the result's store declared by `materialized` (its
    /// name, the result's serdes).
    pub fn join_fk_with<KO, VO, VR>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        KO: Clone + 'static,
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner: FkJoiner<V, VO, VR> = Arc::new(move |v, o| Some(joiner(v, o?)));
        self.fk_join(other, Arc::new(foreign_key), joiner, false, materialized)
    }

    /// The left join with `other` on a foreign key: every row `(k, v)` of this table gives a
    /// row `(k, joiner(v, other_value))`, with `None` while `other` has no row at
    /// `foreign_key(v)` (or the foreign key is null, as in Kafka Streams 3.7 and later). Updates
    /// as in [`join_fk`](Self::join_fk): a row deleted from `other` joins `None` from then on; a
    /// row leaving this table deletes its result.
    ///
    /// ```
    /// use rill_core::streams::serde::{OptionSerde, StringSerde};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// let orders = builder.table::<String, String>("orders");
    /// let products = builder.table::<String, String>("products");
    /// orders
    ///     .left_join_fk(&products, |id| id.clone(), |id, name| format!("{id}: {}", name.map_or("unknown", |n| n.as_str())))
    ///     .to_stream()
    ///     .to("order-details");
    /// let driver = TopologyTestDriver::new(builder.build("shop")?)?;
    /// let o = driver.create_input_topic("orders", StringSerde, OptionSerde(StringSerde));
    /// let p = driver.create_input_topic("products", StringSerde, OptionSerde(StringSerde));
    /// let out = driver.create_output_topic("order-details", StringSerde, OptionSerde(StringSerde));
    /// o.pipe_input("o1".into(), Some("p1".into()))?;
    /// p.pipe_input("p1".into(), Some("tea".into()))?;
    /// p.pipe_input("p1".into(), None)?;
    /// o.pipe_input("o1".into(), None)?;
    /// assert_eq!(
    ///     out.read_values(),
    ///     vec![Some("p1: unknown".to_string()), Some("p1: tea".to_string()), Some("p1: unknown".to_string()), None]
    /// );
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn left_join_fk<KO, VO, VR>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        KO: Clone + 'static,
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.left_join_fk_with(other, foreign_key, joiner, Materialized::default())
    }

    /// [`left_join_fk`](Self::left_join_fk) with the result's store declared by `materialized`.
    pub fn left_join_fk_with<KO, VO, VR>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        KO: Clone + 'static,
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner: FkJoiner<V, VO, VR> = Arc::new(move |v, o| Some(joiner(v, o)));
        self.fk_join(other, Arc::new(foreign_key), joiner, true, materialized)
    }

    fn fk_join<KO, VO, VR>(
        &self,
        other: &KTable<KO, VO>,
        extractor: Extractor<V, KO>,
        joiner: FkJoiner<V, VO, VR>,
        left_join: bool,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        KO: Clone + 'static,
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let n = Names::new(self, materialized.name.clone());
        let left_store = self.ensure_store();
        let right_store = other.ensure_store();
        let keys = choose(&materialized.keys, &self.keys);
        let result_values = choose(&materialized.values, &None);
        let result = KTable {
            state: self.state.clone(),
            node: n.output.clone(),
            store: Some(n.output_store.clone()),
            keys: keys.clone(),
            values: result_values.clone(),
            sources: self.sources.clone(),
            next_name: None,
            window_close: None,
        };
        let (Some(left_store), Some(right_store)) = (left_store, right_store) else {
            // The missing serde was reported; the build fails.
            return result;
        };
        let how = "a source's Consumed::with(keys, values)";
        let serdes = (
            require(&keys, &n.send, "key", how),
            require(&choose(&self.values, &None), &n.send, "value", how),
            require(&choose(&other.keys, &None), &n.send, "foreign key", how),
            require(&choose(&other.values, &None), &n.response, "foreign value", how),
            require(&result_values, &n.output_store, "value", "join_fk_with(.., Materialized::with(keys, values))"),
        );
        let (k, v, ko, vo, vr) = match serdes {
            (Ok(k), Ok(v), Ok(ko), Ok(vo), Ok(vr)) => (k, v, ko, vo, vr),
            (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), ..) | (.., Err(e), _) | (.., Err(e)) => {
                self.state.borrow_mut().fail(e);
                return result;
            }
        };
        let registration = TopicRef::Internal(format!("{}-topic", n.registration));
        let response = TopicRef::Internal(format!("{}-topic", n.response));
        let mut st = self.state.borrow_mut();

        // Left: subscribe each change to its foreign key.
        st.processor(&n.send, vec![self.node.clone()], {
            let (k, v, ko) = (k.clone(), v.clone(), ko.clone());
            let (key_null, foreign_key_null) = (null_test(&Some(k.clone())), null_test(&Some(ko.clone())));
            move || SubscriptionSend {
                extractor: extractor.clone(),
                left_join,
                keys: k.clone(),
                values: v.clone(),
                foreign_keys: ko.clone(),
                key_null: key_null.clone(),
                foreign_key_null: foreign_key_null.clone(),
            }
        });
        let nodes = |base: &str| [format!("{base}-sink"), format!("{base}-source")];
        let subscription_keys = nullable(&Some(ko.clone())).expect("a serde was given");
        let subscriptions: ArcSerde<wire::Subscription> = Arc::new(SubscriptionSerde);
        let registration_source = st.through(
            &n.send,
            registration.clone(),
            nodes(&n.registration),
            (subscription_keys, subscriptions),
            None,
            None,
            other.sources.clone(),
        );

        // Right: record subscriptions and answer them; answer subscribers when a row changes.
        let times = format!("{}-timestamps", n.store);
        st.processor(&n.receive, vec![registration_source], {
            let stores = [n.store.clone(), right_store.clone(), times.clone()];
            let ko = ko.clone();
            move || SubscriptionReceive::<KO, VO> {
                stores: stores.clone(),
                ids: None,
                foreign_keys: ko.clone(),
                _types: PhantomData,
            }
        });
        st.processor(&n.foreign, vec![other.node.clone()], {
            let stores = [n.store.clone(), times.clone()];
            let (ko, key_null) = (ko.clone(), null_test(&Some(ko.clone())));
            move || ForeignTableJoin::<KO, VO> {
                stores: stores.clone(),
                ids: None,
                foreign_keys: ko.clone(),
                key_null: key_null.clone(),
                _types: PhantomData,
            }
        });
        st.processor(
            &n.responses,
            vec![n.receive.clone(), n.foreign.clone()],
            supplier(|ctx, r: Record<Bytes, Response<VO>>| ctx.forward(r)),
        );
        let right_upstream: Vec<TopicRef> = other.sources.iter().cloned().chain([registration.clone()]).collect();
        let raw: ArcSerde<Bytes> = Arc::new(BytesSerde);
        let both = vec![n.receive.clone(), n.foreign.clone()];
        st.store(&n.store, &Materialized::default(), raw.clone(), raw, both.clone(), right_upstream.clone());
        let i64s = default_serde::<i64>().expect("i64 has a default serde");
        st.store(&times, &Materialized::default(), ko.clone(), i64s, both, right_upstream);
        st.connect(&right_store, &n.receive, std::slice::from_ref(&registration));
        let response_keys: ArcSerde<Bytes> = Arc::new(BytesSerde);
        let responses: ArcSerde<Response<VO>> = Arc::new(ResponseSerde(vo));
        // The sink writes the left key's bytes as they came; the source reads them as `K`.
        let [response_sink, response_source] = nodes(&n.response);
        let sink_topic = SinkTopic::Fixed(response.clone());
        let partitioner = Some(wire::response_partitioner());
        st.sink(&response_sink, &n.responses, sink_topic, response_keys, responses.clone(), partitioner);
        st.source(&response_source, vec![response.clone()], k.clone(), responses, None);
        st.internal_topic(response.clone(), None, self.sources.clone());

        // Left: apply current answers, keep the results.
        st.processor(&n.result, vec![response_source], {
            let (store, v) = (left_store.clone(), v.clone());
            move || ResponseJoin::<K, V, VO, VR> {
                store: store.clone(),
                id: None,
                values: v.clone(),
                joiner: joiner.clone(),
                _types: PhantomData,
            }
        });
        st.connect(&left_store, &n.result, std::slice::from_ref(&response));
        st.processor(&n.output, vec![n.result.clone()], upsert(&n.output_store, true, |_: &K, r: Option<VR>, _| Ok(r)));
        let left_upstream: Vec<TopicRef> = self.sources.iter().cloned().chain([response.clone()]).collect();
        st.store(&n.output_store, &materialized, k, vr, vec![n.output.clone()], left_upstream);
        st.copartition(other.sources.iter().cloned().chain([registration]).collect());
        st.copartition(self.sources.iter().cloned().chain([response]).collect());
        drop(st);
        result
    }
}

#[cfg(test)]
mod tests;
