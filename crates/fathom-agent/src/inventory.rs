//! Who is who on this node: pod endpoints by IP and by cgroup, from the lab's state files
//! (and, later, the Kubernetes API or a static file). Rebuilt wholesale on refresh: the
//! sources are small and a consistent snapshot is simpler than incremental edits.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use fathom_model::Endpoint;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ips: Vec<IpAddr>,
    pub cgroup_id: u64,
    pub host_ifname: String,
    pub host_ifindex: u32,
}

/// How stale [`Inventory::current`] may be: well under the consumers' 1 s refresh, so a new
/// lab is seen within one of their ticks.
const SHARED_MAX_AGE: Duration = Duration::from_millis(250);

/// The labs this agent watches (empty: all). Process-wide like [`Inventory::current`], whose
/// every consumer must see the same pods; set once at agent start.
static LAB_SCOPE: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Watch only these labs from now on (empty: every lab on the node).
pub fn set_lab_scope(labs: &[String]) {
    if let Ok(mut g) = LAB_SCOPE.write() {
        *g = labs.to_vec();
    }
}

fn in_scope(lab: &str) -> bool {
    LAB_SCOPE
        .read()
        .map(|g| g.is_empty() || g.iter().any(|l| l == lab))
        .unwrap_or(true)
}

#[derive(Debug, Default, Clone)]
pub struct Inventory {
    by_ip: HashMap<IpAddr, Arc<PodInfo>>,
    by_cgroup: HashMap<u64, Arc<PodInfo>>,
    pods: Vec<Arc<PodInfo>>,
}

impl Inventory {
    pub fn from_pods(pods: Vec<PodInfo>) -> Self {
        let mut inv = Inventory::default();
        for p in pods {
            let p = Arc::new(p);
            for ip in &p.ips {
                inv.by_ip.insert(*ip, Arc::clone(&p));
            }
            if p.cgroup_id != 0 {
                inv.by_cgroup.insert(p.cgroup_id, Arc::clone(&p));
            }
            inv.pods.push(p);
        }
        inv
    }

    /// The node's inventory, read at most once per `SHARED_MAX_AGE` for the whole agent:
    /// the kernel, pipeline, live L7 and shield threads all refresh every second, and each
    /// re-reading every lab's state files would multiply the same work.
    pub fn current() -> Arc<Inventory> {
        static SHARED: Mutex<Option<(Instant, Arc<Inventory>)>> = Mutex::new(None);
        let Ok(mut g) = SHARED.lock() else {
            return Arc::new(Inventory::from_labs());
        };
        match &*g {
            Some((at, inv)) if at.elapsed() < SHARED_MAX_AGE => Arc::clone(inv),
            _ => {
                let inv = Arc::new(Inventory::from_labs());
                *g = Some((Instant::now(), Arc::clone(&inv)));
                inv
            }
        }
    }

    /// The pods of every running lab in scope ([`set_lab_scope`]). A lab whose state cannot be
    /// read is skipped with a warning: one broken file must not blind the agent to the others.
    pub fn from_labs() -> Self {
        let labs = match fathom_lab::list_labs() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("reading lab inventory: {e}");
                return Inventory::default();
            }
        };
        let pods = labs
            .iter()
            .filter(|lab| in_scope(&lab.name))
            .flat_map(|lab| lab.pods.iter())
            .map(|p| PodInfo {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                labels: p.labels.clone().into_iter().collect(),
                ips: vec![IpAddr::V4(p.ipv4), IpAddr::V6(p.ipv6)],
                cgroup_id: p.cgroup_id,
                host_ifname: p.host_veth.clone(),
                host_ifindex: p.host_ifindex,
            })
            .collect();
        Inventory::from_pods(pods)
    }

    pub fn pods(&self) -> &[Arc<PodInfo>] {
        &self.pods
    }

    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Arc<PodInfo>> {
        self.by_ip.get(&ip)
    }

    pub fn pod_by_cgroup(&self, id: u64) -> Option<&Arc<PodInfo>> {
        self.by_cgroup.get(&id)
    }

    pub fn endpoint(&self, ip: IpAddr, port: u16) -> Endpoint {
        let mut ep = Endpoint::new(ip, port);
        if let Some(p) = self.pod_by_ip(ip) {
            ep.pod = Some(p.name.clone());
            ep.namespace = Some(p.namespace.clone());
            ep.labels = p.labels.clone();
        }
        ep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_pod_identity_by_ip() {
        let inv = Inventory::from_pods(vec![PodInfo {
            namespace: "x".into(),
            name: "a".into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            ips: vec!["10.213.0.10".parse().unwrap(), "fd66::10".parse().unwrap()],
            cgroup_id: 99,
            host_ifname: "fhabc000".into(),
            host_ifindex: 12,
        }]);
        let ep = inv.endpoint("fd66::10".parse().unwrap(), 80);
        assert_eq!(ep.pod_name().as_deref(), Some("x/a"));
        assert_eq!(ep.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(inv.pod_by_cgroup(99).map(|p| p.name.as_str()), Some("a"));
        assert!(inv.endpoint("10.0.0.1".parse().unwrap(), 1).pod.is_none());
    }
}
