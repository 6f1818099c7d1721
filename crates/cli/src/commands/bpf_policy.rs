//! `cilium bpf policy get ENDPOINT_ID`: one endpoint's policy map (`cilium_policy_v2_<id>`) in
//! cilium-dbg's layout, remote identities shown by their labels when the agent can name them.

use std::collections::HashMap;
use std::path::Path;

use cilium_datapath::bpffs::BpfPaths;
use cilium_datapath::maps::{
    Direction, Enforcement, MapsError, PolicyEnforcementMap, PolicyMap, PolicyMapEntry,
};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::output::{self, OutputError, Table};
use crate::target::AgentTarget;

/// Bits of the protocol in a policy entry's L4 prefix.
const PROTOCOL_PREFIX_BITS: u8 = 8;

/// Errors of `cilium bpf policy get`.
#[derive(Debug, thiserror::Error)]
pub enum BpfPolicyError {
    #[error("cannot read the policy map of endpoint {id}")]
    Map {
        id: u16,
        #[source]
        source: MapsError,
    },
    #[error("cannot read the policy enforcement of endpoint {id}")]
    Enforcement {
        id: u16,
        #[source]
        source: MapsError,
    },
    #[error("cannot print the policy map")]
    Output {
        #[source]
        source: OutputError,
    },
}

/// Identity number → labels, as far as the agent could tell.
type IdentityLabels = HashMap<u32, Vec<String>>;

/// The whole answer, in `-o json`.
#[derive(Debug, Serialize)]
struct PolicyDump {
    endpoint_id: u16,
    path: String,
    /// Whether the datapath checks new connections in each direction.
    ingress_enforced: bool,
    egress_enforced: bool,
    entries: Vec<PolicyRow>,
}

/// One policy map entry.
#[derive(Debug, Serialize)]
struct PolicyRow {
    /// `Allow` or `Deny`.
    policy: &'static str,
    /// `Ingress` or `Egress`.
    direction: &'static str,
    /// Remote identity; 0 = any.
    identity: u32,
    /// The identity's labels; empty for any identity or when the agent could not name it.
    labels: Vec<String>,
    /// IP protocol; 0 = any.
    protocol: u8,
    /// First and last destination port covered; absent for any port.
    port_range: Option<(u16, u16)>,
    /// L7 proxy port; 0 = none.
    proxy_port: u16,
    /// Auth type; 0 = disabled.
    auth_type: u8,
    /// L4 bits of the entry's LPM prefix (protocol and port bits).
    prefix: u8,
}

pub fn get(
    bpf_root: &Path,
    target: &AgentTarget,
    id: u16,
    format: OutputFormat,
) -> Result<(), BpfPolicyError> {
    let paths = BpfPaths::new(bpf_root);
    let map = PolicyMap::open(&paths, id).map_err(|source| BpfPolicyError::Map { id, source })?;
    let entries = map
        .entries()
        .map_err(|source| BpfPolicyError::Map { id, source })?;
    let enforcement = PolicyEnforcementMap::open(&paths)
        .and_then(|switches| switches.get(id))
        .map_err(|source| BpfPolicyError::Enforcement { id, source })?;
    let names = identity_labels(target);
    let dump = dump(
        id,
        &PolicyMap::pin_path(&paths, id),
        enforcement,
        &entries,
        &names,
    );
    let text = match format {
        OutputFormat::Json => output::json(&dump),
        OutputFormat::Text => render(&dump),
    };
    output::print(&text).map_err(|source| BpfPolicyError::Output { source })
}

/// The agent's identities; empty when the agent cannot be asked (numbers are printed then).
fn identity_labels(target: &AgentTarget) -> IdentityLabels {
    match target.client().identities() {
        Ok(identities) => identities
            .into_iter()
            .map(|identity| (identity.id, identity.labels))
            .collect(),
        Err(err) => {
            eprintln!(
                "Warning: cannot resolve identities through the agent ({}); showing numbers",
                output::error_chain(&err)
            );
            HashMap::new()
        }
    }
}

fn dump(
    id: u16,
    path: &Path,
    enforcement: Enforcement,
    entries: &[PolicyMapEntry],
    names: &IdentityLabels,
) -> PolicyDump {
    PolicyDump {
        endpoint_id: id,
        path: path.display().to_string(),
        ingress_enforced: enforcement.ingress,
        egress_enforced: enforcement.egress,
        entries: entries.iter().map(|e| row(e, names)).collect(),
    }
}

fn row(entry: &PolicyMapEntry, names: &IdentityLabels) -> PolicyRow {
    let key = &entry.key;
    let port_range = (key.protocol != 0 && key.dport_prefix_bits > 0).then(|| {
        let span = u16::MAX
            .checked_shr(u32::from(key.dport_prefix_bits))
            .unwrap_or(0);
        (key.dport, key.dport | span)
    });
    let mut labels = names.get(&key.identity).cloned().unwrap_or_default();
    labels.sort();
    PolicyRow {
        policy: if entry.entry.is_deny() {
            "Deny"
        } else {
            "Allow"
        },
        direction: match key.direction {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        },
        identity: key.identity,
        labels: if key.identity == 0 {
            Vec::new()
        } else {
            labels
        },
        protocol: key.protocol,
        port_range,
        proxy_port: u16::from_be(entry.entry.proxy_port),
        auth_type: entry.entry.auth & 0x7f,
        prefix: if key.protocol == 0 {
            0
        } else {
            PROTOCOL_PREFIX_BITS + key.dport_prefix_bits
        },
    }
}

fn protocol_name(protocol: u8) -> String {
    match protocol {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        other => other.to_string(),
    }
}

/// `PORT/PROTO`: `ANY`, `ANY/TCP`, `80/TCP` or `8000-8007/TCP`.
fn port_proto(row: &PolicyRow) -> String {
    if row.protocol == 0 {
        return "ANY".into();
    }
    let protocol = protocol_name(row.protocol);
    match row.port_range {
        None => format!("ANY/{protocol}"),
        Some((first, last)) if first == last => format!("{first}/{protocol}"),
        Some((first, last)) => format!("{first}-{last}/{protocol}"),
    }
}

/// cilium-dbg's layout: endpoint and pin path, then one row per entry, extra labels on lines
/// of their own. Traffic counters are not kept per entry, so they read `-`.
fn render(dump: &PolicyDump) -> String {
    let on_off = |enforced: bool| if enforced { "enabled" } else { "disabled" };
    let mut text = format!(
        "Endpoint ID: {}\nPath: {}\nPolicy enforcement: ingress {}, egress {}\n\n",
        dump.endpoint_id,
        dump.path,
        on_off(dump.ingress_enforced),
        on_off(dump.egress_enforced),
    );
    let mut table = Table::new();
    table.row([
        "POLICY",
        "DIRECTION",
        "LABELS (source:key[=value])",
        "PORT/PROTO",
        "PROXY PORT",
        "AUTH TYPE",
        "BYTES",
        "PACKETS",
        "PREFIX",
    ]);
    for row in &dump.entries {
        let mut labels = row.labels.iter().cloned();
        let first = match row.identity {
            0 => "ANY".to_string(),
            id => labels.next().unwrap_or_else(|| id.to_string()),
        };
        table.row([
            row.policy.to_string(),
            row.direction.to_string(),
            first,
            port_proto(row),
            match row.proxy_port {
                0 => "NONE".to_string(),
                port => port.to_string(),
            },
            match row.auth_type {
                0 => "disabled".to_string(),
                auth => auth.to_string(),
            },
            "-".to_string(),
            "-".to_string(),
            row.prefix.to_string(),
        ]);
        for label in labels {
            table.row([String::new(), String::new(), label]);
        }
    }
    text.push_str(&table.render());
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use cilium_datapath::maps::{PolicyEntry, PolicyMapKey};

    fn entry(key: PolicyMapKey, entry: PolicyEntry) -> PolicyMapEntry {
        PolicyMapEntry { key, entry }
    }

    fn sample() -> PolicyDump {
        let names: IdentityLabels = [
            (
                40321,
                vec![
                    "k8s:io.kubernetes.pod.namespace=default".to_string(),
                    "k8s:app=dashboard".to_string(),
                ],
            ),
            (1, vec!["reserved:host".to_string()]),
        ]
        .into_iter()
        .collect();
        let range = PolicyMapKey {
            dport: 8000,
            dport_prefix_bits: 13,
            ..PolicyMapKey::l4(0, Direction::Ingress, 6, 8000)
        };
        let entries = [
            entry(
                PolicyMapKey::l4(40321, Direction::Ingress, 6, 8080),
                PolicyEntry::allow(),
            ),
            entry(
                PolicyMapKey::l3(1, Direction::Ingress),
                PolicyEntry::allow(),
            ),
            entry(range, PolicyEntry::allow()),
            entry(
                PolicyMapKey::proto(777, Direction::Egress, 17),
                PolicyEntry::deny(),
            ),
            entry(PolicyMapKey::l3(0, Direction::Egress), PolicyEntry::allow()),
        ];
        dump(
            25,
            Path::new("/sys/fs/bpf/tc/globals/cilium_policy_v2_00025"),
            Enforcement {
                ingress: true,
                egress: false,
            },
            &entries,
            &names,
        )
    }

    #[test]
    fn rows_read_like_cilium() {
        assert_eq!(
            render(&sample()),
            "\
Endpoint ID: 25
Path: /sys/fs/bpf/tc/globals/cilium_policy_v2_00025
Policy enforcement: ingress enabled, egress disabled

POLICY   DIRECTION   LABELS (source:key[=value])               PORT/PROTO      PROXY PORT   AUTH TYPE   BYTES   PACKETS   PREFIX
Allow    Ingress     k8s:app=dashboard                         8080/TCP        NONE         disabled    -       -         24
                     k8s:io.kubernetes.pod.namespace=default
Allow    Ingress     reserved:host                             ANY             NONE         disabled    -       -         0
Allow    Ingress     ANY                                       8000-8007/TCP   NONE         disabled    -       -         21
Deny     Egress      777                                       ANY/UDP         NONE         disabled    -       -         8
Allow    Egress      ANY                                       ANY             NONE         disabled    -       -         0
"
        );
    }

    #[test]
    fn json_names_the_fields() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["endpoint_id"], 25);
        assert_eq!(json["ingress_enforced"], true);
        assert_eq!(json["egress_enforced"], false);
        let first = &json["entries"][0];
        assert_eq!(first["policy"], "Allow");
        assert_eq!(first["identity"], 40321);
        assert_eq!(first["port_range"], serde_json::json!([8080, 8080]));
        assert_eq!(first["prefix"], 24);
        assert_eq!(
            json["entries"][2]["port_range"],
            serde_json::json!([8000, 8007])
        );
        assert_eq!(json["entries"][3]["policy"], "Deny");
        assert_eq!(json["entries"][3]["labels"], serde_json::json!([]));
        assert_eq!(json["entries"][4]["port_range"], serde_json::Value::Null);
    }
}
