//! Pod labels as given on the command line (`--labels app=web,tier=front`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest label name or value, as in Kubernetes.
const MAX_PART: usize = 63;

/// Errors parsing labels.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("label {item:?} is not of the form key=value")]
    MissingEquals { item: String },
    #[error("invalid label key {key:?}: use [prefix/]name with letters, digits, '-', '_' and '.' (name at most {MAX_PART} characters)")]
    Key { key: String },
    #[error("invalid value {value:?} for label {key:?}: use at most {MAX_PART} letters, digits, '-', '_' and '.'")]
    Value { key: String, value: String },
    #[error("label {key:?} is given twice")]
    Duplicate { key: String },
}

/// A pod's labels, sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for Labels {
    type Err = LabelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut labels = BTreeMap::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| LabelError::MissingEquals {
                    item: item.to_string(),
                })?;
            if !valid_key(key) {
                return Err(LabelError::Key {
                    key: key.to_string(),
                });
            }
            if !(value.is_empty() || valid_name(value)) {
                return Err(LabelError::Value {
                    key: key.to_string(),
                    value: value.to_string(),
                });
            }
            if labels.insert(key.to_string(), value.to_string()).is_some() {
                return Err(LabelError::Duplicate {
                    key: key.to_string(),
                });
            }
        }
        Ok(Labels(labels))
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// `[dns-prefix/]name`, as Kubernetes label keys.
fn valid_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => {
            !prefix.is_empty()
                && prefix.len() <= 253
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
                && valid_name(name)
        }
        None => valid_name(key),
    }
}

/// A label name or non-empty value: alphanumeric at both ends, `-_.` inside.
fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: Option<&u8>| c.is_some_and(u8::is_ascii_alphanumeric);
    s.len() <= MAX_PART
        && edge(b.first())
        && edge(b.last())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_sorts_labels() {
        let labels: Labels = "tier=front, app=web,app.kubernetes.io/part-of=shop,empty="
            .parse()
            .unwrap();
        let pairs: Vec<_> = labels.iter().collect();
        assert_eq!(
            pairs,
            [
                ("app", "web"),
                ("app.kubernetes.io/part-of", "shop"),
                ("empty", ""),
                ("tier", "front")
            ]
        );
        assert_eq!(
            labels.to_string(),
            "app=web,app.kubernetes.io/part-of=shop,empty=,tier=front"
        );
    }

    #[test]
    fn empty_input_means_no_labels() {
        assert!("".parse::<Labels>().unwrap().is_empty());
    }

    #[test]
    fn rejects_malformed_labels() {
        for bad in [
            "app",
            "=x",
            "app=-x",
            "a b=c",
            "app=x,app=y",
            "/x=y",
            "Pre.fix/x=y",
        ] {
            assert!(bad.parse::<Labels>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn serializes_as_a_plain_map() {
        let labels: Labels = "app=web".parse().unwrap();
        assert_eq!(serde_json::to_string(&labels).unwrap(), r#"{"app":"web"}"#);
    }
}
