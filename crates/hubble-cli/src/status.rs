//! `hubble status` and `hubble list nodes` text, from `ServerStatus` and `GetNodes`.

use cilium_hubble::api::{Node, ServerStatusResponse};
use cilium_hubble::relay::NodeState;

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(current: u64, max: u64) -> f64 {
    if max == 0 {
        0.0
    } else {
        current as f64 * 100.0 / max as f64
    }
}

fn flows_per_second(seen: u64, uptime_ns: u64) -> f64 {
    if uptime_ns == 0 {
        0.0
    } else {
        seen as f64 / (uptime_ns as f64 / 1e9)
    }
}

/// The status report, as `hubble status` prints it.
pub fn status(server: &str, status: &ServerStatusResponse) -> String {
    let mut text = format!("Healthcheck (via {server}): Ok\n");
    text.push_str(&format!(
        "Current/Max Flows: {}/{} ({:.2}%)\n",
        thousands(status.num_flows),
        thousands(status.max_flows),
        percent(status.num_flows, status.max_flows)
    ));
    text.push_str(&format!(
        "Flows/s: {:.2}\n",
        flows_per_second(status.seen_flows, status.uptime_ns)
    ));
    if let Some(connected) = status.num_connected_nodes {
        let unavailable = status.num_unavailable_nodes.map_or(0, |n| n.value);
        text.push_str(&format!(
            "Connected Nodes: {}/{}\n",
            connected.value,
            connected.value + unavailable
        ));
        if unavailable > 0 {
            text.push_str(&format!("Unavailable Nodes: {unavailable}\n"));
            for node in &status.unavailable_nodes {
                text.push_str(&format!("  - {node}\n"));
            }
        }
    }
    text
}

/// `2h13m`, `5m2s`, `40s`.
fn age(uptime_ns: u64) -> String {
    let secs = uptime_ns / 1_000_000_000;
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

fn state(node: &Node) -> &'static str {
    match NodeState::try_from(node.state) {
        Ok(NodeState::NodeConnected) => "Connected",
        Ok(NodeState::NodeUnavailable) => "Unavailable",
        Ok(NodeState::NodeGone) => "Gone",
        Ok(NodeState::NodeError) => "Error",
        _ => "Unknown",
    }
}

/// The node table, as `hubble list nodes` prints it.
pub fn nodes(nodes: &[Node]) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "STATUS".into(),
        "AGE".into(),
        "FLOWS/S".into(),
        "CURRENT/MAX-FLOWS".into(),
    ]];
    for node in nodes {
        let connected = NodeState::try_from(node.state) == Ok(NodeState::NodeConnected);
        rows.push([
            node.name.clone(),
            state(node).into(),
            if connected {
                age(node.uptime_ns)
            } else {
                "N/A".into()
            },
            if connected {
                format!("{:.2}", flows_per_second(node.seen_flows, node.uptime_ns))
            } else {
                "N/A".into()
            },
            if connected {
                format!(
                    "{}/{} ({:6.2}%)",
                    node.num_flows,
                    node.max_flows,
                    percent(node.num_flows, node.max_flows)
                )
            } else {
                "N/A".into()
            },
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<width$}", width = widths[c] + 3))
            .collect();
        text.push_str(line.concat().trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use cilium_hubble::well_known::UInt32Value;

    use super::*;

    #[test]
    fn status_reads_like_hubbles() {
        let relay = ServerStatusResponse {
            num_flows: 8190,
            max_flows: 8190,
            seen_flows: 4690,
            uptime_ns: 200_000_000_000,
            num_connected_nodes: Some(UInt32Value { value: 1 }),
            num_unavailable_nodes: Some(UInt32Value { value: 1 }),
            unavailable_nodes: vec!["default/node2".into()],
            version: "v0.1.0".into(),
        };
        assert_eq!(
            status("localhost:4245", &relay),
            "Healthcheck (via localhost:4245): Ok\nCurrent/Max Flows: 8,190/8,190 (100.00%)\nFlows/s: 23.45\nConnected Nodes: 1/2\nUnavailable Nodes: 1\n  - default/node2\n"
        );
    }

    #[test]
    fn node_list_marks_unavailable_nodes() {
        let list = nodes(&[
            Node {
                name: "default/node1".into(),
                state: NodeState::NodeConnected as i32,
                uptime_ns: 7_980_000_000_000,
                num_flows: 4095,
                max_flows: 4095,
                seen_flows: 148_000,
                ..Default::default()
            },
            Node {
                name: "default/node2".into(),
                state: NodeState::NodeUnavailable as i32,
                ..Default::default()
            },
        ]);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(
            lines[0],
            "NAME            STATUS        AGE     FLOWS/S   CURRENT/MAX-FLOWS"
        );
        assert_eq!(
            lines[1],
            "default/node1   Connected     2h13m   18.55     4095/4095 (100.00%)"
        );
        assert_eq!(
            lines[2],
            "default/node2   Unavailable   N/A     N/A       N/A"
        );
    }
}
