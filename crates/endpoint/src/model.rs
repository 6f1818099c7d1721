//! The endpoint model, its validated creation request, and the ways users name an endpoint.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use cilium_api::models as api;
use serde::{Deserialize, Serialize};

/// Endpoint ID, unique on a node. Cilium's IDs run from 1 to 4095.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EndpointId(pub u16);

impl EndpointId {
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 4095;
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An Ethernet address, shown and stored as `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = InvalidRequest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidRequest::Mac {
            value: s.to_string(),
        };
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut mac {
            let part = parts.next().ok_or_else(invalid)?;
            if part.len() != 2 {
                return Err(invalid());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
        }
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(MacAddr(mac))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Lifecycle state, named as Cilium names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointState {
    Regenerating,
    Ready,
    /// The datapath could not be programmed; the endpoint keeps its last good programs, if any.
    NotReady,
}

impl fmt::Display for EndpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointState::Regenerating => "regenerating",
            EndpointState::Ready => "ready",
            EndpointState::NotReady => "not-ready",
        })
    }
}

/// A pod attached to this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: EndpointId,
    pub container_id: String,
    pub container_name: String,
    /// Interface name inside the pod (`eth0`).
    pub container_ifname: String,
    /// Host-side veth (`lxc…`).
    pub host_ifname: String,
    pub host_ifindex: u32,
    /// MAC of the pod-side interface.
    pub mac: MacAddr,
    /// MAC of the host-side veth; the gateway answers ARP with it.
    pub host_mac: MacAddr,
    pub ipv4: Ipv4Addr,
    pub netns: String,
    pub k8s_namespace: String,
    pub k8s_pod_name: String,
    /// Labels in `source:key=value` form.
    pub labels: Vec<String>,
    /// Numeric security identity.
    pub identity: u32,
    /// Labels of that identity.
    pub identity_labels: Vec<String>,
    pub state: EndpointState,
    /// How many times the datapath was programmed for this endpoint.
    pub generation: u64,
}

impl Endpoint {
    /// The API view (`GET /v1/endpoint/{id}`).
    pub fn to_api(&self) -> api::Endpoint {
        let pod_name = if self.k8s_pod_name.is_empty() {
            String::new()
        } else {
            format!("{}/{}", self.k8s_namespace, self.k8s_pod_name)
        };
        api::Endpoint {
            id: self.id.0,
            status: api::EndpointStatus {
                state: self.state.to_string(),
                identity: api::EndpointIdentity {
                    id: self.identity,
                    labels: self.identity_labels.clone(),
                },
                networking: api::EndpointNetworking {
                    addressing: vec![api::AddressPair {
                        ipv4: self.ipv4.to_string(),
                        ..Default::default()
                    }],
                    host_mac: self.host_mac.to_string(),
                    mac: self.mac.to_string(),
                    interface_index: self.host_ifindex,
                    interface_name: self.host_ifname.clone(),
                },
                external_identifiers: api::EndpointIdentifiers {
                    container_id: self.container_id.clone(),
                    container_name: self.container_name.clone(),
                    k8s_namespace: self.k8s_namespace.clone(),
                    k8s_pod_name: self.k8s_pod_name.clone(),
                    pod_name,
                    netns: self.netns.clone(),
                },
                labels: api::EndpointLabels {
                    realized: self.labels.clone(),
                },
                policy: api::EndpointPolicyStatus::default(),
                realized_generation: self.generation,
            },
        }
    }
}

/// Why an endpoint change request was refused before anything was touched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("invalid MAC address {value:?}")]
    Mac { value: String },
    #[error("invalid IPv4 address {value:?}")]
    Ipv4 { value: String },
    #[error("missing field {field}")]
    Missing { field: &'static str },
    #[error(
        "endpoint ID {id} is out of range ({}..={})",
        EndpointId::MIN,
        EndpointId::MAX
    )]
    IdOutOfRange { id: u16 },
    #[error("invalid endpoint reference {value:?}: use ID, cilium-local:ID, container-id:ID or pod-name:NAMESPACE/NAME")]
    Selector { value: String },
}

/// A validated request to create an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    /// Requested ID; `None` lets the manager choose.
    pub id: Option<EndpointId>,
    pub container_id: String,
    pub container_name: String,
    pub container_ifname: String,
    pub host_ifname: String,
    pub host_ifindex: u32,
    pub mac: MacAddr,
    pub host_mac: MacAddr,
    pub ipv4: Ipv4Addr,
    pub netns: String,
    pub k8s_namespace: String,
    pub k8s_pod_name: String,
    pub labels: Vec<String>,
}

impl TryFrom<&api::EndpointChangeRequest> for NewEndpoint {
    type Error = InvalidRequest;

    fn try_from(req: &api::EndpointChangeRequest) -> Result<Self, Self::Error> {
        let required = |value: &str, field: &'static str| {
            if value.is_empty() {
                Err(InvalidRequest::Missing { field })
            } else {
                Ok(value.to_string())
            }
        };
        let id = match req.id {
            0 => None,
            id if id > EndpointId::MAX => return Err(InvalidRequest::IdOutOfRange { id }),
            id => Some(EndpointId(id)),
        };
        if req.interface_index == 0 {
            return Err(InvalidRequest::Missing {
                field: "interface-index",
            });
        }
        let ipv4 = required(&req.addressing.ipv4, "addressing.ipv4")?;
        Ok(NewEndpoint {
            id,
            container_id: required(&req.container_id, "container-id")?,
            container_name: req.container_name.clone(),
            container_ifname: req.container_interface_name.clone(),
            host_ifname: required(&req.interface_name, "interface-name")?,
            host_ifindex: req.interface_index,
            mac: required(&req.mac, "mac")?.parse()?,
            host_mac: required(&req.host_mac, "host-mac")?.parse()?,
            ipv4: ipv4
                .parse()
                .map_err(|_| InvalidRequest::Ipv4 { value: ipv4 })?,
            netns: req.netns.clone(),
            k8s_namespace: req.k8s_namespace.clone(),
            k8s_pod_name: req.k8s_pod_name.clone(),
            labels: req.labels.clone(),
        })
    }
}

/// How users name an endpoint in the API and CLI (Cilium's `[prefix:]id` forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSelector {
    Id(EndpointId),
    ContainerId(String),
    /// `namespace/name`.
    PodName {
        namespace: String,
        name: String,
    },
}

impl FromStr for EndpointSelector {
    type Err = InvalidRequest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidRequest::Selector {
            value: s.to_string(),
        };
        let parse_id = |v: &str| v.parse::<u16>().map(EndpointId).map_err(|_| invalid());
        match s.split_once(':') {
            None => parse_id(s).map(EndpointSelector::Id),
            Some(("cilium-local", id)) => parse_id(id).map(EndpointSelector::Id),
            Some(("container-id", id)) if !id.is_empty() => {
                Ok(EndpointSelector::ContainerId(id.to_string()))
            }
            Some(("pod-name", pod)) => {
                let (namespace, name) = pod.split_once('/').unwrap_or(("default", pod));
                if name.is_empty() {
                    return Err(invalid());
                }
                Ok(EndpointSelector::PodName {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                })
            }
            Some(_) => Err(invalid()),
        }
    }
}

impl EndpointSelector {
    pub fn matches(&self, ep: &Endpoint) -> bool {
        match self {
            EndpointSelector::Id(id) => ep.id == *id,
            EndpointSelector::ContainerId(cid) => ep.container_id == *cid,
            EndpointSelector::PodName { namespace, name } => {
                ep.k8s_namespace == *namespace && ep.k8s_pod_name == *name
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_and_rejects_garbage() {
        let mac: MacAddr = "0a:1B:02:ff:00:9c".parse().unwrap();
        assert_eq!(mac.to_string(), "0a:1b:02:ff:00:9c");
        for bad in [
            "",
            "0a:1b",
            "0a:1b:02:ff:00:9c:11",
            "zz:1b:02:ff:00:9c",
            "0a1:b:02:ff:00:9c",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors_follow_cilium_prefixes() {
        assert_eq!("12".parse(), Ok(EndpointSelector::Id(EndpointId(12))));
        assert_eq!(
            "cilium-local:7".parse(),
            Ok(EndpointSelector::Id(EndpointId(7)))
        );
        assert_eq!(
            "container-id:abc".parse(),
            Ok(EndpointSelector::ContainerId("abc".into()))
        );
        assert_eq!(
            "pod-name:kube-system/dns".parse(),
            Ok(EndpointSelector::PodName {
                namespace: "kube-system".into(),
                name: "dns".into()
            })
        );
        for bad in ["x", "container-id:", "docker:1", "pod-name:ns/"] {
            assert!(bad.parse::<EndpointSelector>().is_err(), "{bad}");
        }
    }

    #[test]
    fn request_validation_names_the_field() {
        let mut req = api::EndpointChangeRequest {
            container_id: "c1".into(),
            interface_name: "lxc1".into(),
            interface_index: 4,
            mac: "02:00:00:00:00:01".into(),
            host_mac: "02:00:00:00:00:02".into(),
            addressing: api::AddressPair {
                ipv4: "10.0.1.5".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let ok = NewEndpoint::try_from(&req).unwrap();
        assert_eq!(ok.ipv4, Ipv4Addr::new(10, 0, 1, 5));
        assert_eq!(ok.id, None);
        req.mac = "nope".into();
        assert_eq!(
            NewEndpoint::try_from(&req),
            Err(InvalidRequest::Mac {
                value: "nope".into()
            })
        );
        req.mac = "02:00:00:00:00:01".into();
        req.addressing.ipv4 = "10.0.1".into();
        assert!(matches!(
            NewEndpoint::try_from(&req),
            Err(InvalidRequest::Ipv4 { .. })
        ));
        req.addressing.ipv4.clear();
        assert_eq!(
            NewEndpoint::try_from(&req),
            Err(InvalidRequest::Missing {
                field: "addressing.ipv4"
            })
        );
        req.addressing.ipv4 = "10.0.1.5".into();
        req.id = 5000;
        assert_eq!(
            NewEndpoint::try_from(&req),
            Err(InvalidRequest::IdOutOfRange { id: 5000 })
        );
    }
}
