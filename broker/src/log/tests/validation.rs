//! Produce-time validation: every bad batch is rejected with its error and changes nothing.

use super::*;

fn recrc(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn invalid_batches_are_rejected_and_leave_the_log_unchanged() {
    let dir = tempdir();
    let cfg = config(&[("segment.bytes", "1024")]);
    let (log, _) = open(dir.path(), &cfg, true);
    let mut sent = Vec::new();
    for i in 0..12 {
        append(&log, &mut sent, &[batch(5, i * 5, CODECS[i as usize % 5])], 0);
    }
    let good = batch(3, 100, Compression::None);
    let patched = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.to_vec();
        f(&mut b);
        b
    };
    type Check = fn(&LogError) -> bool;
    let crc: Check = |e| matches!(e, LogError::Batch(BatchError::Crc { .. }));
    let truncated: Check = |e| matches!(e, LogError::Batch(BatchError::Truncated { .. }));
    let invalid_record: Check = |e| matches!(e, LogError::InvalidRecord(_));
    let no_key = encode(&[(Some(&b"k"[..]), Some(&b"v"[..]), 1), (None, Some(&b"v"[..]), 2)], Compression::Gzip);
    let compact = config(&[("segment.bytes", "1024"), ("cleanup.policy", "compact")]);
    let len = good.len();
    let cases: Vec<(&str, Vec<u8>, LogConfig, Check)> = vec![
        ("corrupt record byte", patched(&|b| *b.last_mut().unwrap() ^= 1), cfg.clone(), crc),
        ("corrupt attributes", patched(&|b| b[22] ^= 2), cfg.clone(), crc),
        ("corrupt stored crc", patched(&|b| b[18] ^= 0x80), cfg.clone(), crc),
        (
            "corrupt compressed batch",
            {
                let mut b = batch(4, 0, Compression::Gzip).to_vec();
                let n = b.len();
                b[n - 3] ^= 0x10;
                b
            },
            cfg.clone(),
            crc,
        ),
        ("magic 1", patched(&|b| b[batch::MAGIC_OFFSET] = 1), cfg.clone(), |e| {
            matches!(e, LogError::Batch(BatchError::Magic(1)))
        }),
        ("magic 0", patched(&|b| b[batch::MAGIC_OFFSET] = 0), cfg.clone(), |e| {
            matches!(e, LogError::Batch(BatchError::Magic(0)))
        }),
        ("truncated records", good[..len - 1].to_vec(), cfg.clone(), truncated),
        ("truncated header", good[..30].to_vec(), cfg.clone(), truncated),
        (
            "length shorter than a header",
            patched(&|b| b[8..12].copy_from_slice(&20i32.to_be_bytes())),
            cfg.clone(),
            |e| matches!(e, LogError::Batch(BatchError::Invalid(_))),
        ),
        ("second batch truncated", [&good[..], &good[..len - 5]].concat(), cfg.clone(), truncated),
        ("second batch corrupt", [&good[..], &patched(&|b| b[40] ^= 4)[..]].concat(), cfg.clone(), crc),
        ("trailing garbage", [&good[..], &[0u8; 7][..]].concat(), cfg.clone(), truncated),
        (
            "too large",
            good.to_vec(),
            config(&[("segment.bytes", "1024"), ("max.message.bytes", &(len - 1).to_string())]),
            |e| matches!(e, LogError::TooLarge { .. }),
        ),
        (
            "record count above offset range",
            patched(&|b| {
                b[57..61].copy_from_slice(&4i32.to_be_bytes());
                recrc(b)
            }),
            cfg.clone(),
            invalid_record,
        ),
        (
            "offset delta above record count",
            patched(&|b| {
                b[23..27].copy_from_slice(&5i32.to_be_bytes());
                recrc(b)
            }),
            cfg.clone(),
            invalid_record,
        ),
        (
            "no records",
            patched(&|b| {
                b[57..61].copy_from_slice(&0i32.to_be_bytes());
                b[23..27].copy_from_slice(&0i32.to_be_bytes());
                recrc(b)
            }),
            cfg.clone(),
            invalid_record,
        ),
        (
            "control batch from a producer",
            patched(&|b| {
                b[22] |= batch::ATTR_CONTROL as u8;
                recrc(b)
            }),
            cfg.clone(),
            invalid_record,
        ),
        ("empty request", Vec::new(), cfg.clone(), invalid_record),
        ("record without key on a compacted topic", no_key.to_vec(), compact.clone(), invalid_record),
        ("keyless record after a good batch", [&good[..], &no_key[..]].concat(), compact.clone(), invalid_record),
    ];
    let end = log.log_end_offset();
    let size = log.size_bytes();
    let segments = log.segment_count();
    for (name, request, case_cfg, check) in cases {
        log.set_config(case_cfg);
        match log.append(&request, 0) {
            Err(e) => assert!(check(&e), "{name}: wrong error {e:?}"),
            Ok(info) => panic!("{name}: accepted at {info:?}"),
        }
        assert_eq!(
            (log.log_end_offset(), log.size_bytes(), log.segment_count()),
            (end, size, segments),
            "{name}: the log changed"
        );
        assert_log(&log, &sent, name);
    }
    // The limits themselves are accepted.
    log.set_config(config(&[("segment.bytes", "1024"), ("max.message.bytes", &len.to_string())]));
    assert_eq!(append(&log, &mut sent, std::slice::from_ref(&good), 0).base_offset, end);
    log.set_config(compact);
    let keyed = keyed_batch([("a".to_string(), None), ("b".to_string(), Some("v".to_string()))], 0, Compression::None);
    append(&log, &mut sent, &[keyed], 0);
    assert_log(&log, &sent, "after the rejected appends");
}
