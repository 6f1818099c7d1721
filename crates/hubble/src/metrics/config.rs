//! `--hubble-metrics` parsed: which metric groups are on and, per group, Cilium's context
//! options, e.g. `drop:sourceContext=namespace;destinationContext=pod|ip`,
//! `flow:labelsContext=source_namespace,destination_namespace`.
//!
//! The agent's flag splits its value at commas, so a `labelsContext` list arrives in
//! pieces; the pieces that are label context names are joined back onto the entry they
//! belong to (no metric group is named like one). Entries may also be separated by spaces,
//! as in Cilium's ConfigMap.

use super::context::{ContextChain, ContextOptions, LabelContext};

/// A `--hubble-metrics` entry this build does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsConfigError {
    #[error(
        "unknown Hubble metric {name:?} (supported: flow, drop, tcp, port-distribution, policy)"
    )]
    Unknown { name: String },
    #[error(
        "Hubble metric {name:?}: unknown option {option:?} (supported: sourceContext, \
         sourceEgressContext, sourceIngressContext, destinationContext, \
         destinationEgressContext, destinationIngressContext, labelsContext)"
    )]
    UnknownOption { name: String, option: String },
    #[error("Hubble metric {name:?}: {option}={value:?}: {value:?} is not one of {expected}")]
    Value {
        name: String,
        option: String,
        value: String,
        expected: &'static str,
    },
    #[error("Hubble metric {name:?} is listed twice")]
    Duplicate { name: String },
}

/// The metric groups `--hubble-metrics` turns on, each with its context options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricGroups {
    pub flow: Option<ContextOptions>,
    pub drop: Option<ContextOptions>,
    pub tcp: Option<ContextOptions>,
    pub port_distribution: Option<ContextOptions>,
    pub policy: Option<ContextOptions>,
}

impl MetricGroups {
    /// Parses Cilium's list, e.g. `["drop:sourceContext=pod", "flow"]`; an empty list
    /// enables nothing.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, MetricsConfigError> {
        let mut groups = Self::default();
        for entry in rejoin(entries) {
            let (name, options) = match entry.split_once(':') {
                Some((name, options)) => (name, options),
                None => (entry.as_str(), ""),
            };
            let slot = match name {
                "flow" => &mut groups.flow,
                "drop" => &mut groups.drop,
                "tcp" => &mut groups.tcp,
                "port-distribution" => &mut groups.port_distribution,
                "policy" => &mut groups.policy,
                _ => return Err(MetricsConfigError::Unknown { name: name.into() }),
            };
            if slot.is_some() {
                return Err(MetricsConfigError::Duplicate { name: name.into() });
            }
            *slot = Some(parse_options(name, options)?);
        }
        Ok(groups)
    }

    /// Whether any group is on.
    pub fn any(&self) -> bool {
        self.flow.is_some()
            || self.drop.is_some()
            || self.tcp.is_some()
            || self.port_distribution.is_some()
            || self.policy.is_some()
    }
}

/// The entries with whitespace-separated ones split and comma-split `labelsContext` lists
/// joined back.
fn rejoin<S: AsRef<str>>(entries: &[S]) -> Vec<String> {
    let mut joined: Vec<String> = Vec::new();
    for piece in entries.iter().flat_map(|e| e.as_ref().split_whitespace()) {
        let continues_labels = LabelContext::parse(piece).is_some()
            && joined.last().is_some_and(|last| {
                last.rsplit(';')
                    .next()
                    .is_some_and(|option| option.contains("labelsContext="))
            });
        match joined.last_mut() {
            Some(last) if continues_labels => {
                last.push(',');
                last.push_str(piece);
            }
            _ => joined.push(piece.to_string()),
        }
    }
    joined
}

fn parse_options(name: &str, options: &str) -> Result<ContextOptions, MetricsConfigError> {
    let mut parsed = ContextOptions::default();
    for option in options.split(';').filter(|o| !o.is_empty()) {
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        let invalid = |expected| MetricsConfigError::Value {
            name: name.into(),
            option: key.into(),
            value: value.into(),
            expected,
        };
        let chain = || ContextChain::parse(value).ok_or_else(|| invalid(ContextChain::EXPECTED));
        match key {
            "sourceContext" => parsed.source.any = Some(chain()?),
            "sourceEgressContext" => parsed.source.egress = Some(chain()?),
            "sourceIngressContext" => parsed.source.ingress = Some(chain()?),
            "destinationContext" => parsed.destination.any = Some(chain()?),
            "destinationEgressContext" => parsed.destination.egress = Some(chain()?),
            "destinationIngressContext" => parsed.destination.ingress = Some(chain()?),
            "labelsContext" => {
                parsed.labels = value
                    .split(',')
                    .map(|label| LabelContext::parse(label).ok_or(()))
                    .collect::<Result<_, _>>()
                    .map_err(|()| invalid(LabelContext::EXPECTED))?;
            }
            _ => {
                return Err(MetricsConfigError::UnknownOption {
                    name: name.into(),
                    option: key.into(),
                })
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::super::context::ContextKind;
    use super::*;

    #[test]
    fn groups_parse_cilium_names_and_reject_the_rest() {
        let groups = MetricGroups::parse(&["drop", "flow"]).expect("valid");
        assert!(groups.drop.is_some() && groups.flow.is_some());
        assert!(groups.tcp.is_none() && groups.policy.is_none());
        assert!(!MetricGroups::parse::<&str>(&[]).expect("empty").any());
        let err = MetricGroups::parse(&["dns"]).expect_err("unsupported");
        assert!(err.to_string().contains("\"dns\""), "{err}");
        let err = MetricGroups::parse(&["drop", "drop"]).expect_err("twice");
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn context_options_parse_with_fallback_chains() {
        let groups =
            MetricGroups::parse(&["drop:sourceContext=namespace;destinationContext=pod|ip"])
                .expect("valid");
        let drop = groups.drop.expect("drop on");
        assert_eq!(
            drop.source.any,
            Some(ContextChain(vec![ContextKind::Namespace]))
        );
        assert_eq!(
            drop.destination.any,
            Some(ContextChain(vec![ContextKind::Pod, ContextKind::Ip]))
        );
        let groups = MetricGroups::parse(&[
            "flow:sourceEgressContext=workload-name;destinationIngressContext=reserved-identity",
        ])
        .expect("valid");
        let flow = groups.flow.expect("flow on");
        assert_eq!(
            flow.source.egress,
            Some(ContextChain(vec![ContextKind::WorkloadName]))
        );
        assert_eq!(
            flow.destination.ingress,
            Some(ContextChain(vec![ContextKind::ReservedIdentity]))
        );
    }

    #[test]
    fn labels_context_lists_survive_the_flags_comma_split() {
        // `--hubble-metrics=flow:labelsContext=source_namespace,destination_pod,drop`
        let groups = MetricGroups::parse(&[
            "flow:labelsContext=source_namespace",
            "destination_pod",
            "drop",
        ])
        .expect("valid");
        assert_eq!(
            groups.flow.expect("flow on").labels,
            vec![LabelContext::SourceNamespace, LabelContext::DestinationPod]
        );
        assert!(groups.drop.is_some());
        // Space-separated, as in Cilium's ConfigMap.
        let groups =
            MetricGroups::parse(&["drop:labelsContext=traffic_direction tcp"]).expect("valid");
        assert_eq!(
            groups.drop.expect("drop on").labels,
            vec![LabelContext::TrafficDirection]
        );
        assert!(groups.tcp.is_some());
    }

    #[test]
    fn bad_options_name_what_is_wrong() {
        let err = MetricGroups::parse(&["drop:sourceContext=planet"]).expect_err("bad value");
        let text = err.to_string();
        assert!(
            text.contains("planet") && text.contains("workload-name"),
            "{text}"
        );
        let err = MetricGroups::parse(&["drop:query"]).expect_err("dns-only option");
        assert!(err.to_string().contains("\"query\""), "{err}");
        let err =
            MetricGroups::parse(&["tcp:labelsContext=source_pod,colour"]).expect_err("bad label");
        assert!(err.to_string().contains("source_pod,colour"), "{err}");
    }
}
