//! podman as a real CNI client: podman (CNI backend, an image imported from busybox with no
//! registry) runs inside a lab node's network namespace with that node's conflist, so
//! `cilium-cni` puts the container's host-side veth in the node and never in the root
//! namespace. The container reaches a lab pod and is reached by one, the node's agent lists it
//! as an endpoint while it runs, and podman's CNI DEL removes that endpoint again.
#![cfg(feature = "privileged-tests")]

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cilium_e2e::{bin_dir, serial, stdout, unique_name, Lab};
use serde_json::Value;

const NODE: &str = "node1";
/// The network name in the conflist the lab's agent writes.
const NETWORK: &str = "cilium";
const POD: &str = "web";
const IMAGE: &str = "localhost/cilt-busybox";
const CONTAINER: &str = "cilt-httpd";
const PAGE: &str = "hello.txt";
const PAGE_BODY: &str = "served by busybox httpd in a podman container\n";
/// Applets the image links to busybox. (Debian's busybox `wget -T` crashes, so `timeout`
/// bounds it instead.)
const APPLETS: [&str; 8] = ["sh", "wget", "httpd", "timeout", "cat", "ls", "ip", "sleep"];
/// Longest any one podman command may take.
const PODMAN_TIMEOUT: Duration = Duration::from_secs(120);
/// Directories podman writes whatever its flags say (libcni's result cache, the image blob
/// cache); removed again when the test created them.
const HOST_DIRS: [&str; 2] = ["/var/lib/cni", "/var/lib/containers"];
/// Programs the lab itself runs inside a node's namespace.
const LAB_PROGRAMS: [&str; 2] = ["cilium-agent", "cilium-lab"];

#[test]
fn podman_container_on_the_cilium_network_reaches_a_pod_and_is_reached_by_one() {
    let _serial = serial();
    let lab = Lab::up("pm", 1);
    lab.pod_add(POD, &["--serve", "8080/tcp"]);
    let pod_ip = lab.pod_ip(POD);
    // Declared after the lab, so it is dropped (podman cleaned up) before the lab goes down.
    let mut podman = Podman::new(&lab);
    let root_links = lxc_links_in_root();
    let node_links = lxc_links_in_node(&lab);

    // Container -> lab pod: the toolbox answers HTTP with the pod's name.
    let url = format!("http://{pod_ip}:8080/");
    let answer = podman.ok(
        &[
            "run",
            "--rm",
            "--network",
            NETWORK,
            IMAGE,
            "timeout",
            "10",
            "wget",
            "-qO-",
            &url,
        ],
        "container -> pod",
    );
    assert_eq!(answer.trim(), POD, "the container fetched {url}");
    assert_eq!(
        lxc_links_in_root(),
        root_links,
        "podman run must not put a host-side veth in the root namespace"
    );

    // Lab pod -> container, with the container running detached.
    let web = podman.run_detached(CONTAINER, &["httpd", "-f", "-p", "8080", "-h", "/www"]);
    assert_eq!(
        lxc_links_in_root(),
        root_links,
        "podman run -d must not put a host-side veth in the root namespace"
    );
    let added: Vec<String> = lxc_links_in_node(&lab)
        .difference(&node_links)
        .cloned()
        .collect();
    assert_eq!(
        added.len(),
        1,
        "one new lxc link in the node for the container, found {added:?}"
    );

    let endpoint = poll(
        Duration::from_secs(30),
        "the agent to list the container as a ready endpoint",
        || {
            let endpoints = endpoints(&lab);
            endpoints
                .iter()
                .find(|e| e["status"]["external-identifiers"]["container-id"] == web.id)
                .filter(|e| e["status"]["state"] == "ready")
                .cloned()
                .ok_or_else(|| format!("endpoints: {endpoints:#?}"))
        },
    );
    let status = &endpoint["status"];
    assert_eq!(
        status["networking"]["addressing"][0]["ipv4"], web.ip,
        "endpoint address = the container's: {endpoint:#}"
    );
    assert_eq!(
        status["networking"]["interface-name"], added[0],
        "endpoint interface = the new lxc link in the node: {endpoint:#}"
    );
    assert_eq!(
        status["external-identifiers"]["netns"], web.sandbox,
        "endpoint netns = podman's sandbox: {endpoint:#}"
    );

    let page_url = format!("http://{}:8080/{PAGE}", web.ip);
    let page = poll(
        Duration::from_secs(20),
        "the pod to fetch the page from the container",
        || {
            let out = lab.exec(POD, &["timeout", "5", "busybox", "wget", "-qO-", &page_url]);
            if out.status.success() {
                Ok(stdout(&out))
            } else {
                Err(describe(&out))
            }
        },
    );
    assert_eq!(page, PAGE_BODY, "the pod fetched {page_url}");

    // CNI DEL: the endpoint, its veth and podman's namespace go away with the container.
    podman.remove(CONTAINER);
    poll(
        Duration::from_secs(20),
        "the container's endpoint to go after podman rm",
        || {
            let endpoints = endpoints(&lab);
            let present = endpoints
                .iter()
                .any(|e| e["status"]["external-identifiers"]["container-id"] == web.id);
            if present {
                Err(format!("endpoints: {endpoints:#?}"))
            } else {
                Ok(())
            }
        },
    );
    assert_eq!(
        lxc_links_in_node(&lab),
        node_links,
        "the container's lxc link is gone from the node"
    );
    assert!(
        !Path::new(&web.sandbox).exists(),
        "podman removed the container's network namespace {}",
        web.sandbox
    );

    let problems = podman.cleanup();
    assert!(
        problems.is_empty(),
        "cleaning podman up:\n{}",
        problems.join("\n")
    );
    // `cilium-lab down` refuses foreign processes (conmon, podman) in the node's namespace.
    let node_net = node_net_namespace(&lab);
    poll(
        Duration::from_secs(20),
        "only the lab's own processes to run in the node's namespace",
        || match foreign_processes_in(&node_net) {
            foreign if foreign.is_empty() => Ok(()),
            foreign => Err(format!("{foreign:?}")),
        },
    );
    assert_eq!(lxc_links_in_root(), root_links, "root namespace lxc links");
}

/// A container podman started detached.
struct Detached {
    id: String,
    ip: String,
    /// Its network namespace, `/run/netns/...`.
    sandbox: String,
}

/// podman with all its state in one temporary directory, always run inside the lab node's
/// network namespace with the node's conflist; its containers, their network namespaces and
/// its storage are removed on [`Podman::cleanup`] or on drop.
struct Podman<'a> {
    lab: &'a Lab,
    dir: PathBuf,
    /// Entries of /run/netns before podman ran.
    netns_before: BTreeSet<String>,
    /// Network namespaces podman reported for our containers (`/run/netns/...`).
    sandboxes: BTreeSet<String>,
    /// The same namespaces as `/proc/<pid>/ns/net` names them (`net:[inode]`).
    sandbox_nets: BTreeSet<String>,
    /// Members of [`HOST_DIRS`] that did not exist before.
    host_dirs_absent: Vec<PathBuf>,
    cleaned: bool,
}

impl<'a> Podman<'a> {
    /// Sets up storage, configuration and the image.
    fn new(lab: &'a Lab) -> Podman<'a> {
        let dir = std::env::temp_dir().join(unique_name("cilt-podman-"));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let podman = Podman {
            lab,
            dir,
            netns_before: netns_entries(),
            sandboxes: BTreeSet::new(),
            sandbox_nets: BTreeSet::new(),
            host_dirs_absent: HOST_DIRS
                .iter()
                .map(PathBuf::from)
                .filter(|d| !d.exists())
                .collect(),
            cleaned: false,
        };
        podman.write_config();
        let tar = podman.build_rootfs();
        podman.ok(
            &[
                "import",
                "--change",
                r#"CMD ["/bin/sh"]"#,
                tar.to_str().expect("utf-8 path"),
                IMAGE,
            ],
            "importing the busybox image",
        );
        podman
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn path_str(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// The node's conflist, containers.conf (CNI backend, our plugin, runc, cgroupfs, file
    /// events, ulimits within the hard limits) and storage.conf (vfs: no overlay mounts).
    fn write_config(&self) {
        let conflist_src = PathBuf::from(format!(
            "/run/cilium-lab/{}/{NODE}/net.d/05-cilium.conflist",
            self.lab.name
        ));
        let text = std::fs::read_to_string(&conflist_src)
            .unwrap_or_else(|e| panic!("reading {}: {e}", conflist_src.display()));
        let conflist: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", conflist_src.display()));
        assert_eq!(conflist["name"], NETWORK, "network name in {text}");
        let net_d = self.path("net.d");
        for sub in ["net.d", "tmp", "store", "run"] {
            create_dir(&self.path(sub));
        }
        write(&net_d.join("05-cilium.conflist"), &text);

        let nofile = hard_limit("Max open files").min(20_000);
        let nproc = hard_limit("Max processes").min(4_096);
        let plugins = bin_dir();
        let conf = format!(
            r#"[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "{tmp}"

[network]
network_backend = "cni"
cni_plugin_dirs = ["{plugins}"]
network_config_dir = "{net_d}"
default_network = "{NETWORK}"
"#,
            tmp = self.path_str("tmp"),
            plugins = plugins.display(),
            net_d = net_d.display(),
        );
        write(&self.path("containers.conf"), &conf);
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            self.path_str("store"),
            self.path_str("run"),
        );
        write(&self.path("storage.conf"), &storage);
    }

    /// A busybox root filesystem with a web root, as a tarball.
    fn build_rootfs(&self) -> PathBuf {
        let rootfs = self.path("rootfs");
        for sub in ["bin", "www"] {
            std::fs::create_dir_all(rootfs.join(sub))
                .unwrap_or_else(|e| panic!("creating {}/{sub}: {e}", rootfs.display()));
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .unwrap_or_else(|e| panic!("copying /bin/busybox (apt busybox-static): {e}"));
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
                .unwrap_or_else(|e| panic!("linking {applet}: {e}"));
        }
        write(&rootfs.join("www").join(PAGE), PAGE_BODY);
        let tar = self.path("rootfs.tar");
        let mut cmd = Command::new("tar");
        cmd.arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".");
        let out = bounded(cmd, PODMAN_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "tar: {}", describe(&out));
        tar
    }

    /// `cilium-lab node exec node1 -- env CONTAINERS_CONF=.. podman --root .. <args>`.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.lab.bin("cilium-lab"));
        cmd.env("CILIUM_LAB_NAME", &self.lab.name)
            .args(["node", "exec", NODE, "--", "env"])
            .arg(format!(
                "CONTAINERS_CONF={}",
                self.path_str("containers.conf")
            ))
            .arg(format!(
                "CONTAINERS_STORAGE_CONF={}",
                self.path_str("storage.conf")
            ))
            .args(["podman", "--root"])
            .arg(self.path("store"))
            .arg("--runroot")
            .arg(self.path("run"))
            .arg("--tmpdir")
            .arg(self.path("tmp"))
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Result<Output, String> {
        bounded(self.command(args), PODMAN_TIMEOUT)
    }

    /// Runs podman, panicking with its output unless it succeeds; returns stdout.
    fn ok(&self, args: &[&str], what: &str) -> String {
        let out = self.run(args).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what}: podman {args:?} failed: {}",
            describe(&out)
        );
        stdout(&out)
    }

    /// `podman run -d --name NAME --network cilium IMAGE command...`, then where it landed.
    fn run_detached(&mut self, name: &str, command: &[&str]) -> Detached {
        let mut args = vec!["run", "-d", "--name", name, "--network", NETWORK, IMAGE];
        args.extend_from_slice(command);
        let id = self
            .ok(&args, "starting a detached container")
            .trim()
            .to_string();
        let inspect = self.ok(
            &["inspect", "--format", "{{json .NetworkSettings}}", name],
            "inspecting the container",
        );
        let settings: Value = serde_json::from_str(&inspect)
            .unwrap_or_else(|e| panic!("podman inspect output: {e}\n{inspect}"));
        let sandbox = settings["SandboxKey"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| panic!("no SandboxKey in {settings:#}"))
            .to_string();
        let inode = std::fs::metadata(&sandbox)
            .unwrap_or_else(|e| panic!("podman's sandbox {sandbox}: {e}"))
            .ino();
        self.sandbox_nets.insert(format!("net:[{inode}]"));
        self.sandboxes.insert(sandbox.clone());
        let ip = settings["Networks"][NETWORK]["IPAddress"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| panic!("no address on network {NETWORK} in {settings:#}"))
            .to_string();
        Detached { id, ip, sandbox }
    }

    /// `podman rm -f` (CNI DEL); SIGKILL at once, busybox httpd as PID 1 ignores SIGTERM.
    fn remove(&self, name: &str) {
        self.ok(
            &["rm", "--force", "--time", "0", name],
            "removing a container",
        );
    }

    /// Removes every container, podman's leftover processes, network namespaces and mounts,
    /// the storage directory and the host directories podman created. Keeps going and returns
    /// every problem.
    fn cleanup(&mut self) -> Vec<String> {
        if std::mem::replace(&mut self.cleaned, true) {
            return Vec::new();
        }
        let mut problems = Vec::new();
        match self.run(&["rm", "--all", "--force", "--time", "0"]) {
            Ok(out) if out.status.success() => {}
            Ok(out) => problems.push(format!("podman rm --all failed: {}", describe(&out))),
            Err(e) => problems.push(e),
        }
        problems.extend(self.stop_leftover_processes());
        let leaked: Vec<String> = netns_entries()
            .into_iter()
            .filter(|name| {
                let podman_named = name.starts_with("netns-") || name.starts_with("cni-");
                self.sandboxes.contains(&format!("/run/netns/{name}"))
                    || (podman_named && !self.netns_before.contains(name))
            })
            .collect();
        for name in leaked {
            problems.push(format!("podman left network namespace {name}; deleting it"));
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "delete", &name]);
            match bounded(cmd, Duration::from_secs(10)) {
                Ok(out) if out.status.success() => {}
                Ok(out) => problems.push(format!("ip netns delete {name}: {}", describe(&out))),
                Err(e) => problems.push(e),
            }
        }
        for mount in mounts_under(&self.dir) {
            problems.push(format!("podman left {mount} mounted; unmounting it"));
            let mut cmd = Command::new("umount");
            cmd.args(["--lazy", &mount]);
            match bounded(cmd, Duration::from_secs(10)) {
                Ok(out) if out.status.success() => {}
                Ok(out) => problems.push(format!("umount {mount}: {}", describe(&out))),
                Err(e) => problems.push(e),
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            problems.push(format!("removing {}: {e}", self.dir.display()));
        }
        for dir in &self.host_dirs_absent {
            match std::fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => problems.push(format!("removing {}: {e}", dir.display())),
            }
        }
        problems
    }

    /// Waits for every process of ours (podman and conmon, whose command lines name our
    /// directory, and container processes, in our containers' network namespaces) to exit;
    /// SIGKILLs, by PID, those that do not.
    fn stop_leftover_processes(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut left = processes_of(&self.dir, &self.sandbox_nets);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            left = processes_of(&self.dir, &self.sandbox_nets);
        }
        let mut problems = Vec::new();
        for (pid, cmdline) in left {
            problems.push(format!(
                "pid {pid} ({cmdline}) outlived podman rm; killing it"
            ));
            let mut cmd = Command::new("kill");
            cmd.args(["-KILL", &pid.to_string()]);
            if let Err(e) = bounded(cmd, Duration::from_secs(10)) {
                problems.push(e);
            }
        }
        problems
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        for problem in self.cleanup() {
            eprintln!("podman cleanup: {problem}");
        }
    }
}

/// The agent's endpoints, as `cilium endpoint list -o json` on the node shows them.
fn endpoints(lab: &Lab) -> Vec<Value> {
    let out = lab.cilium(NODE, &["endpoint", "list", "-o", "json"]);
    let list: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("endpoint list JSON: {e}\n{out}"));
    list.as_array()
        .unwrap_or_else(|| panic!("endpoint list is not an array: {out}"))
        .clone()
}

/// Names of `lxc*` links in the root namespace (this process's).
fn lxc_links_in_root() -> BTreeSet<String> {
    let out = bounded(
        {
            let mut cmd = Command::new("ip");
            cmd.args(["-o", "link", "show"]);
            cmd
        },
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "ip link show: {}", describe(&out));
    lxc_names(&stdout(&out))
}

/// Names of `lxc*` links in the lab node's namespace.
fn lxc_links_in_node(lab: &Lab) -> BTreeSet<String> {
    let out = lab.node_exec(NODE, &["ip", "-o", "link", "show"]);
    assert!(
        out.status.success(),
        "ip link show in {NODE}: {}",
        describe(&out)
    );
    lxc_names(&stdout(&out))
}

/// `lxc*` names from `ip -o link show` lines (`7: lxc0123@if6: <...> ...`).
fn lxc_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(|name| name.trim_end_matches(':'))
        .map(|name| name.split('@').next().unwrap_or(name))
        .filter(|name| name.starts_with("lxc"))
        .map(str::to_string)
        .collect()
}

/// The node's network namespace as `/proc/<pid>/ns/net` names it (`net:[inode]`).
fn node_net_namespace(lab: &Lab) -> String {
    let out = lab.node_exec(NODE, &["readlink", "/proc/self/ns/net"]);
    assert!(
        out.status.success(),
        "readlink in {NODE}: {}",
        describe(&out)
    );
    stdout(&out).trim().to_string()
}

/// Live processes in network namespace `net` that the lab did not start: `(pid, cmdline)`.
fn foreign_processes_in(net: &str) -> Vec<(u32, String)> {
    live_processes()
        .filter(|&(pid, _)| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|link| link.as_os_str() == net)
        })
        .filter(|(_, argv)| {
            let program = argv
                .first()
                .and_then(|a| Path::new(a).file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            !LAB_PROGRAMS.contains(&program.as_str())
        })
        .map(|(pid, argv)| (pid, argv.join(" ")))
        .collect()
}

/// Live processes whose command line mentions `dir` or that run in one of the network
/// namespaces `nets` (`net:[inode]`).
fn processes_of(dir: &Path, nets: &BTreeSet<String>) -> Vec<(u32, String)> {
    let needle = dir.display().to_string();
    live_processes()
        .filter(|(pid, argv)| {
            argv.iter().any(|a| a.contains(&needle))
                || std::fs::read_link(format!("/proc/{pid}/ns/net"))
                    .is_ok_and(|net| nets.contains(&*net.to_string_lossy()))
        })
        .map(|(pid, argv)| (pid, argv.join(" ")))
        .collect()
}

/// `(pid, argv)` of every process that is not a zombie.
fn live_processes() -> impl Iterator<Item = (u32, Vec<String>)> {
    let own = std::process::id();
    std::fs::read_dir("/proc")
        .expect("reading /proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(move |&pid| pid != own)
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
            if matches!(state, "Z" | "X") {
                return None;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv = cmdline
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, argv))
        })
}

/// Entries of /run/netns.
fn netns_entries() -> BTreeSet<String> {
    match std::fs::read_dir("/run/netns") {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Mount points at or under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<String> = text
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4))
        // mountinfo escapes blanks and backslashes as octal; our paths have none.
        .filter(|point| Path::new(point).starts_with(dir))
        .map(str::to_string)
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts
}

/// The hard limit named `name` in /proc/self/limits (`unlimited` as u64::MAX).
fn hard_limit(name: &str) -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("reading /proc/self/limits");
    let hard = limits
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no {name} in /proc/self/limits:\n{limits}"));
    if hard == "unlimited" {
        u64::MAX
    } else {
        hard.parse()
            .unwrap_or_else(|e| panic!("{name} hard limit {hard:?}: {e}"))
    }
}

/// Polls `check` every 100 ms until it succeeds; after `timeout`, panics with its last error.
fn poll<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Runs `cmd` with stdin closed, killing it after `timeout`.
fn bounded(mut cmd: Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {what}: {e}"))?;
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {timeout:?}"));
            }
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    // A daemon it started (conmon) could hold the pipes open; do not wait for it forever.
    let collect = |rx: mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| format!("{what} exited but its output pipe stayed open"))
    };
    Ok(Output {
        status,
        stdout: collect(out)?,
        stderr: collect(err)?,
    })
}

/// Reads a pipe to its end on a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Exit status, stdout and stderr of a finished command.
fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn create_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
