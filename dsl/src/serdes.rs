//! Serdes as the DSL carries them: shared (`Arc`), known or not, with defaults by type.
//!
//! Every stream and table remembers the serdes of its key and value when it knows them (from
//! [`Consumed`](crate::Consumed), [`Grouped`](crate::Grouped), [`Materialized`](crate::Materialized)
//! or an operator that keeps the type), as Kafka Streams does. An operator that writes bytes (a
//! sink, a repartition topic, a store) uses, in order: the serde passed to it, the one the stream
//! carries, the default for the type ([`default_serde`]). With none of those the topology fails to
//! build with an error naming the operator and the type.

use std::any::{Any, TypeId};
use std::sync::Arc;

use bytes::Bytes;
use rill_core::streams::error::{Result, StreamsError};
use rill_core::streams::serde::{BytesSerde, I64Serde, OptionSerde, Serde, SerdeError, StringSerde, UnitSerde};

/// A serde shared between the operators and tasks that use it.
pub type ArcSerde<T> = Arc<dyn Serde<T>>;

/// A serde the DSL may or may not know.
pub(crate) type SerdeSlot<T> = Option<ArcSerde<T>>;

/// A shared serde as a [`Serde`] value (what stores and topology nodes take).
pub struct SharedSerde<T>(pub ArcSerde<T>);

impl<T> Clone for SharedSerde<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: 'static> Serde<T> for SharedSerde<T> {
    fn serialize(&self, value: &T) -> Result<Bytes, SerdeError> {
        self.0.serialize(value)
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        self.0.deserialize(bytes)
    }
    fn deserialize_null(&self) -> Option<T> {
        self.0.deserialize_null()
    }
    fn serialize_nullable(&self, value: &T) -> Result<Option<Bytes>, SerdeError> {
        self.0.serialize_nullable(value)
    }
}

fn pick<T: 'static, U: 'static>(serde: impl Serde<U>) -> Option<ArcSerde<T>> {
    let shared: ArcSerde<U> = Arc::new(serde);
    let any: Box<dyn Any> = Box::new(shared);
    any.downcast::<ArcSerde<T>>().ok().map(|b| *b)
}

/// The default serde of `T`, like Kafka's `default.key.serde` but chosen by type: `String`
/// ([`StringSerde`]), `i64` ([`I64Serde`]), `()` ([`UnitSerde`]), `Bytes` ([`BytesSerde`]), and
/// `Option` of the first three and of `Bytes` (null as `None`). Other types have none: pass a serde.
///
/// ```
/// use rill_dsl::serdes::default_serde;
/// assert!(default_serde::<String>().is_some());
/// assert!(default_serde::<Option<i64>>().is_some());
/// assert!(default_serde::<u32>().is_none());
/// ```
pub fn default_serde<T: 'static>() -> Option<ArcSerde<T>> {
    let t = TypeId::of::<T>();
    if t == TypeId::of::<String>() {
        pick::<T, String>(StringSerde)
    } else if t == TypeId::of::<i64>() {
        pick::<T, i64>(I64Serde)
    } else if t == TypeId::of::<()>() {
        pick::<T, ()>(UnitSerde)
    } else if t == TypeId::of::<Bytes>() {
        pick::<T, Bytes>(BytesSerde)
    } else if t == TypeId::of::<Option<String>>() {
        pick::<T, Option<String>>(OptionSerde(StringSerde))
    } else if t == TypeId::of::<Option<i64>>() {
        pick::<T, Option<i64>>(OptionSerde(I64Serde))
    } else if t == TypeId::of::<Option<Bytes>>() {
        pick::<T, Option<Bytes>>(OptionSerde(BytesSerde))
    } else {
        None
    }
}

/// The first known of `given`, `carried` and the type's default.
pub(crate) fn choose<T: 'static>(given: &SerdeSlot<T>, carried: &SerdeSlot<T>) -> SerdeSlot<T> {
    given.clone().or_else(|| carried.clone()).or_else(default_serde::<T>)
}

/// `slot`'s serde, or an error saying `operator` needs a serde for `T` and how to pass one.
pub(crate) fn require<T: 'static>(slot: &SerdeSlot<T>, operator: &str, what: &str, how: &str) -> Result<ArcSerde<T>> {
    slot.clone().ok_or_else(|| {
        StreamsError::Topology(format!(
            "{operator}: no {what} serde for {} (it has no default); pass one with {how}",
            std::any::type_name::<T>()
        ))
    })
}

/// A shared serde as an owned serde value.
pub(crate) fn owned<T: 'static>(s: &ArcSerde<T>) -> SharedSerde<T> {
    SharedSerde(s.clone())
}

/// Makes a nullable serde of `Option<T>` from a serde of `T`.
pub(crate) fn nullable<T: 'static>(s: &SerdeSlot<T>) -> SerdeSlot<Option<T>> {
    s.as_ref().map(|s| Arc::new(OptionSerde(SharedSerde(s.clone()))) as ArcSerde<Option<T>>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_by_type_round_trip() {
        let s = default_serde::<String>().unwrap();
        assert_eq!(s.deserialize(&s.serialize(&"héllo".to_string()).unwrap()).unwrap(), "héllo");
        let n = default_serde::<i64>().unwrap();
        assert_eq!(n.serialize(&1).unwrap().as_ref(), &[0, 0, 0, 0, 0, 0, 0, 1]);
        let o = default_serde::<Option<String>>().unwrap();
        assert_eq!(o.serialize_nullable(&None).unwrap(), None);
        assert_eq!(default_serde::<()>().unwrap().deserialize_null(), Some(()));
        assert!(default_serde::<Vec<u8>>().is_none());
    }

    #[test]
    fn given_beats_carried_beats_default() {
        struct Fixed(&'static str);
        impl Serde<String> for Fixed {
            fn serialize(&self, _: &String) -> Result<Bytes, SerdeError> {
                Ok(Bytes::from_static(self.0.as_bytes()))
            }
            fn deserialize(&self, _: &[u8]) -> Result<String, SerdeError> {
                Ok(self.0.to_string())
            }
        }
        let given: SerdeSlot<String> = Some(Arc::new(Fixed("given")));
        let carried: SerdeSlot<String> = Some(Arc::new(Fixed("carried")));
        let out = |s: SerdeSlot<String>| s.unwrap().serialize(&"x".into()).unwrap();
        assert_eq!(out(choose(&given, &carried)), "given");
        assert_eq!(out(choose(&None, &carried)), "carried");
        assert_eq!(out(choose(&None, &None)), "x");
        let Err(e) = require::<u32>(&None, "KSTREAM-SINK-0000000001", "key", "Produced::with") else { panic!() };
        assert!(e.to_string().contains("no key serde for u32"), "{e}");
    }
}
