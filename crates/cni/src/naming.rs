//! Interface names derived from the container: stable across retries, unique per
//! (container, interface), and within the kernel's 15-byte limit.

use sha2::{Digest, Sha256};

/// The name of a pod's veth pair on the node's side (the pod's side is `CNI_IFNAME`, created
/// directly inside the pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethNames {
    /// Host side, kept for the pod's life: `lxc` + 12 hex digits.
    pub host: String,
}

impl VethNames {
    /// The name from the first 12 hex digits of sha256(container ID + interface name).
    pub fn for_container(container_id: &str, ifname: &str) -> Self {
        let digest = Sha256::digest(format!("{container_id}{ifname}").as_bytes());
        let hex: String = digest
            .iter()
            .take(6)
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Self {
            host: format!("lxc{hex}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sha256_prefixes() {
        // sha256("abceth0") starts with a06d7003e199.
        let names = VethNames::for_container("abc", "eth0");
        assert_eq!(names.host, "lxca06d7003e199");
    }

    #[test]
    fn names_differ_per_container_and_interface() {
        let a = VethNames::for_container("abc", "eth0");
        assert_eq!(a, VethNames::for_container("abc", "eth0"));
        assert_ne!(a.host, VethNames::for_container("abd", "eth0").host);
        assert_ne!(a.host, VethNames::for_container("abc", "eth1").host);
    }
}
