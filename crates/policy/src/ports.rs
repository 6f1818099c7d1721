//! Layer 4 in a rule: `toPorts` (ports, protocol, `endPort` ranges, named
//! ports, and the L7 and TLS settings a port rule carries) and `icmps`.

use std::fmt;
use std::ops::RangeInclusive;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::l7::L7Rules;

/// Why a port or ICMP type could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The port was an empty string.
    #[error("port must be specified")]
    Empty,
    /// A number outside 0–65535.
    #[error("port {value} is out of range 0-65535")]
    OutOfRange {
        /// What was written.
        value: String,
    },
    /// Neither a number nor an IANA service name.
    #[error(
        "port {value:?} is neither a number in 0-65535 nor a port name \
         (1-15 letters, digits and single dashes, with at least one letter)"
    )]
    Invalid {
        /// What was written.
        value: String,
    },
    /// An ICMP type number outside 0–255.
    #[error("ICMP type {value} is out of range 0-255")]
    IcmpTypeOutOfRange {
        /// What was written.
        value: String,
    },
}

/// Transport protocol of a port. Written exactly `TCP`, `UDP`, `SCTP` or
/// `ANY` (the CRD's enum is case-sensitive); omitted or empty means `ANY`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// TCP, UDP and SCTP.
    #[default]
    Any,
}

const PROTOCOL_NAMES: &[&str] = &["TCP", "UDP", "SCTP", "ANY"];

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Protocol, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            "ANY" | "" => Ok(Protocol::Any),
            _ => Err(de::Error::unknown_variant(&text, PROTOCOL_NAMES)),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Any => "ANY",
        })
    }
}

/// A port: a number (0 means every port) or a named container port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Port {
    /// A port number; 0 means all ports.
    Number(u16),
    /// A named port (an IANA service name, lower-cased), resolved against the
    /// selected pods' container ports.
    Name(String),
}

impl Port {
    /// Reads a port as Cilium does: an IANA service name (1–15 characters of
    /// letters, digits and non-adjacent dashes, at least one letter, no dash
    /// at either end) is a name, compared case-insensitively; anything else
    /// must be a decimal number in 0–65535.
    pub fn parse(text: &str) -> Result<Port, PortError> {
        if text.is_empty() {
            return Err(PortError::Empty);
        }
        if is_service_name(text) {
            return Ok(Port::Name(text.to_ascii_lowercase()));
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PortError::Invalid {
                value: text.to_owned(),
            });
        }
        text.parse::<u16>()
            .map(Port::Number)
            .map_err(|_| PortError::OutOfRange {
                value: text.to_owned(),
            })
    }
}

/// IANA service name (RFC 6335 §5.1), as Kubernetes and Cilium check it.
pub(crate) fn is_service_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    (1..=15).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.iter().any(|b| b.is_ascii_alphabetic())
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
        && !text.contains("--")
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Port::Number(n) => write!(f, "{n}"),
            Port::Name(name) => f.write_str(name),
        }
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A port is written as a string (`"80"`, `"http"`) in Cilium policies and as
/// an int-or-string in NetworkPolicy; both forms are accepted.
impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Port, D::Error> {
        struct PortVisitor;

        impl Visitor<'_> for PortVisitor {
            type Value = Port;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or name")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Port, E> {
                Port::parse(text).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Port, E> {
                u16::try_from(n).map(Port::Number).map_err(|_| {
                    E::custom(PortError::OutOfRange {
                        value: n.to_string(),
                    })
                })
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Port, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(PortError::OutOfRange {
                        value: n.to_string(),
                    })),
                }
            }
        }

        deserializer.deserialize_any(PortVisitor)
    }
}

/// One `ports` entry: a port or range, and a protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortProtocol {
    /// Port number or name; `0` means every port.
    pub port: Port,
    /// Last port of a range starting at `port` (numeric ports only; 0 or
    /// absent means no range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u16>,
    /// Protocol; `ANY` when omitted.
    #[serde(default)]
    pub protocol: Protocol,
}

impl PortProtocol {
    /// The port numbers covered, for a numeric port (`0..=65535` for port 0).
    pub fn range(&self) -> Option<RangeInclusive<u16>> {
        match self.port {
            Port::Name(_) => None,
            Port::Number(0) => Some(0..=u16::MAX),
            Port::Number(p) => match self.end_port {
                Some(end) if end > p => Some(p..=end),
                _ => Some(p..=p),
            },
        }
    }
}

/// A Kubernetes secret reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Namespace of the secret; the context decides the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the secret.
    pub name: String,
}

/// TLS settings of the L7 proxy for one side of a connection (kept for a
/// later issue).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsContext {
    /// Secret holding the certificates and key.
    pub secret: SecretRef,
    /// Item name of the trusted CA.
    #[serde(default, rename = "trustedCA", skip_serializing_if = "Option::is_none")]
    pub trusted_ca: Option<String>,
    /// Item name of the certificate chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Item name of the private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

/// A custom Envoy listener the traffic is redirected to (kept for a later
/// issue).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    /// The CiliumEnvoyConfig that defines the listener.
    pub envoy_config: EnvoyConfigRef,
    /// Listener name within that config.
    pub name: String,
    /// Priority among listeners on the same port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}

/// Reference to a CiliumEnvoyConfig or CiliumClusterwideEnvoyConfig.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvoyConfigRef {
    /// `CiliumEnvoyConfig` or `CiliumClusterwideEnvoyConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the config.
    pub name: String,
}

/// A `toPorts` entry of an allow rule: ports and optional L7 rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRule {
    /// Ports and protocols; empty means every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortProtocol>,
    /// L7 rules traffic on these ports must also pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<L7Rules>,
    /// TLS the proxy terminates.
    #[serde(
        default,
        rename = "terminatingTLS",
        skip_serializing_if = "Option::is_none"
    )]
    pub terminating_tls: Option<TlsContext>,
    /// TLS the proxy originates.
    #[serde(
        default,
        rename = "originatingTLS",
        skip_serializing_if = "Option::is_none"
    )]
    pub originating_tls: Option<TlsContext>,
    /// TLS SNI names allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_names: Vec<String>,
    /// Custom Envoy listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<Listener>,
}

/// A `toPorts` entry of a deny rule: ports only (there is no L7 deny).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortDenyRule {
    /// Ports and protocols; empty means every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortProtocol>,
}

/// What every `toPorts` entry offers, allow or deny.
pub trait PortSpec {
    /// The ports listed.
    fn ports(&self) -> &[PortProtocol];
    /// The allow-rule settings (L7, TLS, listener), if this is an allow rule.
    fn allow_rule(&self) -> Option<&PortRule>;
}

impl PortSpec for PortRule {
    fn ports(&self) -> &[PortProtocol] {
        &self.ports
    }
    fn allow_rule(&self) -> Option<&PortRule> {
        Some(self)
    }
}

impl PortSpec for PortDenyRule {
    fn ports(&self) -> &[PortProtocol] {
        &self.ports
    }
    fn allow_rule(&self) -> Option<&PortRule> {
        None
    }
}

/// IP family of an ICMP field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IcmpFamily {
    /// ICMP (the default).
    #[default]
    IPv4,
    /// ICMPv6.
    IPv6,
}

/// An ICMP type: a number 0–255 or its CamelCase name (`EchoRequest`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IcmpType {
    /// Type number.
    Number(u8),
    /// Type name, resolved per family.
    Name(String),
}

impl Serialize for IcmpType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            IcmpType::Number(n) => serializer.serialize_u8(*n),
            IcmpType::Name(name) => serializer.serialize_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for IcmpType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<IcmpType, D::Error> {
        struct TypeVisitor;

        impl Visitor<'_> for TypeVisitor {
            type Value = IcmpType;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ICMP type number or name")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<IcmpType, E> {
                if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                    return text.parse::<u8>().map(IcmpType::Number).map_err(|_| {
                        E::custom(PortError::IcmpTypeOutOfRange {
                            value: text.to_owned(),
                        })
                    });
                }
                Ok(IcmpType::Name(text.to_owned()))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<IcmpType, E> {
                u8::try_from(n).map(IcmpType::Number).map_err(|_| {
                    E::custom(PortError::IcmpTypeOutOfRange {
                        value: n.to_string(),
                    })
                })
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<IcmpType, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(PortError::IcmpTypeOutOfRange {
                        value: n.to_string(),
                    })),
                }
            }
        }

        deserializer.deserialize_any(TypeVisitor)
    }
}

/// ICMP type names Cilium knows for IPv4.
const ICMPV4_TYPES: &[(&str, u8)] = &[
    ("EchoReply", 0),
    ("DestinationUnreachable", 3),
    ("Redirect", 5),
    ("Echo", 8),
    ("EchoRequest", 8),
    ("RouterAdvertisement", 9),
    ("RouterSelection", 10),
    ("TimeExceeded", 11),
    ("ParameterProblem", 12),
    ("Timestamp", 13),
    ("TimestampReply", 14),
    ("Photuris", 40),
    ("ExtendedEchoRequest", 42),
    ("ExtendedEchoReply", 43),
];

/// ICMP type names Cilium knows for IPv6.
const ICMPV6_TYPES: &[(&str, u8)] = &[
    ("DestinationUnreachable", 1),
    ("PacketTooBig", 2),
    ("TimeExceeded", 3),
    ("ParameterProblem", 4),
    ("EchoRequest", 128),
    ("EchoReply", 129),
    ("MulticastListenerQuery", 130),
    ("MulticastListenerReport", 131),
    ("MulticastListenerDone", 132),
    ("RouterSolicitation", 133),
    ("RouterAdvertisement", 134),
    ("NeighborSolicitation", 135),
    ("NeighborAdvertisement", 136),
    ("RedirectMessage", 137),
    ("RouterRenumbering", 138),
    ("ICMPNodeInformationQuery", 139),
    ("ICMPNodeInformationResponse", 140),
    ("InverseNeighborDiscoverySolicitation", 141),
    ("InverseNeighborDiscoveryAdvertisement", 142),
    ("HomeAgentAddressDiscoveryRequest", 144),
    ("HomeAgentAddressDiscoveryReply", 145),
    ("MobilePrefixSolicitation", 146),
    ("MobilePrefixAdvertisement", 147),
    ("DuplicateAddressRequestCodeSuffix", 157),
    ("DuplicateAddressConfirmationCodeSuffix", 158),
    ("ExtendedEchoRequest", 160),
    ("ExtendedEchoReply", 161),
];

/// One ICMP field: a type within a family.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpField {
    /// `IPv4` (default) or `IPv6`.
    #[serde(default)]
    pub family: IcmpFamily,
    /// Type number or name.
    #[serde(rename = "type")]
    pub icmp_type: IcmpType,
}

impl IcmpField {
    /// The type number, resolving a name for the field's family; `None` for
    /// a name the family does not have.
    pub fn type_code(&self) -> Option<u8> {
        match &self.icmp_type {
            IcmpType::Number(n) => Some(*n),
            IcmpType::Name(name) => {
                let table = match self.family {
                    IcmpFamily::IPv4 => ICMPV4_TYPES,
                    IcmpFamily::IPv6 => ICMPV6_TYPES,
                };
                table.iter().find(|(n, _)| n == name).map(|(_, code)| *code)
            }
        }
    }
}

/// An `icmps` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpRule {
    /// ICMP types allowed (or denied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<IcmpField>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_numbers_or_service_names() {
        assert_eq!(Port::parse("80").unwrap(), Port::Number(80));
        assert_eq!(Port::parse("0").unwrap(), Port::Number(0));
        assert_eq!(Port::parse("HTTP").unwrap(), Port::Name("http".into()));
        assert_eq!(
            Port::parse("http-alt").unwrap(),
            Port::Name("http-alt".into())
        );
        assert!(matches!(
            Port::parse("65536"),
            Err(PortError::OutOfRange { .. })
        ));
        assert!(matches!(
            Port::parse("-http"),
            Err(PortError::Invalid { .. })
        ));
        assert!(matches!(
            Port::parse("http--alt"),
            Err(PortError::Invalid { .. })
        ));
        assert!(matches!(
            Port::parse("a-very-long-port-name"),
            Err(PortError::Invalid { .. })
        ));
        assert!(matches!(Port::parse(""), Err(PortError::Empty)));
    }

    #[test]
    fn ranges_cover_end_port() {
        let pp: PortProtocol =
            serde_json::from_value(serde_json::json!({"port": "8000", "endPort": 8080})).unwrap();
        assert_eq!(pp.range(), Some(8000..=8080));
        assert_eq!(pp.protocol, Protocol::Any);
        let all: PortProtocol = serde_json::from_value(serde_json::json!({"port": 0})).unwrap();
        assert_eq!(all.range(), Some(0..=65535));
    }

    #[test]
    fn icmp_names_resolve_per_family() {
        let v4 = IcmpField {
            family: IcmpFamily::IPv4,
            icmp_type: IcmpType::Name("EchoRequest".into()),
        };
        let v6 = IcmpField {
            family: IcmpFamily::IPv6,
            ..v4.clone()
        };
        assert_eq!(v4.type_code(), Some(8));
        assert_eq!(v6.type_code(), Some(128));
        let only_v6 = IcmpField {
            family: IcmpFamily::IPv4,
            icmp_type: IcmpType::Name("PacketTooBig".into()),
        };
        assert_eq!(only_v6.type_code(), None);
    }
}
