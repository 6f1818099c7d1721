//! A host outside the cluster ("world") on a lab's underlay: a network namespace of its own,
//! plugged into the lab's switch with an underlay address and routes to the nodes' pod CIDRs,
//! running the toolbox server so pods can reach it too. Its namespace carries the lab's
//! prefix (`cilab-<lab>-`), so `cilium-lab down` would remove it as well; the guard removes it
//! itself on drop.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{eventually, run, Lab};

/// A world host; stopped and deleted on drop.
#[derive(Debug)]
pub struct ExternalHost {
    pub name: String,
    pub ip: Ipv4Addr,
    pub netns: String,
    server: Option<Child>,
    ready_file: PathBuf,
}

impl ExternalHost {
    /// Creates host `name` (lowercase letters and digits) with address `ip` on the underlay
    /// 172.18.0.0/24 of `lab`, routing each node's pod CIDR via that node, and serves `spec`
    /// (`80/tcp,80/udp,…`) there, answering with `name`.
    pub fn start(lab: &Lab, name: &str, ip: Ipv4Addr, spec: &str) -> ExternalHost {
        let status = lab.status();
        let switch = status["switch_netns"]
            .as_str()
            .expect("status names the switch namespace")
            .to_string();
        let netns = format!("cilab-{}-{name}", lab.name);
        let mut host = ExternalHost {
            name: name.to_string(),
            ip,
            netns: netns.clone(),
            server: None,
            ready_file: std::env::temp_dir().join(format!("{netns}.ready")),
        };
        ip_ok(&["netns", "add", &netns]);
        let port = format!("w-{name}");
        ip_ok(&[
            "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &netns,
        ]);
        ip_ok(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
        ip_ok(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ]);
        ip_ok(&["-n", &netns, "link", "set", "eth0", "up"]);
        ip_ok(&["-n", &netns, "link", "set", "lo", "up"]);
        for node in status["nodes"].as_array().expect("status lists nodes") {
            let cidr = node["pod_cidr"]
                .as_str()
                .expect("every node has a pod CIDR");
            let via = node["underlay_ip"].as_str().expect("underlay address");
            ip_ok(&["-n", &netns, "route", "add", cidr, "via", via]);
        }
        let _ = std::fs::remove_file(&host.ready_file);
        let server = Command::new("ip")
            .args(["netns", "exec", &netns])
            .arg(lab.bin("cilium-lab"))
            .args(["serve", spec, "--name", name, "--ready-file"])
            .arg(&host.ready_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the toolbox server in {netns}: {e}"));
        host.server = Some(server);
        let ready = host.ready_file.clone();
        eventually(
            Duration::from_secs(10),
            &format!("the toolbox server of {name} to listen"),
            || ready.exists().then_some(()),
        );
        host
    }
}

impl Drop for ExternalHost {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = std::fs::remove_file(&self.ready_file);
        // Deleting the namespace also deletes its end of the veth, and with it the switch's.
        let out = run({
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "del", &self.netns]);
            cmd
        });
        if !out.status.success() {
            eprintln!(
                "ip netns del {} failed: {}",
                self.netns,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn ip_ok(args: &[&str]) {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    let out = run(cmd);
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
