//! The four processors of a foreign-key join, after Kafka Streams' (KIP-213):
//!
//! - [`SubscriptionSend`] (left side): on each left change, subscribe the row to its foreign
//!   key, unsubscribe it from the old one when the key moved (`SubscriptionSendProcessorSupplier`).
//! - [`SubscriptionReceive`] (right side): record or forget the subscription in the
//!   subscription store and answer it with the current right value
//!   (`SubscriptionReceiveProcessorSupplier` and `SubscriptionJoinProcessorSupplier` in one).
//! - [`ForeignTableJoin`] (right side): on each right change, answer every subscriber.
//! - [`ResponseJoin`] (left side): apply an answer only if the hash it carries is still the
//!   current left value's; otherwise a newer left update is on its way and the answer is stale.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use rill_core::streams::error::Result;
use rill_core::streams::processor::{Processor, ProcessorContext};
use rill_core::streams::record::Record;
use rill_core::streams::task::StoreId;

use super::wire::{self, value_hash, Hash, Instruction, Response, Subscription};
use crate::ktable::Change;
use crate::nulls::{is_null, NullTest};
use crate::serdes::ArcSerde;

/// Extracts the foreign key of a left value.
pub(crate) type Extractor<V, KO> = Arc<dyn Fn(&V) -> KO + Send + Sync>;

/// Joins the current left value with the foreign one (absent for a row with no match); `None`:
/// no result.
pub(crate) type FkJoiner<V, VO, VR> = Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>;

/// Left side: a change of a left row to subscriptions keyed by foreign key (`None`: a null
/// foreign key, which subscribes to nothing but still gets an answer).
pub(crate) struct SubscriptionSend<K, V, KO> {
    pub(crate) extractor: Extractor<V, KO>,
    pub(crate) left_join: bool,
    pub(crate) keys: ArcSerde<K>,
    pub(crate) values: ArcSerde<V>,
    pub(crate) foreign_keys: ArcSerde<KO>,
    pub(crate) key_null: NullTest<K>,
    pub(crate) foreign_key_null: NullTest<KO>,
}

impl<K, V, KO> SubscriptionSend<K, V, KO>
where
    K: Clone + 'static,
    V: Clone + 'static,
    KO: Clone + 'static,
{
    /// The foreign key of `v`, `None` if there is no value or the key is null.
    fn foreign_key(&self, v: Option<&V>) -> Option<KO> {
        let fk = (self.extractor)(v?);
        (!is_null(&self.foreign_key_null, &fk)).then_some(fk)
    }

    /// Whether the foreign key moved from `old` to `new` (compared as bytes, as Kafka does).
    fn moved(&self, old: &KO, new: Option<&KO>) -> Result<bool> {
        let Some(new) = new else { return Ok(true) };
        Ok(self.foreign_keys.serialize(old)? != self.foreign_keys.serialize(new)?)
    }
}

impl<K, V, KO> Processor<K, Change<V>, Option<KO>, Subscription> for SubscriptionSend<K, V, KO>
where
    K: Clone + 'static,
    V: Clone + 'static,
    KO: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Option<KO>, Subscription>,
        r: Record<K, Change<V>>,
    ) -> Result<()> {
        use Instruction::*;
        if is_null(&self.key_null, &r.key) {
            ctx.record_dropped();
            return Ok(());
        }
        let Change { new, old } = &r.value;
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        let hash = new.as_ref().map(|v| self.values.serialize(v).map(|b| value_hash(&b))).transpose()?;
        let primary_key = self.keys.serialize(&r.key)?;
        let partition = ctx.task_id().partition;
        let send = |ctx: &mut ProcessorContext<'_, Option<KO>, Subscription>, fk: Option<KO>, instruction| {
            let s = Subscription { hash, instruction, primary_key: primary_key.clone(), partition };
            ctx.forward(Record { key: fk, value: s, timestamp: r.timestamp, headers: r.headers.clone() })
        };
        let (old_fk, new_fk) = (self.foreign_key(old.as_ref()), self.foreign_key(new.as_ref()));
        if self.left_join {
            // Every change gets an answer, so every change has a result (a null foreign key
            // joins nothing, KIP-962); a row leaving its foreign key unsubscribes from it.
            if let Some(o) = &old_fk {
                if self.moved(o, new_fk.as_ref())? {
                    send(ctx, old_fk.clone(), DeleteKeyNoPropagate)?;
                }
            }
            return send(ctx, new_fk, PropagateNullIfNoFkValAvailable);
        }
        match (new, new_fk, old_fk) {
            // Deleted, or its foreign key became null: unsubscribe, and delete the result.
            (None, _, Some(o)) => send(ctx, Some(o), DeleteKeyAndPropagate),
            (None, _, None) => Ok(()),
            (Some(_), None, old_fk) => {
                ctx.record_dropped();
                match old_fk {
                    Some(o) => send(ctx, Some(o), DeleteKeyAndPropagate),
                    None => Ok(()),
                }
            }
            (Some(_), Some(n), Some(o)) if self.moved(&o, Some(&n))? => {
                // Moved: leave the old key silently; the new one answers even without a match,
                // so that a result joined with the old key is deleted.
                send(ctx, Some(o), DeleteKeyNoPropagate)?;
                send(ctx, Some(n), PropagateNullIfNoFkValAvailable)
            }
            // New, or same key: without a match there was no result before either.
            (Some(_), Some(n), _) => send(ctx, Some(n), PropagateOnlyIfFkValAvailable),
        }
    }
}

/// Right side: keeps the subscription store up to date and answers each subscription with the
/// current right value. Stores: subscriptions, the right table, its rows' times.
pub(crate) struct SubscriptionReceive<KO, VO> {
    pub(crate) stores: [String; 3],
    pub(crate) ids: Option<[StoreId; 3]>,
    pub(crate) foreign_keys: ArcSerde<KO>,
    pub(crate) _types: PhantomData<fn(KO, VO)>,
}

impl<KO, VO> Processor<Option<KO>, Subscription, Bytes, Response<VO>> for SubscriptionReceive<KO, VO>
where
    KO: Clone + 'static,
    VO: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Bytes, Response<VO>>) -> Result<()> {
        let [a, b, c] = &self.stores;
        self.ids = Some([ctx.store_id(a)?, ctx.store_id(b)?, ctx.store_id(c)?]);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Bytes, Response<VO>>,
        r: Record<Option<KO>, Subscription>,
    ) -> Result<()> {
        let [subscriptions, values, times] = self.ids.expect("init ran");
        let Record { key, value: s, timestamp, headers } = r;
        let (foreign, timestamp) = match key {
            // A null foreign key subscribes to nothing; only a left join asks for an answer.
            None if s.instruction != Instruction::PropagateNullIfNoFkValAvailable => {
                ctx.record_dropped();
                return Ok(());
            }
            None => (None, timestamp),
            Some(fk) => {
                let combined = wire::combined_key(&self.foreign_keys.serialize(&fk)?, &s.primary_key);
                let store = ctx.store_by_id::<Bytes, Bytes>(subscriptions)?;
                if s.instruction.deletes() {
                    store.delete(&combined)?;
                } else {
                    store.put(&combined, &wire::stored(s.partition, &s.hash))?;
                }
                match ctx.store_by_id::<KO, VO>(values)?.get(&fk)? {
                    Some(v) => {
                        let at = ctx.store_by_id::<KO, i64>(times)?.get(&fk)?.unwrap_or(-1);
                        (Some(v), timestamp.max(at))
                    }
                    None => (None, timestamp),
                }
            }
        };
        let answer = match s.instruction {
            Instruction::DeleteKeyNoPropagate => return Ok(()),
            Instruction::PropagateOnlyIfFkValAvailable if foreign.is_none() => return Ok(()),
            Instruction::DeleteKeyAndPropagate => None,
            _ => foreign,
        };
        let response = Response { hash: s.hash, foreign: answer, partition: s.partition };
        ctx.forward(Record { key: s.primary_key, value: response, timestamp, headers })
    }
}

/// Right side: answers every subscriber of a right row that changed. Stores: subscriptions, the
/// right rows' times (kept here, read by [`SubscriptionReceive`]).
pub(crate) struct ForeignTableJoin<KO, VO> {
    pub(crate) stores: [String; 2],
    pub(crate) ids: Option<[StoreId; 2]>,
    pub(crate) foreign_keys: ArcSerde<KO>,
    pub(crate) key_null: NullTest<KO>,
    pub(crate) _types: PhantomData<fn(KO, VO)>,
}

impl<KO, VO> Processor<KO, Change<VO>, Bytes, Response<VO>> for ForeignTableJoin<KO, VO>
where
    KO: Clone + 'static,
    VO: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Bytes, Response<VO>>) -> Result<()> {
        let [a, b] = &self.stores;
        self.ids = Some([ctx.store_id(a)?, ctx.store_id(b)?]);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Bytes, Response<VO>>,
        r: Record<KO, Change<VO>>,
    ) -> Result<()> {
        let [subscriptions, times] = self.ids.expect("init ran");
        if is_null(&self.key_null, &r.key) {
            ctx.record_dropped();
            return Ok(());
        }
        let time_store = ctx.store_by_id::<KO, i64>(times)?;
        match r.value.new {
            Some(_) => time_store.put(&r.key, &r.timestamp)?,
            None => {
                time_store.delete(&r.key)?;
            }
        }
        if r.value.new.is_none() && r.value.old.is_none() {
            return Ok(());
        }
        let prefix = wire::prefix(&self.foreign_keys.serialize(&r.key)?);
        let end = wire::prefix_end(&prefix);
        let subscribers = ctx.store_by_id::<Bytes, Bytes>(subscriptions)?.range(Some(&prefix), end.as_ref())?;
        for (combined, stored) in subscribers {
            let (Some(primary_key), Some((partition, hash))) =
                (wire::primary_key_of(&combined), wire::read_stored(&stored))
            else {
                continue;
            };
            let response = Response { hash, foreign: r.value.new.clone(), partition };
            ctx.forward(Record {
                key: primary_key,
                value: response,
                timestamp: r.timestamp,
                headers: r.headers.clone(),
            })?;
        }
        Ok(())
    }
}

/// Left side: joins an answer with the current left row if the answer is for it (same hash),
/// and forwards the result (`None`: no result, a delete). Store: the left table.
pub(crate) struct ResponseJoin<K, V, VO, VR> {
    pub(crate) store: String,
    pub(crate) id: Option<StoreId>,
    pub(crate) values: ArcSerde<V>,
    pub(crate) joiner: FkJoiner<V, VO, VR>,
    pub(crate) _types: PhantomData<fn(K, VO)>,
}

impl<K, V, VO, VR> ResponseJoin<K, V, VO, VR>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The current left value of `key` and its hash.
    fn current<KX, VX>(&self, ctx: &mut ProcessorContext<'_, KX, VX>, key: &K) -> Result<(Option<V>, Option<Hash>)> {
        let id = self.id.expect("init ran");
        let current = ctx.store_by_id::<K, V>(id)?.get(key)?;
        let hash = current.as_ref().map(|v| self.values.serialize(v).map(|b| value_hash(&b))).transpose()?;
        Ok((current, hash))
    }
}

impl<K, V, VO, VR> Processor<K, Response<VO>, K, Option<VR>> for ResponseJoin<K, V, VO, VR>
where
    K: Clone + 'static,
    V: Clone + 'static,
    VO: Clone + 'static,
    VR: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Option<VR>>) -> Result<()> {
        self.id = Some(ctx.store_id(&self.store)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, Option<VR>>, r: Record<K, Response<VO>>) -> Result<()> {
        let (current, hash) = self.current(ctx, &r.key)?;
        if hash != r.value.hash {
            // Stale: the row changed since it subscribed; the newer change's answer follows.
            tracing::trace!(processor = ctx.name(), "dropping a foreign-key join response for an older left value");
            return Ok(());
        }
        let result = current.and_then(|v| (self.joiner)(&v, r.value.foreign.as_ref()));
        ctx.forward(Record { key: r.key, value: result, timestamp: r.timestamp, headers: r.headers })
    }
}
