//! `cilium identity list` and `cilium identity get`: the security identities the agent knows
//! (reserved and allocated) with their labels, as cilium-dbg shows them.

use cilium_api::models::Identity;
use cilium_api::ClientError;

use crate::cli::OutputFormat;
use crate::output::{self, OutputError, Table};
use crate::target::AgentTarget;

/// Errors of the identity commands.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot list identities")]
    List {
        #[source]
        source: ClientError,
    },
    #[error("cannot get identity {id}")]
    Get {
        id: u32,
        #[source]
        source: ClientError,
    },
    #[error("cannot print identities")]
    Output {
        #[source]
        source: OutputError,
    },
}

pub fn list(target: &AgentTarget, format: OutputFormat) -> Result<(), IdentityError> {
    let mut identities = target
        .client()
        .identities()
        .map_err(|source| IdentityError::List { source })?;
    identities.sort_by_key(|identity| identity.id);
    print(&identities, format)
}

pub fn get(target: &AgentTarget, id: u32, format: OutputFormat) -> Result<(), IdentityError> {
    let identity = target
        .client()
        .identity(id)
        .map_err(|source| IdentityError::Get { id, source })?;
    print(&[identity], format)
}

fn print(identities: &[Identity], format: OutputFormat) -> Result<(), IdentityError> {
    let text = match format {
        OutputFormat::Json => output::json(&identities),
        OutputFormat::Text => render(identities),
    };
    output::print(&text).map_err(|source| IdentityError::Output { source })
}

/// cilium-dbg's table: `ID  LABELS`, the first label beside the number and one more label per
/// line below it.
fn render(identities: &[Identity]) -> String {
    let mut table = Table::new();
    table.row(["ID", "LABELS"]);
    for identity in identities {
        let mut labels = identity.labels.clone();
        labels.sort();
        let mut labels = labels.into_iter();
        table.row([identity.id.to_string(), labels.next().unwrap_or_default()]);
        for label in labels {
            table.row([String::new(), label]);
        }
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(id: u32, labels: &[&str]) -> Identity {
        Identity {
            id,
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn one_label_per_line_under_its_number() {
        let identities = [
            identity(1, &["reserved:host"]),
            identity(7, &["reserved:kube-apiserver", "reserved:remote-node"]),
            identity(
                40321,
                &[
                    "k8s:io.kubernetes.pod.namespace=default",
                    "k8s:app=dashboard",
                ],
            ),
            identity(8, &[]),
        ];
        assert_eq!(
            render(&identities),
            "\
ID      LABELS
1       reserved:host
7       reserved:kube-apiserver
        reserved:remote-node
40321   k8s:app=dashboard
        k8s:io.kubernetes.pod.namespace=default
8
"
        );
    }
}
