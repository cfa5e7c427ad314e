//! The partition a keyed record lands in, as the producer's partitioner
//! puts it: what a per-user query needs to find the user's owner.

/// Kafka's murmur2 (the Java client's `Utils.murmur2`, seed 0x9747b28c).
fn murmur2(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    for (i, byte) in tail.iter().enumerate() {
        h ^= u32::from(*byte) << (8 * i);
    }
    if !tail.is_empty() {
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// 32-bit FNV-1a, as librdkafka's `fnv1a` partitioner hashes.
fn fnv1a(key: &[u8]) -> u32 {
    key.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The partition of a non-empty `key` among `partitions` under librdkafka's
/// `partitioner`; `None` for a partitioner arus does not compute here (the
/// CRC32 ones, `random`) or no partitions.
pub fn partition_of(key: &str, partitions: i32, partitioner: &str) -> Option<i32> {
    let n = u32::try_from(partitions).ok().filter(|n| *n > 0)?;
    let hash = match partitioner {
        "murmur2" | "murmur2_random" => murmur2(key.as_bytes()) & 0x7fff_ffff,
        "fnv1a" | "fnv1a_random" => fnv1a(key.as_bytes()),
        _ => return None,
    };
    i32::try_from(hash % n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_is_kafkas_and_fnv1a_is_the_reference() {
        // Kafka's own vectors for Utils.murmur2 (signed, as Java prints them).
        assert_eq!(murmur2(b"21") as i32, -973_932_308);
        assert_eq!(murmur2(b"foobar") as i32, -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985_981_536);
        // FNV-1a 32 reference values.
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
        assert_eq!(
            partition_of("21", 3, "murmur2_random"),
            Some(((-973_932_308i32 as u32 & 0x7fff_ffff) % 3) as i32)
        );
        assert_eq!(partition_of("u", 3, "random"), None);
        assert_eq!(partition_of("u", 0, "murmur2"), None);
    }
}
