//! The load balancer's view of the cluster: the Services, the stored EndpointSlices and
//! the Pods, kept up to date by the agent as the store changes, and each service's
//! EndpointSlices — the stored ones labelled for it plus, for a service with a selector,
//! those derived from the Pods it selects.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use crate::endpoint_controller::{derive_endpoint_slices, PodInfo};
use crate::names::ObjectName;
use crate::resource::{EndpointSlice, Service};

/// Services, EndpointSlices and Pods by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    services: BTreeMap<ObjectName, Service>,
    slices: BTreeMap<ObjectName, EndpointSlice>,
    /// Stored slices by the service they are labelled for.
    slices_by_service: BTreeMap<ObjectName, BTreeSet<ObjectName>>,
    /// Pods by namespace, then name.
    pods: BTreeMap<String, BTreeMap<String, PodInfo>>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a service.
    pub fn upsert_service(&mut self, service: Service) {
        self.services.insert(service.name.clone(), service);
    }

    /// Removes a service; its stored slices stay (as in Kubernetes, until deleted).
    pub fn remove_service(&mut self, name: &ObjectName) -> Option<Service> {
        self.services.remove(name)
    }

    /// Adds or replaces a stored EndpointSlice.
    pub fn upsert_endpoint_slice(&mut self, slice: EndpointSlice) {
        self.remove_endpoint_slice(&slice.name);
        if let Some(service) = &slice.service {
            self.slices_by_service
                .entry(service.clone())
                .or_default()
                .insert(slice.name.clone());
        }
        self.slices.insert(slice.name.clone(), slice);
    }

    /// Removes a stored EndpointSlice.
    pub fn remove_endpoint_slice(&mut self, name: &ObjectName) -> Option<EndpointSlice> {
        let slice = self.slices.remove(name)?;
        if let Some(service) = &slice.service {
            if let Some(names) = self.slices_by_service.get_mut(service) {
                names.remove(name);
                if names.is_empty() {
                    self.slices_by_service.remove(service);
                }
            }
        }
        Some(slice)
    }

    /// Adds or replaces a pod.
    pub fn upsert_pod(&mut self, pod: PodInfo) {
        self.pods
            .entry(pod.namespace.clone())
            .or_default()
            .insert(pod.name.clone(), pod);
    }

    /// Replaces every pod with `pods`.
    pub fn set_pods(&mut self, pods: impl IntoIterator<Item = PodInfo>) {
        self.pods.clear();
        for pod in pods {
            self.upsert_pod(pod);
        }
    }

    /// Removes a pod.
    pub fn remove_pod(&mut self, name: &ObjectName) -> Option<PodInfo> {
        let pods = self.pods.get_mut(&name.namespace)?;
        let pod = pods.remove(&name.name);
        if pods.is_empty() {
            self.pods.remove(&name.namespace);
        }
        pod
    }

    /// A service by name.
    pub fn service(&self, name: &ObjectName) -> Option<&Service> {
        self.services.get(name)
    }

    /// Every service, ordered by namespace and name.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    /// The EndpointSlices of a service: stored ones labelled for it, then (when it has a
    /// selector) those derived from its pods.
    pub fn endpoint_slices(&self, service: &ObjectName) -> Vec<Cow<'_, EndpointSlice>> {
        let mut slices: Vec<Cow<'_, EndpointSlice>> = self
            .slices_by_service
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|name| self.slices.get(name))
            .map(Cow::Borrowed)
            .collect();
        if let Some(service) = self.services.get(service) {
            let pods = self
                .pods
                .get(&service.name.namespace)
                .into_iter()
                .flat_map(|pods| pods.values());
            slices.extend(
                derive_endpoint_slices(service, pods)
                    .into_iter()
                    .map(Cow::Owned),
            );
        }
        slices
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use serde_json::json;

    use super::*;

    fn service(name: &str, selector: serde_json::Value) -> Service {
        Service::from_json(&json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.10", "selector": selector, "ports": [{"port": 80}]}}))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn slice(name: &str, service: &str) -> EndpointSlice {
        EndpointSlice::from_json(&json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "shop", "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.9"]}], "ports": [{"port": 80}]}))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn pod(name: &str, app: &str) -> PodInfo {
        PodInfo {
            namespace: "shop".into(),
            name: name.into(),
            labels: [("app".to_string(), app.to_string())].into(),
            ip: Ipv4Addr::new(10, 0, 1, 1),
            node: "node-1".into(),
            ports: Vec::new(),
            terminating: false,
        }
    }

    fn slice_names(catalog: &Catalog, service: &str) -> Vec<String> {
        catalog
            .endpoint_slices(&ObjectName::new("shop", service))
            .iter()
            .map(|s| s.name.name.clone())
            .collect()
    }

    #[test]
    fn stored_slices_follow_their_label() {
        let mut catalog = Catalog::new();
        catalog.upsert_service(service("web", json!({})));
        catalog.upsert_endpoint_slice(slice("web-1", "web"));
        catalog.upsert_endpoint_slice(slice("other-1", "other"));
        assert_eq!(slice_names(&catalog, "web"), ["web-1"]);
        // Relabelled to another service: it moves.
        catalog.upsert_endpoint_slice(slice("web-1", "other"));
        assert!(slice_names(&catalog, "web").is_empty());
        assert_eq!(slice_names(&catalog, "other"), ["other-1", "web-1"]);
        assert!(catalog
            .remove_endpoint_slice(&ObjectName::new("shop", "web-1"))
            .is_some());
        assert_eq!(slice_names(&catalog, "other"), ["other-1"]);
    }

    #[test]
    fn selector_services_get_slices_from_their_pods() {
        let mut catalog = Catalog::new();
        catalog.upsert_service(service("web", json!({"app": "web"})));
        assert!(slice_names(&catalog, "web").is_empty());
        catalog.upsert_pod(pod("web-a", "web"));
        catalog.upsert_pod(pod("db-a", "db"));
        let slices = catalog.endpoint_slices(&ObjectName::new("shop", "web"));
        assert_eq!(slices.len(), 1);
        assert_eq!(slices[0].endpoints[0].pod.as_deref(), Some("web-a"));
        assert!(catalog
            .remove_pod(&ObjectName::new("shop", "web-a"))
            .is_some());
        assert!(slice_names(&catalog, "web").is_empty());
        assert!(catalog
            .remove_service(&ObjectName::new("shop", "web"))
            .is_some());
        assert!(catalog.service(&ObjectName::new("shop", "web")).is_none());
    }
}
