//! etcd's `/health` endpoint, probed over plain HTTP from inside etcd's namespace (the lab's
//! addresses exist only there and in the nodes, never in the namespace `cilium-lab` runs in).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

use serde::Deserialize;

use crate::netns::{self, NetnsError};

/// Most bytes read from an answer; etcd's is a few dozen.
const MAX_ANSWER: u64 = 64 * 1024;

/// Why etcd is not healthy (or cannot be asked).
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("cannot probe etcd from its namespace")]
    Namespace {
        #[source]
        source: NetnsError,
    },
    #[error("cannot connect to etcd at {addr}")]
    Connect {
        addr: SocketAddrV4,
        #[source]
        source: io::Error,
    },
    #[error("cannot talk to etcd at {addr}")]
    Exchange {
        addr: SocketAddrV4,
        #[source]
        source: io::Error,
    },
    #[error("etcd answered /health with something that is not HTTP: {answer:?}")]
    NotHttp { answer: String },
    #[error("etcd answered /health with HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("etcd's /health answer is not the JSON expected: {body}")]
    Body {
        body: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("etcd reports itself unhealthy: {body}")]
    Unhealthy { body: String },
}

/// The JSON etcd answers `/health` with, e.g. `{"health":"true"}`.
#[derive(Debug, Deserialize)]
struct Health {
    health: String,
}

/// Asks etcd at `addr`, from inside namespace `netns`, whether it is healthy (it has a leader
/// and serves reads).
pub fn probe(netns: &str, addr: SocketAddrV4, timeout: Duration) -> Result<(), HealthError> {
    netns::run_in(netns, move || get(addr, timeout))
        .map_err(|source| HealthError::Namespace { source })?
}

fn get(addr: SocketAddrV4, timeout: Duration) -> Result<(), HealthError> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::V4(addr), timeout)
        .map_err(|source| HealthError::Connect { addr, source })?;
    let exchange = |source| HealthError::Exchange { addr, source };
    stream.set_read_timeout(Some(timeout)).map_err(exchange)?;
    stream.set_write_timeout(Some(timeout)).map_err(exchange)?;
    // HTTP/1.0: the server closes the connection after its answer, which ends the read.
    stream
        .write_all(format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(exchange)?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(exchange)?;
    judge(&answer)
}

/// Judges a raw HTTP answer to `GET /health`.
fn judge(answer: &[u8]) -> Result<(), HealthError> {
    let text = String::from_utf8_lossy(answer);
    let not_http = || HealthError::NotHttp {
        answer: text.chars().take(200).collect(),
    };
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(not_http)?;
    let status: u16 = head
        .lines()
        .next()
        .filter(|line| line.starts_with("HTTP/"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(not_http)?;
    let body = body.trim().to_string();
    if status != 200 {
        return Err(HealthError::Status { status, body });
    }
    let health: Health = serde_json::from_str(&body).map_err(|source| HealthError::Body {
        body: body.clone(),
        source,
    })?;
    if health.health == "true" {
        Ok(())
    } else {
        Err(HealthError::Unhealthy { body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: &str, body: &str) -> Vec<u8> {
        format!("HTTP/1.0 {status}\r\nContent-Type: text/plain\r\n\r\n{body}").into_bytes()
    }

    #[test]
    fn a_healthy_member_passes() {
        judge(&answer("200 OK", r#"{"health":"true","reason":""}"#)).unwrap();
    }

    #[test]
    fn an_unhealthy_member_is_reported_with_its_answer() {
        let err = judge(&answer("503 Service Unavailable", r#"{"health":"false"}"#)).unwrap_err();
        assert!(
            matches!(err, HealthError::Status { status: 503, .. }),
            "{err}"
        );
        assert!(err.to_string().contains(r#""health":"false""#), "{err}");
        let err = judge(&answer("200 OK", r#"{"health":"false"}"#)).unwrap_err();
        assert!(matches!(err, HealthError::Unhealthy { .. }), "{err}");
    }

    #[test]
    fn garbage_is_not_mistaken_for_health() {
        assert!(matches!(
            judge(b"SSH-2.0-OpenSSH\r\n"),
            Err(HealthError::NotHttp { .. })
        ));
        assert!(matches!(
            judge(&answer("200 OK", "ok")),
            Err(HealthError::Body { .. })
        ));
    }
}
