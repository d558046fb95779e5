//! [`KTable`]: a changelog stream read as a table, the latest value per key. Between table
//! operators a record is a [`Change`] of one key: its new value and the one it replaces, `None`
//! for absent (a tombstone). One operator per file.

use bytes::{BufMut, Bytes, BytesMut};
use rill_core::streams::serde::{Serde, SerdeError};

use crate::builder::{Shared, TopicRef};
use crate::kstream::KStream;
use crate::serdes::{ArcSerde, SerdeSlot};

mod filter;
mod fk_join;
mod group_by;
mod join;
mod map_values;
mod suppress;
mod table;
mod to_stream;

/// One key's change: its new value and the previous one (`None`: absent or deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    /// The value after the change.
    pub new: Option<V>,
    /// The value before it.
    pub old: Option<V>,
}

/// A table of `K` to `V`, updated by a changelog. Operators take `&self`.
pub struct KTable<K, V> {
    pub(crate) state: Shared,
    /// The node whose output (of `Change<V>`) this table is.
    pub(crate) node: String,
    /// The store holding the table, if it is materialized.
    pub(crate) store: Option<String>,
    pub(crate) keys: SerdeSlot<K>,
    pub(crate) values: SerdeSlot<V>,
    pub(crate) sources: Vec<TopicRef>,
    pub(crate) next_name: Option<String>,
    /// Tables of windowed aggregations: when a key's window closes (what
    /// `suppress(until_window_closes)` waits for).
    pub(crate) window_close: Option<WindowClose<K>>,
}

/// When the window of a windowed key closes: its end (from the key) plus the grace period.
pub(crate) struct WindowClose<K> {
    pub(crate) grace: i64,
    pub(crate) end: std::sync::Arc<dyn Fn(&K) -> i64 + Send + Sync>,
}

impl<K> Clone for WindowClose<K> {
    fn clone(&self) -> Self {
        Self { grace: self.grace, end: self.end.clone() }
    }
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            node: self.node.clone(),
            store: self.store.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
            sources: self.sources.clone(),
            next_name: self.next_name.clone(),
            window_close: self.window_close.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for KTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KTable({})", self.node)
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    pub(crate) fn new<KS, VS>(
        from: &KStream<KS, VS>,
        node: String,
        store: Option<String>,
        keys: SerdeSlot<K>,
        values: SerdeSlot<V>,
    ) -> Self {
        Self {
            state: from.state.clone(),
            node,
            store,
            keys,
            values,
            sources: from.sources.clone(),
            next_name: None,
            window_close: None,
        }
    }

    /// The same table; the next operator called on it is named `name`.
    pub fn named(&self, name: &str) -> Self {
        Self { next_name: Some(name.to_string()), ..self.clone() }
    }

    /// The name of the store holding the table, if it is materialized (sources and
    /// aggregations are).
    pub fn store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    pub(crate) fn name_for(&self, prefix: &str) -> String {
        self.state.borrow_mut().name(self.next_name.clone(), prefix)
    }

    pub(crate) fn derive<V2>(&self, node: String, values: SerdeSlot<V2>) -> KTable<K, V2> {
        KTable {
            state: self.state.clone(),
            node,
            store: None,
            keys: self.keys.clone(),
            values,
            sources: self.sources.clone(),
            next_name: None,
            window_close: self.window_close.clone(),
        }
    }
}

/// [`Change`]s as bytes (repartition topics of grouped tables): a flags byte (1: new present,
/// 2: old present), then with both the new value's length (4 bytes big-endian), the new value
/// and the old; with one, just it.
pub struct ChangeSerde<V>(pub ArcSerde<V>);

impl<V: 'static> Serde<Change<V>> for ChangeSerde<V> {
    fn serialize(&self, c: &Change<V>) -> Result<Bytes, SerdeError> {
        let new = c.new.as_ref().map(|v| self.0.serialize(v)).transpose()?;
        let old = c.old.as_ref().map(|v| self.0.serialize(v)).transpose()?;
        let mut b = BytesMut::new();
        b.put_u8(u8::from(new.is_some()) | (u8::from(old.is_some()) << 1));
        match (new, old) {
            (Some(n), Some(o)) => {
                b.put_u32(n.len() as u32);
                b.put_slice(&n);
                b.put_slice(&o);
            }
            (Some(x), None) | (None, Some(x)) => b.put_slice(&x),
            (None, None) => {}
        }
        Ok(b.freeze())
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<Change<V>, SerdeError> {
        let bad = |what: &str| SerdeError { serde: "ChangeSerde", op: "deserialize", what: what.to_string() };
        let (&flags, rest) = bytes.split_first().ok_or_else(|| bad("an empty change"))?;
        let de = |b: &[u8]| self.0.deserialize(b);
        Ok(match flags {
            0 => Change { new: None, old: None },
            1 => Change { new: Some(de(rest)?), old: None },
            2 => Change { new: None, old: Some(de(rest)?) },
            3 => {
                let len: [u8; 4] =
                    rest.get(..4).and_then(|l| l.try_into().ok()).ok_or_else(|| bad("a truncated change"))?;
                let len = u32::from_be_bytes(len) as usize;
                let new = rest.get(4..4 + len).ok_or_else(|| bad("a truncated change"))?;
                Change { new: Some(de(new)?), old: Some(de(&rest[4 + len..])?) }
            }
            f => return Err(bad(&format!("change flags {f}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rill_core::streams::serde::StringSerde;

    use super::*;

    #[test]
    fn changes_round_trip() {
        let s = ChangeSerde::<String>(Arc::new(StringSerde));
        let v = |x: &str| Some(x.to_string());
        for c in [
            Change { new: v("new"), old: v("older") },
            Change { new: v(""), old: v("") },
            Change { new: v("n"), old: None },
            Change { new: None, old: v("o") },
            Change { new: None, old: None },
        ] {
            assert_eq!(s.deserialize(&s.serialize(&c).unwrap()).unwrap(), c);
        }
        assert!(s.deserialize(&[]).is_err());
        assert!(s.deserialize(&[3, 0, 0, 0, 9, b'a']).is_err());
        assert!(s.deserialize(&[7]).is_err());
    }
}
