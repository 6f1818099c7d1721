//! The `PORT/PROTO,...` list that says what a toolbox server listens on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors parsing a serve list.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{item:?} is not PORT/PROTO (PROTO is tcp, udp or http)")]
    Syntax { item: String },
    #[error("{item:?}: port must be 1-65535")]
    Port {
        item: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("{item:?}: port 0 cannot be served")]
    PortZero { item: String },
    #[error("unknown protocol {proto:?} in {item:?}: use tcp, udp or http")]
    Proto { item: String, proto: String },
    #[error("port {port}/{socket} is listed twice")]
    Duplicate { port: u16, socket: &'static str },
    #[error("the serve list is empty")]
    Empty,
}

/// What a port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP: HTTP requests get an HTTP answer, anything else the bare pod name.
    Tcp,
    /// UDP: every datagram is answered with the pod name.
    Udp,
    /// TCP that expects an HTTP request and waits longer for it.
    Http,
}

impl Proto {
    /// The socket type underneath, which is what can clash.
    fn socket(self) -> &'static str {
        match self {
            Proto::Tcp | Proto::Http => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Http => "http",
        })
    }
}

/// One served port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServePort {
    pub port: u16,
    pub proto: Proto,
}

/// The ports one toolbox server listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServeSpec(Vec<ServePort>);

impl ServeSpec {
    pub fn ports(&self) -> &[ServePort] {
        &self.0
    }
}

impl FromStr for ServeSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut ports: Vec<ServePort> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let syntax = || SpecError::Syntax {
                item: item.to_string(),
            };
            let (port, proto) = item.split_once('/').ok_or_else(syntax)?;
            let port: u16 = port.parse().map_err(|source| SpecError::Port {
                item: item.to_string(),
                source,
            })?;
            if port == 0 {
                return Err(SpecError::PortZero {
                    item: item.to_string(),
                });
            }
            let proto = match proto.to_ascii_lowercase().as_str() {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                "http" => Proto::Http,
                other => {
                    return Err(SpecError::Proto {
                        item: item.to_string(),
                        proto: other.to_string(),
                    })
                }
            };
            if ports
                .iter()
                .any(|p| p.port == port && p.proto.socket() == proto.socket())
            {
                return Err(SpecError::Duplicate {
                    port,
                    socket: proto.socket(),
                });
            }
            ports.push(ServePort { port, proto });
        }
        if ports.is_empty() {
            return Err(SpecError::Empty);
        }
        Ok(ServeSpec(ports))
    }
}

impl TryFrom<String> for ServeSpec {
    type Error = SpecError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ServeSpec> for String {
    fn from(spec: ServeSpec) -> String {
        spec.to_string()
    }
}

impl fmt::Display for ServeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|p| format!("{}/{}", p.port, p.proto))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_mixed_list() {
        let spec: ServeSpec = "80/tcp, 80/udp,8080/HTTP".parse().unwrap();
        assert_eq!(
            spec.ports(),
            [
                ServePort {
                    port: 80,
                    proto: Proto::Tcp
                },
                ServePort {
                    port: 80,
                    proto: Proto::Udp
                },
                ServePort {
                    port: 8080,
                    proto: Proto::Http
                },
            ]
        );
        assert_eq!(spec.to_string(), "80/tcp,80/udp,8080/http");
    }

    #[test]
    fn rejects_bad_lists() {
        for bad in [
            "",
            "80",
            "80/sctp",
            "0/tcp",
            "70000/tcp",
            "x/udp",
            "80/tcp,80/http",
            "53/udp,53/udp",
        ] {
            assert!(bad.parse::<ServeSpec>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn round_trips_through_json_as_a_string() {
        let spec: ServeSpec = "80/tcp,53/udp".parse().unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(json, r#""80/tcp,53/udp""#);
        assert_eq!(serde_json::from_str::<ServeSpec>(&json).unwrap(), spec);
    }
}
