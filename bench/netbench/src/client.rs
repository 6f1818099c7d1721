//! The clients: `rr` (request/response over one connection) and `crr` (a new connection per
//! transaction). Both stop at a deadline or after a maximum number of transactions.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::histogram::Histogram;

/// Upper bound on transactions per run, whatever the duration.
pub const MAX_TRANSACTIONS: u64 = 50_000_000;
/// Longest run accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// How long one connect, read or write may block before the run fails.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of a client run.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("duration must be between 1 ms and {MAX_DURATION:?}, not {duration:?}")]
    Duration { duration: Duration },
    #[error("message size must be at least 1 byte")]
    Size,
    #[error("{step} with {addr} failed after {done} transactions")]
    Io {
        step: &'static str,
        addr: SocketAddr,
        done: u64,
        #[source]
        source: io::Error,
    },
    #[error("{addr} closed the connection after {done} transactions")]
    Closed { addr: SocketAddr, done: u64 },
}

/// What a run to `addr` does.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    pub addr: SocketAddr,
    pub duration: Duration,
    /// Bytes per request (and response).
    pub size: usize,
    pub max_transactions: u64,
}

/// Result of `rr`.
#[derive(Debug, Clone, Serialize)]
pub struct RrReport {
    pub transactions_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub transactions: u64,
    pub seconds: f64,
}

/// Result of `crr`.
#[derive(Debug, Clone, Serialize)]
pub struct CrrReport {
    pub connections_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub connections: u64,
    pub seconds: f64,
}

/// Request/response ping-pong over one connection.
pub fn rr(cfg: &RunConfig) -> Result<RrReport, ClientError> {
    check(cfg)?;
    let mut stream = connect(cfg, 0)?;
    let request = vec![0x5a_u8; cfg.size];
    let mut response = vec![0u8; cfg.size];
    let mut hist = Histogram::default();
    let started = Instant::now();
    let deadline = started + cfg.duration;
    while hist.len() < cfg.max_transactions && Instant::now() < deadline {
        let t = Instant::now();
        transact(&mut stream, cfg, &request, &mut response, hist.len())?;
        hist.record(t.elapsed());
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(RrReport {
        transactions_per_sec: hist.len() as f64 / seconds,
        p50_us: micros(hist.quantile(0.50)),
        p99_us: micros(hist.quantile(0.99)),
        transactions: hist.len(),
        seconds,
    })
}

/// Connect, 1-byte request, response, close — in a loop.
pub fn crr(cfg: &RunConfig) -> Result<CrrReport, ClientError> {
    check(cfg)?;
    let request = [0x5a_u8];
    let mut response = [0u8];
    let mut hist = Histogram::default();
    let started = Instant::now();
    let deadline = started + cfg.duration;
    while hist.len() < cfg.max_transactions && Instant::now() < deadline {
        let t = Instant::now();
        let mut stream = connect(cfg, hist.len())?;
        transact(&mut stream, cfg, &request, &mut response, hist.len())?;
        drop(stream);
        hist.record(t.elapsed());
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(CrrReport {
        connections_per_sec: hist.len() as f64 / seconds,
        p50_us: micros(hist.quantile(0.50)),
        p99_us: micros(hist.quantile(0.99)),
        connections: hist.len(),
        seconds,
    })
}

fn check(cfg: &RunConfig) -> Result<(), ClientError> {
    if cfg.duration < Duration::from_millis(1) || cfg.duration > MAX_DURATION {
        return Err(ClientError::Duration {
            duration: cfg.duration,
        });
    }
    if cfg.size == 0 {
        return Err(ClientError::Size);
    }
    Ok(())
}

fn connect(cfg: &RunConfig, done: u64) -> Result<TcpStream, ClientError> {
    let io = |step| {
        move |source| ClientError::Io {
            step,
            addr: cfg.addr,
            done,
            source,
        }
    };
    let stream = TcpStream::connect_timeout(&cfg.addr, IO_TIMEOUT).map_err(io("connect"))?;
    stream.set_nodelay(true).map_err(io("set TCP_NODELAY"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(io("set read timeout"))?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .map_err(io("set write timeout"))?;
    Ok(stream)
}

/// Sends the request and reads a response of the same size.
fn transact(
    stream: &mut TcpStream,
    cfg: &RunConfig,
    request: &[u8],
    response: &mut [u8],
    done: u64,
) -> Result<(), ClientError> {
    let io = |step| {
        move |source| ClientError::Io {
            step,
            addr: cfg.addr,
            done,
            source,
        }
    };
    stream.write_all(request).map_err(io("send"))?;
    let mut got = 0;
    while got < response.len() {
        match stream.read(&mut response[got..]).map_err(io("receive"))? {
            0 => {
                return Err(ClientError::Closed {
                    addr: cfg.addr,
                    done,
                })
            }
            n => got += n,
        }
    }
    Ok(())
}

fn micros(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 10.0).round() / 100.0
}
