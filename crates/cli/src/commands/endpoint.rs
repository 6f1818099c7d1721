//! `cilium endpoint list` and `cilium endpoint get`: the agent's endpoints as cilium-dbg shows
//! them.

use cilium_api::models::Endpoint;
use cilium_api::ClientError;

use crate::cli::OutputFormat;
use crate::output::{self, OutputError, Table};
use crate::target::AgentTarget;

/// `[prefix:]id` prefixes the agent understands, as in Cilium's endpoint-id parameter.
const ID_PREFIXES: [&str; 7] = [
    "cilium-local",
    "cilium-global",
    "container-id",
    "container-name",
    "pod-name",
    "docker-endpoint",
    "cni-attachment-id",
];

/// Errors of the endpoint commands.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "invalid endpoint ID {id:?}: expected a number or [prefix:]id with prefix one of {}",
        ID_PREFIXES.join(", ")
    )]
    InvalidId { id: String },
    #[error("cannot list endpoints")]
    List {
        #[source]
        source: ClientError,
    },
    #[error("cannot get endpoint {id}")]
    Get {
        id: String,
        #[source]
        source: ClientError,
    },
    #[error("cannot print endpoints")]
    Output {
        #[source]
        source: OutputError,
    },
}

pub fn list(target: &AgentTarget, format: OutputFormat) -> Result<(), EndpointError> {
    let mut endpoints = target
        .client()
        .endpoints()
        .map_err(|source| EndpointError::List { source })?;
    endpoints.sort_by_key(|ep| ep.id);
    let text = match format {
        OutputFormat::Json => output::json(&endpoints),
        OutputFormat::Text => render_list(&endpoints),
    };
    output::print(&text).map_err(|source| EndpointError::Output { source })
}

/// Prints one endpoint as a one-element JSON array (cilium-dbg's default for `endpoint get`).
pub fn get(target: &AgentTarget, id: &str) -> Result<(), EndpointError> {
    let path_id = endpoint_path_id(id)?;
    let endpoint = target
        .client()
        .endpoint(&path_id)
        .map_err(|source| EndpointError::Get {
            id: id.to_string(),
            source,
        })?;
    output::print(&output::json(&[endpoint])).map_err(|source| EndpointError::Output { source })
}

/// Checks an endpoint ID and encodes it for the URL path.
fn endpoint_path_id(id: &str) -> Result<String, EndpointError> {
    let invalid = || EndpointError::InvalidId { id: id.to_string() };
    match id.split_once(':') {
        None => id
            .parse::<u16>()
            .map(|n| n.to_string())
            .map_err(|_| invalid()),
        Some((prefix, rest)) if ID_PREFIXES.contains(&prefix) && !rest.is_empty() => {
            Ok(format!("{prefix}:{}", encode_path_segment(rest)))
        }
        Some(_) => Err(invalid()),
    }
}

fn encode_path_segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// cilium-dbg's table: two header lines, one row per endpoint, extra rows for extra labels.
fn render_list(endpoints: &[Endpoint]) -> String {
    let mut table = Table::new();
    table.row([
        "ENDPOINT",
        "POLICY (ingress)",
        "POLICY (egress)",
        "IDENTITY",
        "LABELS (source:key[=value])",
        "IPv6",
        "IPv4",
        "STATUS",
    ]);
    table.row(["", "ENFORCEMENT", "ENFORCEMENT"]);
    for ep in endpoints {
        let status = &ep.status;
        let mut labels = if status.identity.labels.is_empty() {
            status.labels.realized.clone()
        } else {
            status.identity.labels.clone()
        };
        labels.sort();
        let mut labels = labels.into_iter();
        let (ipv6, ipv4) = status
            .networking
            .addressing
            .first()
            .map(|a| (a.ipv6.clone(), a.ipv4.clone()))
            .unwrap_or_default();
        table.row([
            ep.id.to_string(),
            status.policy.ingress_enforcement.clone(),
            status.policy.egress_enforcement.clone(),
            status.identity.id.to_string(),
            labels.next().unwrap_or_default(),
            ipv6,
            ipv4,
            status.state.clone(),
        ]);
        for label in labels {
            table.row([
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                label,
            ]);
        }
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cilium_api::models::{
        AddressPair, EndpointIdentifiers, EndpointIdentity, EndpointLabels, EndpointNetworking,
        EndpointPolicyStatus, EndpointStatus,
    };

    pub(crate) fn endpoint(id: u16, identity: u32, labels: &[&str], ipv4: &str) -> Endpoint {
        Endpoint {
            id,
            status: EndpointStatus {
                state: "ready".into(),
                identity: EndpointIdentity {
                    id: identity,
                    labels: labels.iter().map(|l| l.to_string()).collect(),
                },
                networking: EndpointNetworking {
                    addressing: vec![AddressPair {
                        ipv4: ipv4.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                external_identifiers: EndpointIdentifiers::default(),
                labels: EndpointLabels::default(),
                policy: EndpointPolicyStatus::default(),
                realized_generation: 1,
            },
        }
    }

    #[test]
    fn list_matches_cilium_columns() {
        let endpoints = [
            endpoint(
                232,
                16530,
                &["k8s:org=empire", "k8s:class=deathstar"],
                "10.0.1.147",
            ),
            endpoint(726, 1, &["reserved:host"], ""),
        ];
        let expected = "\
ENDPOINT   POLICY (ingress)   POLICY (egress)   IDENTITY   LABELS (source:key[=value])   IPv6   IPv4         STATUS
           ENFORCEMENT        ENFORCEMENT
232        Disabled           Disabled          16530      k8s:class=deathstar                  10.0.1.147   ready
                                                           k8s:org=empire
726        Disabled           Disabled          1          reserved:host                                     ready
";
        assert_eq!(render_list(&endpoints), expected);
    }

    #[test]
    fn endpoint_ids_are_checked_and_encoded() {
        assert_eq!(endpoint_path_id("829").unwrap(), "829");
        assert_eq!(
            endpoint_path_id("container-id:3f2a9c").unwrap(),
            "container-id:3f2a9c"
        );
        assert_eq!(
            endpoint_path_id("pod-name:default/x y").unwrap(),
            "pod-name:default%2Fx%20y"
        );
        for bad in ["abc", "70000", "bogus:1", "container-id:", "-1"] {
            let err = endpoint_path_id(bad).unwrap_err().to_string();
            assert!(err.contains("invalid endpoint ID"), "{bad}: {err}");
        }
    }
}
