//! VERSION: the versions this plugin speaks.

use serde_json::{json, Value};

use crate::version::CniVersion;

/// `{"cniVersion": "1.1.0", "supportedVersions": [...]}`.
pub fn reply() -> Value {
    json!({
        "cniVersion": CniVersion::LATEST.as_str(),
        "supportedVersions": CniVersion::SUPPORTED.map(CniVersion::as_str),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_lists_every_supported_version() {
        assert_eq!(
            reply(),
            json!({
                "cniVersion": "1.1.0",
                "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
            })
        );
    }
}
