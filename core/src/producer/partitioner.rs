//! Kafka's default partitioning, so keys land where Java and librdkafka producers put them.
//!
//! - A record with a key goes to `toPositive(murmur2(key)) % numPartitions` (Java's
//!   `BuiltInPartitioner.partitionForKey`; librdkafka's `murmur2_random`).
//! - A record without a key (or any record with `partitioner.ignore.keys`) goes to the topic's
//!   *sticky* partition (KIP-480): every such record joins the same partition's batch until that
//!   batch is closed (full or sent), then the next batch goes to another partition, chosen at
//!   random among those with a leader. The accumulator tells the topic's `Sticky` state when to move on.

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`): 32-bit MurmurHash2 with seed
/// `0x9747b28c`, reading little-endian 4-byte words. Returns Java's signed `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        let mut k = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= (*b as u32) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner gives `key` in a topic of `partitions` partitions.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    debug_assert!(partitions > 0);
    to_positive(murmur2(key)) % partitions
}

/// A small xorshift64* generator: the sticky partitioner's choices and retry jitter need no more.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded from the clock and an address, different per producer.
    pub(crate) fn new() -> Self {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let local = 0u8;
        Self::seeded(t as u64 ^ ((&local as *const u8 as u64) << 16))
    }

    pub(crate) fn seeded(seed: u64) -> Self {
        // splitmix64 of the seed, so nearby seeds start far apart; never 0.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is negligible for partition counts).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        ((self.next_u64() >> 32) % n as u64) as u32
    }
}

/// The sticky partition of one topic (KIP-480).
#[derive(Debug, Default, Clone)]
pub(crate) struct Sticky {
    current: Option<i32>,
    /// True once a batch was opened on `current`: when that batch is closed, move on.
    used: bool,
}

impl Sticky {
    /// The current sticky partition, choosing one if there is none.
    pub(crate) fn partition(&mut self, available: &[i32], partitions: i32, rng: &mut Rng) -> i32 {
        match self.current {
            Some(p) if p < partitions => p,
            _ => self.choose(available, partitions, rng),
        }
    }

    /// Whether a new batch on the current partition should make the topic move on first.
    pub(crate) fn should_move(&self) -> bool {
        self.used
    }

    /// Record that a new batch was opened on the current sticky partition.
    pub(crate) fn opened_batch(&mut self) {
        self.used = true;
    }

    /// Move to another partition: a random one with a leader, other than the current one when
    /// there is a choice. Returns it.
    pub(crate) fn choose(&mut self, available: &[i32], partitions: i32, rng: &mut Rng) -> i32 {
        let prev = self.current;
        let pick = |rng: &mut Rng, from: &[i32]| from[rng.below(from.len() as u32) as usize];
        let p = match available {
            [] => {
                // No partition has a leader now: any partition; the batch waits for one.
                let all: Vec<i32> = (0..partitions).filter(|p| Some(*p) != prev || partitions == 1).collect();
                pick(rng, &all)
            }
            [only] => *only,
            _ => loop {
                let p = pick(rng, available);
                if Some(p) != prev {
                    break p;
                }
            },
        };
        self.current = Some(p);
        self.used = false;
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own vectors: `UtilsTest.testMurmur2` in clients/src/test/java/org/apache/kafka/
    /// common/utils/UtilsTest.java.
    #[test]
    fn murmur2_matches_kafka_utils_test() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), *want, "murmur2({:?})", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keys_map_with_to_positive_modulo() {
        // -973932308 & 0x7fffffff = 1173551340; 1173551340 % 7 = 2.
        assert_eq!(to_positive(-973932308), 1173551340);
        assert_eq!(partition_for_key(b"21", 7), 1173551340 % 7);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
        for n in 1..50 {
            let p = partition_for_key(b"foobar", n);
            assert!((0..n).contains(&p));
        }
    }

    #[test]
    fn sticky_stays_until_a_batch_closes_then_moves_to_another_partition() {
        let mut rng = Rng::seeded(7);
        let available = [0, 1, 2, 3, 4];
        let mut s = Sticky::default();
        let first = s.partition(&available, 5, &mut rng);
        assert_eq!(s.partition(&available, 5, &mut rng), first, "no batch opened yet: stay");
        assert!(!s.should_move());
        s.opened_batch();
        assert_eq!(s.partition(&available, 5, &mut rng), first, "a batch is open: stay");
        assert!(s.should_move());
        let mut seen = std::collections::BTreeSet::new();
        let mut prev = first;
        for _ in 0..200 {
            let next = s.choose(&available, 5, &mut rng);
            assert_ne!(next, prev, "moving on picks another partition");
            assert!(!s.should_move());
            seen.insert(next);
            prev = next;
            s.opened_batch();
        }
        assert_eq!(seen.len(), 5, "every partition gets batches: {seen:?}");
    }

    #[test]
    fn sticky_prefers_partitions_with_a_leader() {
        let mut rng = Rng::seeded(1);
        let mut s = Sticky::default();
        for _ in 0..50 {
            let p = s.choose(&[2, 5], 6, &mut rng);
            assert!(p == 2 || p == 5, "{p}");
        }
        assert_eq!(s.choose(&[4], 6, &mut rng), 4);
        assert_eq!(s.choose(&[4], 6, &mut rng), 4, "the only available partition, again");
        let p = s.choose(&[], 3, &mut rng);
        assert!((0..3).contains(&p) && p != 4);
        assert_eq!(Sticky::default().choose(&[], 1, &mut rng), 0);
    }
}
