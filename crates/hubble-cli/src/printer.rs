//! Writes `GetFlows` responses in the chosen output format: compact lines, dict blocks, an
//! aligned table (written at the end), or JSON (one `GetFlowsResponse` per line, proto field
//! names, as `hubble observe -o json`/`jsonpb` prints). Lost-event and node-status notices
//! go to stderr in the text formats.

use std::io::{self, Write};

use cilium_hubble::api::{get_flows_response::ResponseTypes, GetFlowsResponse};
use cilium_hubble::flow::{Flow, LostEventSource};
use cilium_hubble::relay::NodeState;

use crate::cli::Output;
use crate::format;

/// A response could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("writing output")]
    Write {
        #[source]
        source: io::Error,
    },
    #[error("encoding a response as JSON")]
    Json {
        #[source]
        source: serde_json::Error,
    },
}

impl From<io::Error> for PrintError {
    fn from(source: io::Error) -> Self {
        PrintError::Write { source }
    }
}

/// Formats responses onto `out` (and notices onto `err`).
pub struct Printer<W: Write, E: Write> {
    output: Output,
    node_name: bool,
    out: W,
    err: E,
    written: usize,
    rows: Vec<[String; 7]>,
}

impl<W: Write, E: Write> Printer<W, E> {
    pub fn new(output: Output, node_name: bool, out: W, err: E) -> Self {
        Self {
            output,
            node_name,
            out,
            err,
            written: 0,
            rows: Vec::new(),
        }
    }

    /// Writes one response.
    pub fn write(&mut self, response: &GetFlowsResponse) -> Result<(), PrintError> {
        if matches!(self.output, Output::Json | Output::Jsonpb) {
            let line =
                serde_json::to_string(response).map_err(|source| PrintError::Json { source })?;
            writeln!(self.out, "{line}")?;
            return Ok(());
        }
        match &response.response_types {
            Some(ResponseTypes::Flow(flow)) => self.flow(flow)?,
            Some(ResponseTypes::LostEvents(lost)) => {
                let source = LostEventSource::try_from(lost.source)
                    .unwrap_or(LostEventSource::UnknownLostEventSource);
                let cpu = lost.cpu.map_or(0, |c| c.value);
                writeln!(
                    self.err,
                    "EVENTS LOST: {} CPU({cpu}) {}",
                    source.as_str_name(),
                    lost.num_events_lost
                )?;
            }
            Some(ResponseTypes::NodeStatus(status)) => {
                let names = status.node_names.join(", ");
                let count = status.node_names.len();
                let prefix = format!(
                    "{} [{}]",
                    format::time(response.time.as_ref()),
                    response.node_name
                );
                let line = match NodeState::try_from(status.state_change) {
                    Ok(NodeState::NodeConnected) => {
                        format!("{prefix}: Receiving flows from {count} nodes: {names}")
                    }
                    Ok(NodeState::NodeUnavailable) => {
                        format!("{prefix}: {count} nodes are unavailable: {names}")
                    }
                    Ok(NodeState::NodeGone) => {
                        format!("{prefix}: {count} nodes removed from cluster: {names}")
                    }
                    Ok(NodeState::NodeError) => {
                        format!(
                            "{prefix}: Error {:?} on {count} nodes: {names}",
                            status.message
                        )
                    }
                    _ => format!("{prefix}: node status {}: {names}", status.state_change),
                };
                writeln!(self.err, "{line}")?;
            }
            None => {}
        }
        Ok(())
    }

    fn flow(&mut self, flow: &Flow) -> Result<(), PrintError> {
        let (src, dst) = format::hosts(flow);
        let time = format::time(flow.time.as_ref());
        match self.output {
            Output::Compact => {
                let (mut src_id, mut dst_id) = (
                    format::identity(flow.source.as_ref()),
                    format::identity(flow.destination.as_ref()),
                );
                let (arrow, swap) = format::arrow(flow);
                let (mut src, mut dst) = (src, dst);
                if swap {
                    std::mem::swap(&mut src, &mut dst);
                    std::mem::swap(&mut src_id, &mut dst_id);
                }
                let node = if self.node_name {
                    format!(" [{}]", flow.node_name)
                } else {
                    String::new()
                };
                writeln!(
                    self.out,
                    "{time}{node}: {src} {src_id} {arrow} {dst} {dst_id} {} {} ({})",
                    format::flow_type(flow),
                    format::verdict(flow),
                    format::summary(flow)
                )?;
            }
            Output::Dict => {
                if self.written > 0 {
                    writeln!(self.out, "------------")?;
                }
                writeln!(self.out, "  TIMESTAMP: {time}")?;
                if self.node_name {
                    writeln!(self.out, "       NODE: {}", flow.node_name)?;
                }
                writeln!(self.out, "     SOURCE: {src}")?;
                writeln!(self.out, "DESTINATION: {dst}")?;
                writeln!(self.out, "       TYPE: {}", format::flow_type(flow))?;
                writeln!(self.out, "    VERDICT: {}", format::verdict(flow))?;
                writeln!(self.out, "    SUMMARY: {}", format::summary(flow))?;
            }
            Output::Table => self.rows.push([
                time,
                flow.node_name.clone(),
                src,
                dst,
                format::flow_type(flow),
                format::verdict(flow),
                format::summary(flow),
            ]),
            Output::Json | Output::Jsonpb => unreachable!("JSON is written whole above"),
        }
        self.written += 1;
        Ok(())
    }

    /// Writes what is held back (the table) and flushes.
    pub fn finish(mut self) -> Result<(), PrintError> {
        if self.output == Output::Table && !self.rows.is_empty() {
            let header = [
                "TIMESTAMP",
                "NODE",
                "SOURCE",
                "DESTINATION",
                "TYPE",
                "VERDICT",
                "SUMMARY",
            ]
            .map(String::from);
            let columns: Vec<usize> = (0..7).filter(|&c| c != 1 || self.node_name).collect();
            let rows: Vec<&[String; 7]> =
                std::iter::once(&header).chain(self.rows.iter()).collect();
            let widths: Vec<usize> = columns
                .iter()
                .map(|&c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
                .collect();
            for row in rows {
                let mut line = String::new();
                for (i, &c) in columns.iter().enumerate() {
                    if i + 1 == columns.len() {
                        line.push_str(&row[c]);
                    } else {
                        line.push_str(&format!("{:<width$}", row[c], width = widths[i] + 3));
                    }
                }
                writeln!(self.out, "{}", line.trim_end())?;
            }
        }
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use cilium_hubble::flow::{
        layer4, CiliumEventType, DropReason, Endpoint, Ip, IpVersion, Layer4, Tcp, TcpFlags,
        TrafficDirection, Udp, Verdict,
    };
    use cilium_hubble::well_known::BoolValue;
    use cilium_hubble::Timestamp;

    use super::*;

    /// 2023-11-26T10:00:00.123Z
    fn at() -> Option<Timestamp> {
        Some(Timestamp {
            seconds: 1_700_992_800,
            nanos: 123_000_000,
        })
    }

    fn pod(name: &str, identity: u32, labels: &[&str]) -> Option<Endpoint> {
        Some(Endpoint {
            identity,
            namespace: "default".into(),
            pod_name: name.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            ..Default::default()
        })
    }

    fn tcp(sport: u32, dport: u32, flags: TcpFlags) -> Option<Layer4> {
        Some(Layer4 {
            protocol: Some(layer4::Protocol::Tcp(Tcp {
                source_port: sport,
                destination_port: dport,
                flags: Some(flags),
            })),
        })
    }

    fn ip(src: &str, dst: &str) -> Option<Ip> {
        Some(Ip {
            source: src.into(),
            destination: dst.into(),
            ip_version: IpVersion::IPv4 as i32,
            encrypted: false,
        })
    }

    /// Flows as our agent records them for the Star Wars demo.
    #[allow(deprecated)]
    fn recorded() -> Vec<Flow> {
        let syn = TcpFlags {
            syn: true,
            ..Default::default()
        };
        vec![
            // tiefighter's SYN delivered to deathstar
            Flow {
                time: at(),
                verdict: Verdict::Forwarded as i32,
                ip: ip("10.0.1.6", "10.0.2.7"),
                l4: tcp(39042, 80, syn),
                source: pod("tiefighter", 1234, &["k8s:org=empire"]),
                destination: pod("deathstar", 5678, &["k8s:class=deathstar"]),
                event_type: Some(CiliumEventType {
                    r#type: 4,
                    sub_type: 0,
                }),
                is_reply: Some(BoolValue { value: false }),
                node_name: "default/node2".into(),
                summary: "TCP Flags: SYN".into(),
                ..Default::default()
            },
            // deathstar's SYN-ACK into the overlay: a reply
            Flow {
                time: at(),
                verdict: Verdict::Forwarded as i32,
                ip: ip("10.0.2.7", "10.0.1.6"),
                l4: tcp(
                    80,
                    39042,
                    TcpFlags {
                        syn: true,
                        ack: true,
                        ..Default::default()
                    },
                ),
                source: pod("deathstar", 5678, &[]),
                destination: pod("tiefighter", 1234, &[]),
                event_type: Some(CiliumEventType {
                    r#type: 4,
                    sub_type: 4,
                }),
                is_reply: Some(BoolValue { value: true }),
                node_name: "default/node2".into(),
                summary: "TCP Flags: SYN, ACK".into(),
                ..Default::default()
            },
            // xwing dropped by policy
            Flow {
                time: at(),
                verdict: Verdict::Dropped as i32,
                drop_reason: 133,
                drop_reason_desc: DropReason::PolicyDenied as i32,
                ip: ip("10.0.1.5", "10.0.2.7"),
                l4: tcp(41000, 80, syn),
                source: pod("xwing", 4321, &["k8s:org=alliance"]),
                destination: pod("deathstar", 5678, &[]),
                event_type: Some(CiliumEventType {
                    r#type: 1,
                    sub_type: 133,
                }),
                traffic_direction: TrafficDirection::Ingress as i32,
                node_name: "default/node2".into(),
                summary: "TCP Flags: SYN".into(),
                ..Default::default()
            },
            // DNS from a pod to the world, out through the stack
            Flow {
                time: at(),
                verdict: Verdict::Forwarded as i32,
                ip: ip("10.0.1.6", "8.8.8.8"),
                l4: Some(Layer4 {
                    protocol: Some(layer4::Protocol::Udp(Udp {
                        source_port: 5353,
                        destination_port: 53,
                    })),
                }),
                source: pod("tiefighter", 1234, &[]),
                destination: Some(Endpoint {
                    identity: 2,
                    ..Default::default()
                }),
                event_type: Some(CiliumEventType {
                    r#type: 4,
                    sub_type: 3,
                }),
                is_reply: Some(BoolValue { value: false }),
                node_name: "default/node1".into(),
                summary: "UDP".into(),
                ..Default::default()
            },
            // a policy verdict allowing tiefighter in
            Flow {
                time: at(),
                verdict: Verdict::Forwarded as i32,
                ip: ip("10.0.1.6", "10.0.2.7"),
                l4: tcp(39042, 80, syn),
                source: pod("tiefighter", 1234, &[]),
                destination: pod("deathstar", 5678, &[]),
                event_type: Some(CiliumEventType {
                    r#type: 5,
                    sub_type: 0,
                }),
                traffic_direction: TrafficDirection::Ingress as i32,
                policy_match_type: 2,
                is_reply: Some(BoolValue { value: false }),
                node_name: "default/node2".into(),
                summary: "TCP Flags: SYN".into(),
                ..Default::default()
            },
        ]
    }

    fn print(output: Output, node_name: bool, flows: &[Flow]) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut printer = Printer::new(output, node_name, &mut out, &mut err);
        for flow in flows {
            printer
                .write(&GetFlowsResponse {
                    node_name: flow.node_name.clone(),
                    time: flow.time,
                    response_types: Some(ResponseTypes::Flow(flow.clone())),
                })
                .expect("written");
        }
        printer.finish().expect("finished");
        (
            String::from_utf8(out).expect("utf-8"),
            String::from_utf8(err).expect("utf-8"),
        )
    }

    #[test]
    fn compact_lines_read_like_hubbles() {
        let (out, err) = print(Output::Compact, false, &recorded());
        assert!(err.is_empty());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "Nov 26 10:00:00.123: default/tiefighter:39042 (ID:1234) -> default/deathstar:80 (ID:5678) to-endpoint FORWARDED (TCP Flags: SYN)",
                "Nov 26 10:00:00.123: default/tiefighter:39042 (ID:1234) <- default/deathstar:80 (ID:5678) to-overlay FORWARDED (TCP Flags: SYN, ACK)",
                "Nov 26 10:00:00.123: default/xwing:41000 (ID:4321) <> default/deathstar:80 (ID:5678) Policy denied DROPPED (TCP Flags: SYN)",
                "Nov 26 10:00:00.123: default/tiefighter:5353 (ID:1234) -> 8.8.8.8:53 (world) to-stack FORWARDED (UDP)",
                "Nov 26 10:00:00.123: default/tiefighter:39042 (ID:1234) -> default/deathstar:80 (ID:5678) policy-verdict:L3-L4 INGRESS ALLOWED (TCP Flags: SYN)",
            ]
        );
        let (out, _) = print(Output::Compact, true, &recorded()[2..3]);
        assert!(
            out.starts_with("Nov 26 10:00:00.123 [default/node2]: default/xwing:41000"),
            "{out}"
        );
    }

    #[test]
    #[allow(deprecated)]
    fn socket_translations_show_their_translation_point() {
        let connect = Flow {
            time: at(),
            verdict: Verdict::Translated as i32,
            ip: ip("10.0.1.6", "10.0.2.7"),
            l4: tcp(39042, 8080, TcpFlags::default()),
            source: pod("tiefighter", 1234, &[]),
            destination: pod("deathstar", 5678, &[]),
            event_type: Some(CiliumEventType {
                r#type: 7,
                sub_type: 2,
            }),
            sock_xlate_point: 2,
            node_name: "default/node1".into(),
            summary: "TCP".into(),
            ..Default::default()
        };
        let pre = Flow {
            verdict: Verdict::Traced as i32,
            event_type: Some(CiliumEventType {
                r#type: 7,
                sub_type: 1,
            }),
            sock_xlate_point: 1,
            ..connect.clone()
        };
        let (out, _) = print(Output::Compact, false, &[connect, pre]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "Nov 26 10:00:00.123: default/tiefighter:39042 (ID:1234) <> default/deathstar:8080 (ID:5678) post-xlate-fwd TRANSLATED (TCP)",
                "Nov 26 10:00:00.123: default/tiefighter:39042 (ID:1234) <> default/deathstar:8080 (ID:5678) pre-xlate-fwd TRACED (TCP)",
            ]
        );
    }

    #[test]
    fn single_digit_days_are_space_padded() {
        let mut flow = recorded().remove(0);
        flow.time = Some(Timestamp {
            seconds: 1_709_460_000,
            nanos: 0,
        }); // 2024-03-03T10:00:00Z
        let (out, _) = print(Output::Compact, false, &[flow]);
        assert!(out.starts_with("Mar  3 10:00:00.000: "), "{out}");
    }

    #[test]
    fn dict_and_table() {
        let (out, _) = print(Output::Dict, false, &recorded()[..2]);
        assert_eq!(
            out,
            "  TIMESTAMP: Nov 26 10:00:00.123\n     SOURCE: default/tiefighter:39042\nDESTINATION: default/deathstar:80\n       TYPE: to-endpoint\n    VERDICT: FORWARDED\n    SUMMARY: TCP Flags: SYN\n------------\n  TIMESTAMP: Nov 26 10:00:00.123\n     SOURCE: default/deathstar:80\nDESTINATION: default/tiefighter:39042\n       TYPE: to-overlay\n    VERDICT: FORWARDED\n    SUMMARY: TCP Flags: SYN, ACK\n"
        );
        let (out, _) = print(Output::Table, false, &recorded()[2..4]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines,
            [
                "TIMESTAMP             SOURCE                    DESTINATION            TYPE            VERDICT     SUMMARY",
                "Nov 26 10:00:00.123   default/xwing:41000       default/deathstar:80   Policy denied   DROPPED     TCP Flags: SYN",
                "Nov 26 10:00:00.123   default/tiefighter:5353   8.8.8.8:53             to-stack        FORWARDED   UDP",
            ]
        );
    }

    #[test]
    fn json_has_cilium_field_names() {
        let (out, _) = print(Output::Json, false, &recorded()[2..3]);
        let value: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
        let flow = &value["flow"];
        assert_eq!(flow["verdict"], "DROPPED");
        assert_eq!(flow["drop_reason_desc"], "POLICY_DENIED");
        assert_eq!(flow["source"]["pod_name"], "xwing");
        assert_eq!(flow["source"]["labels"][0], "k8s:org=alliance");
        assert_eq!(flow["destination"]["identity"], 5678);
        assert_eq!(flow["l4"]["TCP"]["destination_port"], 80);
        assert_eq!(flow["IP"]["source"], "10.0.1.5");
        assert_eq!(flow["Summary"], "TCP Flags: SYN");
        assert_eq!(value["node_name"], "default/node2");
        assert_eq!(value["time"], "2023-11-26T10:00:00.123Z");
    }

    #[test]
    fn notices_go_to_stderr() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut printer = Printer::new(Output::Compact, false, &mut out, &mut err);
        printer
            .write(&GetFlowsResponse {
                node_name: "default/node1".into(),
                time: at(),
                response_types: Some(ResponseTypes::LostEvents(cilium_hubble::flow::LostEvent {
                    source: LostEventSource::HubbleRingBuffer as i32,
                    num_events_lost: 7,
                    cpu: None,
                })),
            })
            .expect("written");
        printer
            .write(&GetFlowsResponse {
                node_name: "relay".into(),
                time: at(),
                response_types: Some(ResponseTypes::NodeStatus(
                    cilium_hubble::relay::NodeStatusEvent {
                        state_change: NodeState::NodeUnavailable as i32,
                        node_names: vec!["default/node2".into()],
                        message: String::new(),
                    },
                )),
            })
            .expect("written");
        printer.finish().expect("finished");
        assert!(out.is_empty());
        assert_eq!(
            String::from_utf8(err).expect("utf-8"),
            "EVENTS LOST: HUBBLE_RING_BUFFER CPU(0) 7\nNov 26 10:00:00.123 [relay]: 1 nodes are unavailable: default/node2\n"
        );
    }
}
