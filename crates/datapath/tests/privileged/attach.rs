//! Attaching an endpoint's programs to a real veth, and the overlay program
//! to a real VXLAN device, in `cilt-` namespaces, with TCX and with legacy
//! tc: install, regenerate, survive a restart, remove.

use std::time::Duration;

use aya::programs::{SchedClassifier, TcAttachType};
use cilium_datapath::{AttachMode, AttachPreference, Datapath, EndpointDatapathConfig};

use crate::common::*;

/// A node namespace with one veth pair (`lxc-t` / `eth-t`), both ends in it.
fn node_with_veth() -> (NetNs, EndpointDatapathConfig) {
    let node = NetNs::new("node");
    node.ip(&[
        "link", "add", "lxc-t", "type", "veth", "peer", "name", "eth-t",
    ]);
    node.ip(&["link", "set", "lxc-t", "up"]);
    node.ip(&["link", "set", "eth-t", "up"]);
    let mut ep = endpoint(33, "lxc-t", node.ifindex("lxc-t"));
    ep.mac = node.mac("eth-t");
    ep.node_mac = node.mac("lxc-t");
    (node, ep)
}

fn install(dp: &Datapath, ep: &EndpointDatapathConfig) {
    dp.install_endpoint(ep)
        .unwrap_or_else(|err| panic!("installing endpoint {}: {}", ep.id, chain(&err)));
}

/// Names and ids of the TCX programs on one hook of `ifname`.
fn tcx_programs(ifname: &str, hook: TcAttachType) -> Vec<(String, u32)> {
    let (_, programs) = SchedClassifier::query_tcx(ifname, hook)
        .unwrap_or_else(|err| panic!("querying TCX on {ifname}: {}", chain(&err)));
    programs
        .iter()
        .map(|p| (p.name_as_str().unwrap_or("?").to_string(), p.id()))
        .collect()
}

#[test]
fn tcx_attachment_is_replaced_in_place_survives_restart_and_is_removed() {
    let root = TestRoot::new();
    let (node, ep) = node_with_veth();
    let pin_dir = root.path.join("endpoints").join(ep.id.to_string());
    let root_config = root.config(3, AttachPreference::Auto);

    node.run(move || {
        let dp = root.open(3, AttachPreference::Auto);
        assert_eq!(
            dp.attach_mode(),
            AttachMode::Tcx,
            "a 6.6+ kernel attaches with TCX"
        );
        assert_eq!(dp.attach_mode().to_string(), "TCX");

        install(&dp, &ep);
        assert!(dp.endpoint_attached(ep.id));
        assert!(pin_dir.join("link_ingress").exists() && pin_dir.join("link_egress").exists());
        let ingress = tcx_programs("lxc-t", TcAttachType::Ingress);
        let egress = tcx_programs("lxc-t", TcAttachType::Egress);
        assert_eq!(ingress.len(), 1, "{ingress:?}");
        assert!(ingress[0].0.starts_with("cil_from_cont"), "{ingress:?}");
        assert_eq!(egress.len(), 1, "{egress:?}");
        assert!(egress[0].0.starts_with("cil_to_contain"), "{egress:?}");

        // Regeneration swaps the programs inside the pinned links.
        let mut regenerated = ep.clone();
        regenerated.identity += 1;
        install(&dp, &regenerated);
        let ingress2 = tcx_programs("lxc-t", TcAttachType::Ingress);
        let egress2 = tcx_programs("lxc-t", TcAttachType::Egress);
        assert_eq!(ingress2.len(), 1, "still one program: {ingress2:?}");
        assert_eq!(egress2.len(), 1, "still one program: {egress2:?}");
        assert_ne!(
            ingress2[0].1, ingress[0].1,
            "the ingress program was replaced"
        );
        assert_ne!(egress2[0].1, egress[0].1, "the egress program was replaced");

        // An agent restart: the process's handles go, the pins stay (the
        // plain `open` reuses the pinned maps whatever their size).
        drop(dp);
        assert_eq!(tcx_programs("lxc-t", TcAttachType::Ingress), ingress2);
        let dp = Datapath::open(root_config).expect("reopening the datapath");
        assert!(dp.endpoint_attached(ep.id), "pins found after the restart");
        install(&dp, &ep);
        assert_eq!(tcx_programs("lxc-t", TcAttachType::Ingress).len(), 1);

        dp.remove_endpoint(ep.id, ep.ipv4)
            .unwrap_or_else(|err| panic!("removing: {}", chain(&err)));
        assert!(!dp.endpoint_attached(ep.id));
        assert!(!pin_dir.exists(), "pin directory removed");
        // The kernel releases an unpinned link from a work queue.
        wait_until(Duration::from_secs(5), "both TCX links to detach", || {
            tcx_programs("lxc-t", TcAttachType::Ingress).is_empty()
                && tcx_programs("lxc-t", TcAttachType::Egress).is_empty()
        });
        dp.remove_endpoint(ep.id, ep.ipv4)
            .unwrap_or_else(|err| panic!("removing twice must succeed: {}", chain(&err)));
        drop(dp);
        drop(root);
    });
}

#[test]
fn legacy_tc_attachment_is_replaced_in_place_and_removed() {
    let root = TestRoot::new();
    let (node, ep) = node_with_veth();
    let ns = node.name.clone();
    let filters = move |hook: &str| {
        sh(&["tc", "-n", &ns, "filter", "show", "dev", "lxc-t", hook])
            .lines()
            .filter(|line| line.contains("direct-action"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };

    let pins = root.path.join("endpoints").join(ep.id.to_string());
    let config = root.config(3, AttachPreference::Tc);
    let dp = node.run({
        let (ep, pins) = (ep.clone(), pins.clone());
        move || {
            let dp = open_datapath(config);
            assert_eq!(dp.attach_mode(), AttachMode::LegacyTc);
            assert_eq!(dp.attach_mode().to_string(), "Legacy TC");
            install(&dp, &ep);
            assert!(dp.endpoint_attached(ep.id));
            assert!(pins.join("prog_ingress").exists() && pins.join("prog_egress").exists());
            let mut regenerated = ep.clone();
            regenerated.identity += 1;
            install(&dp, &regenerated);
            dp
        }
    });

    let ingress = filters("ingress");
    let egress = filters("egress");
    assert_eq!(
        ingress.len(),
        1,
        "one filter after regeneration: {ingress:?}"
    );
    assert!(ingress[0].contains("cil_from_container"), "{ingress:?}");
    assert_eq!(egress.len(), 1, "one filter after regeneration: {egress:?}");
    assert!(egress[0].contains("cil_to_container"), "{egress:?}");

    let ipv4 = ep.ipv4;
    let dp = node.run(move || {
        dp.remove_endpoint(ep.id, ipv4)
            .unwrap_or_else(|err| panic!("removing: {}", chain(&err)));
        assert!(!dp.endpoint_attached(ep.id));
        dp
    });
    assert!(!pins.exists(), "pin directory removed");
    assert!(filters("ingress").is_empty(), "ingress filter deleted");
    assert!(filters("egress").is_empty(), "egress filter deleted");
    drop(dp);
}

/// A node namespace with a VXLAN device in external mode.
fn node_with_vxlan() -> NetNs {
    let node = NetNs::new("node");
    node.ip(&[
        "link",
        "add",
        "cilium_vxlan",
        "type",
        "vxlan",
        "external",
        "dstport",
        "8472",
    ]);
    node.ip(&["link", "set", "cilium_vxlan", "up"]);
    node
}

fn attach_overlay(dp: &Datapath) {
    dp.attach_overlay("cilium_vxlan")
        .unwrap_or_else(|err| panic!("attaching the overlay: {}", chain(&err)));
}

#[test]
fn overlay_attachment_is_replaced_in_place_survives_restart_and_is_removed() {
    let root = TestRoot::new();
    let node = node_with_vxlan();
    let pin = root.path.join("devices/cilium_vxlan/link_ingress");
    let root_config = root.config(3, AttachPreference::Auto);

    node.run(move || {
        let dp = root.open(3, AttachPreference::Auto);
        attach_overlay(&dp);
        assert!(dp.overlay_attached("cilium_vxlan"));
        assert!(pin.exists(), "{} pinned", pin.display());
        let first = tcx_programs("cilium_vxlan", TcAttachType::Ingress);
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(first[0].0.starts_with("cil_from_over"), "{first:?}");

        attach_overlay(&dp);
        let second = tcx_programs("cilium_vxlan", TcAttachType::Ingress);
        assert_eq!(second.len(), 1, "still one program: {second:?}");
        assert_ne!(second[0].1, first[0].1, "the program was replaced");

        drop(dp);
        assert_eq!(
            tcx_programs("cilium_vxlan", TcAttachType::Ingress),
            second,
            "attached while no agent runs"
        );
        let dp = Datapath::open(root_config).expect("reopening the datapath");
        assert!(
            dp.overlay_attached("cilium_vxlan"),
            "pins found after the restart"
        );
        attach_overlay(&dp);
        assert_eq!(tcx_programs("cilium_vxlan", TcAttachType::Ingress).len(), 1);

        dp.detach_overlay("cilium_vxlan")
            .unwrap_or_else(|err| panic!("detaching: {}", chain(&err)));
        assert!(!dp.overlay_attached("cilium_vxlan"));
        wait_until(Duration::from_secs(5), "the TCX link to detach", || {
            tcx_programs("cilium_vxlan", TcAttachType::Ingress).is_empty()
        });
        dp.detach_overlay("cilium_vxlan")
            .unwrap_or_else(|err| panic!("detaching twice must succeed: {}", chain(&err)));
        drop(dp);
        drop(root);
    });
}

#[test]
fn overlay_attaches_with_legacy_tc_too() {
    let root = TestRoot::new();
    let node = node_with_vxlan();
    let ns = node.name.clone();
    let filters = move || {
        sh(&[
            "tc",
            "-n",
            &ns,
            "filter",
            "show",
            "dev",
            "cilium_vxlan",
            "ingress",
        ])
        .lines()
        .filter(|line| line.contains("direct-action"))
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    let config = root.config(3, AttachPreference::Tc);
    let dp = node.run(move || {
        let dp = open_datapath(config);
        attach_overlay(&dp);
        attach_overlay(&dp);
        dp
    });
    let attached = filters();
    assert_eq!(
        attached.len(),
        1,
        "one filter after re-attaching: {attached:?}"
    );
    assert!(attached[0].contains("cil_from_overlay"), "{attached:?}");

    let dp = node.run(move || {
        dp.detach_overlay("cilium_vxlan")
            .unwrap_or_else(|err| panic!("detaching: {}", chain(&err)));
        dp
    });
    assert!(filters().is_empty(), "filter deleted");
    assert!(!dp.overlay_attached("cilium_vxlan"));
    drop(dp);
}
