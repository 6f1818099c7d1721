//! `status`: the lab's nodes, whether each agent is running and healthy, and its pods.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use cilium_api::AgentClient;
use ipnet::Ipv4Net;
use serde::Serialize;

use crate::bins;
use crate::commands::pod::{self, PodError, PodRow};
use crate::lab::Lab;
use crate::labels::Labels;
use crate::process;
use crate::report;
use crate::state::{LabState, Routing};
use crate::table;

/// How long to wait for each agent's healthz.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The whole report, as `status -o json` prints it.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub name: String,
    pub routing: Routing,
    pub nodes: Vec<NodeReport>,
    pub pods: Vec<PodRow>,
}

/// One node's line.
#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub netns: String,
    pub underlay_ip: Ipv4Addr,
    pub pod_cidr: Ipv4Net,
    pub socket: PathBuf,
    pub bpf_root: PathBuf,
    pub agent_pid: Option<u32>,
    pub agent_running: bool,
    /// `Ok` when healthz says so; otherwise the state or the error reaching the agent.
    pub health: String,
}

/// `cilium-lab status`.
pub fn status(lab: &Lab) -> Result<StatusReport, PodError> {
    let state = pod::read_running(lab)?;
    Ok(report_of(&state))
}

fn report_of(state: &LabState) -> StatusReport {
    let nodes = state
        .nodes
        .iter()
        .map(|n| {
            let running = n
                .agent_pid
                .is_some_and(|pid| process::is_running(pid, bins::AGENT));
            let health = match AgentClient::new(&n.socket)
                .with_timeout(HEALTH_TIMEOUT)
                .healthz()
            {
                Ok(s) if s.cilium.msg.is_empty() => s.cilium.state,
                Ok(s) => format!("{}: {}", s.cilium.state, s.cilium.msg),
                Err(e) => report::chain(&e),
            };
            NodeReport {
                name: n.name.clone(),
                netns: n.netns.clone(),
                underlay_ip: n.underlay_ip,
                pod_cidr: n.pod_cidr,
                socket: n.socket.clone(),
                bpf_root: n.bpf_root.clone(),
                agent_pid: n.agent_pid,
                agent_running: running,
                health,
            }
        })
        .collect();
    StatusReport {
        name: state.name.clone(),
        routing: state.routing,
        nodes,
        pods: pod::rows(state),
    }
}

/// The text form of `status`.
pub fn render(report: &StatusReport) -> String {
    let nodes: Vec<Vec<String>> = report
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.underlay_ip.to_string(),
                n.pod_cidr.to_string(),
                match (n.agent_pid, n.agent_running) {
                    (Some(pid), true) => format!("running (pid {pid})"),
                    (Some(pid), false) => format!("not running (was pid {pid})"),
                    (None, _) => "not started".to_string(),
                },
                n.health.clone(),
            ]
        })
        .collect();
    format!(
        "Lab {} (routing: {})\n\n{}\n\n{}",
        report.name,
        report.routing,
        table::render(&["NODE", "UNDERLAY", "POD CIDR", "AGENT", "HEALTH"], &nodes),
        render_pods(&report.pods),
    )
}

/// The text form of `pod list` (also the pod part of `status`).
pub fn render_pods(pods: &[PodRow]) -> String {
    if pods.is_empty() {
        return "No pods.".to_string();
    }
    let rows: Vec<Vec<String>> = pods
        .iter()
        .map(|p| {
            vec![
                p.namespace.clone(),
                p.name.clone(),
                p.node.clone(),
                p.ip.to_string(),
                p.identity
                    .map_or_else(|| "-".to_string(), |i| i.to_string()),
                labels_text(&p.labels),
            ]
        })
        .collect();
    table::render(
        &["NAMESPACE", "NAME", "NODE", "IP", "IDENTITY", "LABELS"],
        &rows,
    )
}

fn labels_text(labels: &Labels) -> String {
    if labels.is_empty() {
        "<none>".to_string()
    } else {
        labels.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_table_shows_identity_or_a_dash() {
        let row = |name: &str, identity| PodRow {
            name: name.into(),
            namespace: "default".into(),
            node: "node1".into(),
            ip: Ipv4Addr::new(10, 0, 1, 5),
            labels: "app=web".parse().unwrap(),
            identity,
            netns: format!("cilab-default-p-default-{name}"),
        };
        let text = render_pods(&[row("web", Some(12345)), row("db", None)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE"), "{text}");
        assert!(
            lines[1].contains("12345") && lines[1].contains("app=web"),
            "{text}"
        );
        assert!(lines[2].contains(" - "), "{text}");
        assert_eq!(render_pods(&[]), "No pods.");
    }
}
