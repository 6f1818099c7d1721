//! The toolbox client: one probe against a server, reporting its answer or why there was none.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::toolbox::http;
use crate::toolbox::serve::is_timeout;

/// Largest answer read.
const MAX_ANSWER: u64 = 64 * 1024;

/// How to talk to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMode {
    /// Connect, close our sending side, read the answer.
    Tcp,
    /// Send one datagram, wait for one back.
    Udp,
    /// Send `GET /`, expect a 2xx answer.
    Http,
}

/// One probe.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub addr: SocketAddr,
    pub mode: ProbeMode,
    pub timeout: Duration,
}

/// Why a probe got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{addr}: no answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("{addr}: connection refused")]
    Refused { addr: SocketAddr },
    #[error("{addr}: {step} failed")]
    Io {
        addr: SocketAddr,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{addr}: the server closed the connection without answering")]
    Empty { addr: SocketAddr },
    #[error("{addr}: the answer is not HTTP")]
    NotHttp { addr: SocketAddr },
    #[error("{addr}: HTTP {status}: {body}")]
    HttpStatus {
        addr: SocketAddr,
        status: u16,
        body: String,
    },
}

/// Runs the probe and returns the server's answer (normally the serving pod's name).
pub fn probe(p: &Probe) -> Result<String, ConnectError> {
    let deadline = Instant::now() + p.timeout;
    match p.mode {
        ProbeMode::Udp => probe_udp(p, deadline),
        ProbeMode::Tcp | ProbeMode::Http => probe_tcp(p, deadline),
    }
}

fn probe_udp(p: &Probe, deadline: Instant) -> Result<String, ConnectError> {
    let io = |step| move |source| classify(p, step, source);
    let local: SocketAddr = if p.addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(io("bind"))?;
    socket.connect(p.addr).map_err(io("connect"))?;
    socket.send(b"ping").map_err(io("send"))?;
    socket
        .set_read_timeout(Some(remaining(p, deadline)?))
        .map_err(io("set timeout"))?;
    let mut buf = vec![0u8; 65536];
    let n = socket.recv(&mut buf).map_err(io("receive"))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn probe_tcp(p: &Probe, deadline: Instant) -> Result<String, ConnectError> {
    let io = |step| move |source| classify(p, step, source);
    let mut stream = TcpStream::connect_timeout(&p.addr, p.timeout).map_err(io("connect"))?;
    let left = remaining(p, deadline)?;
    stream
        .set_read_timeout(Some(left))
        .map_err(io("set timeout"))?;
    stream
        .set_write_timeout(Some(left))
        .map_err(io("set timeout"))?;
    if p.mode == ProbeMode::Http {
        stream
            .write_all(&http::request(&p.addr.to_string()))
            .map_err(io("send"))?;
    }
    stream.shutdown(Shutdown::Write).map_err(io("shutdown"))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut raw)
        .map_err(io("receive"))?;
    if raw.is_empty() {
        return Err(ConnectError::Empty { addr: p.addr });
    }
    if p.mode == ProbeMode::Tcp {
        return Ok(String::from_utf8_lossy(&raw).into_owned());
    }
    let (status, body) =
        http::parse_response(&raw).ok_or(ConnectError::NotHttp { addr: p.addr })?;
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(ConnectError::HttpStatus {
            addr: p.addr,
            status,
            body,
        })
    }
}

fn remaining(p: &Probe, deadline: Instant) -> Result<Duration, ConnectError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(ConnectError::Timeout {
            addr: p.addr,
            timeout: p.timeout,
        })
    } else {
        Ok(left)
    }
}

fn classify(p: &Probe, step: &'static str, source: io::Error) -> ConnectError {
    if is_timeout(&source) {
        ConnectError::Timeout {
            addr: p.addr,
            timeout: p.timeout,
        }
    } else if source.kind() == io::ErrorKind::ConnectionRefused {
        ConnectError::Refused { addr: p.addr }
    } else {
        ConnectError::Io {
            addr: p.addr,
            step,
            source,
        }
    }
}
