//! Fathom lab: network-namespace "pods" on one machine, so that tests and demos see real traffic.
//!
//! A lab is described by a YAML [`LabSpec`] (namespaces, pods, labels, named ports). [`Lab::up`] creates, in the
//! host network namespace, a bridge `fb<id>` (no IP address), and per pod a netns `fathom-<id>-<ns>-<pod>` joined
//! to the bridge by a veth pair (`fh<id><idx>` on the host, `eth0` in the pod) with an IPv4 address from
//! 10.213.N.0/24 and an IPv6 address from fd66:6174:686f:N::/64, plus a cgroup v2 directory
//! `<cgroup2>/fathom-lab/<id>/<ns>.<pod>`. Pods reach each other and nothing else (no default route). The
//! resulting [`LabState`] is written to `/run/fathom/lab/<name>.json`; [`list_labs`] reads it back (this is what the
//! agent uses to attach to the host veths and to map IPs and cgroup ids to pods).
//!
//! Run programs in a pod with [`LabPod::command`]; take labs down with [`down`] / [`down_all`], or let a
//! [`LabGuard`] do it. [`leftovers`] lists anything lab-shaped left on the host.
//!
//! Everything here needs root (netns, links, cgroups).

mod cgroup;
mod cli;
mod down;
mod error;
mod exec;
mod guard;
mod leftovers;
mod names;
mod net;
mod paths;
mod spec;
mod state;
mod subnet;
mod up;

pub use cli::{run, LabCommand, OutputFormat};
pub use down::{down, down_all, down_lab};
pub use error::{LabError, Result};
pub use guard::LabGuard;
pub use leftovers::{leftover_items, leftovers, leftovers_of, Leftover};
pub use paths::{STATE_DIR, SUBNET_DIR};
pub use spec::{
    validate_lab_name, LabSpec, Labels, NamespaceSpec, PodSpec, PortSpec, Protocol, SpecError,
    DEFAULT_LAB_NAME, MAX_PODS, NAMESPACE_NAME_LABEL,
};
pub use state::{list_labs, load_lab, LabNamespace, LabPod, LabState};
#[doc(hidden)]
pub use up::FailPoint;
pub use up::{Lab, UpOptions};

/// The demo lab (`labs/demo.yaml`): a few namespaces and pods with labels and named ports, for `make run` and tests.
pub const DEMO_SPEC: &str = include_str!("../labs/demo.yaml");

/// A lab name unique to this process and call: `<prefix>-<pid>-<counter><3 hex>`, cut to a valid DNS-1123 label. For tests,
/// which may run concurrently with other test binaries.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .to_string();
    // pid + per-process counter make the name unique among live processes; the time-derived salt guards against
    // a stale state file left by an earlier process that had the same pid.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() >> 10)
        .unwrap_or(0)
        & 0xfff;
    let suffix = format!("-{}-{n:x}{salt:03x}", std::process::id());
    let keep = 63usize.saturating_sub(suffix.len());
    let head: String = clean.chars().take(keep).collect();
    let head = head.trim_end_matches('-');
    if head.is_empty() {
        format!("lab{suffix}")
    } else {
        format!("{head}{suffix}")
    }
}

/// Host settings that can break lab traffic, as human-readable warnings (empty when all is well).
///
/// The bridge is created with `nf_call_iptables/ip6tables/arptables 0`, but the kernel ORs those with the global
/// `net.bridge.bridge-nf-call-*` sysctls: where `br_netfilter` is loaded and they are 1 (Docker, Kubernetes nodes),
/// bridged lab traffic still passes the host's iptables FORWARD chain, and a DROP policy there drops it.
pub fn host_warnings() -> Vec<String> {
    let on: Vec<&str> = ["iptables", "ip6tables", "arptables"]
        .into_iter()
        .filter(|t| {
            std::fs::read_to_string(format!("/proc/sys/net/bridge/bridge-nf-call-{t}"))
                .map(|v| v.trim() == "1")
                .unwrap_or(false)
        })
        .collect();
    if on.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "net.bridge.bridge-nf-call-{{{}}}=1: bridged lab traffic passes the host's netfilter FORWARD rules (the kernel \
         ORs these global sysctls with the lab bridge's own nf_call_*=0); if pods cannot reach each other, a FORWARD \
         DROP policy (e.g. Docker's) is the likely cause: accept traffic on fb+ bridges or set the sysctls to 0",
        on.join(",")
    )]
}

#[cfg(test)]
mod tests {
    #[test]
    fn unique_names_are_valid_and_distinct() {
        let a = super::unique_name("My_Test");
        let b = super::unique_name("My_Test");
        assert_ne!(a, b);
        assert!(a.starts_with("my-test-"), "{a}");
        super::validate_lab_name(&a).unwrap();
        let long = super::unique_name(&"x".repeat(100));
        assert!(long.len() <= 63);
        super::validate_lab_name(&long).unwrap();
        super::validate_lab_name(&super::unique_name("--")).unwrap();
    }
}
