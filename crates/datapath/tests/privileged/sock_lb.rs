//! Socket load balancing (`bpf_sock.o`) on a cgroup of our own: a process in the cgroup that
//! connects to a ClusterIP reaches the backend and `getpeername()` shows the ClusterIP; a
//! frontend without backends fails `connect()` with EPERM at once; a process outside the
//! cgroup, and every process once the hooks are dropped, is not translated (the namespace has
//! no route to the ClusterIP, so its connect fails with ENETUNREACH).

use std::ffi::CString;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cilium_datapath::{abi::TRACE_AGGREGATE_ACTIVE_CT, AttachPreference};
use cilium_loadbalancer::{FrontendAddr, Protocol, RevNatIndex, ServiceFlags};

use crate::common::*;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const EMPTY_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
const BACKEND: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
const BACKEND_PORT: u16 = 8080;

/// Connects to `argv[1]:80`; prints `peer=<getpeername> answer=<first bytes>` or
/// `errno=<n>`.
const CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(3)
try:
    s.connect((sys.argv[1], 80))
    print("peer=%s:%d answer=%s" % (s.getpeername() + (s.recv(64).decode(),)))
except OSError as e:
    print("errno=%d" % e.errno)
"#;

/// A cgroup v2 directory `cilt-<random>`, removed on drop (after moving out anything left).
struct TestCgroup {
    path: PathBuf,
}

impl TestCgroup {
    fn new() -> Self {
        require_root();
        let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .iter()
            .map(PathBuf::from)
            .find(|dir| dir.join("cgroup.controllers").exists())
            .expect("no cgroup v2 hierarchy mounted");
        let path = root.join(format!("cilt-{}", random_suffix()));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Self { path }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let parent = self
            .path
            .parent()
            .expect("cgroup has a parent")
            .to_path_buf();
        let members = std::fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default();
        for pid in members.split_whitespace() {
            let _ = std::fs::write(parent.join("cgroup.procs"), pid);
        }
        let removed = (0..100).any(|_| {
            std::fs::remove_dir(&self.path).is_ok() || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                false
            }
        });
        if !removed {
            eprintln!("cleanup: cannot remove cgroup {}", self.path.display());
        }
    }
}

/// Programs `ip:80/TCP` with `backends` (port 8080) in the LB maps of `dp`.
fn service(dp: &cilium_datapath::Datapath, ip: Ipv4Addr, rev_nat: u16, backends: &[Ipv4Addr]) {
    let frontend = FrontendAddr {
        ip,
        port: 80,
        protocol: Protocol::Tcp,
    };
    program_random_service(
        dp,
        frontend,
        RevNatIndex(rev_nat),
        ServiceFlags::default(),
        backends,
        BACKEND_PORT,
        u32::from(rev_nat) * 100 + 1,
    );
}

/// Runs [`CLIENT`] in `ns` against `to`, in `cgroup` when given; returns its line.
fn client(ns: &NetNs, cgroup: Option<&Path>, to: Ipv4Addr) -> String {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.name, "/usr/bin/python3", "-c", CLIENT])
        .arg(to.to_string());
    if let Some(cgroup) = cgroup {
        let procs = CString::new(cgroup.join("cgroup.procs").as_os_str().as_bytes())
            .expect("cgroup path without NUL");
        // SAFETY: between fork and exec only open(2)/write(2)/close(2) on a path prepared
        // before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = nix::fcntl::open(
                    procs.as_c_str(),
                    nix::fcntl::OFlag::O_WRONLY,
                    nix::sys::stat::Mode::empty(),
                )?;
                nix::unistd::write(&fd, b"0")?;
                Ok(())
            });
        }
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running the client: {e}"));
    assert!(
        out.status.success(),
        "client failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn connect_in_the_cgroup_goes_to_the_backend_and_shows_the_service() {
    let root = TestRoot::new();
    let dp = root.open(TRACE_AGGREGATE_ACTIVE_CT, AttachPreference::Auto);
    let ns = NetNs::new("sock");
    ns.ip(&["addr", "add", &format!("{BACKEND}/32"), "dev", "lo"]);
    let listener = ns.run(|| TcpListener::bind((BACKEND, BACKEND_PORT)).expect("bind backend"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"backend");
        }
    });
    service(&dp, VIP, 1, &[BACKEND]);
    service(&dp, EMPTY_VIP, 2, &[]);
    let cgroup = TestCgroup::new();

    let socket_lb = dp
        .attach_socket_lb(&cgroup.path)
        .unwrap_or_else(|err| panic!("attaching socket LB: {}", chain(&err)));
    assert_eq!(socket_lb.cgroup(), cgroup.path);

    let inside = client(&ns, Some(&cgroup.path), VIP);
    assert_eq!(
        inside,
        format!("peer={VIP}:80 answer=backend"),
        "in the cgroup"
    );
    let empty = client(&ns, Some(&cgroup.path), EMPTY_VIP);
    assert_eq!(empty, format!("errno={}", nix::libc::EPERM), "no backends");
    let outside = client(&ns, None, VIP);
    assert_eq!(
        outside,
        format!("errno={}", nix::libc::ENETUNREACH),
        "outside the cgroup nothing is translated"
    );

    drop(socket_lb);
    let detached = client(&ns, Some(&cgroup.path), VIP);
    assert_eq!(
        detached,
        format!("errno={}", nix::libc::ENETUNREACH),
        "the hooks are gone with the handle"
    );
}
