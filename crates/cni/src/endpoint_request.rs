//! The `EndpointChangeRequest` that registers a plumbed pod with the agent.
//!
//! Labels: each `args.cni.labels` entry becomes `k8s:key=value` when the runtime says it is
//! acting for Kubernetes (`K8S_POD_NAMESPACE` in `CNI_ARGS`, as kubelet-style runtimes and
//! the lab send), so that endpoints read like Cilium's pod endpoints; otherwise
//! `cni:key=value`, Cilium's source for labels that came through CNI. Policy selectors
//! without a source match either.

use std::net::Ipv4Addr;

use cilium_api::models::{AddressPair, EndpointChangeRequest};
use cilium_netlink::{format_mac, Link};

use crate::config::Label;
use crate::env::ContainerEnv;

/// Labels in Cilium's `source:key=value` form.
pub fn endpoint_labels(labels: &[Label], k8s_namespace: Option<&str>) -> Vec<String> {
    let source = if k8s_namespace.is_some() {
        "k8s"
    } else {
        "cni"
    };
    labels
        .iter()
        .map(|label| format!("{source}:{}={}", label.key, label.value))
        .collect()
}

/// What the plumbing produced for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlumbedPod {
    pub host: Link,
    pub pod_mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

/// Builds the request for `PUT /v1/endpoint/0` (endpoint ID 0: the agent picks one).
pub fn build(
    container: &ContainerEnv,
    netns: &str,
    pod: &PlumbedPod,
    labels: &[Label],
) -> EndpointChangeRequest {
    EndpointChangeRequest {
        id: 0,
        container_id: container.container_id.clone(),
        container_name: String::new(),
        container_interface_name: container.ifname.clone(),
        interface_name: pod.host.name.clone(),
        interface_index: pod.host.index,
        mac: format_mac(&pod.pod_mac),
        host_mac: format_mac(&pod.host.mac),
        addressing: AddressPair {
            ipv4: pod.ip.to_string(),
            ..AddressPair::default()
        },
        netns: netns.into(),
        k8s_namespace: container.args.k8s_namespace.clone().unwrap_or_default(),
        k8s_pod_name: container.args.k8s_pod_name.clone().unwrap_or_default(),
        labels: endpoint_labels(labels, container.args.k8s_namespace.as_deref()),
        sync_build_endpoint: true,
    }
}

#[cfg(test)]
mod tests {
    use crate::args::CniArgs;

    use super::*;

    fn label(key: &str, value: &str) -> Label {
        Label {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn labels_take_the_k8s_source_only_for_kubernetes_pods() {
        let labels = [label("app", "web"), label("tier", "")];
        assert_eq!(
            endpoint_labels(&labels, Some("default")),
            vec!["k8s:app=web", "k8s:tier="]
        );
        assert_eq!(
            endpoint_labels(&labels, None),
            vec!["cni:app=web", "cni:tier="]
        );
    }

    #[test]
    fn requests_carry_both_sides_of_the_veth() {
        let container = ContainerEnv {
            container_id: "c1".into(),
            ifname: "eth0".into(),
            netns: None,
            args: CniArgs {
                k8s_namespace: Some("shop".into()),
                k8s_pod_name: Some("cart-0".into()),
            },
        };
        let pod = PlumbedPod {
            host: Link {
                index: 7,
                name: "lxc0123456789ab".into(),
                mac: [2, 0, 0, 0, 0, 1],
                mtu: 1500,
                up: true,
            },
            pod_mac: [2, 0, 0, 0, 0, 2],
            ip: Ipv4Addr::new(10, 0, 0, 5),
            gateway: Ipv4Addr::new(10, 0, 0, 1),
        };
        let request = build(&container, "/run/netns/p", &pod, &[label("app", "cart")]);
        assert_eq!(request.interface_name, "lxc0123456789ab");
        assert_eq!(request.interface_index, 7);
        assert_eq!(request.mac, "02:00:00:00:00:02");
        assert_eq!(request.host_mac, "02:00:00:00:00:01");
        assert_eq!(request.addressing.ipv4, "10.0.0.5");
        assert_eq!(request.container_interface_name, "eth0");
        assert_eq!(
            (
                request.k8s_namespace.as_str(),
                request.k8s_pod_name.as_str()
            ),
            ("shop", "cart-0")
        );
        assert_eq!(request.labels, vec!["k8s:app=cart"]);
        assert!(request.sync_build_endpoint);
    }
}
