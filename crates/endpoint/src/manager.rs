//! The endpoint manager: owns the node's endpoints, keeps their datapath programmed through
//! [`EndpointDatapath`], and their records in an [`EndpointStore`].
//!
//! Ordering rules that keep the node consistent:
//! - create: program the datapath first, persist second; a failed install leaves no record.
//! - delete: tear the datapath down (collecting every failure), then drop the record.
//! - restore: endpoints whose programs are still attached are kept as they are, so traffic
//!   never stops while the agent restarts; missing programs are installed again.

use std::collections::BTreeMap;
use std::error::Error as StdError;

use crate::model::{Endpoint, EndpointId, EndpointSelector, EndpointState, NewEndpoint};
use crate::store::{EndpointStore, StoreError};

/// What the manager needs from the datapath.
pub trait EndpointDatapath {
    type Error: StdError + Send + Sync + 'static;

    /// Programs (or reprograms, replacing in place) the endpoint's datapath.
    fn install(&self, endpoint: &Endpoint) -> Result<(), Self::Error>;
    /// Removes the endpoint's datapath; removing what is already gone succeeds.
    fn remove(&self, endpoint: &Endpoint) -> Result<(), Self::Error>;
    /// Whether the endpoint's programs are still attached (e.g. after an agent restart).
    fn is_installed(&self, endpoint: &Endpoint) -> bool;
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint {id} already exists")]
    IdInUse { id: EndpointId },
    #[error("{ip} is already used by endpoint {id}")]
    AddressInUse {
        ip: std::net::Ipv4Addr,
        id: EndpointId,
    },
    #[error("no free endpoint ID left")]
    IdsExhausted,
    #[error("endpoint {selector} not found")]
    NotFound { selector: String },
    #[error("programming the datapath of endpoint {id}")]
    Datapath {
        id: EndpointId,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("persisting endpoint {id}")]
    Store {
        id: EndpointId,
        #[source]
        source: StoreError,
    },
}

/// Outcome of [`EndpointManager::restore`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Endpoints whose programs were still attached and were left running.
    pub kept: Vec<EndpointId>,
    /// Endpoints whose programs were installed again.
    pub reinstalled: Vec<EndpointId>,
    /// Endpoints that could not be restored, with the reason.
    pub failed: Vec<(EndpointId, String)>,
}

/// A security identity as an endpoint carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointIdentity {
    pub id: u32,
    /// The identity's labels (`source:key=value`).
    pub labels: Vec<String>,
}

/// The node's endpoints.
pub struct EndpointManager<D, S> {
    endpoints: BTreeMap<EndpointId, Endpoint>,
    datapath: D,
    store: S,
}

impl<D: EndpointDatapath, S: EndpointStore> EndpointManager<D, S> {
    /// A manager with no endpoints yet.
    pub fn new(datapath: D, store: S) -> Self {
        Self {
            endpoints: BTreeMap::new(),
            datapath,
            store,
        }
    }

    /// Loads the stored endpoints and makes sure each one's datapath is in place.
    pub fn restore(&mut self) -> Result<RestoreReport, StoreError> {
        let mut report = RestoreReport::default();
        for mut endpoint in self.store.load_all()? {
            let id = endpoint.id;
            if self.datapath.is_installed(&endpoint) {
                report.kept.push(id);
            } else {
                match self.datapath.install(&endpoint) {
                    Ok(()) => {
                        endpoint.generation += 1;
                        endpoint.state = EndpointState::Ready;
                        report.reinstalled.push(id);
                    }
                    Err(e) => {
                        endpoint.state = EndpointState::NotReady;
                        report.failed.push((id, error_chain(&e)));
                    }
                }
                self.store.save(&endpoint)?;
            }
            self.endpoints.insert(id, endpoint);
        }
        Ok(report)
    }

    pub fn datapath(&self) -> &D {
        &self.datapath
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    pub fn list(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.values()
    }

    pub fn find(&self, selector: &EndpointSelector) -> Option<&Endpoint> {
        self.endpoints.values().find(|ep| selector.matches(ep))
    }

    /// Creates an endpoint with `identity`. A request for a container (and interface) that
    /// already has one replaces it, keeping its ID: that is a runtime retrying ADD.
    pub fn create(
        &mut self,
        request: NewEndpoint,
        identity: EndpointIdentity,
    ) -> Result<Endpoint, EndpointError> {
        let previous = self
            .endpoints
            .values()
            .find(|ep| {
                ep.container_id == request.container_id
                    && ep.container_ifname == request.container_ifname
            })
            .cloned();
        if let Some(owner) = self
            .endpoints
            .values()
            .find(|ep| ep.ipv4 == request.ipv4 && Some(ep.id) != previous.as_ref().map(|p| p.id))
        {
            return Err(EndpointError::AddressInUse {
                ip: request.ipv4,
                id: owner.id,
            });
        }
        let id = match (request.id, &previous) {
            (Some(id), Some(prev)) if id != prev.id => return Err(EndpointError::IdInUse { id }),
            (Some(id), None) if self.endpoints.contains_key(&id) => {
                return Err(EndpointError::IdInUse { id })
            }
            (Some(id), _) => id,
            (None, Some(prev)) => prev.id,
            (None, None) => self.free_id()?,
        };
        if let Some(prev) = &previous {
            if prev.host_ifname != request.host_ifname {
                self.datapath
                    .remove(prev)
                    .map_err(|e| EndpointError::Datapath {
                        id,
                        source: Box::new(e),
                    })?;
            }
        }
        let mut endpoint = Endpoint {
            id,
            container_id: request.container_id,
            container_name: request.container_name,
            container_ifname: request.container_ifname,
            host_ifname: request.host_ifname,
            host_ifindex: request.host_ifindex,
            mac: request.mac,
            host_mac: request.host_mac,
            ipv4: request.ipv4,
            netns: request.netns,
            k8s_namespace: request.k8s_namespace,
            k8s_pod_name: request.k8s_pod_name,
            labels: request.labels,
            identity: identity.id,
            identity_labels: identity.labels,
            state: EndpointState::Regenerating,
            generation: previous.map_or(0, |p| p.generation),
        };
        self.datapath
            .install(&endpoint)
            .map_err(|e| EndpointError::Datapath {
                id,
                source: Box::new(e),
            })?;
        endpoint.state = EndpointState::Ready;
        endpoint.generation += 1;
        self.store
            .save(&endpoint)
            .map_err(|source| EndpointError::Store { id, source })?;
        self.endpoints.insert(id, endpoint.clone());
        Ok(endpoint)
    }

    /// Gives an endpoint a new identity, regenerating its datapath if the number changed.
    pub fn set_identity(
        &mut self,
        selector: &EndpointSelector,
        identity: EndpointIdentity,
    ) -> Result<Endpoint, EndpointError> {
        let mut endpoint = self.find_owned(selector)?;
        if endpoint.identity == identity.id && endpoint.identity_labels == identity.labels {
            return Ok(endpoint);
        }
        let id = endpoint.id;
        let renumbered = endpoint.identity != identity.id;
        endpoint.identity = identity.id;
        endpoint.identity_labels = identity.labels;
        if !renumbered {
            self.store
                .save(&endpoint)
                .map_err(|source| EndpointError::Store { id, source })?;
            self.endpoints.insert(id, endpoint.clone());
            return Ok(endpoint);
        }
        self.endpoints.insert(id, endpoint);
        self.regenerate(selector)
    }

    /// Programs an endpoint's datapath again (atomically replacing its programs).
    pub fn regenerate(&mut self, selector: &EndpointSelector) -> Result<Endpoint, EndpointError> {
        let mut endpoint = self.find_owned(selector)?;
        let id = endpoint.id;
        let result = self.datapath.install(&endpoint);
        endpoint.state = if result.is_ok() {
            endpoint.generation += 1;
            EndpointState::Ready
        } else {
            EndpointState::NotReady
        };
        self.store
            .save(&endpoint)
            .map_err(|source| EndpointError::Store { id, source })?;
        self.endpoints.insert(id, endpoint.clone());
        result.map_err(|e| EndpointError::Datapath {
            id,
            source: Box::new(e),
        })?;
        Ok(endpoint)
    }

    /// Deletes an endpoint: datapath first, then the record. The endpoint is forgotten even
    /// when the datapath teardown reports an error (the error is returned), so a retried
    /// delete never finds a half-deleted endpoint.
    pub fn delete(&mut self, selector: &EndpointSelector) -> Result<Endpoint, EndpointError> {
        let endpoint = self.find_owned(selector)?;
        let id = endpoint.id;
        let teardown = self.datapath.remove(&endpoint);
        self.store
            .delete(id)
            .map_err(|source| EndpointError::Store { id, source })?;
        self.endpoints.remove(&id);
        teardown.map_err(|e| EndpointError::Datapath {
            id,
            source: Box::new(e),
        })?;
        Ok(endpoint)
    }

    fn find_owned(&self, selector: &EndpointSelector) -> Result<Endpoint, EndpointError> {
        self.find(selector)
            .cloned()
            .ok_or_else(|| EndpointError::NotFound {
                selector: selector_text(selector),
            })
    }

    fn free_id(&self) -> Result<EndpointId, EndpointError> {
        (EndpointId::MIN..=EndpointId::MAX)
            .map(EndpointId)
            .find(|id| !self.endpoints.contains_key(id))
            .ok_or(EndpointError::IdsExhausted)
    }
}

fn selector_text(selector: &EndpointSelector) -> String {
    match selector {
        EndpointSelector::Id(id) => id.to_string(),
        EndpointSelector::ContainerId(cid) => format!("container-id:{cid}"),
        EndpointSelector::PodName { namespace, name } => format!("pod-name:{namespace}/{name}"),
    }
}

/// An error and its sources on one line.
fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MacAddr;
    use crate::store::MemoryStore;
    use std::cell::RefCell;
    use std::collections::BTreeSet;
    use std::net::Ipv4Addr;

    #[derive(Debug, thiserror::Error)]
    #[error("fake datapath refused {0}")]
    struct FakeError(String);

    /// Records what is installed; can be told to fail for one interface.
    #[derive(Default)]
    struct FakeDatapath {
        installed: RefCell<BTreeSet<String>>,
        installs: RefCell<usize>,
        fail_for: RefCell<Option<String>>,
    }

    impl EndpointDatapath for &FakeDatapath {
        type Error = FakeError;
        fn install(&self, ep: &Endpoint) -> Result<(), FakeError> {
            if self.fail_for.borrow().as_deref() == Some(ep.host_ifname.as_str()) {
                return Err(FakeError(ep.host_ifname.clone()));
            }
            *self.installs.borrow_mut() += 1;
            self.installed.borrow_mut().insert(ep.host_ifname.clone());
            Ok(())
        }
        fn remove(&self, ep: &Endpoint) -> Result<(), FakeError> {
            self.installed.borrow_mut().remove(&ep.host_ifname);
            Ok(())
        }
        fn is_installed(&self, ep: &Endpoint) -> bool {
            self.installed.borrow().contains(&ep.host_ifname)
        }
    }

    impl EndpointStore for &MemoryStore {
        fn load_all(&self) -> Result<Vec<Endpoint>, StoreError> {
            (*self).load_all()
        }
        fn save(&self, ep: &Endpoint) -> Result<(), StoreError> {
            (*self).save(ep)
        }
        fn delete(&self, id: EndpointId) -> Result<(), StoreError> {
            (*self).delete(id)
        }
    }

    fn request(container: &str, ifname: &str, last_octet: u8) -> NewEndpoint {
        NewEndpoint {
            id: None,
            container_id: container.into(),
            container_name: String::new(),
            container_ifname: "eth0".into(),
            host_ifname: ifname.into(),
            host_ifindex: 10 + u32::from(last_octet),
            mac: MacAddr([2, 0, 0, 0, 0, last_octet]),
            host_mac: MacAddr([2, 0, 0, 0, 1, last_octet]),
            ipv4: Ipv4Addr::new(10, 0, 1, last_octet),
            netns: String::new(),
            k8s_namespace: "default".into(),
            k8s_pod_name: container.into(),
            labels: vec![],
        }
    }

    fn manager<'a>(
        dp: &'a FakeDatapath,
        store: &'a MemoryStore,
    ) -> EndpointManager<&'a FakeDatapath, &'a MemoryStore> {
        EndpointManager::new(dp, store)
    }

    fn init() -> EndpointIdentity {
        EndpointIdentity {
            id: 5,
            labels: vec!["reserved:init".into()],
        }
    }

    #[test]
    fn create_assigns_lowest_free_id_and_programs_datapath() {
        let (dp, store) = (FakeDatapath::default(), MemoryStore::default());
        let mut mgr = manager(&dp, &store);
        let a = mgr.create(request("a", "lxca", 2), init()).unwrap();
        let b = mgr.create(request("b", "lxcb", 3), init()).unwrap();
        assert_eq!((a.id, b.id), (EndpointId(1), EndpointId(2)));
        assert_eq!(a.state, EndpointState::Ready);
        assert_eq!(a.generation, 1);
        assert_eq!(a.identity, 5);
        assert!(dp.installed.borrow().contains("lxca"));
        assert_eq!(store.load_all().unwrap().len(), 2);
        mgr.delete(&EndpointSelector::Id(a.id)).unwrap();
        let c = mgr.create(request("c", "lxcc", 4), init()).unwrap();
        assert_eq!(c.id, EndpointId(1), "freed IDs are reused");
    }

    #[test]
    fn duplicate_address_is_refused_without_side_effects() {
        let (dp, store) = (FakeDatapath::default(), MemoryStore::default());
        let mut mgr = manager(&dp, &store);
        mgr.create(request("a", "lxca", 2), init()).unwrap();
        let err = mgr.create(request("b", "lxcb", 2), init()).unwrap_err();
        assert!(matches!(err, EndpointError::AddressInUse { .. }), "{err}");
        assert!(!dp.installed.borrow().contains("lxcb"));
        assert_eq!(mgr.len(), 1);
    }

    #[test]
    fn failed_install_leaves_no_record() {
        let (dp, store) = (FakeDatapath::default(), MemoryStore::default());
        *dp.fail_for.borrow_mut() = Some("lxcbad".into());
        let mut mgr = manager(&dp, &store);
        let err = mgr.create(request("a", "lxcbad", 2), init()).unwrap_err();
        assert!(err.source().unwrap().to_string().contains("lxcbad"));
        assert!(mgr.is_empty());
        assert!(store.load_all().unwrap().is_empty());
    }

    #[test]
    fn retried_add_keeps_the_id() {
        let (dp, store) = (FakeDatapath::default(), MemoryStore::default());
        let mut mgr = manager(&dp, &store);
        let first = mgr.create(request("a", "lxca", 2), init()).unwrap();
        let again = mgr.create(request("a", "lxca2", 2), init()).unwrap();
        assert_eq!(first.id, again.id);
        assert_eq!(again.generation, 2);
        assert_eq!(mgr.len(), 1);
        assert!(
            !dp.installed.borrow().contains("lxca"),
            "old veth's programs removed"
        );
    }

    #[test]
    fn restore_keeps_attached_endpoints_and_reinstalls_missing_ones() {
        let (dp, store) = (FakeDatapath::default(), MemoryStore::default());
        {
            let mut mgr = manager(&dp, &store);
            mgr.create(request("a", "lxca", 2), init()).unwrap();
            mgr.create(request("b", "lxcb", 3), init()).unwrap();
        }
        dp.installed.borrow_mut().remove("lxcb");
        let installs_before = *dp.installs.borrow();
        let mut mgr = manager(&dp, &store);
        let report = mgr.restore().unwrap();
        assert_eq!(report.kept, vec![EndpointId(1)]);
        assert_eq!(report.reinstalled, vec![EndpointId(2)]);
        assert_eq!(*dp.installs.borrow(), installs_before + 1);
        assert_eq!(mgr.len(), 2);
        let found = mgr
            .find(&EndpointSelector::ContainerId("b".into()))
            .unwrap();
        assert_eq!(found.generation, 2);
    }

    #[test]
    fn delete_unknown_is_not_found() {
        let (dp, store) = (FakeDatapath::default(), MemoryStore::default());
        let mut mgr = manager(&dp, &store);
        let err = mgr
            .delete(&EndpointSelector::ContainerId("nope".into()))
            .unwrap_err();
        assert_eq!(err.to_string(), "endpoint container-id:nope not found");
    }

    #[test]
    fn a_new_identity_number_regenerates_the_datapath() {
        let (dp, store) = (FakeDatapath::default(), MemoryStore::default());
        let mut mgr = manager(&dp, &store);
        let ep = mgr.create(request("a", "lxca", 2), init()).unwrap();
        let installs = *dp.installs.borrow();
        let resolved = EndpointIdentity {
            id: 256,
            labels: vec!["k8s:app=a".into()],
        };
        let updated = mgr
            .set_identity(&EndpointSelector::Id(ep.id), resolved.clone())
            .unwrap();
        assert_eq!((updated.identity, updated.generation), (256, 2));
        assert_eq!(*dp.installs.borrow(), installs + 1);
        assert_eq!(store.load_all().unwrap()[0].identity, 256);
        mgr.set_identity(&EndpointSelector::Id(ep.id), resolved)
            .unwrap();
        assert_eq!(
            *dp.installs.borrow(),
            installs + 1,
            "same identity, no regeneration"
        );
    }

    #[test]
    fn regenerate_bumps_generation() {
        let (dp, store) = (FakeDatapath::default(), MemoryStore::default());
        let mut mgr = manager(&dp, &store);
        let ep = mgr.create(request("a", "lxca", 2), init()).unwrap();
        let again = mgr.regenerate(&EndpointSelector::Id(ep.id)).unwrap();
        assert_eq!(again.generation, 2);
        assert_eq!(store.load_all().unwrap()[0].generation, 2);
    }
}
