//! Criterion benches for the partition log: append, read and produce-time validation, per batch
//! size.
//!
//! Throughput is reported in bytes of batches; compare runs on the same machine only.
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::records::Compression;
use rill_broker::log::validate::validate_batches;
use rill_broker::log::{Log, LogConfig};
use rill_core::records::{encode_batch, ProducerRecord};

fn batch(records: usize, value_size: usize) -> Bytes {
    let recs: Vec<ProducerRecord> = (0..records)
        .map(|i| ProducerRecord {
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'v'; value_size])),
            headers: Vec::new(),
            timestamp: Some(1_700_000_000_000 + i as i64),
        })
        .collect();
    encode_batch(&recs, Compression::None, 0).expect("encode")
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_append");
    for (records, size) in [(16usize, 1024usize), (256, 1024), (160, 100)] {
        let b = batch(records, size);
        g.throughput(Throughput::Bytes(b.len() as u64));
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = LogConfig::default();
        cfg.set("segment.bytes", "268435456").unwrap();
        let (log, _) = Log::open(dir.path(), cfg, true, 0).unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(format!("{records}x{size}B")), &b, |bench, b| {
            bench.iter(|| black_box(log.append(b, 0).unwrap()))
        });
    }
    g.finish();
}

fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_read");
    let b = batch(64, 1024);
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogConfig::default(), true, 0).unwrap();
    let batches = 2048;
    for _ in 0..batches {
        log.append(&b, 0).unwrap();
    }
    let end = log.log_end_offset();
    for max in [64 * 1024u64, 1 << 20] {
        g.throughput(Throughput::Bytes(max));
        let mut offset = 0;
        g.bench_function(BenchmarkId::new("locate_and_slice", max), |bench| {
            bench.iter(|| {
                let r = log.read(offset, max).unwrap();
                offset = (offset + 997) % end;
                black_box(r.slice.map(|s| s.len))
            })
        });
        g.bench_function(BenchmarkId::new("locate_and_copy", max), |bench| {
            bench.iter(|| {
                let r = log.read(offset, max).unwrap();
                offset = (offset + 997) % end;
                black_box(r.slice.map(|s| s.read_bytes().unwrap().len()))
            })
        });
    }
    g.finish();
}

/// What a leader checks in every produced batch before appending it (CRC, then a walk over each
/// record's varints), apart from the write.
fn validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_validate");
    for (records, size) in [(2600usize, 100usize), (256, 1024)] {
        let b = batch(records, size);
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(format!("{records}x{size}B")), &b, |bench, b| {
            bench.iter(|| black_box(validate_batches(b, i64::MAX, false).unwrap().len()))
        });
    }
    g.finish();
}

criterion_group!(benches, append, read, validate);
criterion_main!(benches);
