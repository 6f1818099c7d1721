//! The Kubernetes objects the load balancer reads from the resource model — `v1` Service
//! and `discovery.k8s.io/v1` EndpointSlice — parsed from the JSON that `cilium apply -f`
//! stores under `cilium/state/resources/v1/<cluster>/<kind>/<namespace>/<name>`, checked
//! the way the API server would check them, into typed values. Every error names the
//! object and the field.

mod endpoint_slice;
mod service;

use std::fmt;
use std::net::{AddrParseError, IpAddr, Ipv4Addr};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::names::{ObjectName, DEFAULT_NAMESPACE};

pub use endpoint_slice::{
    AddressType, Conditions, EndpointSlice, SliceEndpoint, SlicePort, SERVICE_NAME_LABEL,
};
pub use service::{
    ClusterIp, Service, ServicePort, ServiceType, TargetPort, TrafficPolicy,
    DEFAULT_AFFINITY_TIMEOUT, LB_ALGORITHM_ANNOTATION, MAX_AFFINITY_TIMEOUT,
};

/// An object the load balancer cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// A field has the wrong JSON type.
    #[error("{kind} {object}: {path} does not fit the {kind} schema")]
    Schema {
        kind: &'static str,
        object: String,
        /// Path of the offending field (`spec.ports[0].port`).
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// A field has a value the API server would refuse, or that is missing.
    #[error("{kind} {object}: {field} is {value}, expected {expected}")]
    Invalid {
        kind: &'static str,
        object: String,
        field: String,
        /// The value found, quoted, or `missing`.
        value: String,
        expected: &'static str,
    },
    /// A field meant to hold an IP address holds something else.
    #[error("{kind} {object}: {field} is {value:?}, not an IP address")]
    Address {
        kind: &'static str,
        object: String,
        field: String,
        value: String,
        #[source]
        source: AddrParseError,
    },
}

/// What errors about one object say about it: its kind and `namespace/name`.
pub(crate) struct Object {
    kind: &'static str,
    name: ObjectName,
}

/// The text an error shows for a value.
pub(crate) enum Shown<'a> {
    Missing,
    Text(&'a str),
    Number(i64),
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shown::Missing => f.write_str("missing"),
            Shown::Text(text) => write!(f, "{text:?}"),
            Shown::Number(number) => write!(f, "{number}"),
        }
    }
}

impl Object {
    /// Checks `apiVersion`, `kind` and `metadata.name` of `value`, a `kind` object of
    /// `api_version`, and names it for later errors.
    pub(crate) fn check(
        value: &Value,
        api_version: &'static str,
        kind: &'static str,
    ) -> Result<Self, ResourceError> {
        let metadata = &value["metadata"];
        let namespace = metadata["namespace"]
            .as_str()
            .filter(|ns| !ns.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE);
        let name = metadata["name"].as_str().unwrap_or_default();
        let object = Object {
            kind,
            name: ObjectName::new(namespace, if name.is_empty() { "(unnamed)" } else { name }),
        };
        let shown = |field: &Value| match field.as_str() {
            Some(text) => Shown::Text(text).to_string(),
            None => Shown::Missing.to_string(),
        };
        if value["apiVersion"] != api_version {
            return Err(object.invalid_shown(
                "apiVersion",
                shown(&value["apiVersion"]),
                api_version,
            ));
        }
        if value["kind"] != kind {
            return Err(object.invalid_shown("kind", shown(&value["kind"]), kind));
        }
        if name.is_empty() {
            return Err(object.invalid("metadata.name", Shown::Missing, "the object's name"));
        }
        Ok(object)
    }

    /// The object's `namespace/name`.
    pub(crate) fn name(&self) -> &ObjectName {
        &self.name
    }

    /// Deserializes `value` into the raw shape `T`, naming the field that does not fit.
    pub(crate) fn parse<T: DeserializeOwned>(&self, value: &Value) -> Result<T, ResourceError> {
        serde_path_to_error::deserialize(value).map_err(|error| ResourceError::Schema {
            kind: self.kind,
            object: self.name.to_string(),
            path: error.path().to_string(),
            source: error.into_inner(),
        })
    }

    /// An [`ResourceError::Invalid`] about `field`.
    pub(crate) fn invalid(
        &self,
        field: impl Into<String>,
        value: Shown<'_>,
        expected: &'static str,
    ) -> ResourceError {
        self.invalid_shown(field, value.to_string(), expected)
    }

    fn invalid_shown(
        &self,
        field: impl Into<String>,
        value: String,
        expected: &'static str,
    ) -> ResourceError {
        ResourceError::Invalid {
            kind: self.kind,
            object: self.name.to_string(),
            field: field.into(),
            value,
            expected,
        }
    }

    /// A port number (1–65535) from `field`.
    pub(crate) fn port(&self, field: &str, value: Option<i64>) -> Result<u16, ResourceError> {
        match value {
            None => Err(self.invalid(field, Shown::Missing, "a port number 1-65535")),
            Some(number) => u16::try_from(number)
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| self.invalid(field, Shown::Number(number), "a port number 1-65535")),
        }
    }

    /// An IP address from `field`: `Some` for IPv4, `None` for IPv6 (this datapath serves
    /// IPv4 only; dual-stack objects keep working through their IPv4 addresses).
    pub(crate) fn ipv4(&self, field: &str, text: &str) -> Result<Option<Ipv4Addr>, ResourceError> {
        match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => Ok(Some(ip)),
            Ok(IpAddr::V6(_)) => Ok(None),
            Err(source) => Err(ResourceError::Address {
                kind: self.kind,
                object: self.name.to_string(),
                field: field.to_string(),
                value: text.to_string(),
                source,
            }),
        }
    }
}
