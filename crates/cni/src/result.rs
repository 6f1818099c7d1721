//! CNI results: the ADD result in the runtime's version, and reading a `prevResult` back
//! for CHECK.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{json, Value};

use cilium_netlink::format_mac;

use crate::endpoint_request::PlumbedPod;
use crate::error::{CniFailure, ErrorCode};
use crate::version::CniVersion;

/// The ADD result: host veth (index 0), pod interface (index 1, in the sandbox), the pod's
/// /32 with the gateway, and the default route.
pub fn render_add(version: CniVersion, ifname: &str, netns: &str, pod: &PlumbedPod) -> Value {
    let mut ip = json!({
        "address": format!("{}/32", pod.ip),
        "gateway": pod.gateway.to_string(),
        "interface": 1,
    });
    if version.result_has_ip_version() {
        ip["version"] = json!("4");
    }
    json!({
        "cniVersion": version.as_str(),
        "interfaces": [
            {"name": pod.host.name, "mac": format_mac(&pod.host.mac)},
            {"name": ifname, "mac": format_mac(&pod.pod_mac), "sandbox": netns},
        ],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0", "gw": pod.gateway.to_string()}],
        "dns": {},
    })
}

/// What CHECK verifies from a previous ADD result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrevResult {
    pub address: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
}

/// A `prevResult` that cannot be checked against.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error("prevResult: {problem}")]
    Malformed { problem: &'static str },
    #[error("prevResult: {value:?} is not an IPv4 address with prefix")]
    BadAddress {
        value: String,
        #[source]
        source: ipnet::AddrParseError,
    },
    #[error("prevResult: gateway {value:?} is not an IPv4 address")]
    BadGateway {
        value: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("prevResult has no IPv4 address for interface {ifname}")]
    NoAddress { ifname: String },
}

impl CniFailure for ResultError {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidConfig
    }
}

impl PrevResult {
    /// Finds the IPv4 address that a previous result gave interface `ifname` (an IP entry
    /// without an `interface` index counts for any interface).
    pub fn parse(value: &Value, ifname: &str) -> Result<Self, ResultError> {
        let ips = match value.get("ips") {
            Some(Value::Array(ips)) => ips,
            None => {
                return Err(ResultError::NoAddress {
                    ifname: ifname.into(),
                })
            }
            Some(_) => {
                return Err(ResultError::Malformed {
                    problem: "`ips` must be an array",
                })
            }
        };
        let interfaces = value.get("interfaces").and_then(Value::as_array);
        for ip in ips {
            let Some(address) = ip.get("address").and_then(Value::as_str) else {
                return Err(ResultError::Malformed {
                    problem: "every entry of `ips` needs an `address` string",
                });
            };
            if address.contains(':') {
                continue; // IPv6: not ours to check.
            }
            let for_ifname = match ip.get("interface").and_then(Value::as_u64) {
                None => true,
                Some(index) => {
                    interfaces
                        .and_then(|list| list.get(index as usize))
                        .and_then(|interface| interface.get("name"))
                        .and_then(Value::as_str)
                        == Some(ifname)
                }
            };
            if !for_ifname {
                continue;
            }
            let address: Ipv4Net = address.parse().map_err(|source| ResultError::BadAddress {
                value: address.into(),
                source,
            })?;
            let gateway = match ip.get("gateway").and_then(Value::as_str) {
                None => None,
                Some(text) => Some(text.parse().map_err(|source| ResultError::BadGateway {
                    value: text.into(),
                    source,
                })?),
            };
            return Ok(Self { address, gateway });
        }
        Err(ResultError::NoAddress {
            ifname: ifname.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use cilium_netlink::Link;

    use super::*;

    fn pod() -> PlumbedPod {
        PlumbedPod {
            host: Link {
                index: 9,
                name: "lxcaaaaaaaaaaaa".into(),
                mac: [2, 0, 0, 0, 0, 0xaa],
                mtu: 1500,
                up: true,
            },
            pod_mac: [2, 0, 0, 0, 0, 0xbb],
            ip: Ipv4Addr::new(10, 1, 0, 7),
            gateway: Ipv4Addr::new(10, 1, 0, 1),
        }
    }

    #[test]
    fn v1_results_have_no_ip_version() {
        let result = render_add(CniVersion::V1_0_0, "eth0", "/run/netns/p", &pod());
        assert_eq!(
            result,
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": "lxcaaaaaaaaaaaa", "mac": "02:00:00:00:00:aa"},
                    {"name": "eth0", "mac": "02:00:00:00:00:bb", "sandbox": "/run/netns/p"}
                ],
                "ips": [{"address": "10.1.0.7/32", "gateway": "10.1.0.1", "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
                "dns": {}
            })
        );
    }

    #[test]
    fn older_results_mark_ips_as_version_4() {
        for version in [CniVersion::V0_3_0, CniVersion::V0_3_1, CniVersion::V0_4_0] {
            let result = render_add(version, "eth0", "/run/netns/p", &pod());
            assert_eq!(result["cniVersion"], version.as_str());
            assert_eq!(result["ips"][0]["version"], "4", "{version}");
        }
        let latest = render_add(CniVersion::V1_1_0, "eth0", "/run/netns/p", &pod());
        assert!(latest["ips"][0].get("version").is_none());
    }

    #[test]
    fn prev_results_round_trip() {
        let rendered = render_add(CniVersion::V0_4_0, "eth0", "/run/netns/p", &pod());
        let prev = PrevResult::parse(&rendered, "eth0").expect("own result parses");
        assert_eq!(prev.address, "10.1.0.7/32".parse().unwrap());
        assert_eq!(prev.gateway, Some(Ipv4Addr::new(10, 1, 0, 1)));
        assert!(matches!(
            PrevResult::parse(&rendered, "eth1"),
            Err(ResultError::NoAddress { .. })
        ));
    }

    #[test]
    fn broken_prev_results_are_config_errors() {
        let bad = [
            json!({"ips": "x"}),
            json!({"ips": [{"gateway": "10.0.0.1"}]}),
            json!({"ips": [{"address": "10.0.0.300/32"}]}),
            json!({"ips": [{"address": "10.0.0.3/32", "gateway": "nope"}]}),
            json!({}),
        ];
        for value in bad {
            let err = PrevResult::parse(&value, "eth0").unwrap_err();
            assert_eq!(err.code().number(), 7, "{value}: {err}");
        }
    }
}
