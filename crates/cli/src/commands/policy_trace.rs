//! `cilium policy trace`: asks the agent whether traffic from a source to a destination would
//! pass both sides' policies, and prints its explanation. A side is given by its labels, or by
//! an identity, endpoint or pod whose identity labels are looked up first.

use cilium_api::models::{PolicyTraceResult, TraceFrom, TracePort, TraceSelector, TraceTo};
use cilium_api::{AgentClient, ClientError};

use crate::cli::{OutputFormat, TraceArgs};
use crate::output::{self, OutputError};
use crate::target::AgentTarget;

/// Errors of `cilium policy trace`.
#[derive(Debug, thiserror::Error)]
pub enum TraceCommandError {
    #[error("invalid --dport {value:?}: want PORT[/PROTOCOL], e.g. 80/TCP")]
    Port { value: String },
    #[error("cannot look up the {side}'s {what}")]
    Lookup {
        side: &'static str,
        what: String,
        #[source]
        source: ClientError,
    },
    #[error("no endpoint on this node runs pod {pod}")]
    NoSuchPod { pod: String },
    #[error("the agent could not trace the request")]
    Trace {
        #[source]
        source: ClientError,
    },
    #[error("cannot print the trace")]
    Output {
        #[source]
        source: OutputError,
    },
}

/// One side of the trace as the user named it.
enum Side<'a> {
    Labels(&'a [String]),
    Identity(u32),
    Endpoint(u16),
    Pod(&'a str),
}

pub fn run(
    target: &AgentTarget,
    args: &TraceArgs,
    format: OutputFormat,
) -> Result<(), TraceCommandError> {
    let dports = args
        .dports
        .iter()
        .map(|value| parse_port(value))
        .collect::<Result<Vec<_>, _>>()?;
    let client = target.client();
    let source = side(
        &args.src_labels,
        args.src_identity,
        args.src_endpoint,
        args.src_k8s_pod.as_deref(),
    );
    let destination = side(
        &args.dst_labels,
        args.dst_identity,
        args.dst_endpoint,
        args.dst_k8s_pod.as_deref(),
    );
    let selector = TraceSelector {
        from: TraceFrom {
            labels: labels_of(&client, "source", source)?,
        },
        to: TraceTo {
            labels: labels_of(&client, "destination", destination)?,
            dports,
        },
    };
    let result = client
        .policy_trace(&selector)
        .map_err(|source| TraceCommandError::Trace { source })?;
    print(&result, format)
}

/// The one way a side was given (clap makes exactly one of them present).
fn side<'a>(
    labels: &'a [String],
    identity: Option<u32>,
    endpoint: Option<u16>,
    pod: Option<&'a str>,
) -> Side<'a> {
    match (identity, endpoint, pod) {
        (Some(id), _, _) => Side::Identity(id),
        (_, Some(id), _) => Side::Endpoint(id),
        (_, _, Some(pod)) => Side::Pod(pod),
        _ => Side::Labels(labels),
    }
}

/// `PORT[/PROTOCOL]`; no protocol means ANY.
fn parse_port(value: &str) -> Result<TracePort, TraceCommandError> {
    let (port, protocol) = value.split_once('/').unwrap_or((value, "ANY"));
    let port = port.parse().map_err(|_| TraceCommandError::Port {
        value: value.to_string(),
    })?;
    Ok(TracePort {
        port,
        protocol: protocol.to_ascii_uppercase(),
    })
}

/// The identity labels of one side.
fn labels_of(
    client: &AgentClient,
    side_name: &'static str,
    side: Side<'_>,
) -> Result<Vec<String>, TraceCommandError> {
    let lookup = |what: String| {
        move |source| TraceCommandError::Lookup {
            side: side_name,
            what,
            source,
        }
    };
    match side {
        Side::Labels(labels) => Ok(labels.to_vec()),
        Side::Identity(id) => Ok(client
            .identity(id)
            .map_err(lookup(format!("identity {id}")))?
            .labels),
        Side::Endpoint(id) => Ok(client
            .endpoint(&id.to_string())
            .map_err(lookup(format!("endpoint {id}")))?
            .status
            .identity
            .labels),
        Side::Pod(pod) => {
            let (namespace, name) = pod.split_once(':').unwrap_or(("default", pod));
            let endpoints = client.endpoints().map_err(lookup(format!("pod {pod}")))?;
            endpoints
                .into_iter()
                .find(|ep| {
                    let ids = &ep.status.external_identifiers;
                    ids.k8s_namespace == namespace && ids.k8s_pod_name == name
                })
                .map(|ep| ep.status.identity.labels)
                .ok_or_else(|| TraceCommandError::NoSuchPod {
                    pod: format!("{namespace}/{name}"),
                })
        }
    }
}

fn print(result: &PolicyTraceResult, format: OutputFormat) -> Result<(), TraceCommandError> {
    let text = match format {
        OutputFormat::Json => output::json(result),
        OutputFormat::Text => result.log.clone(),
    };
    output::print(&text).map_err(|source| TraceCommandError::Output { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_take_an_optional_protocol() {
        let port = parse_port("80/tcp").unwrap();
        assert_eq!((port.port, port.protocol.as_str()), (80, "TCP"));
        let port = parse_port("53").unwrap();
        assert_eq!((port.port, port.protocol.as_str()), (53, "ANY"));
        for bad in ["http", "70000/TCP", "/UDP", ""] {
            assert!(parse_port(bad).is_err(), "{bad} must be refused");
        }
    }
}
