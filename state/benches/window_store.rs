//! Criterion benches for the RocksDB window store through its typed stack (at-least-once, no
//! changelog, no cache: the store and the serdes only): `put` of one-minute windows over 100k
//! keys, and `fetch_key_range` of one key's windows.
//!
//! Compare runs on the same machine only.
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rill_core::streams::serde::{I64Serde, StringSerde};
use rill_core::streams::store::{KeyValueStore, RecordTimestamp};
use rill_core::streams::window::{fetch_key_range, TimeWindowedSerde, Window, Windowed};
use rill_state::{StateConfig, StoreBuilder, StoreContext, TypedStore};

const KEYS: usize = 100_000;
const MINUTE: i64 = 60_000;
/// Windows per key written before measuring.
const PRELOAD_WINDOWS: i64 = 5;

fn key(i: usize) -> String {
    format!("card-{i:06}")
}

fn window(i: usize, minute: i64) -> Windowed<String> {
    Windowed::new(key(i), Window::new(minute * MINUTE, (minute + 1) * MINUTE))
}

/// A RocksDB window store (1 h retention, 30 min segments) holding `PRELOAD_WINDOWS` windows
/// for each of `KEYS` keys.
fn store(dir: &std::path::Path) -> TypedStore<Windowed<String>, i64> {
    let config = StateConfig { state_dir: dir.into(), ..StateConfig::default() };
    let ctx = StoreContext::new("bench", "0_0", 0, config, RecordTimestamp::default());
    let decl = StoreBuilder::window("counts", 60 * MINUTE, 30 * MINUTE)
        .persistent()
        .staged(false)
        .with_logging(false)
        .with_metering(false);
    let mut s = decl.build_typed(&ctx, TimeWindowedSerde::new(StringSerde, MINUTE), I64Serde).unwrap();
    for minute in 0..PRELOAD_WINDOWS {
        for i in 0..KEYS {
            s.put(&window(i, minute), &1).unwrap();
        }
    }
    s
}

fn window_store(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(dir.path());
    let mut g = c.benchmark_group("window_store");
    g.throughput(Throughput::Elements(1));

    // Updates of the current window, key after key (as a windowed count does).
    let mut n = 0usize;
    g.bench_function("put", |b| {
        b.iter(|| {
            let w = window(n % KEYS, PRELOAD_WINDOWS - 1);
            n += 1;
            s.put(black_box(&w), &(n as i64)).unwrap();
        })
    });

    // One key's windows over the preloaded five minutes.
    let mut n = 0usize;
    g.bench_function("fetch_key_range_5_windows", |b| {
        b.iter(|| {
            let k = key(n.wrapping_mul(7_919) % KEYS);
            n += 1;
            let found = fetch_key_range(&s, &k, 0, PRELOAD_WINDOWS * MINUTE).unwrap();
            assert_eq!(found.len(), PRELOAD_WINDOWS as usize);
            black_box(found)
        })
    });

    // A point read of one window.
    let mut n = 0usize;
    g.bench_function("get", |b| {
        b.iter(|| {
            let w = window(n.wrapping_mul(7_919) % KEYS, 2);
            n += 1;
            black_box(s.get(&w).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, window_store);
criterion_main!(benches);
