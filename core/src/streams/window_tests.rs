use std::collections::BTreeMap;

use super::*;
use crate::streams::serde::{BytesSerde, I64Serde, StringSerde};

/// A typed store over a map of bytes, ordered by key bytes as every real store is.
struct ByteMap<S> {
    serde: S,
    map: BTreeMap<Bytes, i64>,
}

impl<S> ByteMap<S> {
    fn new(serde: S) -> Self {
        Self { serde, map: BTreeMap::new() }
    }
}

impl<K: 'static, S: Serde<Windowed<K>>> KeyValueStore<Windowed<K>, i64> for ByteMap<S> {
    fn get(&self, key: &Windowed<K>) -> StoreResult<Option<i64>> {
        Ok(self.map.get(&self.serde.serialize(key)?).copied())
    }
    fn put(&mut self, key: &Windowed<K>, value: &i64) -> StoreResult<()> {
        self.map.insert(self.serde.serialize(key)?, *value);
        Ok(())
    }
    fn delete(&mut self, key: &Windowed<K>) -> StoreResult<Option<i64>> {
        Ok(self.map.remove(&self.serde.serialize(key)?))
    }
    fn range(&self, from: Option<&Windowed<K>>, to: Option<&Windowed<K>>) -> StoreResult<Vec<(Windowed<K>, i64)>> {
        let from = from.map(|k| self.serde.serialize(k)).transpose()?;
        let to = to.map(|k| self.serde.serialize(k)).transpose()?;
        let mut out = Vec::new();
        for (k, v) in &self.map {
            if from.as_ref().is_some_and(|f| k < f) || to.as_ref().is_some_and(|t| k >= t) {
                continue;
            }
            out.push((self.serde.deserialize(k)?, *v));
        }
        Ok(out)
    }
    fn approximate_len(&self) -> u64 {
        self.map.len() as u64
    }
}

fn tw(key: &str, start: i64, size: i64) -> Windowed<String> {
    Windowed::new(key.to_string(), Window::new(start, start.saturating_add(size)))
}

fn session(key: &str, start: i64, end: i64) -> Windowed<String> {
    Windowed::new(key.to_string(), Window::new(start, end))
}

#[test]
fn time_windowed_layout_is_key_then_start_and_round_trips() {
    let serde = TimeWindowedSerde::new(StringSerde, 100);
    let w = tw("ab", 0x0102, 100);
    let bytes = serde.serialize(&w).unwrap();
    assert_eq!(&bytes[..], b"ab\0\0\0\0\0\0\x01\x02");
    assert_eq!(serde.deserialize(&bytes).unwrap(), w);
    // The end comes from the size, not from the bytes.
    let other = Windowed::new("ab".to_string(), Window::new(0x0102, 5));
    assert_eq!(serde.deserialize(&serde.serialize(&other).unwrap()).unwrap(), w);
    // Saturates instead of overflowing.
    let late = TimeWindowedSerde::new(I64Serde, i64::MAX).deserialize(&[0u8; 16]).unwrap();
    assert_eq!(late.window, Window::new(0, i64::MAX));
    let huge = TimeWindowedSerde::new(BytesSerde, 10).deserialize(&i64::MAX.to_be_bytes()).unwrap();
    assert_eq!((huge.key.len(), huge.window.end), (0, i64::MAX));
    assert_eq!(serde.window_size(), 100);
}

#[test]
fn session_windowed_layout_is_key_then_end_then_start_and_round_trips() {
    let serde = SessionWindowedSerde(StringSerde);
    let w = session("k", 3, 7);
    let bytes = serde.serialize(&w).unwrap();
    let mut want = b"k".to_vec();
    want.extend_from_slice(&7i64.to_be_bytes());
    want.extend_from_slice(&3i64.to_be_bytes());
    assert_eq!(&bytes[..], &want[..]);
    assert_eq!(serde.deserialize(&bytes).unwrap(), w);
    assert_eq!(session_window_end(&bytes), Some(7));
    assert_eq!(time_window_start(&bytes), Some(3));
}

#[test]
fn bad_windows_and_short_bytes_are_serde_errors() {
    let t = TimeWindowedSerde::new(StringSerde, 10);
    let e = t.serialize(&tw("a", -1, 10)).unwrap_err();
    assert_eq!((e.serde, e.op), ("TimeWindowedSerde", "serialize"));
    assert!(e.to_string().contains("negative window start -1"), "{e}");
    let e = t.deserialize(b"1234567").unwrap_err();
    assert!(e.to_string().contains("7 bytes, shorter than the 8-byte window suffix"), "{e}");
    let s = SessionWindowedSerde(StringSerde);
    assert!(s.serialize(&session("a", 0, -5)).unwrap_err().to_string().contains("negative window end -5"));
    assert!(s.deserialize(&[0u8; 15]).unwrap_err().to_string().contains("16-byte window suffix"));
    // The inner serde's errors come through.
    let mut bad = vec![0xff];
    bad.extend_from_slice(&0i64.to_be_bytes());
    assert_eq!(t.deserialize(&bad).unwrap_err().serde, "StringSerde");
    assert_eq!((time_window_start(b"short"), session_window_end(&[0u8; 15])), (None, None));
}

#[test]
fn byte_order_is_key_then_numeric_time() {
    let serde = TimeWindowedSerde::new(StringSerde, 10);
    let times = [0, 1, 255, 256, 65_535, 1 << 40, i64::MAX];
    let mut encoded: Vec<_> = times.iter().map(|t| serde.serialize(&tw("k", *t, 10)).unwrap()).collect();
    encoded.reverse();
    encoded.sort();
    let decoded: Vec<_> = encoded.iter().map(|b| serde.deserialize(b).unwrap().window.start).collect();
    assert_eq!(decoded, times);
    let s = SessionWindowedSerde(StringSerde);
    let (a, b) = (s.serialize(&session("k", 9, 10)).unwrap(), s.serialize(&session("k", 0, 11)).unwrap());
    assert!(a < b, "sessions sort by end first");
}

#[test]
fn fetch_key_range_keeps_exactly_the_key_and_the_times() {
    let mut store = ByteMap::new(TimeWindowedSerde::new(StringSerde, 10));
    for (key, start) in [("a", 0), ("a", 10), ("a", 20), ("a", 30), ("b", 10), ("", 10)] {
        store.put(&tw(key, start, 10), &start).unwrap();
    }
    let starts = |from, to| -> Vec<i64> {
        fetch_key_range(&store, &"a".to_string(), from, to).unwrap().into_iter().map(|(w, _)| w.window.start).collect()
    };
    assert_eq!(starts(10, 20), vec![10, 20], "both bounds inclusive");
    assert_eq!(starts(11, 19), Vec::<i64>::new());
    assert_eq!(starts(-50, 5), vec![0], "negative from reads as 0");
    assert_eq!(starts(0, i64::MAX), vec![0, 10, 20, 30]);
    assert_eq!(starts(20, 10), Vec::<i64>::new(), "inverted");
    let got = fetch_key_range(&store, &"a".to_string(), 10, 10).unwrap();
    assert_eq!(got, vec![(tw("a", 10, 10), 10)]);
}

#[test]
fn fetch_key_range_skips_keys_extending_the_key_bytes() {
    // "a\0\0\0\0\0\0\0" ++ start 5 and "a" ++ start 5 share bytes: the former's key bytes begin
    // with "a" ++ 0 (seven zero bytes of a start), so it sorts inside "a"'s range [0, 2^8).
    let mut store = ByteMap::new(TimeWindowedSerde::new(StringSerde, 10));
    let long = "a\0\0\0\0\0\0\0".to_string();
    store.put(&Windowed::new(long.clone(), Window::new(5, 15)), &1).unwrap();
    store.put(&Windowed::new("a\0".to_string(), Window::new(0, 10)), &2).unwrap();
    store.put(&tw("a", 0, 10), &3).unwrap();
    store.put(&tw("a", 300, 10), &4).unwrap();
    // The raw byte range holds the other keys too.
    let lower = tw("a", 0, 10);
    let upper = tw("a", 301, 10);
    let raw: Vec<_> = store.range(Some(&lower), Some(&upper)).unwrap().into_iter().map(|(w, _)| w.key).collect();
    assert!(raw.contains(&long) && raw.contains(&"a\0".to_string()), "{raw:?}");
    let got = fetch_key_range(&store, &"a".to_string(), 0, 300).unwrap();
    assert_eq!(got, vec![(tw("a", 0, 10), 3), (tw("a", 300, 10), 4)]);
    // And from the longer key's side, "a"'s entries are not its own.
    let got = fetch_key_range(&store, &long, 0, i64::MAX).unwrap();
    assert_eq!(got, vec![(Windowed::new(long.clone(), Window::new(5, 15)), 1)]);
    // A key that is a prefix of the one asked for does not leak in either.
    let got = fetch_key_range(&store, &"a\0".to_string(), 0, i64::MAX).unwrap();
    assert_eq!(got, vec![(Windowed::new("a\0".to_string(), Window::new(0, 10)), 2)]);
}

#[test]
fn find_sessions_keeps_overlapping_sessions_of_the_key_only() {
    let mut store = ByteMap::new(SessionWindowedSerde(StringSerde));
    for (key, start, end) in [("a", 0, 5), ("a", 10, 20), ("a", 30, 30), ("a", 40, 100), ("b", 10, 20)] {
        store.put(&session(key, start, end), &end).unwrap();
    }
    // A key extending "a" whose bytes fall inside "a"'s range (end bytes start with zeros).
    let long = "a\0\0\0\0\0\0\0".to_string();
    store.put(&Windowed::new(long.clone(), Window::new(12, 15)), &-1).unwrap();
    let find = |earliest_end, latest_start| -> Vec<(i64, i64)> {
        find_sessions(&store, &"a".to_string(), earliest_end, latest_start)
            .unwrap()
            .into_iter()
            .map(|(w, _)| (w.window.start, w.window.end))
            .collect()
    };
    // A record at 25 with gap 5: sessions ending >= 20 and starting <= 30.
    assert_eq!(find(20, 30), vec![(10, 20), (30, 30)]);
    assert_eq!(find(0, i64::MAX), vec![(0, 5), (10, 20), (30, 30), (40, 100)]);
    assert_eq!(find(21, 29), Vec::<(i64, i64)>::new(), "the gap between sessions");
    assert_eq!(find(-10, 0), vec![(0, 5)]);
    assert_eq!(find(50, 60), vec![(40, 100)], "a long session spans the query");
    assert_eq!(find(0, -1), Vec::<(i64, i64)>::new());
    let got = find_sessions(&store, &long, 0, i64::MAX).unwrap();
    assert_eq!(got, vec![(Windowed::new(long, Window::new(12, 15)), -1)]);
}
