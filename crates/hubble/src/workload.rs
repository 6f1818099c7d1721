//! A pod's workload as Hubble names it, from the controller in its owner references: a
//! ReplicaSet named `<deployment>-<hash>` shows as its Deployment, a Job named
//! `<cronjob>-<scheduled minute>` as its CronJob (the names the controllers generate), any
//! other owner as itself.

use cilium_hubble_proto::flow::Workload;

/// One entry of a Pod's `metadata.ownerReferences`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerReference {
    /// `kind`, e.g. `ReplicaSet`.
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `controller`: this owner manages the pod.
    pub controller: bool,
}

/// The workloads of a pod with these owners: the controller's (or, when no owner is marked
/// as the controller, the first owner's) workload; none for a pod without owners.
pub fn pod_workloads(owners: &[OwnerReference]) -> Vec<Workload> {
    owners
        .iter()
        .find(|owner| owner.controller)
        .or_else(|| owners.first())
        .map(workload_of)
        .into_iter()
        .collect()
}

/// The workload an owner stands for.
pub fn workload_of(owner: &OwnerReference) -> Workload {
    let generated = |kind: &str, is_suffix: fn(&str) -> bool| {
        owner
            .name
            .rsplit_once('-')
            .filter(|(base, suffix)| !base.is_empty() && is_suffix(suffix))
            .map(|(base, _)| Workload {
                name: base.to_string(),
                kind: kind.to_string(),
            })
    };
    let parent = match owner.kind.as_str() {
        "ReplicaSet" => generated("Deployment", |suffix| !suffix.is_empty()),
        "Job" => generated("CronJob", |suffix| {
            !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())
        }),
        _ => None,
    };
    parent.unwrap_or_else(|| Workload {
        name: owner.name.clone(),
        kind: owner.kind.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(kind: &str, name: &str, controller: bool) -> OwnerReference {
        OwnerReference {
            kind: kind.into(),
            name: name.into(),
            controller,
        }
    }

    fn workload(kind: &str, name: &str) -> Workload {
        Workload {
            name: name.into(),
            kind: kind.into(),
        }
    }

    #[test]
    fn generated_controllers_show_as_what_created_them() {
        assert_eq!(
            pod_workloads(&[owner("ReplicaSet", "deathstar-c74d84667", true)]),
            vec![workload("Deployment", "deathstar")]
        );
        assert_eq!(
            pod_workloads(&[owner("Job", "backup-28930140", true)]),
            vec![workload("CronJob", "backup")]
        );
        assert_eq!(
            pod_workloads(&[owner("Job", "migrate-db", true)]),
            vec![workload("Job", "migrate-db")],
            "a Job with a non-numeric suffix was created by hand"
        );
        assert_eq!(
            pod_workloads(&[owner("StatefulSet", "redis", true)]),
            vec![workload("StatefulSet", "redis")]
        );
        assert_eq!(
            pod_workloads(&[owner("ReplicaSet", "plain", true)]),
            vec![workload("ReplicaSet", "plain")],
            "no generated suffix: the ReplicaSet itself"
        );
    }

    #[test]
    fn the_controller_owner_wins_and_pods_without_owners_have_no_workload() {
        let owners = [
            owner("ConfigMap", "settings", false),
            owner("DaemonSet", "cilium", true),
        ];
        assert_eq!(
            pod_workloads(&owners),
            vec![workload("DaemonSet", "cilium")]
        );
        assert_eq!(
            pod_workloads(&[owner("DaemonSet", "agent", false)]),
            vec![workload("DaemonSet", "agent")],
            "no owner marked as controller: the first one"
        );
        assert!(pod_workloads(&[]).is_empty());
    }
}
