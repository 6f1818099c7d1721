//! Calling the `cilium-cni` plugin exactly as a container runtime does: `CNI_*` environment,
//! the network configuration on stdin, the result or an error as JSON on stdout.
//!
//! The plugin runs inside the node namespace (`ip netns exec`), because the host end of the
//! pod's veth lands in the namespace of its caller.

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::bins::BinDir;
use crate::labels::Labels;
use crate::names::PodKey;
use crate::netns;
use crate::run::{self, RunError};

/// Interface name of the pod's side of the veth.
pub const POD_IFNAME: &str = "eth0";

/// How long one plugin call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors calling the plugin.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("cannot read the CNI configuration {path}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the CNI configuration {path} is not valid JSON")]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the CNI configuration {path} has no cilium-cni plugin")]
    NoPlugin { path: PathBuf },
    #[error("CNI {command}")]
    Run {
        command: &'static str,
        #[source]
        source: RunError,
    },
    #[error("CNI {command} failed (code {code}): {msg}{details}")]
    Plugin {
        command: &'static str,
        code: u32,
        msg: String,
        details: String,
    },
    #[error("CNI {command} failed ({status}) without an error result: {stderr}")]
    Crashed {
        command: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("CNI {command}: the result has no IPv4 address: {stdout}")]
    NoAddress {
        command: &'static str,
        stdout: String,
    },
}

/// The `cilium-cni` entry of a node's conflist, ready to be sent to the plugin.
#[derive(Debug, Clone)]
pub struct CniPlugin {
    /// The plugin's `type`, which names its binary.
    plugin_type: String,
    /// The plugin's config object with the list's `cniVersion` and `name` added.
    config: Value,
}

/// One pod, as the runtime describes it to the plugin.
#[derive(Debug, Clone, Copy)]
pub struct PodCall<'a> {
    pub node_ns: &'a str,
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub pod: &'a PodKey,
    pub labels: &'a Labels,
}

/// What the lab keeps from an ADD result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    pub ip: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
}

impl CniPlugin {
    /// Reads the conflist the node's agent wrote.
    pub fn load(conflist: &Path) -> Result<Self, CniError> {
        let text = std::fs::read_to_string(conflist).map_err(|source| CniError::ReadConfig {
            path: conflist.to_path_buf(),
            source,
        })?;
        let list: Value = serde_json::from_str(&text).map_err(|source| CniError::ParseConfig {
            path: conflist.to_path_buf(),
            source,
        })?;
        Self::from_list(&list).ok_or_else(|| CniError::NoPlugin {
            path: conflist.to_path_buf(),
        })
    }

    fn from_list(list: &Value) -> Option<Self> {
        let plugin = list
            .get("plugins")?
            .as_array()?
            .iter()
            .find(|p| p.get("type").and_then(Value::as_str) == Some("cilium-cni"))?;
        let mut config = plugin.clone();
        let object = config.as_object_mut()?;
        for key in ["cniVersion", "name"] {
            if let Some(v) = list.get(key) {
                object.insert(key.to_string(), v.clone());
            }
        }
        Some(CniPlugin {
            plugin_type: plugin.get("type")?.as_str()?.to_string(),
            config,
        })
    }

    /// The stdin for one call: the config plus the pod's labels in `args.cni.labels`.
    fn stdin(&self, labels: &Labels) -> Vec<u8> {
        let mut config = self.config.clone();
        let labels: Vec<Value> = labels
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
        config["args"] = json!({ "cni": { "labels": labels } });
        serde_json::to_vec(&config).expect("JSON values always serialize")
    }

    /// `CNI_COMMAND=ADD`: wires the pod up and returns its address.
    pub fn add(&self, bins: &BinDir, call: PodCall<'_>) -> Result<Attachment, CniError> {
        let stdout = self.invoke(bins, "ADD", call)?;
        parse_attachment(&stdout).ok_or_else(|| CniError::NoAddress {
            command: "ADD",
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
        })
    }

    /// `CNI_COMMAND=DEL`: releases the pod's address and endpoint.
    pub fn del(&self, bins: &BinDir, call: PodCall<'_>) -> Result<(), CniError> {
        self.invoke(bins, "DEL", call).map(|_| ())
    }

    fn invoke(
        &self,
        bins: &BinDir,
        command: &'static str,
        call: PodCall<'_>,
    ) -> Result<Vec<u8>, CniError> {
        let run_err = |source| CniError::Run { command, source };
        let binary = bins.dir().join(&self.plugin_type);
        let mut cmd = netns::exec_in(call.node_ns, &binary);
        cmd.env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", call.container_id)
            .env("CNI_NETNS", call.netns)
            .env("CNI_IFNAME", POD_IFNAME)
            .env("CNI_PATH", bins.dir())
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={}",
                    call.pod.namespace, call.pod.name
                ),
            );
        tracing::debug!(command, pod = %call.pod, "calling the CNI plugin");
        let out =
            run::capture(&mut cmd, &self.stdin(call.labels), CALL_TIMEOUT).map_err(run_err)?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        match serde_json::from_slice::<PluginError>(&out.stdout) {
            Ok(e) => Err(CniError::Plugin {
                command,
                code: e.code,
                msg: e.msg,
                details: if e.details.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", e.details)
                },
            }),
            Err(_) => Err(CniError::Crashed {
                command,
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }),
        }
    }
}

/// The CNI error result.
#[derive(Debug, Deserialize)]
struct PluginError {
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

fn parse_attachment(stdout: &[u8]) -> Option<Attachment> {
    let result: Value = serde_json::from_slice(stdout).ok()?;
    let first = result.get("ips")?.as_array()?.iter().find_map(|ip| {
        let address: Ipv4Net = ip.get("address")?.as_str()?.parse().ok()?;
        Some((address, ip))
    })?;
    let (address, entry) = first;
    Some(Attachment {
        ip: address.addr(),
        gateway: entry
            .get("gateway")
            .and_then(Value::as_str)
            .and_then(|g| g.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFLIST: &str = r#"{"cniVersion":"1.0.0","name":"cilium","plugins":[
        {"type":"portmap"},
        {"type":"cilium-cni","agent-socket":"/run/cilium-lab/default/node1/cilium.sock","mtu":1500}]}"#;

    #[test]
    fn stdin_carries_version_name_and_labels() {
        let plugin = CniPlugin::from_list(&serde_json::from_str(CONFLIST).unwrap()).unwrap();
        let labels: Labels = "app=web,tier=front".parse().unwrap();
        let sent: Value = serde_json::from_slice(&plugin.stdin(&labels)).unwrap();
        assert_eq!(sent["type"], "cilium-cni");
        assert_eq!(sent["cniVersion"], "1.0.0");
        assert_eq!(sent["name"], "cilium");
        assert_eq!(
            sent["agent-socket"],
            "/run/cilium-lab/default/node1/cilium.sock"
        );
        assert_eq!(
            sent["args"]["cni"]["labels"],
            json!([{"key":"app","value":"web"},{"key":"tier","value":"front"}])
        );
    }

    #[test]
    fn a_conflist_without_cilium_is_rejected() {
        let list = json!({"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"}]});
        assert!(CniPlugin::from_list(&list).is_none());
    }

    #[test]
    fn reads_address_and_gateway_from_the_result() {
        let result = br#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],
            "ips":[{"address":"10.0.1.23/32","gateway":"10.0.1.1","interface":0}]}"#;
        assert_eq!(
            parse_attachment(result),
            Some(Attachment {
                ip: Ipv4Addr::new(10, 0, 1, 23),
                gateway: Some(Ipv4Addr::new(10, 0, 1, 1)),
            })
        );
        assert_eq!(parse_attachment(br#"{"ips":[]}"#), None);
        assert_eq!(parse_attachment(b"not json"), None);
    }
}
