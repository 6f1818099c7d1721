//! How failures reach the runtime: the spec's error codes and the error JSON
//! (`{"cniVersion","code","msg","details"}`) printed on stdout with exit status 1.

use serde::Serialize;

use crate::version::CniVersion;

/// Error codes this plugin reports. 1-99 are the spec's; 100 is ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 1: the configuration names a version this plugin does not speak.
    IncompatibleVersion,
    /// 4: a `CNI_*` variable is missing or invalid (also: `CNI_NETNS` is not a namespace,
    /// and `CNI_ARGS` has keys we do not know without `IgnoreUnknown=1`).
    InvalidEnvironment,
    /// 5: reading the request failed.
    Io,
    /// 6: stdin is not JSON.
    Decode,
    /// 7: the configuration is JSON but not a valid cilium-cni configuration.
    InvalidConfig,
    /// 11: transient; the runtime should retry (the agent is unreachable or busy).
    TryAgainLater,
    /// 50: STATUS: the plugin cannot serve ADDs now.
    PluginNotAvailable,
    /// 100: CHECK found the container's networking differs from what ADD set up.
    CheckFailed,
    /// 999: anything else (as libcni reports plain errors).
    Internal,
}

impl ErrorCode {
    pub fn number(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::PluginNotAvailable => 50,
            ErrorCode::CheckFailed => 100,
            ErrorCode::Internal => 999,
        }
    }

    /// The spec's short description, which starts every `msg`.
    pub fn summary(self) -> &'static str {
        match self {
            ErrorCode::IncompatibleVersion => "incompatible CNI version",
            ErrorCode::InvalidEnvironment => "invalid necessary environment variables",
            ErrorCode::Io => "I/O failure",
            ErrorCode::Decode => "failed to decode content",
            ErrorCode::InvalidConfig => "invalid network config",
            ErrorCode::TryAgainLater => "try again later",
            ErrorCode::PluginNotAvailable => "plugin not available",
            ErrorCode::CheckFailed => "container network check failed",
            ErrorCode::Internal => "internal error",
        }
    }
}

/// An error that knows which CNI error code it is reported as.
pub trait CniFailure: std::error::Error {
    fn code(&self) -> ErrorCode;
}

/// Any failure a command can end with.
pub type Failure = Box<dyn CniFailure>;

impl<E: CniFailure + 'static> From<E> for Failure {
    fn from(error: E) -> Self {
        Box::new(error)
    }
}

/// The error JSON of the CNI spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReply {
    pub cni_version: String,
    pub code: u32,
    /// `<spec summary>: <what went wrong>`.
    pub msg: String,
    /// The whole cause chain.
    pub details: String,
}

impl ErrorReply {
    pub fn new(version: CniVersion, failure: &dyn CniFailure) -> Self {
        let code = failure.code();
        Self {
            cni_version: version.as_str().into(),
            code: code.number(),
            msg: format!("{}: {failure}", code.summary()),
            details: cause_chain(failure),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("error replies always serialize")
    }
}

/// `error: cause: cause ...`, every level of an error's sources. A cause whose text the
/// previous level already ends with (errors that print their source) is not repeated.
pub fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer {
        #[source]
        source: std::io::Error,
    }

    impl CniFailure for Outer {
        fn code(&self) -> ErrorCode {
            ErrorCode::TryAgainLater
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper: {source}")]
    struct Echoing {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn causes_already_printed_are_not_repeated() {
        let error = Echoing {
            source: std::io::Error::other("inner"),
        };
        assert_eq!(cause_chain(&error), "wrapper: inner");
    }

    #[test]
    fn replies_carry_code_summary_and_causes() {
        let failure = Outer {
            source: std::io::Error::other("inner"),
        };
        let reply = ErrorReply::new(CniVersion::V1_0_0, &failure);
        let json: serde_json::Value = serde_json::from_str(&reply.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "cniVersion": "1.0.0",
                "code": 11,
                "msg": "try again later: outer",
                "details": "outer: inner",
            })
        );
    }
}
