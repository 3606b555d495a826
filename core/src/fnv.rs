//! A fixed hash (FNV-1a) for the lookup tables a bulk load builds and
//! drops. The engine's state is kept in ordered maps so that nothing
//! depends on a hash seed; these tables are only read by key, never
//! walked, and their hash has no seed, so the engine stays free of
//! randomness (std's `RandomState` asks the OS for one).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` hashed by [`Fnv`].
pub(crate) type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// FNV-1a over the bytes written: short keys such as hostnames hash in a
/// few instructions a byte.
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(OFFSET)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(PRIME);
        }
    }
}

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_alike_and_the_published_vectors_hold() {
        let hash = |b: &[u8]| {
            let mut h = Fnv::default();
            h.write(b);
            h.finish()
        };
        // FNV-1a 64 test vectors (Fowler, Noll, Vo).
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
        let mut m: FnvMap<&str, u32> = FnvMap::default();
        m.insert("node1", 1);
        m.insert("node2", 2);
        assert_eq!((m.get("node1"), m.get("node3")), (Some(&1), None));
    }
}
