//! Sysctl writes. Entries under `/proc/sys/net` belong to the network namespace of the
//! thread that opens them, so call [`set_sysctl`] inside `NetNs::run` for another namespace.

use std::path::PathBuf;

use crate::error::NetlinkError;

/// Writes `value` to `/proc/sys/<key>`, where `key` is a slash-separated path such as
/// `net/ipv4/conf/lxc1234/rp_filter` (slashes, not dots, because interface names may
/// contain dots).
pub fn set_sysctl(key: &str, value: &str) -> Result<(), NetlinkError> {
    let valid = !key.is_empty()
        && !key.starts_with('/')
        && key.split('/').all(|part| !part.is_empty() && part != "..");
    if !valid {
        return Err(NetlinkError::InvalidSysctlKey { key: key.into() });
    }
    let path = PathBuf::from("/proc/sys").join(key);
    std::fs::write(&path, value).map_err(|source| NetlinkError::Sysctl {
        path,
        value: value.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_proc_sys_are_refused() {
        for key in ["", "/etc/passwd", "net/../../etc/passwd", "net//ipv4"] {
            assert!(
                matches!(
                    set_sysctl(key, "1"),
                    Err(NetlinkError::InvalidSysctlKey { .. })
                ),
                "{key:?} was accepted"
            );
        }
    }
}
