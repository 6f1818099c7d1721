//! Policy files: multi-document YAML (or JSON) read whole or not at all.

use serde::Deserialize;

use crate::document::{metadata_name, DocumentError, PolicyDocument};
use crate::violation::Violation;

/// Why a policy file was rejected. Documents are numbered from 1 in file
/// order, empty documents included.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A document is not valid YAML.
    #[error("{file}: document {document} is not valid YAML")]
    Yaml {
        /// File name as given.
        file: String,
        /// Document number.
        document: usize,
        /// The parser's complaint, with line and column.
        #[source]
        source: serde_norway::Error,
    },
    /// A document uses YAML that has no JSON form (e.g. a boolean as a key).
    #[error("{file}: document {document} cannot be read as a Kubernetes object")]
    NotJson {
        /// File name as given.
        file: String,
        /// Document number.
        document: usize,
        /// What could not be converted.
        #[source]
        source: serde_json::Error,
    },
    /// A field has the wrong type, is unknown, or is missing.
    #[error("{file}: document {document}{}: {path}", name_suffix(name.as_deref()))]
    Schema {
        /// File name as given.
        file: String,
        /// Document number.
        document: usize,
        /// The document's `metadata.name`, when it has one.
        name: Option<String>,
        /// Field path (`spec.ingress[0].toPorts[0].ports[0].port`).
        path: String,
        /// What the parser found.
        #[source]
        source: serde_json::Error,
    },
    /// A field's value breaks a rule of the policy language.
    #[error("{file}: document {document}{}: {path}", name_suffix(name.as_deref()))]
    Invalid {
        /// File name as given.
        file: String,
        /// Document number.
        document: usize,
        /// The document's `metadata.name`, when it has one.
        name: Option<String>,
        /// Field path.
        path: String,
        /// The rule broken.
        #[source]
        source: Box<Violation>,
    },
}

impl PolicyError {
    /// The path of the offending field, for errors about one.
    pub fn path(&self) -> Option<&str> {
        match self {
            PolicyError::Yaml { .. } | PolicyError::NotJson { .. } => None,
            PolicyError::Schema { path, .. } | PolicyError::Invalid { path, .. } => Some(path),
        }
    }

    fn located(
        file: &str,
        document: usize,
        name: Option<String>,
        error: DocumentError,
    ) -> PolicyError {
        let file = file.to_owned();
        match error {
            DocumentError::Schema { path, source } => PolicyError::Schema {
                file,
                document,
                name,
                path,
                source,
            },
            DocumentError::Invalid { path, source } => PolicyError::Invalid {
                file,
                document,
                name,
                path,
                source,
            },
        }
    }
}

fn name_suffix(name: Option<&str>) -> String {
    name.map(|n| format!(" ({n})")).unwrap_or_default()
}

/// Reads every document of a policy file. A file with any invalid document
/// yields an error and no documents; empty documents are skipped. YAML is
/// read as Kubernetes reads it: duplicate keys are an error, anchors, aliases
/// and `<<` merge keys are resolved.
pub fn parse_documents(file_name: &str, text: &str) -> Result<Vec<PolicyDocument>, PolicyError> {
    let mut documents = Vec::new();
    for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let number = i + 1;
        let yaml_error = |source| PolicyError::Yaml {
            file: file_name.to_owned(),
            document: number,
            source,
        };
        let mut yaml = serde_norway::Value::deserialize(document).map_err(yaml_error)?;
        yaml.apply_merge().map_err(yaml_error)?;
        let raw = serde_json::to_value(&yaml).map_err(|source| PolicyError::NotJson {
            file: file_name.to_owned(),
            document: number,
            source,
        })?;
        if raw.is_null() {
            continue;
        }
        let name = metadata_name(&raw).map(str::to_owned);
        let parsed = PolicyDocument::from_value(raw)
            .map_err(|e| PolicyError::located(file_name, number, name, e))?;
        documents.push(parsed);
    }
    Ok(documents)
}
