//! Restarting the agent while pods run: the datapath stays pinned, so an established TCP
//! connection keeps working across the restart, and the restarted agent takes its endpoints
//! back without reprogramming them.
#![cfg(feature = "privileged-tests")]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cilium_e2e::{eventually, serial, Lab};

/// A process started with `cilium-lab exec`, killed on drop.
struct PodProcess(Child);

impl Drop for PodProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_in_pod(lab: &Lab, pod: &str, cmd: &[&str]) -> PodProcess {
    let child = Command::new(lab.bin("cilium-lab"))
        .args(["exec", pod, "--"])
        .args(cmd)
        .env("CILIUM_LAB_NAME", &lab.name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?} in {pod}: {e}"));
    PodProcess(child)
}

/// Lines a process prints, delivered through a channel so reads can time out.
fn lines_of(process: &mut PodProcess) -> mpsc::Receiver<String> {
    let stdout = process.0.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn send_line(stdin: &mut ChildStdin, line: &str) {
    writeln!(stdin, "{line}").expect("writing to the client connection");
    stdin.flush().expect("flushing the client connection");
}

fn endpoint_generations(lab: &Lab) -> Vec<(u64, u64)> {
    let list: serde_json::Value =
        serde_json::from_str(&lab.cilium("node1", &["endpoint", "list", "-o", "json"])).unwrap();
    let mut generations: Vec<(u64, u64)> = list
        .as_array()
        .expect("endpoint list is an array")
        .iter()
        .map(|ep| {
            (
                ep["id"].as_u64().expect("endpoint id"),
                ep["status"]["realized-generation"]
                    .as_u64()
                    .expect("generation"),
            )
        })
        .collect();
    generations.sort();
    generations
}

#[test]
fn established_connection_survives_agent_restart() {
    let _serial = serial();
    let lab = Lab::up("rs", 1);
    lab.pod_add("server", &[]);
    lab.pod_add("client", &[]);
    let server_ip = lab.pod_ip("server");

    let mut server = spawn_in_pod(&lab, "server", &["busybox", "nc", "-l", "-p", "9000"]);
    let received = lines_of(&mut server);
    // The listener needs a moment; retry the client until its connection holds.
    let mut client = eventually(Duration::from_secs(10), "the nc listener", || {
        let mut client = spawn_in_pod(&lab, "client", &["busybox", "nc", &server_ip, "9000"]);
        std::thread::sleep(Duration::from_millis(200));
        match client.0.try_wait() {
            Ok(None) => Some(client),
            _ => None,
        }
    });
    let mut stdin = client.0.stdin.take().expect("stdin is piped");

    send_line(&mut stdin, "before restart");
    let line = received
        .recv_timeout(Duration::from_secs(5))
        .expect("server received the first line");
    assert_eq!(line, "before restart");

    let before = endpoint_generations(&lab);
    lab.lab_ok(&["node", "restart-agent", "node1"]);

    send_line(&mut stdin, "after restart");
    let line = received
        .recv_timeout(Duration::from_secs(5))
        .expect("the established connection carried data after the agent restart");
    assert_eq!(line, "after restart");

    // Endpoints were restored, not reprogrammed: same IDs, same generations.
    assert_eq!(endpoint_generations(&lab), before);

    // New pods and new connections work with the restarted agent.
    lab.pod_add("late", &["--serve", "8080/tcp"]);
    let late_ip = lab.pod_ip("late");
    let cli = lab.bin("cilium-lab").display().to_string();
    let out = lab.exec("client", &[&cli, "connect", &format!("{late_ip}:8080")]);
    assert!(out.status.success(), "new connection after restart failed");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "late");
}
