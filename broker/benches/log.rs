//! Criterion benches for the partition log: append and read, per batch size.
//!
//! Throughput is reported in bytes of batches; compare runs on the same machine only.
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use indexmap::IndexMap;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use rill_broker::log::{Log, LogConfig};

fn batch(records: usize, value_size: usize) -> Bytes {
    let recs: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'v'; value_size])),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("encode");
    buf.freeze()
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

criterion_group!(benches, append, read);
criterion_main!(benches);
