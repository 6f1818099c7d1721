//! The CNI spec versions this plugin speaks, and which commands each version allows.

use crate::env::Command;
use crate::error::{CniFailure, ErrorCode};

/// A supported CNI spec version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl CniVersion {
    /// Every supported version, oldest first.
    pub const SUPPORTED: [CniVersion; 5] = [
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];

    /// The newest version; used for replies when the request names none we know.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// Parses an exact version string such as `"1.0.0"`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|v| v.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Results before 1.0.0 carry `"version": "4"` on each IP.
    pub fn result_has_ip_version(self) -> bool {
        self < CniVersion::V1_0_0
    }

    /// CHECK exists since 0.4.0, STATUS and GC since 1.1.0.
    pub fn check_allows(self, command: Command) -> Result<(), VersionError> {
        let first = match command {
            Command::Check => CniVersion::V0_4_0,
            Command::Status | Command::Gc => CniVersion::V1_1_0,
            Command::Add | Command::Del | Command::Version => CniVersion::V0_3_0,
        };
        if self >= first {
            Ok(())
        } else {
            Err(VersionError::CommandNotInVersion {
                command,
                version: self,
                first,
            })
        }
    }
}

impl std::fmt::Display for CniVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The supported versions as the runtime sees them: `0.3.0, 0.3.1, ...`.
pub fn supported_list() -> String {
    CniVersion::SUPPORTED
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A command asked for in a version that does not define it.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("{command} needs cniVersion {first} or newer, the configuration says {version}")]
    CommandNotInVersion {
        command: Command,
        version: CniVersion,
        first: CniVersion,
    },
}

impl CniFailure for VersionError {
    fn code(&self) -> ErrorCode {
        ErrorCode::IncompatibleVersion
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_exactly() {
        assert_eq!(CniVersion::parse("0.3.1"), Some(CniVersion::V0_3_1));
        assert_eq!(CniVersion::parse("1.1.0"), Some(CniVersion::V1_1_0));
        for unsupported in ["0.2.0", "0.1.0", "1.0", "2.0.0", "", "v1.0.0"] {
            assert_eq!(CniVersion::parse(unsupported), None, "{unsupported}");
        }
        assert_eq!(supported_list(), "0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
    }

    #[test]
    fn commands_need_the_version_that_introduced_them() {
        assert!(CniVersion::V0_3_1.check_allows(Command::Check).is_err());
        assert!(CniVersion::V0_4_0.check_allows(Command::Check).is_ok());
        assert!(CniVersion::V1_0_0.check_allows(Command::Status).is_err());
        assert!(CniVersion::V1_0_0.check_allows(Command::Gc).is_err());
        assert!(CniVersion::V1_1_0.check_allows(Command::Gc).is_ok());
        assert!(CniVersion::V0_3_0.check_allows(Command::Add).is_ok());
        let err = CniVersion::V1_0_0.check_allows(Command::Gc).unwrap_err();
        assert_eq!(err.code().number(), 1);
        assert!(err.to_string().contains("GC"), "{err}");
    }
}
