//! `discovery.k8s.io/v1` EndpointSlice: the backends of one service (named by the
//! `kubernetes.io/service-name` label) with their conditions and nodes, and the ports
//! they serve by service-port name.

use std::net::Ipv4Addr;

use serde::Deserialize;
use serde_json::Value;

use super::{Object, ResourceError, Shown};
use crate::backend::BackendState;
use crate::names::{ObjectName, Protocol};

/// The label naming the service a slice belongs to (in the slice's namespace).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `addressType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressType {
    /// `IPv4`: the only type this datapath serves.
    Ipv4,
    /// `IPv6`: parsed, carries no endpoints here.
    Ipv6,
    /// `FQDN`: parsed, carries no endpoints here.
    Fqdn,
}

/// `endpoints[].conditions`, with the API's defaults applied: `ready` unset means ready,
/// `serving` unset means the same as `ready`, `terminating` unset means not terminating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conditions {
    /// May take new connections.
    pub ready: bool,
    /// Is answering, whatever its readiness.
    pub serving: bool,
    /// Is shutting down.
    pub terminating: bool,
}

/// One entry of `endpoints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// `addresses` (of an IPv4 slice).
    pub addresses: Vec<Ipv4Addr>,
    /// `conditions`.
    pub conditions: Conditions,
    /// `nodeName`: the node hosting the endpoint, for traffic policy `Local`.
    pub node_name: Option<String>,
    /// `targetRef.name` when it refers to a Pod.
    pub pod: Option<String>,
}

impl SliceEndpoint {
    /// The state of the endpoint's backends: active when ready (and not terminating),
    /// terminating when terminating but still serving (existing connections only), none
    /// when neither (not a backend at all).
    pub fn state(&self) -> Option<BackendState> {
        let Conditions {
            ready,
            serving,
            terminating,
        } = self.conditions;
        if terminating {
            serving.then_some(BackendState::Terminating)
        } else {
            ready.then_some(BackendState::Active)
        }
    }
}

/// One entry of `ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePort {
    /// `name`: the service port it serves (empty for an unnamed service port).
    pub name: String,
    /// `protocol`, `TCP` by default.
    pub protocol: Protocol,
    /// `port` on the endpoints; unset means the port is not usable.
    pub port: Option<u16>,
}

/// A parsed EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    /// `metadata.namespace/name`.
    pub name: ObjectName,
    /// The service of [`SERVICE_NAME_LABEL`], in the slice's namespace.
    pub service: Option<ObjectName>,
    /// `addressType`.
    pub address_type: AddressType,
    /// `endpoints` (empty unless [`AddressType::Ipv4`]).
    pub endpoints: Vec<SliceEndpoint>,
    /// `ports`.
    pub ports: Vec<SlicePort>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSlice {
    #[serde(default)]
    metadata: RawMetadata,
    address_type: Option<String>,
    endpoints: Option<Vec<RawEndpoint>>,
    ports: Option<Vec<RawPort>>,
}

#[derive(Deserialize, Default)]
struct RawMetadata {
    labels: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEndpoint {
    addresses: Option<Vec<String>>,
    conditions: Option<RawConditions>,
    node_name: Option<String>,
    target_ref: Option<RawTargetRef>,
}

#[derive(Deserialize)]
struct RawConditions {
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
}

#[derive(Deserialize)]
struct RawTargetRef {
    kind: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawPort {
    name: Option<String>,
    protocol: Option<String>,
    port: Option<i64>,
}

impl EndpointSlice {
    /// Parses and checks a stored EndpointSlice object.
    pub fn from_json(value: &Value) -> Result<Self, ResourceError> {
        let object = Object::check(value, "discovery.k8s.io/v1", "EndpointSlice")?;
        let raw: RawSlice = object.parse(value)?;
        let address_type = match raw.address_type.as_deref() {
            Some("IPv4") => AddressType::Ipv4,
            Some("IPv6") => AddressType::Ipv6,
            Some("FQDN") => AddressType::Fqdn,
            Some(other) => {
                return Err(object.invalid("addressType", Shown::Text(other), "IPv4, IPv6 or FQDN"))
            }
            None => {
                return Err(object.invalid("addressType", Shown::Missing, "IPv4, IPv6 or FQDN"))
            }
        };
        let service = raw
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(SERVICE_NAME_LABEL))
            .map(|name| ObjectName::new(object.name().namespace.clone(), name.clone()));
        let endpoints = if address_type == AddressType::Ipv4 {
            raw.endpoints
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(index, endpoint)| slice_endpoint(&object, index, endpoint))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let ports = raw
            .ports
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, port)| slice_port(&object, index, port))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EndpointSlice {
            name: object.name().clone(),
            service,
            address_type,
            endpoints,
            ports,
        })
    }
}

fn slice_endpoint(
    object: &Object,
    index: usize,
    raw: RawEndpoint,
) -> Result<SliceEndpoint, ResourceError> {
    let texts = raw.addresses.unwrap_or_default();
    if texts.is_empty() {
        return Err(object.invalid(
            format!("endpoints[{index}].addresses"),
            Shown::Missing,
            "at least one address",
        ));
    }
    let mut addresses = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let field = format!("endpoints[{index}].addresses[{i}]");
        match object.ipv4(&field, text)? {
            Some(ip) => addresses.push(ip),
            None => return Err(object.invalid(field, Shown::Text(text), "an IPv4 address")),
        }
    }
    let conditions = raw.conditions.map_or(
        Conditions {
            ready: true,
            serving: true,
            terminating: false,
        },
        |c| {
            let ready = c.ready.unwrap_or(true);
            Conditions {
                ready,
                serving: c.serving.unwrap_or(ready),
                terminating: c.terminating.unwrap_or(false),
            }
        },
    );
    let pod = raw
        .target_ref
        .filter(|target| target.kind.as_deref() == Some("Pod"))
        .and_then(|target| target.name);
    Ok(SliceEndpoint {
        addresses,
        conditions,
        node_name: raw.node_name.filter(|n| !n.is_empty()),
        pod,
    })
}

fn slice_port(object: &Object, index: usize, raw: RawPort) -> Result<SlicePort, ResourceError> {
    let protocol = match raw.protocol.as_deref() {
        None => Protocol::Tcp,
        Some(text) => Protocol::parse(text).ok_or_else(|| {
            object.invalid(
                format!("ports[{index}].protocol"),
                Shown::Text(text),
                "TCP or UDP",
            )
        })?,
    };
    let port = match raw.port {
        None => None,
        number => Some(object.port(&format!("ports[{index}].port"), number)?),
    };
    Ok(SlicePort {
        name: raw.name.unwrap_or_default(),
        protocol,
        port,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn slice(body: Value) -> Value {
        let mut value = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc12", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "web"}}});
        for (k, v) in body.as_object().expect("object") {
            value[k] = v.clone();
        }
        value
    }

    fn error(value: Value) -> String {
        match EndpointSlice::from_json(&value) {
            Ok(slice) => panic!("accepted an invalid slice: {slice:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn parses_endpoints_conditions_and_ports() {
        let parsed = EndpointSlice::from_json(&slice(json!({
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.1.5"], "nodeName": "node-1",
                 "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop"}},
                {"addresses": ["10.0.2.6"], "conditions": {"ready": false, "serving": true, "terminating": true},
                 "nodeName": "node-2"},
                {"addresses": ["10.0.2.7"], "conditions": {"ready": false}}
            ],
            "ports": [{"name": "http", "port": 8080}, {"name": "dns", "protocol": "UDP", "port": 53}]
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.name, ObjectName::new("shop", "web-abc12"));
        assert_eq!(parsed.service, Some(ObjectName::new("shop", "web")));
        assert_eq!(parsed.endpoints.len(), 3);
        let [first, second, third] = &parsed.endpoints[..] else {
            unreachable!("three endpoints")
        };
        assert_eq!(first.addresses, vec![Ipv4Addr::new(10, 0, 1, 5)]);
        assert_eq!(first.node_name.as_deref(), Some("node-1"));
        assert_eq!(first.pod.as_deref(), Some("web-1"));
        assert_eq!(first.state(), Some(BackendState::Active));
        assert_eq!(second.state(), Some(BackendState::Terminating));
        assert_eq!(
            third.conditions,
            Conditions {
                ready: false,
                serving: false,
                terminating: false
            }
        );
        assert_eq!(third.state(), None, "not ready, not serving: no backend");
        assert_eq!(
            parsed.ports,
            vec![
                SlicePort {
                    name: "http".into(),
                    protocol: Protocol::Tcp,
                    port: Some(8080)
                },
                SlicePort {
                    name: "dns".into(),
                    protocol: Protocol::Udp,
                    port: Some(53)
                },
            ]
        );
    }

    #[test]
    fn terminating_but_not_serving_is_no_backend() {
        let endpoint = SliceEndpoint {
            addresses: vec![Ipv4Addr::new(10, 0, 0, 1)],
            conditions: Conditions {
                ready: false,
                serving: false,
                terminating: true,
            },
            node_name: None,
            pod: None,
        };
        assert_eq!(endpoint.state(), None);
    }

    #[test]
    fn ipv6_and_fqdn_slices_carry_no_endpoints() {
        for address_type in ["IPv6", "FQDN"] {
            let parsed = EndpointSlice::from_json(&slice(json!({
                "addressType": address_type,
                "endpoints": [{"addresses": ["fd00::5"]}],
                "ports": [{"port": 80}]
            })))
            .unwrap_or_else(|e| panic!("{e}"));
            assert!(parsed.endpoints.is_empty(), "{address_type}");
        }
    }

    #[test]
    fn errors_name_the_object_and_field() {
        let cases = [
            (json!({}), "EndpointSlice shop/web-abc12: addressType is missing, expected IPv4, IPv6 or FQDN"),
            (json!({"addressType": "IPv5"}), "EndpointSlice shop/web-abc12: addressType is \"IPv5\", expected IPv4, IPv6 or FQDN"),
            (json!({"addressType": "IPv4", "endpoints": [{"addresses": []}]}), "EndpointSlice shop/web-abc12: endpoints[0].addresses is missing, expected at least one address"),
            (json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1", "fd00::1"]}]}), "EndpointSlice shop/web-abc12: endpoints[0].addresses[1] is \"fd00::1\", expected an IPv4 address"),
            (json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.x"]}]}), "EndpointSlice shop/web-abc12: endpoints[0].addresses[0] is \"10.0.0.x\", not an IP address"),
            (json!({"addressType": "IPv4", "ports": [{"port": 0}]}), "EndpointSlice shop/web-abc12: ports[0].port is 0, expected a port number 1-65535"),
            (json!({"addressType": "IPv4", "ports": [{"port": 80, "protocol": "SCTP"}]}), "EndpointSlice shop/web-abc12: ports[0].protocol is \"SCTP\", expected TCP or UDP"),
            (json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": "yes"}}]}), "EndpointSlice shop/web-abc12: endpoints[0].conditions.ready does not fit the EndpointSlice schema"),
        ];
        for (body, expected) in cases {
            assert_eq!(error(slice(body)), expected);
        }
        assert_eq!(
            error(json!({"apiVersion": "v1", "kind": "EndpointSlice", "metadata": {"name": "x"}})),
            "EndpointSlice default/x: apiVersion is \"v1\", expected discovery.k8s.io/v1"
        );
    }
}
