//! Helpers shared by the interop tests: running the Python clients, and reading which codec the
//! clients' batches were stored with (batches are stored exactly as they travel).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::common::{interop_script, run_ok};

/// The codec id in a batch's attributes (their low 3 bits).
pub fn codec_id(codec: &str) -> i16 {
    match codec {
        "none" => 0,
        "gzip" => 1,
        "snappy" => 2,
        "lz4" => 3,
        "zstd" => 4,
        other => panic!("unknown codec {other}"),
    }
}

/// The codecs of the batches stored for one partition, from its segment files.
pub fn stored_codecs(data_dir: &Path, topic: &str, partition: i32) -> BTreeSet<i16> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let mut codecs = BTreeSet::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|x| x != "log") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut at = 0;
        while at + 23 <= bytes.len() {
            let len = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes"));
            assert!(len > 0, "{}: bad batch length {len} at {at}", path.display());
            codecs.insert(i16::from_be_bytes(bytes[at + 21..at + 23].try_into().expect("2 bytes")) & 7);
            at += 12 + len as usize;
        }
    }
    codecs
}

/// Every batch stored for `topic [partition]` carries `codec`, except batches the producer chose
/// to send uncompressed (librdkafka does when compressing would not make a batch smaller).
pub fn assert_codec(data_dir: &Path, topic: &str, partition: i32, codec: &str) {
    let want = codec_id(codec);
    let got = stored_codecs(data_dir, topic, partition);
    assert!(
        got.contains(&want) && got.iter().all(|c| *c == want || *c == 0),
        "{topic} [{partition}]: stored batches use codecs {got:?}; expected {codec} ({want}), with perhaps some uncompressed"
    );
}

/// Run `python3 tests/interop/SCRIPT ARGS...`; panic with its output if it fails.
pub fn python(script: &str, args: &[&str]) -> String {
    let path = interop_script(script);
    let out = run_ok(Command::new("python3").arg(&path).args(args));
    eprint!("{out}");
    out
}
