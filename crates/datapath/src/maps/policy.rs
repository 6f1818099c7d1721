//! Per-endpoint policy: each endpoint's `cilium_policy_v2_<id>` LPM trie
//! (what the endpoint may talk to, by remote identity, direction, protocol
//! and port) and the node-wide `cilium_policy_enforcement` switches that
//! turn enforcement on per endpoint and direction.

use std::{collections::HashMap, path::PathBuf};

use aya::maps::{lpm_trie::Key, Array, LpmTrie, Map, MapData};

use super::{
    is_not_found, open_pinned,
    ops::{counted, MapOp},
    MapsError,
};
use crate::{
    abi::{
        policy_map_name, PolicyEntry, PolicyKey, LPM_PROTO_PREFIX_BITS, POLICY_ENFORCEMENT_MAP,
        POLICY_F_EGRESS, POLICY_F_INGRESS, POLICY_IDENTITY_PREFIX, POLICY_MAP,
        POLICY_PROG_MAP_SIZE,
    },
    bpffs::BpfPaths,
};

/// Which side of an endpoint an entry applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Connections the endpoint accepts.
    Ingress,
    /// Connections the endpoint opens.
    Egress,
}

/// What a policy entry matches: a remote identity (0 = any) in one
/// direction, a protocol (0 = any) and a destination port range given as a
/// port and its number of leading significant bits (16 = that port only,
/// 0 = any port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyMapKey {
    /// Remote security identity; 0 matches any identity (L4-only rules).
    pub identity: u32,
    /// Direction.
    pub direction: Direction,
    /// IP protocol; 0 = any (then the port must be any too).
    pub protocol: u8,
    /// Destination port (host byte order).
    pub dport: u16,
    /// Significant leading bits of `dport` (0..=16).
    pub dport_prefix_bits: u8,
}

impl PolicyMapKey {
    /// Everything to or from `identity` (0 = everything).
    pub fn l3(identity: u32, direction: Direction) -> Self {
        Self {
            identity,
            direction,
            protocol: 0,
            dport: 0,
            dport_prefix_bits: 0,
        }
    }

    /// `protocol` traffic to port `dport` of `identity` (0 = any identity).
    pub fn l4(identity: u32, direction: Direction, protocol: u8, dport: u16) -> Self {
        Self {
            identity,
            direction,
            protocol,
            dport,
            dport_prefix_bits: 16,
        }
    }

    /// Any `protocol` traffic of `identity` (0 = any identity).
    pub fn proto(identity: u32, direction: Direction, protocol: u8) -> Self {
        Self {
            protocol,
            ..Self::l3(identity, direction)
        }
    }

    /// L4 bits of the trie prefix (the entry's `lpm_prefix_length`).
    fn l4_prefix_bits(&self) -> Result<u8, MapsError> {
        if self.dport_prefix_bits > 16 || (self.protocol == 0 && self.dport_prefix_bits > 0) {
            return Err(MapsError::InvalidPolicyKey { key: *self });
        }
        if self.protocol == 0 {
            return Ok(0);
        }
        Ok(LPM_PROTO_PREFIX_BITS + self.dport_prefix_bits)
    }

    /// The trie key: port bits beyond the prefix cleared.
    fn to_trie_key(self) -> Result<Key<PolicyKey>, MapsError> {
        let l4_bits = self.l4_prefix_bits()?;
        let mask = u16::MAX
            .checked_shl(16 - u32::from(self.dport_prefix_bits))
            .unwrap_or(0);
        Ok(Key::new(
            POLICY_IDENTITY_PREFIX + u32::from(l4_bits),
            PolicyKey {
                sec_label: self.identity,
                egress: u8::from(self.direction == Direction::Egress),
                protocol: self.protocol,
                dport: (self.dport & mask).to_be(),
            },
        ))
    }

    /// The key a trie key stands for; `None` for keys this crate never writes.
    fn from_trie_key(key: &Key<PolicyKey>) -> Option<Self> {
        let data = key.data();
        let l4_bits = key.prefix_len().checked_sub(POLICY_IDENTITY_PREFIX)?;
        let dport_prefix_bits = match l4_bits {
            0 => 0,
            8..=24 => u8::try_from(l4_bits).ok()? - LPM_PROTO_PREFIX_BITS,
            _ => return None,
        };
        Some(Self {
            identity: data.sec_label,
            direction: if data.egress & 1 == 1 {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            protocol: data.protocol,
            dport: u16::from_be(data.dport),
            dport_prefix_bits,
        })
    }
}

/// One entry of an endpoint's policy map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyMapEntry {
    /// What it matches.
    pub key: PolicyMapKey,
    /// Allow or deny, and the rest of the value.
    pub entry: PolicyEntry,
}

/// Handle on endpoint `id`'s pinned `cilium_policy_v2_<id>` map.
pub struct PolicyMap {
    name: String,
    map: LpmTrie<MapData, PolicyKey, PolicyEntry>,
}

impl PolicyMap {
    /// The pin path of endpoint `id`'s policy map.
    pub fn pin_path(paths: &BpfPaths, id: u16) -> PathBuf {
        paths.map(&policy_map_name(id))
    }

    /// Opens endpoint `id`'s pinned map (it exists once the endpoint's
    /// programs were loaded).
    pub fn open(paths: &BpfPaths, id: u16) -> Result<Self, MapsError> {
        let path = Self::pin_path(paths, id);
        let open_err = |source| MapsError::Open {
            name: POLICY_MAP,
            path: path.clone(),
            source: Box::new(source),
        };
        let data = MapData::from_pin(&path).map_err(open_err)?;
        let map = Map::from_map_data(data).map_err(open_err)?;
        Ok(Self {
            name: policy_map_name(id),
            map: LpmTrie::try_from(map).map_err(open_err)?,
        })
    }

    fn op_error(&self, op: String) -> impl FnOnce(aya::maps::MapError) -> MapsError + '_ {
        move |source| MapsError::PolicyOperation {
            map: self.name.clone(),
            op,
            source: Box::new(source),
        }
    }

    /// Every entry, sorted by key.
    pub fn entries(&self) -> Result<Vec<PolicyMapEntry>, MapsError> {
        let mut out = Vec::new();
        for item in self.map.iter() {
            match item {
                Ok((key, entry)) => {
                    if let Some(key) = PolicyMapKey::from_trie_key(&key) {
                        out.push(PolicyMapEntry { key, entry });
                    }
                }
                Err(err) if is_not_found(&err) => continue,
                Err(err) => return Err(self.op_error("iterate".to_string())(err)),
            }
        }
        out.sort_by_key(|e| e.key);
        Ok(out)
    }

    /// Makes the map hold exactly `wanted`, in place: changed and new
    /// entries are written, stale ones deleted, unchanged ones left alone.
    /// Each value's `lpm_prefix_length` is set from its key. Returns how
    /// many entries were written and deleted.
    pub fn sync(
        &mut self,
        wanted: &[(PolicyMapKey, PolicyEntry)],
    ) -> Result<(usize, usize), MapsError> {
        let current: HashMap<PolicyMapKey, PolicyEntry> = self
            .entries()?
            .into_iter()
            .map(|e| (e.key, e.entry))
            .collect();
        let mut desired = HashMap::new();
        for (key, entry) in wanted {
            let entry = entry.with_lpm_prefix_length(key.l4_prefix_bits()?);
            desired.insert(*key, entry);
        }
        let mut written = 0;
        for (key, entry) in &desired {
            if current.get(key) != Some(entry) {
                counted(
                    POLICY_MAP,
                    MapOp::Update,
                    self.map.insert(&key.to_trie_key()?, entry, 0),
                )
                .map_err(self.op_error(format!("upsert {key:?}")))?;
                written += 1;
            }
        }
        let mut deleted = 0;
        for key in current.keys().filter(|key| !desired.contains_key(*key)) {
            match counted(
                POLICY_MAP,
                MapOp::Delete,
                self.map.remove(&key.to_trie_key()?),
            ) {
                Ok(()) => deleted += 1,
                Err(err) if is_not_found(&err) => {}
                Err(err) => return Err(self.op_error(format!("delete {key:?}"))(err)),
            }
        }
        Ok((written, deleted))
    }
}

/// Per-endpoint enforcement switches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enforcement {
    /// New connections into the endpoint are checked.
    pub ingress: bool,
    /// New connections out of the endpoint are checked.
    pub egress: bool,
}

impl Enforcement {
    fn flags(self) -> u32 {
        (if self.ingress { POLICY_F_INGRESS } else { 0 })
            | (if self.egress { POLICY_F_EGRESS } else { 0 })
    }

    fn from_flags(flags: u32) -> Self {
        Self {
            ingress: flags & POLICY_F_INGRESS != 0,
            egress: flags & POLICY_F_EGRESS != 0,
        }
    }

    /// Enforced only where both `self` and `other` enforce.
    pub fn intersect(self, other: Self) -> Self {
        Self::from_flags(self.flags() & other.flags())
    }
}

/// Handle on the pinned `cilium_policy_enforcement` array.
pub struct PolicyEnforcementMap {
    map: Array<MapData, u32>,
}

impl PolicyEnforcementMap {
    /// Opens the pinned map under `paths`.
    pub fn open(paths: &BpfPaths) -> Result<Self, MapsError> {
        Ok(Self {
            map: open_pinned(paths, POLICY_ENFORCEMENT_MAP)?,
        })
    }

    fn index(id: u16) -> Result<u32, MapsError> {
        let index = u32::from(id);
        if index == 0 || index >= POLICY_PROG_MAP_SIZE {
            return Err(MapsError::EndpointIdOutOfRange {
                id,
                max: POLICY_PROG_MAP_SIZE - 1,
            });
        }
        Ok(index)
    }

    /// Endpoint `id`'s switches.
    pub fn get(&self, id: u16) -> Result<Enforcement, MapsError> {
        let flags = counted(
            POLICY_ENFORCEMENT_MAP,
            MapOp::Lookup,
            self.map.get(&Self::index(id)?, 0),
        )
        .map_err(|source| MapsError::Operation {
            name: POLICY_ENFORCEMENT_MAP,
            op: format!("read endpoint {id}"),
            source: Box::new(source),
        })?;
        Ok(Enforcement::from_flags(flags))
    }

    /// Sets endpoint `id`'s switches.
    pub fn set(&mut self, id: u16, enforcement: Enforcement) -> Result<(), MapsError> {
        counted(
            POLICY_ENFORCEMENT_MAP,
            MapOp::Update,
            self.map.set(Self::index(id)?, enforcement.flags(), 0),
        )
        .map_err(|source| MapsError::Operation {
            name: POLICY_ENFORCEMENT_MAP,
            op: format!("set endpoint {id}"),
            source: Box::new(source),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trie_keys_count_identity_protocol_and_port_bits() {
        let l3 = PolicyMapKey::l3(300, Direction::Egress)
            .to_trie_key()
            .expect("valid key");
        assert_eq!(l3.prefix_len(), 40);
        assert_eq!(l3.data().egress, 1);
        let l4 = PolicyMapKey::l4(0, Direction::Ingress, 6, 80)
            .to_trie_key()
            .expect("valid key");
        assert_eq!(l4.prefix_len(), 64);
        assert_eq!(l4.data().dport, 80u16.to_be());
        let proto = PolicyMapKey::proto(7, Direction::Ingress, 17)
            .to_trie_key()
            .expect("valid key");
        assert_eq!(proto.prefix_len(), 48);
    }

    #[test]
    fn keys_round_trip_and_port_ranges_drop_host_bits() {
        let range = PolicyMapKey {
            dport: 8081,
            dport_prefix_bits: 12,
            ..PolicyMapKey::l4(5, Direction::Egress, 6, 0)
        };
        let trie = range.to_trie_key().expect("valid key");
        assert_eq!(trie.prefix_len(), 40 + 8 + 12);
        let back = PolicyMapKey::from_trie_key(&trie).expect("known key");
        assert_eq!(back.dport, 8080, "the low 4 bits are cleared");
        assert_eq!(back.dport_prefix_bits, 12);
        for key in [
            PolicyMapKey::l3(9, Direction::Ingress),
            PolicyMapKey::l4(0, Direction::Egress, 6, 443),
            PolicyMapKey::proto(0, Direction::Ingress, 1),
        ] {
            let trie = key.to_trie_key().expect("valid key");
            assert_eq!(PolicyMapKey::from_trie_key(&trie), Some(key));
        }
    }

    #[test]
    fn a_port_without_a_protocol_is_rejected() {
        let key = PolicyMapKey {
            protocol: 0,
            ..PolicyMapKey::l4(1, Direction::Egress, 6, 80)
        };
        assert!(matches!(
            key.to_trie_key(),
            Err(MapsError::InvalidPolicyKey { .. })
        ));
    }
}
