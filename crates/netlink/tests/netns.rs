//! Privileged: links, veth pairs, addresses, routes and sysctls in two throw-away
//! `cilt-` namespaces, checked against what `ip` reports.
#![cfg(feature = "privileged-tests")]

use std::io::Read;
use std::process::Command;

use cilium_netlink::{
    create_veth, delete_host_route, ensure_address, link_by_name, replace_host_route, set_link_up,
    set_sysctl, NetNs, Netlink, Route,
};

/// A network namespace created for one test and deleted on drop, also when the test fails.
struct NsGuard {
    name: String,
}

impl NsGuard {
    fn new() -> Self {
        let mut bytes = [0u8; 4];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .expect("read /dev/urandom");
        let name = format!("cilt-{}", u32::from_ne_bytes(bytes));
        ip(&["netns", "add", &name]);
        Self { name }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    fn open(&self) -> NetNs {
        NetNs::open(self.path()).unwrap_or_else(|e| panic!("open {}: {e:?}", self.name))
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn veth_between_namespaces_with_address_and_routes() {
    let left = NsGuard::new();
    let right = NsGuard::new();
    let left_ns = left.open();
    let right_ns = right.open();
    let nl_left = Netlink::connect_in(&left_ns).expect("netlink in left");
    let nl_right = Netlink::connect_in(&right_ns).expect("netlink in right");

    nl_left
        .create_veth("cilt-a", "cilt-b")
        .expect("create veth");
    nl_left.set_mtu("cilt-a", 1400).expect("mtu");
    let mac = [0x02, 0, 0, 0, 0, 0x42];
    nl_left.set_mac("cilt-a", mac).expect("mac");
    nl_left.set_link_up("cilt-a").expect("up");
    let a = nl_left
        .link_by_name("cilt-a")
        .expect("lookup")
        .expect("cilt-a exists");
    assert_eq!((a.mtu, a.mac, a.up), (1400, mac, true), "{a:?}");
    assert!(ip(&["-n", &left.name, "link", "show", "cilt-a"]).contains("02:00:00:00:00:42"));

    nl_left
        .move_link_to_netns("cilt-b", &right_ns)
        .expect("move peer");
    assert_eq!(nl_left.link_by_name("cilt-b").expect("lookup"), None);
    nl_right.rename_link("cilt-b", "eth0").expect("rename");
    nl_right.set_link_up("eth0").expect("up");
    nl_right.set_link_up("lo").expect("lo up");
    nl_right
        .add_address("eth0", "10.99.0.5".parse().unwrap(), 32)
        .expect("address");
    assert_eq!(
        nl_right.addresses("eth0").expect("addresses"),
        vec!["10.99.0.5/32".parse().unwrap()]
    );
    let gateway_route = Route {
        dst: "10.99.0.1/32".parse().unwrap(),
        gateway: None,
        dev: "eth0".into(),
        scope_link: true,
        onlink: false,
        src: None,
    };
    let default_route = Route {
        dst: "0.0.0.0/0".parse().unwrap(),
        gateway: Some("10.99.0.1".parse().unwrap()),
        dev: "eth0".into(),
        scope_link: false,
        onlink: false,
        src: None,
    };
    nl_right.add_route(&gateway_route).expect("gateway route");
    nl_right.add_route(&default_route).expect("default route");
    let shown = ip(&["-n", &right.name, "route", "show"]);
    assert!(shown.contains("default via 10.99.0.1 dev eth0"), "{shown}");
    assert!(
        shown.contains("10.99.0.1 dev eth0 proto static scope link"),
        "{shown}"
    );
    let listed = nl_right.list_routes().expect("list routes");
    assert!(listed.contains(&gateway_route), "{listed:?}");
    assert!(listed.contains(&default_route), "{listed:?}");

    assert!(nl_right.delete_route(&default_route).expect("delete route"));
    assert!(!nl_right.delete_route(&default_route).expect("delete again"));
    assert!(!ip(&["-n", &right.name, "route", "show"]).contains("default"));

    assert!(nl_left.delete_link("cilt-a").expect("delete"));
    assert_eq!(
        nl_right.link_by_name("eth0").expect("lookup"),
        None,
        "deleting one end of a veth removes the peer"
    );
    assert!(!nl_left.delete_link("cilt-a").expect("delete missing"));
}

#[test]
fn veth_peer_is_created_inside_the_other_namespace() {
    let node = NsGuard::new();
    let pod = NsGuard::new();
    let pod_ns = pod.open();
    let nl_node = Netlink::connect_in(&node.open()).expect("netlink in node");
    let nl_pod = Netlink::connect_in(&pod_ns).expect("netlink in pod");

    nl_node
        .create_veth_with_peer_in("cilt-host", "eth0", &pod_ns, 1420)
        .expect("create veth with peer in pod");
    let host = nl_node
        .link_by_name("cilt-host")
        .expect("lookup host end")
        .expect("host end exists in the node namespace");
    let peer = nl_pod
        .link_by_name("eth0")
        .expect("lookup pod end")
        .expect("pod end exists in the pod namespace under its final name");
    assert_eq!((host.mtu, host.up), (1420, false), "{host:?}");
    assert_eq!((peer.mtu, peer.up), (1420, false), "{peer:?}");
    assert_eq!(nl_node.link_by_name("eth0").expect("lookup"), None);
    let shown = ip(&["-n", &pod.name, "-d", "link", "show", "eth0"]);
    assert!(
        shown.contains("veth") && shown.contains("mtu 1420"),
        "{shown}"
    );

    // A second pair whose peer name is taken in the pod: refused, and nothing is left behind.
    let err = nl_node
        .create_veth_with_peer_in("cilt-host2", "eth0", &pod_ns, 1420)
        .unwrap_err();
    assert_eq!(err.errno(), Some(nix::libc::EEXIST), "{err:?}");
    assert!(err.to_string().contains(&pod.path()), "{err}");
    assert_eq!(nl_node.link_by_name("cilt-host2").expect("lookup"), None);

    assert!(nl_node.delete_link("cilt-host").expect("delete host end"));
    assert_eq!(
        nl_pod.link_by_name("eth0").expect("lookup"),
        None,
        "deleting the host end removes the pod end"
    );
}

#[test]
fn missing_links_are_reported_by_name() {
    let ns = NsGuard::new();
    let nl = Netlink::connect_in(&ns.open()).expect("netlink");
    let err = nl.set_link_up("cilt-none").unwrap_err();
    assert!(err.to_string().contains("cilt-none"), "{err}");
    assert_eq!(nl.link_by_name("cilt-none").expect("lookup"), None);
}

#[test]
fn sysctls_are_written_in_the_namespace_that_runs_them() {
    let ns = NsGuard::new();
    ns.open()
        .run(|| set_sysctl("net/ipv4/ip_forward", "1"))
        .expect("enter")
        .expect("write sysctl");
    let inside = ip(&[
        "netns",
        "exec",
        &ns.name,
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
    ]);
    assert_eq!(inside.trim(), "1");
}

#[test]
fn one_call_helpers_work_in_the_callers_namespace() {
    let ns = NsGuard::new();
    ns.open()
        .run(|| {
            create_veth("cilium_host", "cilium_net").expect("create veth");
            set_link_up("cilium_host").expect("up");
            set_link_up("cilium_net").expect("up");
            let ip = "10.98.0.1".parse().unwrap();
            ensure_address("cilium_host", ip, 32).expect("address");
            ensure_address("cilium_host", ip, 32).expect("address again is fine");
            let endpoint = "10.98.0.7".parse().unwrap();
            replace_host_route(endpoint, "cilium_net").expect("route");
            replace_host_route(endpoint, "cilium_host").expect("route moved");
            let host = link_by_name("cilium_host")
                .expect("lookup")
                .expect("exists");
            assert!(host.up, "{host:?}");
        })
        .expect("enter");
    let routes = ip(&["-n", &ns.name, "route", "show", "10.98.0.7"]);
    assert!(
        routes.contains("dev cilium_host") && !routes.contains("cilium_net"),
        "{routes}"
    );
    assert_eq!(
        ip(&["-n", &ns.name, "-4", "addr", "show", "dev", "cilium_host"])
            .matches("10.98.0.1/32")
            .count(),
        1
    );
    ns.open()
        .run(|| {
            let endpoint = "10.98.0.7".parse().unwrap();
            assert!(delete_host_route(endpoint).expect("delete"));
            assert!(!delete_host_route(endpoint).expect("delete again"));
        })
        .expect("enter");
    assert!(ip(&["-n", &ns.name, "route", "show", "10.98.0.7"])
        .trim()
        .is_empty());
}
