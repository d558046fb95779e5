//! Telling a null key or value from a present one, as its serde sees it.
//!
//! Joins drop (or, in left joins, pass on) records with a null key or value, as Kafka Streams
//! does. A Rill key or value is null when its serde writes it as null
//! ([`Serde::serialize_nullable`](rill_core::streams::serde::Serde::serialize_nullable) gives no
//! bytes): `None` under an `OptionSerde`, `()` under `UnitSerde`. A type whose serde cannot hold
//! a null (`deserialize_null` is `None`, e.g. `String` under `StringSerde`) is never null and costs
//! nothing to check: a source already skipped its null records.

use std::sync::Arc;

use crate::serdes::{default_serde, SerdeSlot};

/// Whether a value is null.
pub(crate) type NullTest<T> = Option<Arc<dyn Fn(&T) -> bool + Send + Sync>>;

/// The null test of `T` by the serde in `slot`, else the type's default serde; `None` when `T`
/// cannot be null (or the serde is unknown: the value is then taken as present).
pub(crate) fn null_test<T: 'static>(slot: &SerdeSlot<T>) -> NullTest<T> {
    let serde = slot.clone().or_else(default_serde::<T>)?;
    serde.deserialize_null()?;
    Some(Arc::new(move |v: &T| matches!(serde.serialize_nullable(v), Ok(None))))
}

/// Whether `value` is null by `test`.
pub(crate) fn is_null<T>(test: &NullTest<T>, value: &T) -> bool {
    test.as_ref().is_some_and(|t| t(value))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rill_core::streams::serde::{OptionSerde, StringSerde};

    use super::*;

    #[test]
    fn nulls_are_what_the_serde_writes_as_null() {
        let opt = null_test::<Option<String>>(&None).expect("Option<String> can be null");
        assert!(opt(&None));
        assert!(!opt(&Some(String::new())));
        assert!(null_test::<String>(&None).is_none(), "a String is never null");
        assert!(null_test::<()>(&None).is_some_and(|t| t(&())), "() is always null");
        let given: SerdeSlot<Option<String>> = Some(Arc::new(OptionSerde(StringSerde)));
        assert!(is_null(&null_test(&given), &None));
        assert!(!is_null(&null_test::<u32>(&None), &7));
    }
}
