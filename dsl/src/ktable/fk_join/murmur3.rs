//! MurmurHash3 x64 128-bit, the hash Kafka Streams' foreign-key join stamps subscriptions with
//! (`org.apache.kafka.streams.state.internals.Murmur3.hash128`, seed 104729).

/// Kafka Streams' default seed.
pub(crate) const DEFAULT_SEED: u32 = 104_729;

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

fn mix_k1(k1: u64) -> u64 {
    k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2)
}

fn mix_k2(k2: u64) -> u64 {
    k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1)
}

/// The 128-bit hash of `data` as its two 64-bit halves `(h1, h2)`.
pub(crate) fn hash128(data: &[u8], seed: u32) -> (u64, u64) {
    // Java sign-extends its int seed; the seeds used here are positive either way.
    let (mut h1, mut h2) = (u64::from(seed), u64::from(seed));
    let blocks = data.chunks_exact(16);
    let tail = blocks.remainder();
    for block in blocks {
        let (a, b) = block.split_at(8);
        let k1 = u64::from_le_bytes(a.try_into().expect("8 bytes"));
        let k2 = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        h1 ^= mix_k1(k1);
        h1 = h1.rotate_left(27).wrapping_add(h2).wrapping_mul(5).wrapping_add(0x52dc_e729);
        h2 ^= mix_k2(k2);
        h2 = h2.rotate_left(31).wrapping_add(h1).wrapping_mul(5).wrapping_add(0x3849_5ab5);
    }
    let le = |bytes: &[u8]| bytes.iter().rev().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if tail.len() > 8 {
        h2 ^= mix_k2(le(&tail[8..]));
    }
    if !tail.is_empty() {
        h1 ^= mix_k1(le(&tail[..tail.len().min(8)]));
    }
    h1 ^= data.len() as u64;
    h2 ^= data.len() as u64;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `Murmur3Test.testMurmur3_128` (seed 123), the halves as Java's signed longs.
    #[test]
    fn matches_kafka_streams_murmur3() {
        let cases: [(&[u8], [i64; 2]); 6] = [
            (b"21", [5857341059704281894, -5288187638297930763]),
            (b"foobar", [-351361463397418609, 8959716011862540668]),
            (b"a-little-bit-long-string", [8836256500583638442, -198172363548498523]),
            (b"a-little-bit-longer-string", [1838346159335108511, 8794688210320490705]),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", [-4024021876037397259, -1482317706335141238]),
            (b"abc", [1489494923063836066, -5440978547625122829]),
        ];
        for (data, [a, b]) in cases {
            assert_eq!(hash128(data, 123), (a as u64, b as u64), "{}", String::from_utf8_lossy(data));
        }
        assert_ne!(hash128(b"", DEFAULT_SEED), hash128(b"\0", DEFAULT_SEED));
    }
}
