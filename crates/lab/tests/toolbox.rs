//! The toolbox between two network namespaces joined by a veth: `serve` in one, `connect` in
//! the other, as inside lab pods.

#![cfg(feature = "privileged-tests")]

mod common;

use std::process::{Child, Command, Output};
use std::time::Duration;

use common::{lab_bin, sh, wait_for, NetnsGuard};

const SERVER_IP: &str = "192.168.251.1";
const CLIENT_IP: &str = "192.168.251.2";
/// On the link, but nobody has it: probes there are dropped.
const NOBODY_IP: &str = "192.168.251.3";

/// A toolbox server process, killed on drop.
struct ServerGuard(Child);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two namespaces, `srv` and `cli`, linked by a veth pair.
fn linked_pair() -> NetnsGuard {
    let guard = NetnsGuard::new(&["srv", "cli"]);
    let (srv, cli) = (&guard.names[0], &guard.names[1]);
    sh(&[
        "ip", "-n", srv, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
        cli,
    ]);
    for (ns, ip) in [(srv, SERVER_IP), (cli, CLIENT_IP)] {
        sh(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ]);
        sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
    }
    guard
}

fn connect(ns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(lab_bin())
        .arg("connect")
        .args(args)
        .output()
        .expect("run cilium-lab connect")
}

fn answer(ns: &str, args: &[&str]) -> String {
    let out = connect(ns, args);
    assert!(
        out.status.success(),
        "connect {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn serve_and_connect_across_namespaces() {
    let nets = linked_pair();
    let (srv, cli) = (&nets.names[0], &nets.names[1]);
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let child = Command::new("ip")
        .args(["netns", "exec", srv])
        .arg(lab_bin())
        .args(["serve", "80/tcp,80/udp,8080/http", "--ready-file"])
        .arg(&ready)
        .env("CILIUM_LAB_POD_NAME", "web-1")
        .spawn()
        .expect("start the toolbox server");
    let _server = ServerGuard(child);
    wait_for("the server to listen", Duration::from_secs(10), || {
        ready.exists()
    });

    let target = format!("{SERVER_IP}:80");
    assert_eq!(answer(cli, &[&target]), "web-1", "plain TCP answer");
    assert_eq!(answer(cli, &[&target, "--udp"]), "web-1", "UDP answer");
    assert_eq!(
        answer(cli, &[&target, "--http"]),
        "web-1",
        "HTTP on a tcp port"
    );
    assert_eq!(
        answer(cli, &[&format!("{SERVER_IP}:8080"), "--http"]),
        "web-1",
        "HTTP on an http port"
    );

    let refused = connect(cli, &[&format!("{SERVER_IP}:81"), "--timeout", "2"]);
    assert!(!refused.status.success(), "a closed TCP port must fail");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refused"),
        "stderr: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let no_udp = connect(
        cli,
        &[&format!("{SERVER_IP}:81"), "--udp", "--timeout", "2"],
    );
    assert!(
        !no_udp.status.success(),
        "a UDP port without server must fail"
    );
    let dropped = connect(cli, &[&format!("{NOBODY_IP}:80"), "--timeout", "1"]);
    assert!(!dropped.status.success(), "a probe into the void must fail");
}

#[test]
fn serve_takes_the_pod_name_from_the_flag() {
    let nets = linked_pair();
    let (srv, cli) = (&nets.names[0], &nets.names[1]);
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let child = Command::new("ip")
        .args(["netns", "exec", srv])
        .arg(lab_bin())
        .args(["serve", "9000/udp", "--name", "solo", "--ready-file"])
        .arg(&ready)
        .env_remove("CILIUM_LAB_POD_NAME")
        .spawn()
        .expect("start the toolbox server");
    let _server = ServerGuard(child);
    wait_for("the server to listen", Duration::from_secs(10), || {
        ready.exists()
    });
    assert_eq!(
        answer(cli, &[&format!("{SERVER_IP}:9000"), "--udp"]),
        "solo"
    );
}
