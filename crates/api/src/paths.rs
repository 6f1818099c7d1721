//! Default filesystem locations shared by the agent and its clients.

/// Default agent API socket, as in Cilium (`defaults.SockPath`).
pub const DEFAULT_AGENT_SOCKET: &str = "/var/run/cilium/cilium.sock";

/// Environment variable that overrides the agent socket for the CLI and the CNI plugin.
pub const AGENT_SOCKET_ENV: &str = "CILIUM_SOCK";

/// File name of the monitor event stream socket, next to the API socket.
pub const MONITOR_SOCKET_NAME: &str = "monitor1_2.sock";

/// The monitor socket that belongs to an agent API socket: same directory, fixed name.
pub fn monitor_socket_for(api_socket: &std::path::Path) -> std::path::PathBuf {
    api_socket
        .parent()
        .unwrap_or_else(|| std::path::Path::new("/"))
        .join(MONITOR_SOCKET_NAME)
}
