//! Global stores: state fully replicated on every instance (the store behind a GlobalKTable).
//!
//! A global store is declared with [`Topology::add_global_store`](super::topology::Topology::add_global_store):
//! a store, a source over one topic, and a processor that updates the store. It belongs to no
//! sub-topology and has no changelog: its source topic is its changelog. At start each
//! application instance's global thread reads every partition of that topic into the store,
//! then keeps applying new records (see `runtime/global.rs`).
//!
//! One store instance per application instance is shared by the global thread (its only
//! writer) and every task of every stream thread (readers): [`GlobalStores`] holds each as
//! an `Arc<RwLock<..>>`. A read takes the lock shared (one atomic operation when no write is in
//! progress); the global thread takes it exclusively for one write at a time. Tasks see a global
//! store read-only, through [`ProcessorContext::global_store`](super::processor::ProcessorContext::global_store)
//! and its [`GlobalStoreReader`].
//!
//! ```
//! use rill_core::streams::global::{GlobalStore, GlobalStores};
//! # use rill_core::streams::store::*;
//! # #[derive(Default)] struct Map(std::collections::BTreeMap<String, i64>);
//! # impl KeyValueStore<String, i64> for Map {
//! #     fn get(&self, k: &String) -> StoreResult<Option<i64>> { Ok(self.0.get(k).copied()) }
//! #     fn put(&mut self, k: &String, v: &i64) -> StoreResult<()> { self.0.insert(k.clone(), *v); Ok(()) }
//! #     fn delete(&mut self, k: &String) -> StoreResult<Option<i64>> { Ok(self.0.remove(k)) }
//! #     fn range(&self, _: Option<&String>, _: Option<&String>) -> StoreResult<Vec<(String, i64)>> {
//! #         Ok(self.0.iter().map(|(k, v)| (k.clone(), *v)).collect()) }
//! #     fn approximate_len(&self) -> u64 { self.0.len() as u64 }
//! # }
//! # impl StateStore for Map {
//! #     fn name(&self) -> &str { "rates" }
//! #     fn send_changelog(&mut self, _: &mut dyn ChangelogSink) -> StoreResult<()> { Ok(()) }
//! #     fn prepare_commit(&mut self, _: &mut dyn ChangelogSink) -> StoreResult<()> { Ok(()) }
//! #     fn commit(&mut self, _: Option<i64>) -> StoreResult<()> { Ok(()) }
//! #     fn abort(&mut self) {}
//! #     fn checkpoint(&self) -> StoreResult<Option<i64>> { Ok(None) }
//! #     fn restore(&mut self, _: Vec<WriteOp>, _: i64) -> StoreResult<()> { Ok(()) }
//! #     fn clear(&mut self) -> StoreResult<()> { self.0.clear(); Ok(()) }
//! #     fn flush(&mut self) -> StoreResult<()> { Ok(()) }
//! # }
//! let mut stores = GlobalStores::default();
//! stores.insert::<String, i64>("rates", Box::new(Map::default()), true);
//! let reader = stores.reader::<String, i64>("rates").unwrap().unwrap();
//! stores.write::<String, i64, _>("rates", |s| s.put(&"EUR".into(), &108)).unwrap().unwrap();
//! assert_eq!(reader.get(&"EUR".to_string()).unwrap(), Some(108));
//! assert!(stores.reader::<String, String>("rates").unwrap().is_err(), "declared types only");
//! ```

use std::any::Any;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::store::{ChangelogSink, KeyValueStore, StateStore, StoreResult, WriteOp};

/// A store that can back a global store: typed access for its processor, the runtime's
/// [`StateStore`] view (flush, clear), and `Sync` so tasks on other threads can read it while
/// the global thread is not writing.
pub trait GlobalStore<K, V>: KeyValueStore<K, V> + StateStore + Sync {
    /// The same store as a plain key-value store.
    fn key_value_mut(&mut self) -> &mut dyn KeyValueStore<K, V>;
}

impl<K, V, T: KeyValueStore<K, V> + StateStore + Sync> GlobalStore<K, V> for T {
    fn key_value_mut(&mut self) -> &mut dyn KeyValueStore<K, V> {
        self
    }
}

type Shared<K, V> = Arc<RwLock<Box<dyn GlobalStore<K, V>>>>;

fn read<K, V>(s: &Shared<K, V>) -> RwLockReadGuard<'_, Box<dyn GlobalStore<K, V>>> {
    // A panic while writing leaves a store as consistent as any crash would: keep using it.
    s.read().unwrap_or_else(|p| p.into_inner())
}

fn write<K, V>(s: &Shared<K, V>) -> RwLockWriteGuard<'_, Box<dyn GlobalStore<K, V>>> {
    s.write().unwrap_or_else(|p| p.into_inner())
}

/// Runs a closure on a slot's store as a [`StateStore`], whatever its types.
type WithState =
    fn(&(dyn Any + Send + Sync), &mut dyn FnMut(&mut dyn StateStore) -> StoreResult<()>) -> StoreResult<()>;

struct Slot {
    name: String,
    /// `Shared<K, V>` for the declared `K`, `V`.
    store: Box<dyn Any + Send + Sync>,
    /// Whether the store keeps its contents across restarts (RocksDB): only then does the
    /// global checkpoint file say where it stands.
    persistent: bool,
    with_state: WithState,
    key_type: &'static str,
    value_type: &'static str,
}

fn with_state<K: 'static, V: 'static>(
    a: &(dyn Any + Send + Sync),
    f: &mut dyn FnMut(&mut dyn StateStore) -> StoreResult<()>,
) -> StoreResult<()> {
    let s = a.downcast_ref::<Shared<K, V>>().expect("a global slot holds the type it was made with");
    let mut guard = write(s);
    f(guard.as_mut())
}

/// The global stores of one application instance, by name. Cloning shares them.
#[derive(Clone, Default)]
pub struct GlobalStores {
    slots: Arc<Vec<Slot>>,
}

impl std::fmt::Debug for GlobalStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.slots.iter().map(|s| &s.name)).finish()
    }
}

impl GlobalStores {
    /// Add `store` as the global store `name` (while the set is being built, before it is
    /// shared). `persistent`: it keeps its contents across restarts.
    ///
    /// # Panics
    ///
    /// If the set is already shared (cloned).
    pub fn insert<K: 'static, V: 'static>(&mut self, name: &str, store: Box<dyn GlobalStore<K, V>>, persistent: bool) {
        let slots = Arc::get_mut(&mut self.slots).expect("global stores are added before they are shared");
        let shared: Shared<K, V> = Arc::new(RwLock::new(store));
        slots.push(Slot {
            name: name.to_string(),
            store: Box::new(shared),
            persistent,
            with_state: with_state::<K, V>,
            key_type: std::any::type_name::<K>(),
            value_type: std::any::type_name::<V>(),
        });
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Names of the global stores.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.name.as_str())
    }

    /// Whether `name` is a global store.
    pub fn contains(&self, name: &str) -> bool {
        self.slots.iter().any(|s| s.name == name)
    }

    /// Whether the store `name` keeps its contents across restarts.
    pub fn is_persistent(&self, name: &str) -> bool {
        self.slots.iter().any(|s| s.name == name && s.persistent)
    }

    fn shared<K: 'static, V: 'static>(&self, name: &str) -> Option<Result<&Shared<K, V>, String>> {
        let slot = self.slots.iter().find(|s| s.name == name)?;
        Some(slot.store.downcast_ref::<Shared<K, V>>().ok_or_else(|| {
            format!(
                "global store {name} holds ({}, {}), not ({}, {})",
                slot.key_type,
                slot.value_type,
                std::any::type_name::<K>(),
                std::any::type_name::<V>()
            )
        }))
    }

    /// A read-only handle on the global store `name` typed as `(K, V)`: `None` if there is no
    /// such store, an error if it holds other types.
    pub fn reader<K: 'static, V: 'static>(&self, name: &str) -> Option<Result<GlobalStoreReader<K, V>, String>> {
        Some(self.shared::<K, V>(name)?.map(|s| GlobalStoreReader { name: Arc::from(name), store: s.clone() }))
    }

    /// Run `f` on the global store `name` with the write lock held (the global thread; tests).
    pub fn write<K: 'static, V: 'static, R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut dyn GlobalStore<K, V>) -> R,
    ) -> Option<Result<R, String>> {
        Some(self.shared::<K, V>(name)?.map(|s| f(write(s).as_mut())))
    }

    /// Run `f` on the runtime's view of the store `name` (flush, clear), write lock held.
    pub fn with_state(
        &self,
        name: &str,
        mut f: impl FnMut(&mut dyn StateStore) -> StoreResult<()>,
    ) -> Option<StoreResult<()>> {
        let slot = self.slots.iter().find(|s| s.name == name)?;
        Some((slot.with_state)(slot.store.as_ref(), &mut f))
    }

    /// A writable view of the store `name` for the processor that updates it (the global
    /// thread's task holds it as a task store).
    pub(crate) fn writer<K: 'static, V: 'static>(&self, name: &str) -> Option<Result<GlobalStoreWriter<K, V>, String>> {
        Some(self.shared::<K, V>(name)?.map(|s| GlobalStoreWriter { name: name.to_string(), store: s.clone() }))
    }
}

/// Read-only access to a global store, cheap to clone and to use from any thread: each call
/// takes the store's lock shared for its duration.
pub struct GlobalStoreReader<K, V> {
    name: Arc<str>,
    store: Shared<K, V>,
}

impl<K, V> Clone for GlobalStoreReader<K, V> {
    fn clone(&self) -> Self {
        Self { name: self.name.clone(), store: self.store.clone() }
    }
}

impl<K, V> std::fmt::Debug for GlobalStoreReader<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GlobalStoreReader({})", self.name)
    }
}

impl<K, V> GlobalStoreReader<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The value of `key`.
    pub fn get(&self, key: &K) -> StoreResult<Option<V>> {
        read(&self.store).get(key)
    }
    /// Entries with `from <= key < to` by serialized key order (`None`: unbounded).
    pub fn range(&self, from: Option<&K>, to: Option<&K>) -> StoreResult<Vec<(K, V)>> {
        read(&self.store).range(from, to)
    }
    /// Every entry, by serialized key order.
    pub fn all(&self) -> StoreResult<Vec<(K, V)>> {
        read(&self.store).all()
    }
    /// Roughly how many entries the store holds.
    pub fn approximate_len(&self) -> u64 {
        read(&self.store).approximate_len()
    }
}

/// The global store as its updating processor sees it: every operation takes the write lock
/// for its duration; writes go straight into the store (there is no transaction to wait for).
pub(crate) struct GlobalStoreWriter<K, V> {
    name: String,
    store: Shared<K, V>,
}

impl<K, V> KeyValueStore<K, V> for GlobalStoreWriter<K, V> {
    fn get(&self, key: &K) -> StoreResult<Option<V>> {
        read(&self.store).get(key)
    }
    fn put(&mut self, key: &K, value: &V) -> StoreResult<()> {
        write(&self.store).put(key, value)
    }
    fn delete(&mut self, key: &K) -> StoreResult<Option<V>> {
        write(&self.store).delete(key)
    }
    fn range(&self, from: Option<&K>, to: Option<&K>) -> StoreResult<Vec<(K, V)>> {
        read(&self.store).range(from, to)
    }
    fn approximate_len(&self) -> u64 {
        read(&self.store).approximate_len()
    }
}

/// The runtime's commit cycle does nothing to a global store: it has no changelog and nothing
/// staged. The global thread flushes it and writes the checkpoint file itself.
impl<K, V> StateStore for GlobalStoreWriter<K, V> {
    fn name(&self) -> &str {
        &self.name
    }
    fn send_changelog(&mut self, _sink: &mut dyn ChangelogSink) -> StoreResult<()> {
        Ok(())
    }
    fn prepare_commit(&mut self, _sink: &mut dyn ChangelogSink) -> StoreResult<()> {
        Ok(())
    }
    fn commit(&mut self, _changelog_offset: Option<i64>) -> StoreResult<()> {
        Ok(())
    }
    fn abort(&mut self) {}
    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        Ok(None)
    }
    fn restore(&mut self, _batch: Vec<WriteOp>, _next_offset: i64) -> StoreResult<()> {
        Ok(())
    }
    fn clear(&mut self) -> StoreResult<()> {
        write(&self.store).clear()
    }
    fn flush(&mut self) -> StoreResult<()> {
        write(&self.store).flush()
    }
}

/// What a global store factory is told when the store is made.
#[derive(Debug, Clone)]
pub struct GlobalStoreInit {
    /// `application.id`.
    pub application_id: String,
    /// Store name.
    pub name: String,
    /// `state.dir`: persistent global stores go under `<state.dir>/<application.id>/global/<store>`.
    pub state_dir: std::path::PathBuf,
    /// The global thread's current-record timestamp cell.
    pub timestamp: super::store::RecordTimestamp,
}

/// The directory of an application's global state: `<state.dir>/<application.id>/global`.
pub fn global_dir(state_dir: &std::path::Path, application_id: &str) -> std::path::PathBuf {
    state_dir.join(application_id).join("global")
}

type GlobalFactory<K, V> =
    Arc<dyn Fn(&GlobalStoreInit) -> super::error::Result<Box<dyn GlobalStore<K, V>>> + Send + Sync>;

/// A global store's declaration for [`Topology::add_global_store`](super::topology::Topology::add_global_store):
/// its name, the factory that makes it on each instance, and whether it keeps its contents
/// across restarts (then a restart reads only the topic's tail past the checkpoint).
pub struct GlobalStoreSpec<K, V> {
    pub(crate) name: String,
    pub(crate) persistent: bool,
    pub(crate) factory: GlobalFactory<K, V>,
}

impl<K, V> GlobalStoreSpec<K, V> {
    /// The global store `name` made by `factory`, persistent (say otherwise with
    /// [`GlobalStoreSpec::persistent`]).
    pub fn new(
        name: &str,
        factory: impl Fn(&GlobalStoreInit) -> super::error::Result<Box<dyn GlobalStore<K, V>>> + Send + Sync + 'static,
    ) -> Self {
        Self { name: name.to_string(), persistent: true, factory: Arc::new(factory) }
    }

    /// Whether the store keeps its contents across restarts (in-memory stores do not, and are
    /// read from the topic's start every time).
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }
}
