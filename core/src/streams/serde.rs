//! Serdes: how keys and values become bytes on topics and in stores.
//!
//! A [`Serde<T>`] turns a `T` into bytes and back. Ready-made: [`StringSerde`], [`BytesSerde`],
//! [`JsonSerde`] and [`BincodeSerde`] (any `serde` type), [`I64Serde`] (8 bytes big-endian, as
//! Kafka's `LongSerializer`), [`UnitSerde`] (anything as `()`), [`OptionSerde`] (nullable), or
//! implement the trait for your own format.

use std::marker::PhantomData;

use bytes::Bytes;

/// A value that could not be turned into bytes or back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{serde}: cannot {op} {what}")]
pub struct SerdeError {
    /// Which serde.
    pub serde: &'static str,
    /// `serialize` or `deserialize`.
    pub op: &'static str,
    /// What was wrong.
    pub what: String,
}

impl SerdeError {
    fn de(serde: &'static str, what: impl std::fmt::Display) -> Self {
        Self { serde, op: "deserialize", what: what.to_string() }
    }
    fn ser(serde: &'static str, what: impl std::fmt::Display) -> Self {
        Self { serde, op: "serialize", what: what.to_string() }
    }
}

/// Turns a `T` into bytes and back.
///
/// Kafka keys and values may be null. A serde says what a null is with
/// [`Serde::deserialize_null`] (by default: nothing it can represent, so a source skips such a
/// record) and which values are written as null with [`Serde::serialize_nullable`] (by default:
/// none). [`UnitSerde`] reads anything, null included, as `()` and writes null; [`OptionSerde`]
/// makes any serde's type nullable as `Option<T>`.
pub trait Serde<T>: Send + Sync + 'static {
    /// `value` as bytes.
    fn serialize(&self, value: &T) -> Result<Bytes, SerdeError>;
    /// The value in `bytes`.
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError>;
    /// The value a null key or value stands for, or `None` if this serde has none.
    fn deserialize_null(&self) -> Option<T> {
        None
    }
    /// `value` as bytes, or `None` to write a null.
    fn serialize_nullable(&self, value: &T) -> Result<Option<Bytes>, SerdeError> {
        self.serialize(value).map(Some)
    }
}

/// Makes the values of serde `S` nullable: `None` is a null key or value.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionSerde<S>(pub S);

impl<T: 'static, S: Serde<T>> Serde<Option<T>> for OptionSerde<S> {
    fn serialize(&self, value: &Option<T>) -> Result<Bytes, SerdeError> {
        match value {
            Some(v) => self.0.serialize(v),
            None => Err(SerdeError::ser("OptionSerde", "None as bytes (it is written as null)")),
        }
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Option<T>, SerdeError> {
        self.0.deserialize(bytes).map(Some)
    }
    fn deserialize_null(&self) -> Option<Option<T>> {
        Some(None)
    }
    fn serialize_nullable(&self, value: &Option<T>) -> Result<Option<Bytes>, SerdeError> {
        value.as_ref().map(|v| self.0.serialize(v)).transpose()
    }
}

/// UTF-8 strings.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, value: &String) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(value.as_bytes()))
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<String, SerdeError> {
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|e| SerdeError::de("StringSerde", e))
    }
}

/// Bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serde<Bytes> for BytesSerde {
    fn serialize(&self, value: &Bytes) -> Result<Bytes, SerdeError> {
        Ok(value.clone())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(bytes))
    }
}

/// `i64` as 8 bytes big-endian (Kafka's `LongSerializer`).
#[derive(Debug, Clone, Copy, Default)]
pub struct I64Serde;

impl Serde<i64> for I64Serde {
    fn serialize(&self, value: &i64) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(&value.to_be_bytes()))
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<i64, SerdeError> {
        let arr: [u8; 8] = bytes
            .try_into()
            .map_err(|_| SerdeError::de("I64Serde", format_args!("{} bytes, expected 8", bytes.len())))?;
        Ok(i64::from_be_bytes(arr))
    }
}

/// `()`: reads any key or value, null included, and writes null (for streams whose keys carry
/// nothing, such as lines of text).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitSerde;

impl Serde<()> for UnitSerde {
    fn serialize(&self, _: &()) -> Result<Bytes, SerdeError> {
        Ok(Bytes::new())
    }
    fn deserialize(&self, _: &[u8]) -> Result<(), SerdeError> {
        Ok(())
    }
    fn deserialize_null(&self) -> Option<()> {
        Some(())
    }
    fn serialize_nullable(&self, _: &()) -> Result<Option<Bytes>, SerdeError> {
        Ok(None)
    }
}

/// Any `serde` type as JSON.
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T> std::fmt::Debug for JsonSerde<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonSerde")
    }
}

impl<T: serde::Serialize + serde::de::DeserializeOwned + 'static> Serde<T> for JsonSerde<T> {
    fn serialize(&self, value: &T) -> Result<Bytes, SerdeError> {
        serde_json::to_vec(value).map(Bytes::from).map_err(|e| SerdeError::ser("JsonSerde", e))
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        serde_json::from_slice(bytes).map_err(|e| SerdeError::de("JsonSerde", e))
    }
}

/// Any `serde` type in bincode's compact binary form (fixed-width integers, little-endian).
pub struct BincodeSerde<T>(PhantomData<fn() -> T>);

impl<T> Default for BincodeSerde<T> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T> std::fmt::Debug for BincodeSerde<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BincodeSerde")
    }
}

impl<T: serde::Serialize + serde::de::DeserializeOwned + 'static> Serde<T> for BincodeSerde<T> {
    fn serialize(&self, value: &T) -> Result<Bytes, SerdeError> {
        bincode::serialize(value).map(Bytes::from).map_err(|e| SerdeError::ser("BincodeSerde", e))
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        bincode::deserialize(bytes).map_err(|e| SerdeError::de("BincodeSerde", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: PartialEq + std::fmt::Debug + 'static>(s: &dyn Serde<T>, v: T) {
        let b = s.serialize(&v).unwrap();
        assert_eq!(s.deserialize(&b).unwrap(), v);
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Order {
        id: u64,
        item: String,
        qty: Option<i32>,
    }

    #[test]
    fn every_serde_round_trips() {
        round_trip(&StringSerde, "héllo".to_string());
        round_trip(&BytesSerde, Bytes::from_static(b"\x00\xff"));
        round_trip(&I64Serde, -42);
        round_trip(&UnitSerde, ());
        round_trip(&JsonSerde::default(), Order { id: 7, item: "tea".into(), qty: Some(2) });
        round_trip(&BincodeSerde::default(), Order { id: 7, item: "tea".into(), qty: None });
        assert_eq!(I64Serde.serialize(&1).unwrap().as_ref(), &[0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn nulls_are_what_the_serde_says() {
        assert_eq!(StringSerde.deserialize_null(), None);
        assert_eq!(UnitSerde.deserialize_null(), Some(()));
        assert_eq!(UnitSerde.serialize_nullable(&()).unwrap(), None);
        let opt = OptionSerde(StringSerde);
        assert_eq!(opt.deserialize_null(), Some(None));
        assert_eq!(opt.serialize_nullable(&None).unwrap(), None);
        assert_eq!(opt.serialize_nullable(&Some("a".into())).unwrap(), Some(Bytes::from_static(b"a")));
        assert_eq!(opt.deserialize(b"a").unwrap(), Some("a".to_string()));
    }

    #[test]
    fn bad_bytes_are_a_typed_error_naming_the_serde() {
        let e = StringSerde.deserialize(&[0xff, 0xfe]).unwrap_err();
        assert_eq!((e.serde, e.op), ("StringSerde", "deserialize"));
        assert!(I64Serde.deserialize(&[1, 2]).unwrap_err().to_string().contains("2 bytes, expected 8"));
        assert!(JsonSerde::<Order>::default().deserialize(b"{").is_err());
    }
}
