//! Cluster IPs and node ports for Services stored without them, as the API server hands
//! them out: a cluster IP from the service CIDR (Kubernetes' and Cilium's default
//! 10.96.0.0/12) and a node port from 30000-32767 for NodePort and LoadBalancer services.
//!
//! Each address or port is claimed with a create-only write to
//! `cilium/state/services/v1/<cluster>/{clusterip,nodeport}/<value>` holding
//! `<namespace>/<name>`, so two agents never give one out twice. The first candidate is a
//! hash of the service's name (so the same service gets the same address in a fresh
//! cluster), then the next ones in order. A service stored again keeps what it has.

use std::net::Ipv4Addr;

use cilium_kvstore::{KvError, KvStore};
use serde_json::Value;

/// The service CIDR: 10.96.0.0/12.
const SERVICE_CIDR_BASE: u32 = u32::from_be_bytes([10, 96, 0, 0]);
const SERVICE_CIDR_SIZE: u32 = 1 << 20;
/// The node-port range.
pub(crate) const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    #[error("claiming {what} for service {service}")]
    Store {
        what: String,
        service: String,
        #[source]
        source: KvError,
    },
    #[error("no {what} left for service {service}")]
    Exhausted { what: &'static str, service: String },
}

fn claims_prefix(cluster: &str) -> String {
    format!("cilium/state/services/v1/{cluster}/")
}

/// FNV-1a of the service's name: where its search starts.
fn name_hash(owner: &str) -> u32 {
    owner.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Claims the first free value of `candidates` for `owner` (or one it already holds).
async fn claim(
    store: &dyn KvStore,
    prefix: &str,
    owner: &str,
    what: &'static str,
    candidates: impl Iterator<Item = String>,
) -> Result<String, AllocError> {
    let store_error = |value: &str, source| AllocError::Store {
        what: format!("{what} {value}"),
        service: owner.to_string(),
        source,
    };
    for value in candidates {
        let key = format!("{prefix}{value}");
        let won = store
            .create_only(&key, owner.as_bytes().to_vec(), None)
            .await
            .map_err(|e| store_error(&value, e))?;
        if won {
            return Ok(value);
        }
        let holder = store.get(&key).await.map_err(|e| store_error(&value, e))?;
        if holder.is_some_and(|kv| kv.value == owner.as_bytes()) {
            return Ok(value);
        }
    }
    Err(AllocError::Exhausted {
        what,
        service: owner.to_string(),
    })
}

/// Fills in `spec.clusterIP`/`clusterIPs` and missing `nodePort`s of a Service object
/// about to be stored; `previous` is the stored version, whose values are kept.
pub async fn assign(
    store: &dyn KvStore,
    cluster: &str,
    service: &mut Value,
    previous: Option<&Value>,
) -> Result<(), AllocError> {
    let namespace = service["metadata"]["namespace"]
        .as_str()
        .unwrap_or(cilium_policy::DEFAULT_NAMESPACE)
        .to_string();
    let owner = format!(
        "{namespace}/{}",
        service["metadata"]["name"].as_str().unwrap_or_default()
    );
    let prefix = claims_prefix(cluster);
    let spec = &mut service["spec"];
    if !spec.is_object() {
        *spec = Value::Object(Default::default());
    }
    let given = spec["clusterIP"].as_str().unwrap_or_default().to_string();
    let kept = previous
        .and_then(|p| p["spec"]["clusterIP"].as_str())
        .filter(|ip| !ip.is_empty())
        .map(str::to_string);
    if given != "None" {
        // The address the object names (or had), else a search of the service CIDR from a
        // point its name picks — generated lazily: the range has a million addresses.
        let named = if given.is_empty() { kept } else { Some(given) };
        let start = name_hash(&owner) % (SERVICE_CIDR_SIZE - 2) + 1;
        let search = (0..SERVICE_CIDR_SIZE - 2).map(|i| {
            let offset = (start - 1 + i) % (SERVICE_CIDR_SIZE - 2) + 1;
            Ipv4Addr::from(SERVICE_CIDR_BASE + offset).to_string()
        });
        let candidates: Box<dyn Iterator<Item = String> + Send> = match named.clone() {
            Some(ip) => Box::new(std::iter::once(ip)),
            None => Box::new(search),
        };
        let claimed = claim(
            store,
            &format!("{prefix}clusterip/"),
            &owner,
            "cluster IP",
            candidates,
        )
        .await;
        let ip = match (claimed, named) {
            (Ok(ip), _) => ip,
            // A cluster IP given in the object is stored as given, claimed or not.
            (Err(AllocError::Exhausted { .. }), Some(ip)) => ip,
            (Err(error), _) => return Err(error),
        };
        spec["clusterIP"] = Value::String(ip.clone());
        spec["clusterIPs"] = Value::Array(vec![Value::String(ip)]);
    }

    let wants_node_ports = matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"));
    if !wants_node_ports {
        return Ok(());
    }
    let previous_ports = previous
        .and_then(|p| p["spec"]["ports"].as_array())
        .cloned()
        .unwrap_or_default();
    let Some(ports) = spec["ports"].as_array_mut() else {
        return Ok(());
    };
    for (index, port) in ports.iter_mut().enumerate() {
        if port["nodePort"].as_u64().is_some_and(|p| p != 0) {
            continue;
        }
        let kept = previous_ports
            .get(index)
            .and_then(|p| p["nodePort"].as_u64())
            .filter(|p| *p != 0);
        let candidates: Vec<String> = match kept {
            Some(p) => vec![p.to_string()],
            None => {
                let span = u32::from(NODE_PORTS.end() - NODE_PORTS.start()) + 1;
                let start = name_hash(&format!("{owner}/{index}")) % span;
                (0..span)
                    .map(|i| (u32::from(*NODE_PORTS.start()) + (start + i) % span).to_string())
                    .collect()
            }
        };
        let value = claim(
            store,
            &format!("{prefix}nodeport/"),
            &owner,
            "node port",
            candidates.into_iter(),
        )
        .await?;
        port["nodePort"] = Value::from(value.parse::<u16>().expect("ports are numbers"));
    }
    Ok(())
}

/// Gives back the cluster IP and node ports of a deleted Service object.
pub async fn release(store: &dyn KvStore, cluster: &str, service: &Value) -> Result<(), KvError> {
    let namespace = service["metadata"]["namespace"]
        .as_str()
        .unwrap_or(cilium_policy::DEFAULT_NAMESPACE);
    let owner = format!(
        "{namespace}/{}",
        service["metadata"]["name"].as_str().unwrap_or_default()
    );
    let prefix = claims_prefix(cluster);
    let mut keys = Vec::new();
    if let Some(ip) = service["spec"]["clusterIP"].as_str() {
        keys.push(format!("{prefix}clusterip/{ip}"));
    }
    for port in service["spec"]["ports"].as_array().into_iter().flatten() {
        if let Some(p) = port["nodePort"].as_u64() {
            keys.push(format!("{prefix}nodeport/{p}"));
        }
    }
    for key in keys {
        if store
            .get(&key)
            .await?
            .is_some_and(|kv| kv.value == owner.as_bytes())
        {
            store.delete(&key).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use cilium_kvstore::MemoryStore;
    use serde_json::json;

    use super::*;

    fn service(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": "shop"}, "spec": spec})
    }

    #[tokio::test]
    async fn services_get_distinct_stable_cluster_ips_and_node_ports() {
        let store = MemoryStore::new();
        let mut web = service("web", json!({"type": "NodePort", "ports": [{"port": 80}]}));
        assign(&store, "c1", &mut web, None)
            .await
            .expect("assigned");
        let ip = web["spec"]["clusterIP"]
            .as_str()
            .expect("an IP")
            .to_string();
        let addr: Ipv4Addr = ip.parse().expect("an IPv4 address");
        assert!(
            u32::from(addr) >> 20 == SERVICE_CIDR_BASE >> 20,
            "{ip} in 10.96.0.0/12"
        );
        let node_port = web["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .expect("a node port");
        assert!((30000..=32767).contains(&node_port));

        // Stored again without them: the same values.
        let mut again = service("web", json!({"type": "NodePort", "ports": [{"port": 80}]}));
        assign(&store, "c1", &mut again, Some(&web))
            .await
            .expect("assigned");
        assert_eq!(again, web);

        // Another agent racing for the same first candidate gets another address.
        let clash = name_hash("shop/web");
        let mut other = service("web", json!({"ports": [{"port": 80}]}));
        other["metadata"]["namespace"] = json!("other");
        assign(&store, "c1", &mut other, None)
            .await
            .expect("assigned");
        assert_ne!(other["spec"]["clusterIP"], web["spec"]["clusterIP"]);
        assert_eq!(clash, name_hash("shop/web"), "the hash is deterministic");

        release(&store, "c1", &web).await.expect("released");
        let mut fresh = service("web", json!({"ports": [{"port": 80}]}));
        assign(&store, "c1", &mut fresh, None)
            .await
            .expect("assigned");
        assert_eq!(fresh["spec"]["clusterIP"], web["spec"]["clusterIP"]);
    }

    #[tokio::test]
    async fn headless_services_get_no_cluster_ip() {
        let store = MemoryStore::new();
        let mut headless = service(
            "db",
            json!({"clusterIP": "None", "ports": [{"port": 5432}]}),
        );
        assign(&store, "c1", &mut headless, None)
            .await
            .expect("assigned");
        assert_eq!(headless["spec"]["clusterIP"], "None");
    }
}
