//! `cilium kvstore get [--recursive] KEY`: entries of the cluster's kvstore, read through the
//! agent (so the embedded store works too), printed `key => value` like cilium-dbg.

use cilium_api::models::KvPair;
use cilium_api::ClientError;

use crate::cli::OutputFormat;
use crate::output::{self, OutputError};
use crate::target::AgentTarget;

/// Errors of `cilium kvstore get`.
#[derive(Debug, thiserror::Error)]
pub enum KvstoreError {
    #[error("cannot read {key:?} from the kvstore")]
    Get {
        key: String,
        #[source]
        source: ClientError,
    },
    #[error("key {key:?} not found")]
    NotFound { key: String },
    #[error("cannot print kvstore entries")]
    Output {
        #[source]
        source: OutputError,
    },
}

/// Prints the entry at `key`, or with `recursive` every entry under the prefix `key` (none is
/// not an error then, as in cilium-dbg).
pub fn get(
    target: &AgentTarget,
    key: &str,
    recursive: bool,
    format: OutputFormat,
) -> Result<(), KvstoreError> {
    let mut pairs = target
        .client()
        .kvstore_get(key, recursive)
        .map_err(|source| KvstoreError::Get {
            key: key.to_string(),
            source,
        })?;
    if pairs.is_empty() && !recursive {
        return Err(KvstoreError::NotFound {
            key: key.to_string(),
        });
    }
    pairs.sort_by(|a, b| a.key.cmp(&b.key));
    let text = match format {
        OutputFormat::Json => output::json(&pairs),
        OutputFormat::Text => render(&pairs),
    };
    output::print(&text).map_err(|source| KvstoreError::Output { source })
}

/// One `key => value` line per entry.
fn render(pairs: &[KvPair]) -> String {
    pairs
        .iter()
        .map(|pair| format!("{} => {}\n", pair.key, pair.value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_print_as_key_arrow_value() {
        let pairs = [
            KvPair {
                key: "cilium/state/nodes/v1/default/node1".into(),
                value: r#"{"Name":"node1","Cluster":"default"}"#.into(),
            },
            KvPair {
                key: "cilium/state/identities/v1/id/40321".into(),
                value: "k8s:app=web;".into(),
            },
        ];
        assert_eq!(
            render(&pairs),
            "cilium/state/nodes/v1/default/node1 => {\"Name\":\"node1\",\"Cluster\":\"default\"}\n\
             cilium/state/identities/v1/id/40321 => k8s:app=web;\n"
        );
        assert_eq!(render(&[]), "");
    }
}
