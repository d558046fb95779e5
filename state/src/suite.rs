//! Test bodies written once and run against every engine and layer stack (DESIGN §5.11):
//! [`bytes_store_suite`] for [`BytesStore`]s (RocksDB, in-memory), [`layer_suite`] for
//! [`KvLayer`] stacks.

use bytes::Bytes;
use rill_core::streams::store::{BytesStore, ChangelogSink, StoreResult};

use crate::layer::KvLayer;

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

fn all_bytes<S: BytesStore>(s: &S, from: Option<&[u8]>, to: Option<&[u8]>) -> Vec<(Bytes, Bytes)> {
    s.range(from, to).unwrap().map(|r| r.unwrap()).collect()
}

fn keys(entries: &[(Bytes, Bytes)]) -> Vec<&[u8]> {
    entries.iter().map(|(k, _)| &k[..]).collect()
}

/// Every [`BytesStore`] behaves alike. `open` gives a fresh, empty store each call.
pub(crate) fn bytes_store_suite<S: BytesStore>(mut open: impl FnMut() -> S) {
    // Empty.
    let s = open();
    assert_eq!(s.get(b"a").unwrap(), None);
    assert_eq!(s.checkpoint().unwrap(), None);
    assert!(all_bytes(&s, None, None).is_empty());
    drop(s);

    // Put, overwrite, delete, delete of a missing key; batches apply in order.
    let mut s = open();
    s.write(vec![(b(b"a"), Some(b(b"1"))), (b(b"b"), Some(b(b"2")))], None).unwrap();
    assert_eq!(s.get(b"a").unwrap(), Some(b(b"1")));
    s.write(vec![(b(b"a"), Some(b(b"11"))), (b(b"b"), None), (b(b"zz"), None)], None).unwrap();
    assert_eq!(s.get(b"a").unwrap(), Some(b(b"11")));
    assert_eq!(s.get(b"b").unwrap(), None);
    s.write(vec![(b(b"c"), Some(b(b"3"))), (b(b"c"), None), (b(b"d"), None), (b(b"d"), Some(b(b"4")))], None).unwrap();
    assert_eq!(s.get(b"c").unwrap(), None, "put then delete in one batch: deleted");
    assert_eq!(s.get(b"d").unwrap(), Some(b(b"4")), "delete then put in one batch: present");
    // Empty values are values, not deletes.
    s.write(vec![(b(b"e"), Some(Bytes::new()))], None).unwrap();
    assert_eq!(s.get(b"e").unwrap(), Some(Bytes::new()));
    drop(s);

    // Ordering is by unsigned bytes; range bounds are [from, to).
    let mut s = open();
    let ks: [&[u8]; 7] = [b"b", b"", b"\xff", b"a", b"ab", b"\x00", b"\xff\x00"];
    s.write(ks.iter().map(|k| (b(k), Some(b(k)))).collect(), None).unwrap();
    let all = all_bytes(&s, None, None);
    assert_eq!(keys(&all), vec![&b""[..], b"\x00", b"a", b"ab", b"b", b"\xff", b"\xff\x00"]);
    assert!(all.iter().all(|(k, v)| k == v));
    assert_eq!(keys(&all_bytes(&s, Some(b"a"), Some(b"b"))), vec![&b"a"[..], b"ab"]);
    assert_eq!(keys(&all_bytes(&s, Some(b"ab"), None)), vec![&b"ab"[..], b"b", b"\xff", b"\xff\x00"]);
    assert_eq!(keys(&all_bytes(&s, None, Some(b"a"))), vec![&b""[..], b"\x00"]);
    assert_eq!(keys(&all_bytes(&s, Some(b"\xff"), None)), vec![&b"\xff"[..], b"\xff\x00"]);
    assert!(all_bytes(&s, Some(b"b"), Some(b"b")).is_empty());
    assert!(all_bytes(&s, Some(b"b"), Some(b"a")).is_empty(), "inverted bounds are empty, not a panic");
    drop(s);

    // Checkpoints: kept by writes without one, moved by writes with one (even an empty batch).
    let mut s = open();
    s.write(vec![(b(b"a"), Some(b(b"1")))], Some(5)).unwrap();
    assert_eq!(s.checkpoint().unwrap(), Some(5));
    s.write(vec![(b(b"a"), Some(b(b"2")))], None).unwrap();
    assert_eq!(s.checkpoint().unwrap(), Some(5));
    s.write(Vec::new(), Some(9)).unwrap();
    assert_eq!(s.checkpoint().unwrap(), Some(9));
    assert_eq!(s.get(b"a").unwrap(), Some(b(b"2")));
    s.flush().unwrap();

    // Clear drops entries and checkpoint; the store stays usable.
    s.clear().unwrap();
    assert_eq!(s.checkpoint().unwrap(), None);
    assert!(all_bytes(&s, None, None).is_empty());
    s.write(vec![(b(b"x"), Some(b(b"y")))], Some(1)).unwrap();
    assert_eq!(s.get(b"x").unwrap(), Some(b(b"y")));
}

/// A sink that records what it is sent.
#[derive(Debug, Default)]
pub(crate) struct RecordingSink {
    /// `(topic, partition, key, value, timestamp)` in send order.
    pub sent: Vec<(String, i32, Bytes, Option<Bytes>, i64)>,
}

impl ChangelogSink for RecordingSink {
    fn send(&mut self, topic: &str, partition: i32, key: &Bytes, value: Option<&Bytes>, ts: i64) -> StoreResult<()> {
        self.sent.push((topic.to_string(), partition, key.clone(), value.cloned(), ts));
        Ok(())
    }
}

fn all_layer<L: KvLayer>(s: &L, from: Option<&[u8]>, to: Option<&[u8]>) -> Vec<(Bytes, Bytes)> {
    s.range(from, to).unwrap().map(|r| r.unwrap()).collect()
}

fn commit<L: KvLayer>(s: &mut L, offset: Option<i64>) {
    s.flush_cache().unwrap();
    s.send_changelog(&mut RecordingSink::default()).unwrap();
    s.commit(offset).unwrap();
}

/// Every [`KvLayer`] stack behaves alike towards processors and the runtime. `open` gives a
/// fresh, empty stack each call; `abort_rolls_back` says whether abort drops uncommitted writes
/// (`Some(true)` over staging, `Some(false)` for write-through, `None`: not checked, as for a
/// cache over write-through, which drops only what it still holds).
pub(crate) fn layer_suite<L: KvLayer>(mut open: impl FnMut() -> L, abort_rolls_back: Option<bool>) {
    // Read-your-writes before any commit, ranges in order with deletes hidden.
    let mut s = open();
    for (k, v) in [("c", "3"), ("a", "1"), ("b", "2"), ("d", "4")] {
        s.put(b(k.as_bytes()), Some(b(v.as_bytes())), 0).unwrap();
    }
    s.put(b(b"b"), None, 0).unwrap();
    s.put(b(b"a"), Some(b(b"10")), 0).unwrap();
    assert_eq!(s.get(b"a").unwrap(), Some(b(b"10")));
    assert_eq!(s.get(b"b").unwrap(), None);
    assert_eq!(keys(&all_layer(&s, None, None)), vec![&b"a"[..], b"c", b"d"]);
    assert_eq!(keys(&all_layer(&s, Some(b"b"), Some(b"d"))), vec![&b"c"[..]]);
    assert!(all_layer(&s, Some(b"d"), Some(b"a")).is_empty());

    // Commit, then more writes mixing with committed data.
    commit(&mut s, Some(3));
    assert_eq!(s.checkpoint().unwrap(), Some(3));
    s.put(b(b"c"), None, 0).unwrap();
    s.put(b(b"e"), Some(b(b"5")), 0).unwrap();
    assert_eq!(keys(&all_layer(&s, None, None)), vec![&b"a"[..], b"d", b"e"]);
    s.abort();
    match abort_rolls_back {
        Some(true) => {
            assert_eq!(keys(&all_layer(&s, None, None)), vec![&b"a"[..], b"c", b"d"]);
            assert_eq!(s.get(b"e").unwrap(), None);
        }
        Some(false) => assert_eq!(keys(&all_layer(&s, None, None)), vec![&b"a"[..], b"d", b"e"]),
        None => {}
    }
    assert_eq!(s.checkpoint().unwrap(), Some(3));
    commit(&mut s, None);
    assert_eq!(s.checkpoint().unwrap(), Some(3), "a commit without an offset keeps the checkpoint");

    // Restore goes straight in with its checkpoint; clear wipes.
    let mut s = open();
    s.restore(vec![(b(b"r"), Some(b(b"1"))), (b(b"q"), Some(b(b"2"))), (b(b"q"), None)], 42).unwrap();
    assert_eq!(s.checkpoint().unwrap(), Some(42));
    assert_eq!(keys(&all_layer(&s, None, None)), vec![&b"r"[..]]);
    s.flush().unwrap();
    s.clear().unwrap();
    assert_eq!(s.checkpoint().unwrap(), None);
    assert!(all_layer(&s, None, None).is_empty());
}

/// Random operations against a model, for stacks over any engine: reads see committed state
/// overlaid with the writes since the last commit; a commit makes them committed; an abort
/// (when `abort_rolls_back`) drops them. With `logged`, the changes sent to the changelog during
/// each committed transaction, replayed in order, rebuild exactly the committed state (changes
/// sent during aborted ones are dropped, as read_committed would).
pub(crate) fn model_check<L: KvLayer>(mut s: L, seed: u64, steps: usize, logged: bool, abort_rolls_back: bool) {
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut committed: BTreeMap<Bytes, Bytes> = BTreeMap::new();
    let mut pending: BTreeMap<Bytes, Option<Bytes>> = BTreeMap::new();
    let mut changelog_state: BTreeMap<Bytes, Bytes> = BTreeMap::new();
    let mut txn = RecordingSink::default();
    let key = |rng: &mut rand::rngs::StdRng| -> Bytes {
        let n: u8 = rng.gen_range(0..24);
        if n < 16 {
            Bytes::copy_from_slice(&[b'a' + n])
        } else {
            Bytes::copy_from_slice(&[b'a' + n - 16, b'x'])
        }
    };
    let view = |committed: &BTreeMap<Bytes, Bytes>, pending: &BTreeMap<Bytes, Option<Bytes>>| {
        let mut v = committed.clone();
        for (k, p) in pending {
            match p {
                Some(val) => v.insert(k.clone(), val.clone()),
                None => v.remove(k),
            };
        }
        v
    };
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        match rng.gen_range(0..100) {
            0..=39 => {
                let (k, v) = (key(&mut rng), Bytes::from(format!("v{step}")));
                s.put(k.clone(), Some(v.clone()), step as i64).unwrap();
                pending.insert(k, Some(v));
            }
            40..=54 => {
                let k = key(&mut rng);
                s.put(k.clone(), None, step as i64).unwrap();
                pending.insert(k, None);
            }
            55..=69 => {
                let k = key(&mut rng);
                let want = view(&committed, &pending).get(&k).cloned();
                assert_eq!(s.get(&k).unwrap(), want, "{ctx}: get {k:?}");
            }
            70..=84 => {
                let (a, b) = (key(&mut rng), key(&mut rng));
                let from = rng.gen_bool(0.8).then_some(a);
                let to = rng.gen_bool(0.8).then_some(b);
                let want: Vec<_> = view(&committed, &pending)
                    .into_iter()
                    .filter(|(k, _)| from.as_ref().is_none_or(|f| k >= f) && to.as_ref().is_none_or(|t| k < t))
                    .collect();
                let got: Vec<_> = s.range(from.as_deref(), to.as_deref()).unwrap().map(|r| r.unwrap()).collect();
                assert_eq!(got, want, "{ctx}: range {from:?}..{to:?}");
            }
            85..=89 => {
                s.send_changelog(&mut txn).unwrap();
            }
            90..=95 => {
                s.flush_cache().unwrap();
                s.send_changelog(&mut txn).unwrap();
                s.commit(Some(step as i64)).unwrap();
                committed = view(&committed, &pending);
                pending.clear();
                for (_, _, k, v, _) in txn.sent.drain(..) {
                    match v {
                        Some(v) => changelog_state.insert(k, v),
                        None => changelog_state.remove(&k),
                    };
                }
                if logged {
                    assert_eq!(changelog_state, committed, "{ctx}: changelog replay after commit");
                }
                assert_eq!(s.checkpoint().unwrap(), Some(step as i64), "{ctx}");
            }
            _ if abort_rolls_back => {
                s.abort();
                pending.clear();
                txn.sent.clear();
            }
            _ => {}
        }
    }
    if !logged {
        assert!(changelog_state.is_empty(), "seed {seed}: an unlogged store sent changes");
    }
}
