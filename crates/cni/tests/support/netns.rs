//! `cilt-<random>` network namespaces that are deleted on drop, and `ip` helpers.

use std::io::Read;
use std::process::Command;

use serde_json::Value;

/// A namespace owned by one test.
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    pub fn new() -> Self {
        let mut bytes = [0u8; 4];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .expect("read /dev/urandom");
        let name = format!("cilt-{:08x}", u32::from_ne_bytes(bytes));
        ip(&["netns", "add", &name]);
        Self { name }
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Interface names in this namespace.
    pub fn link_names(&self) -> Vec<String> {
        ip_json(&["-n", &self.name, "link", "show"])
            .as_array()
            .expect("link list")
            .iter()
            .map(|link| link["ifname"].as_str().expect("ifname").to_string())
            .collect()
    }

    /// `ip -j link show NAME`.
    pub fn link(&self, name: &str) -> Value {
        ip_json(&["-n", &self.name, "link", "show", "dev", name])[0].clone()
    }

    /// `ip -j addr show dev NAME` as `addr/prefix` strings (IPv4 only).
    pub fn ipv4_addresses(&self, name: &str) -> Vec<String> {
        ip_json(&["-n", &self.name, "-4", "addr", "show", "dev", name])[0]["addr_info"]
            .as_array()
            .expect("addr_info")
            .iter()
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect()
    }

    /// `ip -j route show` in the main table.
    pub fn routes(&self) -> Vec<Value> {
        ip_json(&["-n", &self.name, "-4", "route", "show"])
            .as_array()
            .expect("route list")
            .clone()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip_json(args: &[&str]) -> Value {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let text = ip(&full);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip {full:?} printed {text:?}: {e}"))
}
