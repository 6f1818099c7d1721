//! The clients against the server over loopback, in one process: reports are sane and runs
//! stop by themselves.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use netbench::client::{self, ClientError, RunConfig};
use netbench::server::Server;

fn start_server() -> SocketAddr {
    let server = Server::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind loopback");
    let addr = server.local_addr().expect("bound address");
    thread::spawn(move || server.run(None));
    addr
}

fn config(addr: SocketAddr, size: usize) -> RunConfig {
    RunConfig {
        addr,
        duration: Duration::from_millis(300),
        size,
        max_transactions: 1_000_000,
    }
}

#[test]
fn rr_reports_a_rate_and_ordered_percentiles() {
    let addr = start_server();
    let started = Instant::now();
    let report = client::rr(&config(addr, 64)).expect("rr over loopback");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "rr overran its duration"
    );
    assert!(report.transactions > 100, "{report:?}");
    assert!(report.transactions_per_sec > 0.0, "{report:?}");
    assert!(
        0.0 < report.p50_us && report.p50_us <= report.p99_us,
        "{report:?}"
    );
}

#[test]
fn crr_reports_a_connection_rate() {
    let addr = start_server();
    let report = client::crr(&config(addr, 1)).expect("crr over loopback");
    assert!(report.connections > 10, "{report:?}");
    assert!(report.p50_us <= report.p99_us, "{report:?}");
}

#[test]
fn the_transaction_cap_stops_a_run_early() {
    let addr = start_server();
    let mut cfg = config(addr, 1);
    cfg.duration = Duration::from_secs(60);
    cfg.max_transactions = 50;
    let started = Instant::now();
    let report = client::rr(&cfg).expect("rr over loopback");
    assert_eq!(report.transactions, 50);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the cap did not stop the run"
    );
}

#[test]
fn a_missing_server_is_an_error_not_a_hang() {
    let addr = {
        let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        probe.local_addr().unwrap()
    };
    let err = client::rr(&config(addr, 1)).expect_err("nothing listens there");
    assert!(
        matches!(
            err,
            ClientError::Io {
                step: "connect",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_binary_prints_the_documented_json() {
    let addr = start_server();
    let out = Command::new(env!("CARGO_BIN_EXE_netbench"))
        .args(["rr", "--addr", &addr.to_string(), "--duration", "0.2"])
        .output()
        .expect("run netbench rr");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("rr prints JSON");
    for key in ["transactions_per_sec", "p50_us", "p99_us"] {
        assert!(json[key].is_number(), "{key} missing from {json}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_netbench"))
        .args(["crr", "--addr", &addr.to_string(), "--duration", "0.2"])
        .output()
        .expect("run netbench crr");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("crr prints JSON");
    for key in ["connections_per_sec", "p50_us", "p99_us"] {
        assert!(json[key].is_number(), "{key} missing from {json}");
    }
}
