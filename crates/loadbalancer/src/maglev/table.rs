//! Building one Maglev lookup table from a frontend's backends.

use super::murmur3::hash128;
use super::MaglevConfig;
use crate::backend::{BackendAddr, BackendId};

/// A backend's weight when none is given (Cilium's default backend weight).
pub const DEFAULT_WEIGHT: u16 = 100;

/// One backend as Maglev sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaglevBackend<'a> {
    /// Identity string, the same on every node: [`backend_key`] of its address.
    pub key: &'a str,
    /// The node-local ID the table stores.
    pub id: BackendId,
    /// Relative share of the table; 0 leaves the backend out.
    pub weight: u16,
}

/// The identity string Cilium hashes for a backend: `[ip:port/PROTO,State:active]`.
pub fn backend_key(addr: &BackendAddr) -> String {
    format!("[{}:{}/{},State:active]", addr.ip, addr.port, addr.protocol)
}

/// Marks an entry no backend has claimed yet.
const FREE: u32 = u32::MAX;

/// The lookup table (M backend IDs) for `backends`, whatever their order; empty when no
/// backend has a weight.
pub fn lookup_table(config: &MaglevConfig, backends: &[MaglevBackend<'_>]) -> Vec<BackendId> {
    let mut backends: Vec<&MaglevBackend<'_>> = backends.iter().filter(|b| b.weight > 0).collect();
    if backends.is_empty() {
        return Vec::new();
    }
    backends.sort_by(|a, b| a.key.cmp(b.key));
    let m = u64::from(config.table_size.get());
    let count = backends.len() as u64;
    let permutations: Vec<Permutation> = backends
        .iter()
        .map(|b| Permutation::of(b.key, m, config.seed.murmur()))
        .collect();
    let weight_sum: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    // Weights change whose turn it is only when some backend weighs more than 1 on
    // average; each backend's credit starts at its weight spread over all backends.
    let weighted = weight_sum / count > 1;
    let mut credit: Vec<f64> = backends
        .iter()
        .map(|b| f64::from(b.weight) / count as f64)
        .collect();
    let mut next = vec![0u64; backends.len()];
    let mut entries = vec![FREE; m as usize];
    for n in 0..m {
        let mut i = (n % count) as usize;
        if weighted {
            // Skip backends that are ahead of their share; the sums guarantee one is not.
            while (n + 1) * u64::from(backends[i].weight) < credit[i] as u64 {
                i = (i + 1) % backends.len();
            }
            credit[i] += weight_sum as f64;
        }
        let mut slot = permutations[i].at(next[i]);
        while entries[slot] != FREE {
            next[i] += 1;
            slot = permutations[i].at(next[i]);
        }
        entries[slot] = i as u32;
        next[i] += 1;
    }
    entries
        .into_iter()
        .map(|i| backends[i as usize].id)
        .collect()
}

/// A backend's preference order over the table entries: `offset + j * skip (mod M)`, a
/// permutation of `0..M` because M is prime and `1 <= skip < M`.
struct Permutation {
    offset: u64,
    skip: u64,
    m: u64,
}

impl Permutation {
    fn of(key: &str, m: u64, seed: u32) -> Self {
        let (h1, h2) = hash128(key.as_bytes(), seed);
        Permutation {
            offset: h1 % m,
            skip: h2 % (m - 1) + 1,
            m,
        }
    }

    /// The `j`th preferred entry.
    fn at(&self, j: u64) -> usize {
        ((self.offset + j * self.skip) % self.m) as usize
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::Ipv4Addr;

    use super::*;
    use crate::maglev::{HashSeed, TableSize, SUPPORTED_TABLE_SIZES};
    use crate::names::Protocol;

    fn config(m: u32) -> MaglevConfig {
        MaglevConfig {
            table_size: TableSize::new(m).unwrap_or_else(|e| panic!("{e}")),
            seed: HashSeed::default(),
        }
    }

    fn addr(i: u8) -> BackendAddr {
        BackendAddr {
            ip: Ipv4Addr::new(10, 0, i / 100, i % 100 + 1),
            port: 8080,
            protocol: Protocol::Tcp,
        }
    }

    /// Keys of `n` backends, IDs `first..`, default weight.
    fn keys(n: u8) -> Vec<String> {
        (0..n).map(|i| backend_key(&addr(i))).collect()
    }

    fn backends(keys: &[String], first_id: u32) -> Vec<MaglevBackend<'_>> {
        keys.iter()
            .enumerate()
            .map(|(i, key)| MaglevBackend {
                key,
                id: BackendId(first_id + i as u32),
                weight: DEFAULT_WEIGHT,
            })
            .collect()
    }

    fn counts(table: &[BackendId]) -> BTreeMap<BackendId, usize> {
        let mut counts = BTreeMap::new();
        for id in table {
            *counts.entry(*id).or_default() += 1;
        }
        counts
    }

    #[test]
    fn backend_key_is_ciliums_identity_string() {
        assert_eq!(backend_key(&addr(0)), "[10.0.0.1:8080/TCP,State:active]");
        let udp = BackendAddr {
            protocol: Protocol::Udp,
            ..addr(1)
        };
        assert_eq!(backend_key(&udp), "[10.0.0.2:8080/UDP,State:active]");
    }

    #[test]
    fn every_backend_permutation_visits_each_entry_once() {
        for m in SUPPORTED_TABLE_SIZES.into_iter().take(7) {
            for key in keys(20) {
                let perm = Permutation::of(&key, u64::from(m), HashSeed::default().murmur());
                assert!(
                    (1..u64::from(m)).contains(&perm.skip),
                    "skip of {key} in M={m}"
                );
                let visited: BTreeSet<usize> = (0..u64::from(m)).map(|j| perm.at(j)).collect();
                assert_eq!(
                    visited.len(),
                    m as usize,
                    "{key} in M={m} is not a permutation"
                );
            }
        }
    }

    #[test]
    fn table_is_full_and_names_only_given_backends() {
        let keys = keys(7);
        let table = lookup_table(&config(1021), &backends(&keys, 1));
        assert_eq!(table.len(), 1021);
        assert!(table.iter().all(|id| (1..=7).contains(&id.0)));
        assert!(lookup_table(&config(251), &[]).is_empty());
        let weightless = [MaglevBackend {
            key: &keys[0],
            id: BackendId(1),
            weight: 0,
        }];
        assert!(lookup_table(&config(251), &weightless).is_empty());
    }

    #[test]
    fn equal_weights_share_the_table_evenly() {
        for n in [1u8, 2, 3, 10, 100] {
            let keys = keys(n);
            let m = 16381usize;
            let table = lookup_table(&config(m as u32), &backends(&keys, 1));
            let counts = counts(&table);
            assert_eq!(counts.len(), n as usize, "every backend has entries");
            let fair = m / n as usize;
            for (id, count) in counts {
                assert!(
                    count.abs_diff(fair) <= 1,
                    "{n} backends: backend {id} has {count} entries, fair share {fair}"
                );
            }
        }
    }

    #[test]
    fn weights_share_the_table_as_cilium_does() {
        // Cilium's own weighted example (pkg/maglev tests): default seed, M = 1021,
        // identity strings "one", "three", "two", "tzwe" weighing 2, 13, 111, 10 get
        // 16, 98, 832 and 75 entries. Matching these numbers checks the hash, the seed
        // decoding, the permutations and the weighted fill against Cilium at once.
        let weighted = [("one", 2), ("three", 13), ("two", 111), ("tzwe", 10)];
        let backends: Vec<MaglevBackend<'_>> = weighted
            .iter()
            .enumerate()
            .map(|(i, (key, weight))| MaglevBackend {
                key,
                id: BackendId(i as u32),
                weight: *weight,
            })
            .collect();
        let counts = counts(&lookup_table(&config(1021), &backends));
        let expected: BTreeMap<BackendId, usize> = [
            (BackendId(0), 16),
            (BackendId(1), 98),
            (BackendId(2), 832),
            (BackendId(3), 75),
        ]
        .into();
        assert_eq!(counts, expected);
    }

    #[test]
    fn removing_one_of_ten_backends_moves_few_other_entries() {
        let keys = keys(10);
        let m = 16381;
        let all = backends(&keys, 1);
        let before = lookup_table(&config(m), &all);
        let removed = all[3].id;
        let rest: Vec<_> = all.iter().copied().filter(|b| b.id != removed).collect();
        let after = lookup_table(&config(m), &rest);
        assert!(after.iter().all(|id| *id != removed));
        let kept = before.iter().filter(|id| **id != removed).count();
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| **b != removed && b != a)
            .count();
        let share = 100.0 * moved as f64 / kept as f64;
        println!(
            "Maglev disruption, M={m}, 10 backends, 1 removed: {moved} of {kept} entries of the \
             remaining backends moved ({share:.2} %)"
        );
        assert!(
            share <= 15.0,
            "{share:.2} % of the other backends' entries moved"
        );
    }

    #[test]
    fn same_seed_and_backends_give_the_same_table_on_every_agent() {
        let keys = keys(12);
        // Agent A knows the backends as IDs 1..=12 in one order, agent B as 501..=512 in
        // another: their tables name the same backends entry by entry.
        let a = backends(&keys, 1);
        let mut b = backends(&keys, 501);
        b.reverse();
        let by_key = |backends: &[MaglevBackend<'_>], table: Vec<BackendId>| -> Vec<String> {
            let names: BTreeMap<BackendId, &str> = backends.iter().map(|b| (b.id, b.key)).collect();
            table.iter().map(|id| names[id].to_string()).collect()
        };
        let table_a = by_key(&a, lookup_table(&config(4093), &a));
        let table_b = by_key(&b, lookup_table(&config(4093), &b));
        assert_eq!(table_a, table_b);
        let other_seed = MaglevConfig {
            seed: HashSeed::from_base64("AAAAAAAAAAAAAAAA").unwrap_or_else(|e| panic!("{e}")),
            ..config(4093)
        };
        let table_c = by_key(&a, lookup_table(&other_seed, &a));
        assert_ne!(table_a, table_c, "the seed changes the table");
    }
}
