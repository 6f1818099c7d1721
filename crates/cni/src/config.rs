//! The network configuration on stdin, validated completely before anything is touched.
//!
//! Unknown top-level keys are ignored: runtimes add their own (`runtimeConfig`,
//! `capabilities`, ...) and the spec lets plugins accept them.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::error::{CniFailure, ErrorCode};
use crate::version::{supported_list, CniVersion};

/// The value of `type` this plugin answers to.
pub const PLUGIN_TYPE: &str = "cilium-cni";

/// The MTU used when the configuration gives none.
pub const DEFAULT_MTU: u32 = 1500;

/// A label from `args.cni.labels` (the CNI conventions' `{"key","value"}` list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub key: String,
    pub value: String,
}

/// One entry of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

/// A validated cilium-cni configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: CniVersion,
    pub name: String,
    /// `agent-socket`, our extension; else `CILIUM_SOCK`, else the default socket.
    pub agent_socket: Option<PathBuf>,
    pub mtu: u32,
    pub log_file: Option<PathBuf>,
    pub enable_debug: bool,
    pub prev_result: Option<Value>,
    pub labels: Vec<Label>,
    /// `cni.dev/valid-attachments`; GC requires it.
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the network configuration is not valid JSON")]
    Decode {
        #[source]
        source: serde_json::Error,
    },
    #[error("the network configuration must be a JSON object")]
    NotAnObject,
    #[error("required field `{field}` is missing")]
    Missing { field: &'static str },
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("field `{field}` {problem}")]
    InvalidValue {
        field: &'static str,
        problem: &'static str,
    },
    #[error("`type` is {found:?}; this plugin is {PLUGIN_TYPE:?}")]
    WrongPluginType { found: String },
    #[error("cniVersion {requested:?} is not supported; this plugin supports {supported}")]
    UnsupportedVersion {
        requested: String,
        supported: String,
    },
}

impl CniFailure for ConfigError {
    fn code(&self) -> ErrorCode {
        match self {
            ConfigError::Decode { .. } => ErrorCode::Decode,
            ConfigError::UnsupportedVersion { .. } => ErrorCode::IncompatibleVersion,
            _ => ErrorCode::InvalidConfig,
        }
    }
}

impl NetConf {
    /// Parses and validates the configuration bytes from stdin.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|source| ConfigError::Decode { source })?;
        let Value::Object(object) = value else {
            return Err(ConfigError::NotAnObject);
        };
        let cni_version = required_str(&object, "cniVersion")?;
        let name = required_str(&object, "name")?;
        if !valid_network_name(name) {
            return Err(ConfigError::InvalidValue {
                field: "name",
                problem: "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'",
            });
        }
        let plugin_type = required_str(&object, "type")?;
        if plugin_type != PLUGIN_TYPE {
            return Err(ConfigError::WrongPluginType {
                found: plugin_type.into(),
            });
        }
        let cni_version =
            CniVersion::parse(cni_version).ok_or_else(|| ConfigError::UnsupportedVersion {
                requested: cni_version.into(),
                supported: supported_list(),
            })?;
        Ok(Self {
            cni_version,
            name: name.into(),
            agent_socket: optional_path(&object, "agent-socket")?,
            mtu: mtu(&object)?,
            log_file: optional_path(&object, "log-file")?,
            enable_debug: optional_bool(&object, "enable-debug")?.unwrap_or(false),
            prev_result: prev_result(&object)?,
            labels: labels(&object)?,
            valid_attachments: valid_attachments(&object)?,
        })
    }
}

/// What can be read from a configuration even when it is invalid: used to answer in the
/// runtime's version and to set up logging before validation reports anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peek {
    pub version: Option<CniVersion>,
    pub log_file: Option<PathBuf>,
    pub enable_debug: bool,
}

/// Reads what it can from possibly invalid configuration bytes.
pub fn peek(bytes: &[u8]) -> Peek {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(bytes) else {
        return Peek::default();
    };
    Peek {
        version: object
            .get("cniVersion")
            .and_then(Value::as_str)
            .and_then(CniVersion::parse),
        log_file: object
            .get("log-file")
            .and_then(Value::as_str)
            .filter(|path| !path.is_empty())
            .map(PathBuf::from),
        enable_debug: object
            .get("enable-debug")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

fn required_str<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, ConfigError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(ConfigError::Missing { field }),
        Some(Value::String(text)) if text.is_empty() => Err(ConfigError::InvalidValue {
            field,
            problem: "must not be empty",
        }),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(ConfigError::WrongType {
            field: field.into(),
            expected: "a string",
        }),
    }
}

fn optional_path(
    object: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<PathBuf>, ConfigError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) if !text.starts_with('/') => Err(ConfigError::InvalidValue {
            field,
            problem: "must be an absolute path",
        }),
        Some(Value::String(text)) => Ok(Some(PathBuf::from(text))),
        Some(_) => Err(ConfigError::WrongType {
            field: field.into(),
            expected: "a string",
        }),
    }
}

fn optional_bool(
    object: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<bool>, ConfigError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(_) => Err(ConfigError::WrongType {
            field: field.into(),
            expected: "true or false",
        }),
    }
}

fn mtu(object: &Map<String, Value>) -> Result<u32, ConfigError> {
    match object.get("mtu") {
        None | Some(Value::Null) => Ok(DEFAULT_MTU),
        Some(Value::Number(number)) => number
            .as_u64()
            .filter(|mtu| (68..=65535).contains(mtu))
            .map(|mtu| mtu as u32)
            .ok_or(ConfigError::InvalidValue {
                field: "mtu",
                problem: "must be an integer from 68 to 65535",
            }),
        Some(_) => Err(ConfigError::WrongType {
            field: "mtu".into(),
            expected: "an integer",
        }),
    }
}

fn prev_result(object: &Map<String, Value>) -> Result<Option<Value>, ConfigError> {
    match object.get("prevResult") {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) => Ok(Some(value.clone())),
        Some(_) => Err(ConfigError::WrongType {
            field: "prevResult".into(),
            expected: "an object",
        }),
    }
}

/// `args.cni.labels`: `[{"key": "...", "value": "..."}]`; other `args` content is ignored.
fn labels(object: &Map<String, Value>) -> Result<Vec<Label>, ConfigError> {
    let Some(args) = object.get("args").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Value::Object(args) = args else {
        return Err(ConfigError::WrongType {
            field: "args".into(),
            expected: "an object",
        });
    };
    let Some(cni) = args.get("cni").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Value::Object(cni) = cni else {
        return Err(ConfigError::WrongType {
            field: "args.cni".into(),
            expected: "an object",
        });
    };
    let Some(list) = cni.get("labels").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Value::Array(list) = list else {
        return Err(ConfigError::WrongType {
            field: "args.cni.labels".into(),
            expected: "an array",
        });
    };
    list.iter()
        .enumerate()
        .map(|(index, entry)| {
            let field = format!("args.cni.labels[{index}]");
            let key = string_member(entry, "key", &field)?;
            if key.is_empty() {
                return Err(ConfigError::WrongType {
                    field: format!("{field}.key"),
                    expected: "a non-empty string",
                });
            }
            Ok(Label {
                key,
                value: string_member(entry, "value", &field)?,
            })
        })
        .collect()
}

fn valid_attachments(object: &Map<String, Value>) -> Result<Option<Vec<Attachment>>, ConfigError> {
    const FIELD: &str = "cni.dev/valid-attachments";
    let Some(value) = object.get(FIELD).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Value::Array(list) = value else {
        return Err(ConfigError::WrongType {
            field: FIELD.into(),
            expected: "an array",
        });
    };
    list.iter()
        .enumerate()
        .map(|(index, entry)| {
            let field = format!("{FIELD}[{index}]");
            Ok(Attachment {
                container_id: string_member(entry, "containerID", &field)?,
                ifname: string_member(entry, "ifname", &field)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `entry[member]` as a string, with errors naming `field.member`.
fn string_member(entry: &Value, member: &str, field: &str) -> Result<String, ConfigError> {
    match entry.get(member) {
        Some(Value::String(text)) => Ok(text.clone()),
        _ => Err(ConfigError::WrongType {
            field: format!("{field}.{member}"),
            expected: "a string",
        }),
    }
}

/// The spec's network name rule: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
fn valid_network_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: Value) -> Result<NetConf, ConfigError> {
        NetConf::parse(value.to_string().as_bytes())
    }

    fn code(value: Value) -> u32 {
        parse(value.clone())
            .map(|conf| panic!("{value} was accepted as {conf:?}"))
            .unwrap_err()
            .code()
            .number()
    }

    #[test]
    fn a_full_configuration_is_read() {
        let conf = parse(json!({
            "cniVersion": "1.0.0", "name": "cilium", "type": "cilium-cni",
            "agent-socket": "/tmp/a.sock", "mtu": 1400, "log-file": "/tmp/cni.log",
            "enable-debug": true, "runtimeConfig": {"whatever": 1},
            "args": {"cni": {"labels": [{"key": "app", "value": "web"}]}},
            "prevResult": {"ips": []},
            "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]
        }))
        .expect("valid config");
        assert_eq!(conf.cni_version, CniVersion::V1_0_0);
        assert_eq!(conf.agent_socket, Some(PathBuf::from("/tmp/a.sock")));
        assert_eq!(conf.mtu, 1400);
        assert!(conf.enable_debug);
        assert_eq!(
            conf.labels,
            vec![Label {
                key: "app".into(),
                value: "web".into()
            }]
        );
        assert_eq!(
            conf.valid_attachments,
            Some(vec![Attachment {
                container_id: "c1".into(),
                ifname: "eth0".into()
            }])
        );
    }

    #[test]
    fn defaults_apply() {
        let conf = parse(json!({"cniVersion": "0.3.1", "name": "n", "type": "cilium-cni"}))
            .expect("minimal config");
        assert_eq!(conf.mtu, DEFAULT_MTU);
        assert_eq!((conf.agent_socket, conf.log_file), (None, None));
        assert!(conf.labels.is_empty());
    }

    #[test]
    fn malformed_json_is_a_decode_error() {
        let err = NetConf::parse(b"{\"cniVersion\": ").unwrap_err();
        assert_eq!(err.code().number(), 6);
        assert_eq!(NetConf::parse(b"").unwrap_err().code().number(), 6);
    }

    #[test]
    fn invalid_configurations_are_code_7() {
        let base = json!({"cniVersion": "1.0.0", "name": "n", "type": "cilium-cni"});
        let with = |key: &str, value: Value| {
            let mut v = base.clone();
            v[key] = value;
            v
        };
        let without = |key: &str| {
            let mut v = base.clone();
            v.as_object_mut().unwrap().remove(key);
            v
        };
        assert_eq!(code(json!([1, 2])), 7);
        assert_eq!(code(without("name")), 7);
        assert_eq!(code(without("type")), 7);
        assert_eq!(code(without("cniVersion")), 7);
        assert_eq!(code(with("type", json!("bridge"))), 7);
        assert_eq!(code(with("name", json!("bad name"))), 7);
        assert_eq!(code(with("mtu", json!("1500"))), 7);
        assert_eq!(code(with("mtu", json!(20))), 7);
        assert_eq!(code(with("enable-debug", json!("yes"))), 7);
        assert_eq!(code(with("agent-socket", json!(5))), 7);
        assert_eq!(code(with("agent-socket", json!("relative.sock"))), 7);
        assert_eq!(code(with("prevResult", json!("x"))), 7);
        assert_eq!(
            code(with("args", json!({"cni": {"labels": [{"key": 1}]}}))),
            7
        );
        assert_eq!(
            code(with(
                "cni.dev/valid-attachments",
                json!([{"ifname": "eth0"}])
            )),
            7
        );
    }

    #[test]
    fn unsupported_versions_are_code_1_and_name_the_choices() {
        let err =
            parse(json!({"cniVersion": "0.2.0", "name": "n", "type": "cilium-cni"})).unwrap_err();
        assert_eq!(err.code().number(), 1);
        let text = err.to_string();
        assert!(text.contains("0.2.0") && text.contains("1.1.0"), "{text}");
    }

    #[test]
    fn peek_reads_what_it_can() {
        let peeked = peek(br#"{"cniVersion": "0.4.0", "log-file": "/tmp/x", "mtu": "bad"}"#);
        assert_eq!(peeked.version, Some(CniVersion::V0_4_0));
        assert_eq!(peeked.log_file, Some(PathBuf::from("/tmp/x")));
        assert_eq!(peek(b"garbage"), Peek::default());
    }
}
