//! The network configuration list the agent writes (as `05-cilium.conflist`) once it is
//! ready to serve ADDs. `crates/cni/05-cilium.conflist` is this rendering for the default
//! socket.

use std::path::Path;

use cilium_api::paths::DEFAULT_AGENT_SOCKET;
use serde::Serialize;

/// The file name runtimes look for (lowest number wins among several networks).
pub const CONFLIST_FILE_NAME: &str = "05-cilium.conflist";

/// The plugin's log file name; it lives next to the agent socket, which for the default
/// socket gives Cilium's `/var/run/cilium/cilium-cni.log`.
pub const LOG_FILE_NAME: &str = "cilium-cni.log";

/// The list, with keys in the order people expect to read them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfList {
    cni_version: &'static str,
    name: &'static str,
    plugins: [PluginEntry; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct PluginEntry {
    #[serde(rename = "type")]
    plugin_type: &'static str,
    enable_debug: bool,
    log_file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_socket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
}

/// Renders the conflist for an agent listening on `agent_socket`; the `agent-socket` key
/// appears only when it differs from the default socket, and the plugin logs next to it.
/// `mtu` is the pods' MTU when it is not the plugin's default (e.g. under a tunnel).
pub fn render(agent_socket: &Path, mtu: Option<u32>) -> String {
    let log_file = agent_socket
        .parent()
        .unwrap_or(Path::new("/"))
        .join(LOG_FILE_NAME);
    let list = ConfList {
        cni_version: "1.0.0",
        name: "cilium",
        plugins: [PluginEntry {
            plugin_type: crate::config::PLUGIN_TYPE,
            enable_debug: false,
            log_file: log_file.display().to_string(),
            agent_socket: (agent_socket != Path::new(DEFAULT_AGENT_SOCKET))
                .then(|| agent_socket.display().to_string()),
            mtu,
        }],
    };
    let mut text = serde_json::to_string_pretty(&list).expect("the conflist always serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::config::NetConf;

    #[test]
    fn the_shipped_file_is_the_default_rendering() {
        let shipped = include_str!("../05-cilium.conflist");
        assert_eq!(render(Path::new(DEFAULT_AGENT_SOCKET), None), shipped);
    }

    #[test]
    fn a_custom_socket_is_named_and_each_plugin_config_is_valid() {
        let text = render(Path::new("/run/cilab-n1/cilium.sock"), Some(1450));
        let list: Value = serde_json::from_str(&text).unwrap();
        let plugin = &list["plugins"][0];
        assert_eq!(plugin["agent-socket"], "/run/cilab-n1/cilium.sock");
        // What a runtime hands the plugin: the plugin entry plus the list's name/version.
        let mut conf = plugin.clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        conf["name"] = list["name"].clone();
        let parsed = NetConf::parse(conf.to_string().as_bytes()).expect("valid plugin config");
        assert_eq!(
            parsed.agent_socket.as_deref(),
            Some(Path::new("/run/cilab-n1/cilium.sock"))
        );
        assert_eq!(parsed.mtu, 1450);
        assert_eq!(plugin["log-file"], "/run/cilab-n1/cilium-cni.log");
    }
}
