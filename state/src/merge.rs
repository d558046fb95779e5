//! Ordered ranges over maps, and merging a layer's pending writes over the range of the layer
//! below (read-your-writes for staging and caching).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;

use bytes::Bytes;
use rill_core::streams::store::{BytesIter, StoreResult};

/// A key range as `BTreeMap::range` takes it.
pub(crate) type KeyBounds<'k> = (Bound<&'k [u8]>, Bound<&'k [u8]>);

/// Bounds for `from <= key < to`, or `None` when the range is empty (`from >= to`), which
/// `BTreeMap::range` would panic on.
pub(crate) fn bounds<'k>(from: Option<&'k [u8]>, to: Option<&'k [u8]>) -> Option<KeyBounds<'k>> {
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return None;
        }
    }
    Some((from.map_or(Bound::Unbounded, Bound::Included), to.map_or(Bound::Unbounded, Bound::Excluded)))
}

/// Entries of `map` with `from <= key < to`, ascending.
pub(crate) fn map_range<'a, V>(
    map: &'a BTreeMap<Bytes, V>,
    from: Option<&[u8]>,
    to: Option<&[u8]>,
) -> impl Iterator<Item = (&'a Bytes, &'a V)> + 'a {
    let range = bounds(from, to).map(|b| map.range::<[u8], _>(b));
    range.into_iter().flatten()
}

/// `upper` (pending writes, `None` values are deletes) merged over `lower`, both ascending: a key
/// in `upper` hides the same key in `lower`; deletes hide it and yield nothing.
pub(crate) fn merge<'a, U>(upper: U, lower: BytesIter<'a>) -> BytesIter<'a>
where
    U: Iterator<Item = (Bytes, Option<Bytes>)> + 'a,
{
    Box::new(Merge { upper: upper.peekable(), lower: lower.peekable() })
}

struct Merge<'a, U: Iterator> {
    upper: Peekable<U>,
    lower: Peekable<BytesIter<'a>>,
}

impl<U: Iterator<Item = (Bytes, Option<Bytes>)>> Iterator for Merge<'_, U> {
    type Item = StoreResult<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.upper.peek(), self.lower.peek()) {
                (None, None) => return None,
                (None, Some(_)) | (Some(_), Some(Err(_))) => return self.lower.next(),
                (Some(_), None) => Ordering::Less,
                (Some((uk, _)), Some(Ok((lk, _)))) => uk.cmp(lk),
            };
            if order == Ordering::Greater {
                return self.lower.next();
            }
            if order == Ordering::Equal {
                self.lower.next();
            }
            let (key, value) = self.upper.next().expect("peeked");
            if let Some(value) = value {
                return Some(Ok((key, value)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_core::streams::store::StoreError;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn lower(items: &[(&str, &str)]) -> BytesIter<'static> {
        let v: Vec<_> = items.iter().map(|(k, v)| Ok((b(k), b(v)))).collect();
        Box::new(v.into_iter())
    }

    #[test]
    fn upper_wins_deletes_hide_and_order_holds() {
        let upper = vec![(b("a"), Some(b("A"))), (b("c"), None), (b("d"), Some(b("D"))), (b("z"), None)];
        let got: Vec<_> = merge(upper.into_iter(), lower(&[("b", "1"), ("c", "2"), ("d", "3"), ("e", "4")]))
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(got, vec![(b("a"), b("A")), (b("b"), b("1")), (b("d"), b("D")), (b("e"), b("4"))]);
    }

    #[test]
    fn errors_from_below_come_through() {
        let err = StoreError::Closed("s".into());
        let low: BytesIter<'static> = Box::new(vec![Ok((b("a"), b("1"))), Err(err.clone())].into_iter());
        let got: Vec<_> = merge(vec![(b("b"), Some(b("2")))].into_iter(), low).collect();
        assert_eq!(got, vec![Ok((b("a"), b("1"))), Err(err), Ok((b("b"), b("2")))]);
    }

    #[test]
    fn empty_and_inverted_bounds() {
        let mut m = BTreeMap::new();
        m.insert(b("a"), 1);
        m.insert(b("b"), 2);
        assert_eq!(map_range(&m, Some(b"b"), Some(b"a")).count(), 0);
        assert_eq!(map_range(&m, Some(b"a"), Some(b"a")).count(), 0);
        assert_eq!(map_range(&m, Some(b"a"), Some(b"b")).map(|(_, v)| *v).collect::<Vec<_>>(), vec![1]);
        assert_eq!(map_range(&m, None, None).count(), 2);
    }
}
