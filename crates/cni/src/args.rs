//! `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`. Like libcni, unknown keys are an error
//! unless the runtime sends `IgnoreUnknown=1` (podman and containerd do).

/// The `CNI_ARGS` keys this plugin uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub k8s_namespace: Option<String>,
    pub k8s_pod_name: Option<String>,
}

/// Keys accepted and ignored: the rest of what kubelet-style runtimes send.
const ACCEPTED_UNUSED: [&str; 2] = ["K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID"];

/// A `CNI_ARGS` value this plugin cannot accept.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error("CNI_ARGS entry {entry:?} is not KEY=VALUE")]
    Malformed { entry: String },
    #[error("CNI_ARGS: IgnoreUnknown must be 1, 0, true or false, not {value:?}")]
    IgnoreUnknownValue { value: String },
    #[error("CNI_ARGS has unknown keys {keys:?} (send IgnoreUnknown=1 to ignore them)")]
    UnknownKeys { keys: Vec<String> },
}

/// Parses a `CNI_ARGS` value; empty means no arguments.
pub fn parse(text: &str) -> Result<CniArgs, ArgsError> {
    let mut args = CniArgs::default();
    let mut unknown = Vec::new();
    let mut ignore_unknown = false;
    for entry in text.split(';').filter(|entry| !entry.is_empty()) {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(ArgsError::Malformed {
                entry: entry.into(),
            });
        };
        if key.is_empty() {
            return Err(ArgsError::Malformed {
                entry: entry.into(),
            });
        }
        match key {
            "IgnoreUnknown" => {
                ignore_unknown = match value.to_ascii_lowercase().as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        return Err(ArgsError::IgnoreUnknownValue {
                            value: value.into(),
                        })
                    }
                }
            }
            "K8S_POD_NAMESPACE" => args.k8s_namespace = non_empty(value),
            "K8S_POD_NAME" => args.k8s_pod_name = non_empty(value),
            key if ACCEPTED_UNUSED.contains(&key) => {}
            key => unknown.push(key.to_string()),
        }
    }
    if !unknown.is_empty() && !ignore_unknown {
        return Err(ArgsError::UnknownKeys { keys: unknown });
    }
    Ok(args)
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_style_args_are_read() {
        let args = parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
             K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1;FOO=bar",
        )
        .expect("valid args");
        assert_eq!(args.k8s_namespace.as_deref(), Some("default"));
        assert_eq!(args.k8s_pod_name.as_deref(), Some("web-0"));
    }

    #[test]
    fn empty_args_are_fine() {
        assert_eq!(parse("").expect("empty"), CniArgs::default());
        assert_eq!(parse(";;").expect("only separators"), CniArgs::default());
    }

    #[test]
    fn unknown_keys_need_ignore_unknown() {
        let err = parse("K8S_POD_NAME=x;COLOUR=blue").unwrap_err();
        assert!(
            matches!(&err, ArgsError::UnknownKeys { keys } if keys == &["COLOUR"]),
            "{err:?}"
        );
        assert!(parse("COLOUR=blue;IgnoreUnknown=true").is_ok());
        assert!(parse("COLOUR=blue;IgnoreUnknown=0").is_err());
    }

    #[test]
    fn malformed_entries_are_rejected() {
        assert!(matches!(
            parse("K8S_POD_NAME"),
            Err(ArgsError::Malformed { .. })
        ));
        assert!(matches!(parse("=x"), Err(ArgsError::Malformed { .. })));
        assert!(matches!(
            parse("IgnoreUnknown=maybe"),
            Err(ArgsError::IgnoreUnknownValue { .. })
        ));
    }
}
