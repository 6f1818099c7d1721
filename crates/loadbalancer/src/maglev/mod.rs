//! Maglev consistent hashing, built the way Cilium builds it so that every agent — ours or
//! Cilium's — with the same seed and backends computes the same table: table size M a
//! prime from Cilium's list (default 16381); each backend's permutation of the M entries
//! starts at `h1 % M` and steps by `h2 % (M - 1) + 1`, where `(h1, h2)` is the 128-bit
//! MurmurHash3 of the backend's identity string with the cluster-wide seed; backends, in
//! the order of their identity strings, take turns claiming their next free entry, as
//! often as their weights say.
//!
//! The table holds node-local backend IDs, but which backend an entry names depends only
//! on the identity strings, so a flow picks the same backend on every node.

mod murmur3;
mod table;

pub use table::{backend_key, lookup_table, MaglevBackend, DEFAULT_WEIGHT};

use base64::Engine;

/// The table sizes Cilium supports (primes).
pub const SUPPORTED_TABLE_SIZES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];
/// Cilium's default table size.
pub const DEFAULT_TABLE_SIZE: u32 = 16381;
/// Cilium's default seed (`maglev.hashSeed`, base64 of 12 bytes); every agent of a
/// cluster must use the same one.
pub const DEFAULT_HASH_SEED: &str = "JLfvgnHc2kaSUFaI";

/// A Maglev setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MaglevError {
    #[error("Maglev table size {size} is not one of {SUPPORTED_TABLE_SIZES:?}")]
    TableSize { size: u32 },
    #[error("Maglev hash seed {seed:?} is not base64")]
    SeedEncoding {
        seed: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("Maglev hash seed {seed:?} decodes to {length} bytes, not 12")]
    SeedLength { seed: String, length: usize },
}

/// M, the number of entries of every Maglev table: one of [`SUPPORTED_TABLE_SIZES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSize(u32);

impl TableSize {
    /// Checks `size` against [`SUPPORTED_TABLE_SIZES`].
    pub fn new(size: u32) -> Result<Self, MaglevError> {
        if SUPPORTED_TABLE_SIZES.contains(&size) {
            Ok(TableSize(size))
        } else {
            Err(MaglevError::TableSize { size })
        }
    }

    /// M.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for TableSize {
    fn default() -> Self {
        TableSize(DEFAULT_TABLE_SIZE)
    }
}

/// The cluster-wide hash seed: 12 bytes, given in base64. Its first four bytes (big
/// endian) seed the backend hash; the other eight are the datapath's two flow-hash
/// seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashSeed {
    murmur: u32,
    jhash: (u32, u32),
}

impl HashSeed {
    /// Decodes a seed such as `head -c12 /dev/urandom | base64 -w0` prints.
    pub fn from_base64(seed: &str) -> Result<Self, MaglevError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(seed)
            .map_err(|source| MaglevError::SeedEncoding {
                seed: seed.to_string(),
                source,
            })?;
        let bytes: [u8; 12] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| MaglevError::SeedLength {
                seed: seed.to_string(),
                length: bytes.len(),
            })?;
        let word =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Ok(HashSeed {
            murmur: word(0),
            jhash: (word(4), word(8)),
        })
    }

    /// The seed of the backend hash.
    pub fn murmur(&self) -> u32 {
        self.murmur
    }

    /// The two seeds of the datapath's flow hash (Cilium's `SeedJhash0`, `SeedJhash1`).
    pub fn flow_hash(&self) -> (u32, u32) {
        self.jhash
    }
}

impl Default for HashSeed {
    fn default() -> Self {
        HashSeed::from_base64(DEFAULT_HASH_SEED).expect("the default seed is valid")
    }
}

/// Table size and seed; the same on every agent of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaglevConfig {
    /// M.
    pub table_size: TableSize,
    /// The hash seed.
    pub seed: HashSeed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_sizes_are_cilium_primes() {
        assert_eq!(TableSize::default().get(), 16381);
        for size in SUPPORTED_TABLE_SIZES {
            assert_eq!(TableSize::new(size).map(TableSize::get).ok(), Some(size));
            assert!(
                (2..size)
                    .take_while(|d| d * d <= size)
                    .all(|d| size % d != 0),
                "{size} is prime"
            );
        }
        assert_eq!(
            TableSize::new(16384).unwrap_err().to_string(),
            "Maglev table size 16384 is not one of [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071]"
        );
    }

    #[test]
    fn seed_splits_into_backend_and_flow_seeds() {
        let seed = HashSeed::from_base64("AAAAAQAAAAIAAAAD").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seed.murmur(), 1);
        assert_eq!(seed.flow_hash(), (2, 3));
        let default = HashSeed::default();
        assert_eq!(
            default.murmur(),
            u32::from_be_bytes([0x24, 0xb7, 0xef, 0x82])
        );
    }

    #[test]
    fn bad_seeds_are_refused_with_the_reason() {
        assert_eq!(
            HashSeed::from_base64("not base64!")
                .unwrap_err()
                .to_string(),
            "Maglev hash seed \"not base64!\" is not base64"
        );
        assert_eq!(
            HashSeed::from_base64("AAAA").unwrap_err().to_string(),
            "Maglev hash seed \"AAAA\" decodes to 3 bytes, not 12"
        );
    }
}
