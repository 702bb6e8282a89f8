//! `up`: plan a lab from a spec, create it, publish its state; on any failure remove everything created so far.
//!
//! The plan (every name and address) is computed before anything is touched, and teardown works from the plan plus
//! whatever it finds carrying the lab's id, so rollback after a failure at any step is the same code as `down`.

use std::io::Read;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cgroup;
use crate::down::teardown;
use crate::error::{LabError, Result};
use crate::net::{self, PodNet};
use crate::paths;
use crate::spec::{validate_lab_name, LabSpec, DEFAULT_LAB_NAME, NAMESPACE_NAME_LABEL};
use crate::state::{self, LabNamespace, LabPod, LabState};
use crate::subnet;

/// Entry point for creating labs.
pub struct Lab;

/// Options for [`Lab::up_with`].
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Lab name; overrides `spec.name`.
    pub name: Option<String>,
    /// Test hook: fail on purpose at this point (to prove rollback leaves nothing behind).
    #[doc(hidden)]
    pub fail_at: Option<FailPoint>,
}

/// Where [`UpOptions::fail_at`] makes `up` fail.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// After the lab cgroup directory exists.
    AfterCgroup,
    /// After the bridge exists.
    AfterBridge,
    /// After this many pods are complete.
    AfterPods(usize),
    /// After everything exists, just before the state file is written.
    BeforeState,
}

impl Lab {
    /// Create the lab described by `spec` (name from `spec.name`, else "lab").
    pub fn up(spec: &LabSpec) -> Result<LabState> {
        Self::up_with(spec, &UpOptions::default())
    }

    /// Create a lab. Nothing is left behind on error; errors after resources were touched are [`LabError::Up`]
    /// and carry the lab id.
    pub fn up_with(spec: &LabSpec, opts: &UpOptions) -> Result<LabState> {
        spec.validate()?;
        let name = opts
            .name
            .clone()
            .or_else(|| spec.name.clone())
            .unwrap_or_else(|| DEFAULT_LAB_NAME.to_string());
        validate_lab_name(&name)?;
        if !nix::unistd::geteuid().is_root() {
            return Err(LabError::NotRoot);
        }
        let state_dir = paths::state_dir();
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| LabError::io(format!("creating {}", state_dir.display()), e))?;
        // Fast, friendly check; the authoritative one is the no-clobber link when the state is published.
        let state_file = paths::state_file(&name);
        if state_file.exists() {
            return Err(LabError::AlreadyExists {
                name,
                path: state_file,
            });
        }
        let cgroup2 = paths::cgroup2_mount()?;
        let id = fresh_id()?;
        let index = subnet::reserve(&id, &name)?;

        let mut plan = plan(spec, &name, &id, index, &cgroup2);
        match build(&mut plan, opts.fail_at).and_then(|()| {
            fail_if(opts.fail_at, FailPoint::BeforeState)?;
            state::write_state_new(&plan)
        }) {
            Ok(()) => Ok(plan),
            Err(source) => {
                let mut rollback = teardown(&plan);
                if rollback.is_empty() {
                    if let Err(e) = subnet::release(index, &id) {
                        rollback.push(e.to_string());
                    }
                }
                // A lost race for the name is still "already exists" to the caller.
                if let LabError::AlreadyExists { .. } = source {
                    if rollback.is_empty() {
                        return Err(source);
                    }
                }
                Err(LabError::Up {
                    name,
                    id,
                    source: Box::new(source),
                    rollback,
                })
            }
        }
    }
}

/// Random 6-hex-digit id not used by any current reservation (ids are in every object name, so they must not clash).
fn fresh_id() -> Result<String> {
    let taken: Vec<String> = subnet::list()
        .into_iter()
        .filter_map(|(_, r)| r.map(|r| r.id))
        .collect();
    let mut urandom =
        std::fs::File::open("/dev/urandom").map_err(|e| LabError::io("opening /dev/urandom", e))?;
    loop {
        let mut b = [0u8; 3];
        urandom
            .read_exact(&mut b)
            .map_err(|e| LabError::io("reading /dev/urandom", e))?;
        let id = format!("{:02x}{:02x}{:02x}", b[0], b[1], b[2]);
        if !taken.contains(&id) {
            return Ok(id);
        }
    }
}

/// Every name and address of the lab, computed up front; ifindexes and cgroup ids are filled in by [`build`].
fn plan(spec: &LabSpec, name: &str, id: &str, index: u8, cgroup2: &std::path::Path) -> LabState {
    let namespaces: Vec<LabNamespace> = spec
        .namespaces
        .iter()
        .map(|ns| {
            let mut labels = ns.labels.clone();
            labels.insert(NAMESPACE_NAME_LABEL.to_string(), ns.name.clone());
            LabNamespace {
                name: ns.name.clone(),
                labels,
            }
        })
        .collect();
    let mut pods = Vec::new();
    for (ns_spec, ns) in spec.namespaces.iter().zip(&namespaces) {
        for pod in &ns_spec.pods {
            let idx = pods.len();
            pods.push(LabPod {
                namespace: ns.name.clone(),
                name: pod.name.clone(),
                labels: pod.labels.clone(),
                namespace_labels: ns.labels.clone(),
                ports: pod.ports.clone(),
                ipv4: subnet::pod_ipv4(index, idx),
                ipv6: subnet::pod_ipv6(index, idx),
                netns: paths::netns_name(id, &ns.name, &pod.name),
                host_veth: paths::host_veth_name(id, idx),
                host_ifindex: 0,
                pod_ifname: "eth0".to_string(),
                pod_mac: pod_mac(id, idx),
                cgroup_path: paths::pod_cgroup(cgroup2, id, &ns.name, &pod.name),
                cgroup_id: 0,
            });
        }
    }
    LabState {
        name: name.to_string(),
        id: id.to_string(),
        created: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
        bridge: paths::bridge_name(id),
        bridge_ifindex: 0,
        subnet_index: index,
        ipv4_subnet: subnet::ipv4_subnet(index),
        ipv6_subnet: subnet::ipv6_subnet(index),
        cgroup_dir: paths::lab_cgroup(cgroup2, id),
        namespaces,
        pods,
    }
}

/// Locally administered unicast MAC `02:<id>:00:<idx>`: unique among concurrent labs (ids differ) and readable.
fn pod_mac(id: &str, idx: usize) -> String {
    format!(
        "02:{}:{}:{}:{:02x}:{:02x}",
        &id[0..2],
        &id[2..4],
        &id[4..6],
        (idx >> 8) & 0xff,
        idx & 0xff
    )
}

fn fail_if(fail_at: Option<FailPoint>, here: FailPoint) -> Result<()> {
    if fail_at == Some(here) {
        return Err(LabError::Injected(format!("{here:?}")));
    }
    Ok(())
}

fn build(plan: &mut LabState, fail_at: Option<FailPoint>) -> Result<()> {
    let parent = plan
        .cgroup_dir
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    // A concurrent `down` of the last other lab may remove the shared parent between our mkdir -p and mkdir, so
    // retry a few times on ENOENT.
    let mut attempts = 0;
    let _lab_cgroup_id = loop {
        std::fs::create_dir_all(&parent)
            .map_err(|e| LabError::io(format!("creating {}", parent.display()), e))?;
        match cgroup::create(&plan.cgroup_dir) {
            Err(LabError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && attempts < 3 =>
            {
                attempts += 1;
            }
            other => break other?,
        }
    };
    fail_if(fail_at, FailPoint::AfterCgroup)?;

    net::create_bridge(&plan.bridge)?;
    plan.bridge_ifindex = net::link(None, &plan.bridge)?.ifindex;
    fail_if(fail_at, FailPoint::AfterBridge)?;
    fail_if(fail_at, FailPoint::AfterPods(0))?;

    let (v4_len, v6_len) = (plan.ipv4_subnet.prefix_len(), plan.ipv6_subnet.prefix_len());
    for i in 0..plan.pods.len() {
        let pod = &plan.pods[i];
        let context = format!("creating pod {}", pod.full_name());
        let with_context = |e: LabError| LabError::Other {
            context: context.clone(),
            message: e.to_string(),
        };
        net::add_netns(&pod.netns).map_err(with_context)?;
        net::setup_pod(&PodNet {
            netns: &pod.netns,
            host_veth: &pod.host_veth,
            bridge: &plan.bridge,
            pod_ifname: &pod.pod_ifname,
            mac: &pod.pod_mac,
            ipv4_cidr: &format!("{}/{v4_len}", pod.ipv4),
            ipv6_cidr: &format!("{}/{v6_len}", pod.ipv6),
        })
        .map_err(with_context)?;
        let host_ifindex = net::link(None, &pod.host_veth)
            .map_err(with_context)?
            .ifindex;
        let cgroup_id = cgroup::create(&pod.cgroup_path).map_err(with_context)?;
        let pod = &mut plan.pods[i];
        pod.host_ifindex = host_ifindex;
        pod.cgroup_id = cgroup_id;
        fail_if(fail_at, FailPoint::AfterPods(i + 1))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_deterministic_and_complete() {
        let spec = LabSpec::demo();
        let p = plan(
            &spec,
            "demo",
            "0a1b2c",
            5,
            std::path::Path::new("/sys/fs/cgroup"),
        );
        assert_eq!(p.bridge, "fb0a1b2c");
        assert_eq!(p.pods.len(), spec.pod_count());
        let first = &p.pods[0];
        assert_eq!(first.host_veth, "fh0a1b2c000");
        assert_eq!(first.pod_mac, "02:0a:1b:2c:00:00");
        assert_eq!(first.ipv4.to_string(), "10.213.5.10");
        assert!(first.netns.starts_with("fathom-0a1b2c-"));
        assert!(first
            .cgroup_path
            .starts_with("/sys/fs/cgroup/fathom-lab/0a1b2c"));
        assert_eq!(
            first.namespace_labels.get(NAMESPACE_NAME_LABEL),
            Some(&first.namespace)
        );
    }
}
