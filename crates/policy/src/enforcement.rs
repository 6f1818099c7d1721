//! Policy enforcement modes (`enable-policy`): when an endpoint's traffic is
//! subject to policy at all.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an enforcement mode could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnforcementModeError {
    /// Not one of the three modes.
    #[error("unknown policy enforcement mode {value:?} (expected default, always or never)")]
    Unknown {
        /// What was given.
        value: String,
    },
}

/// Cilium's policy enforcement modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnforcementMode {
    /// A direction is enforced once a rule selecting the endpoint puts it
    /// into default deny for that direction.
    #[default]
    Default,
    /// Always enforced: with no rule, nothing is allowed.
    Always,
    /// Never enforced: everything is allowed.
    Never,
}

impl EnforcementMode {
    /// Whether one direction of an endpoint's traffic is enforced, given
    /// whether some rule selecting the endpoint puts it into default deny for
    /// that direction (see [`crate::Rule::default_deny_ingress`]).
    pub fn enforces(self, selected_with_default_deny: bool) -> bool {
        match self {
            EnforcementMode::Default => selected_with_default_deny,
            EnforcementMode::Always => true,
            EnforcementMode::Never => false,
        }
    }
}

impl FromStr for EnforcementMode {
    type Err = EnforcementModeError;

    fn from_str(value: &str) -> Result<EnforcementMode, EnforcementModeError> {
        match value {
            "default" => Ok(EnforcementMode::Default),
            "always" => Ok(EnforcementMode::Always),
            "never" => Ok(EnforcementMode::Never),
            _ => Err(EnforcementModeError::Unknown {
                value: value.to_owned(),
            }),
        }
    }
}

impl fmt::Display for EnforcementMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EnforcementMode::Default => "default",
            EnforcementMode::Always => "always",
            EnforcementMode::Never => "never",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_decide_enforcement() {
        let default: EnforcementMode = "default".parse().unwrap();
        assert!(default.enforces(true));
        assert!(!default.enforces(false));
        assert!("always".parse::<EnforcementMode>().unwrap().enforces(false));
        assert!(!"never".parse::<EnforcementMode>().unwrap().enforces(true));
        let err = "strict".parse::<EnforcementMode>().unwrap_err();
        assert!(err.to_string().contains("\"strict\""), "{err}");
        assert_eq!(EnforcementMode::Always.to_string(), "always");
    }
}
