//! `cilium config`: the agent's configuration, and `cilium config KEY=VALUE …` to change
//! what can change at runtime (Cilium's `PolicyEnforcement`).

use cilium_api::models::{DaemonConfiguration, DaemonConfigurationSpec};
use cilium_api::ClientError;

use crate::cli::OutputFormat;
use crate::output::{self, OutputError, Table};
use crate::target::AgentTarget;

/// Errors of `cilium config`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid setting {setting:?}: want KEY=VALUE")]
    Syntax { setting: String },
    #[error("{key} cannot be changed at runtime (only PolicyEnforcement can)")]
    Immutable { key: String },
    #[error("the agent refused the change")]
    Patch {
        #[source]
        source: ClientError,
    },
    #[error("cannot read the agent's configuration")]
    Get {
        #[source]
        source: ClientError,
    },
    #[error("cannot print the configuration")]
    Output {
        #[source]
        source: OutputError,
    },
}

/// Shows the configuration, or applies `settings` first when there are any.
pub fn run(
    target: &AgentTarget,
    settings: &[String],
    format: OutputFormat,
) -> Result<(), ConfigError> {
    let client = target.client();
    let config = if settings.is_empty() {
        client
            .config()
            .map_err(|source| ConfigError::Get { source })?
    } else {
        let spec = spec_of(settings)?;
        client
            .patch_config(&spec)
            .map_err(|source| ConfigError::Patch { source })?
    };
    let text = match format {
        OutputFormat::Json => output::json(&config),
        OutputFormat::Text => render(&config),
    };
    output::print(&text).map_err(|source| ConfigError::Output { source })
}

/// The change `KEY=VALUE` settings ask for.
fn spec_of(settings: &[String]) -> Result<DaemonConfigurationSpec, ConfigError> {
    let mut spec = DaemonConfigurationSpec::default();
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| ConfigError::Syntax {
                setting: setting.clone(),
            })?;
        if !key.eq_ignore_ascii_case("PolicyEnforcement") {
            return Err(ConfigError::Immutable {
                key: key.to_string(),
            });
        }
        spec.policy_enforcement = Some(value.to_ascii_lowercase());
    }
    Ok(spec)
}

fn render(config: &DaemonConfiguration) -> String {
    let mut table = Table::new();
    for (key, value) in [
        ("PolicyEnforcement", &config.policy_enforcement),
        ("MonitorAggregation", &config.monitor_aggregation),
        ("RoutingMode", &config.routing_mode),
        ("AttachMode", &config.attach_mode),
        ("ClusterName", &config.cluster_name),
        ("NodeName", &config.node_name),
        ("PodCIDR", &config.pod_cidr),
    ] {
        table.row([key.to_string(), value.clone()]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_policy_enforcement_changes() {
        let spec = spec_of(&["PolicyEnforcement=Always".into()]).unwrap();
        assert_eq!(spec.policy_enforcement.as_deref(), Some("always"));
        assert!(matches!(
            spec_of(&["Debug=true".into()]),
            Err(ConfigError::Immutable { .. })
        ));
        assert!(matches!(
            spec_of(&["PolicyEnforcement".into()]),
            Err(ConfigError::Syntax { .. })
        ));
    }
}
