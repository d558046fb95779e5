//! The processors DSL operators compile to: most are one closure over the record
//! ([`FnProcessor`]); stateful ones keep a store ([`UpsertProcessor`]).

use std::marker::PhantomData;
use std::sync::Arc;

use rill_core::streams::error::Result;
use rill_core::streams::processor::{Processor, ProcessorContext};
use rill_core::streams::record::Record;
use rill_core::streams::task::StoreId;

use crate::ktable::Change;

/// The body of a stateless operator.
pub(crate) type Body<KI, VI, KO, VO> =
    Arc<dyn Fn(&mut ProcessorContext<'_, KO, VO>, Record<KI, VI>) -> Result<()> + Send + Sync>;

/// A processor whose `process` is a closure.
pub(crate) struct FnProcessor<KI, VI, KO, VO> {
    body: Body<KI, VI, KO, VO>,
}

impl<KI: 'static, VI: 'static, KO: 'static, VO: 'static> Processor<KI, VI, KO, VO> for FnProcessor<KI, VI, KO, VO> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, KO, VO>, record: Record<KI, VI>) -> Result<()> {
        (self.body)(ctx, record)
    }
}

/// A supplier of [`FnProcessor`]s running `body`.
pub(crate) fn supplier<KI: 'static, VI: 'static, KO: 'static, VO: 'static>(
    body: impl Fn(&mut ProcessorContext<'_, KO, VO>, Record<KI, VI>) -> Result<()> + Send + Sync + 'static,
) -> impl Fn() -> FnProcessor<KI, VI, KO, VO> + Send + Sync + 'static {
    let body: Body<KI, VI, KO, VO> = Arc::new(body);
    move || FnProcessor { body: body.clone() }
}

/// How an [`UpsertProcessor`] folds one input into the stored value: `None` deletes the key.
pub(crate) type Fold<K, VI, VS> = Arc<dyn Fn(&K, VI, Option<VS>) -> Result<Option<VS>> + Send + Sync>;

/// Reads the key's value from a store, folds the input into it, writes (or deletes) the result
/// and forwards the [`Change`]: the building block of aggregations, `to_table` and table sources.
pub(crate) struct UpsertProcessor<K, VI, VS> {
    store: String,
    id: Option<StoreId>,
    fold: Fold<K, VI, VS>,
    /// Forward nothing when the key was absent and still is.
    skip_absent: bool,
    _types: PhantomData<fn(K, VI, VS)>,
}

impl<K: Clone + 'static, VI: 'static, VS: Clone + 'static> Processor<K, VI, K, Change<VS>>
    for UpsertProcessor<K, VI, VS>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VS>>) -> Result<()> {
        self.id = Some(ctx.store_id(&self.store)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VS>>, record: Record<K, VI>) -> Result<()> {
        let id = self.id.expect("init ran");
        let store = ctx.store_by_id::<K, VS>(id)?;
        let old = store.get(&record.key)?;
        let new = (self.fold)(&record.key, record.value, old.clone())?;
        match &new {
            Some(v) => store.put(&record.key, v)?,
            None if old.is_some() => {
                store.delete(&record.key)?;
            }
            None => {
                if self.skip_absent {
                    return Ok(());
                }
            }
        }
        let Record { key, timestamp, headers, .. } = record;
        ctx.forward(Record { key, value: Change { new, old }, timestamp, headers })
    }
}

/// A supplier of [`UpsertProcessor`]s on store `store`.
pub(crate) fn upsert<K: 'static, VI: 'static, VS: 'static>(
    store: &str,
    skip_absent: bool,
    fold: impl Fn(&K, VI, Option<VS>) -> Result<Option<VS>> + Send + Sync + 'static,
) -> impl Fn() -> UpsertProcessor<K, VI, VS> + Send + Sync + 'static {
    let fold: Fold<K, VI, VS> = Arc::new(fold);
    let store = store.to_string();
    move || UpsertProcessor { store: store.clone(), id: None, fold: fold.clone(), skip_absent, _types: PhantomData }
}
