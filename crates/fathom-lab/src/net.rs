//! Links, network namespaces and addresses, by shelling out to iproute2's `ip`.
//!
//! `ip` is on every host the lab runs on, its behaviour is what people debug with anyway, and its error messages are
//! good; a netlink crate would add a large dependency to save a few milliseconds per pod. Every call checks the exit
//! status and puts the command line and stderr into the error.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::process::Command;

use serde::Deserialize;

use crate::error::{LabError, Result};
use crate::paths;

/// Run `ip ARGS…`; stdout on success.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        LabError::io(
            format!("running `ip {}` (is iproute2 installed?)", args.join(" ")),
            e,
        )
    })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: format!("ip {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The fields of `ip -j link show` we use.
#[derive(Debug, Clone, Deserialize)]
pub struct LinkInfo {
    pub ifindex: u32,
    pub ifname: String,
}

fn parse_links(json: &str) -> Result<Vec<LinkInfo>> {
    // `ip -j` prints nothing at all (not "[]") in some versions when there is nothing to show.
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(json).map_err(|e| LabError::Other {
        context: "parsing `ip -j link show` output".into(),
        message: e.to_string(),
    })
}

/// All links in the host netns, by name.
pub fn host_links() -> Result<BTreeMap<String, LinkInfo>> {
    Ok(parse_links(&ip(&["-j", "link", "show"])?)?
        .into_iter()
        .map(|l| (l.ifname.clone(), l))
        .collect())
}

/// One link in the host netns (or in netns `netns`).
pub fn link(netns: Option<&str>, name: &str) -> Result<LinkInfo> {
    let mut args = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-j", "link", "show", "dev", name]);
    parse_links(&ip(&args)?)?
        .into_iter()
        .next()
        .ok_or_else(|| LabError::Other {
            context: format!("looking up link {name}"),
            message: "`ip link show` returned nothing".into(),
        })
}

/// Create the lab bridge. It gets no IP address (addresses live only inside the pods, so the host never routes lab
/// traffic), and IPv6 is disabled on it so the kernel does not give it a link-local address or send router
/// solicitations/MLD into the lab either. `nf_call_*tables 0` asks br_netfilter not to pass bridged frames through
/// the host's iptables (e.g. Docker's FORWARD DROP); note the kernel ORs this with the global
/// `net.bridge.bridge-nf-call-*` sysctls, see [`crate::host_warnings`]. Multicast snooping is off so that IPv6
/// neighbour discovery is flooded as on a plain switch, with no dependence on an MLD querier.
pub fn create_bridge(bridge: &str) -> Result<()> {
    ip(&[
        "link",
        "add",
        bridge,
        "type",
        "bridge",
        "nf_call_iptables",
        "0",
        "nf_call_ip6tables",
        "0",
        "nf_call_arptables",
        "0",
        "mcast_snooping",
        "0",
    ])?;
    disable_host_ipv6(bridge)?;
    ip(&["link", "set", "dev", bridge, "up"])?;
    Ok(())
}

/// Disable IPv6 on a host-netns interface (see [`create_bridge`]). A host without IPv6 has no such sysctl; fine.
fn disable_host_ipv6(ifname: &str) -> Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    match std::fs::write(&path, "1") {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(LabError::io(format!("writing {path}"), e))
        }
        _ => Ok(()),
    }
}

pub fn add_netns(netns: &str) -> Result<()> {
    ip(&["netns", "add", netns]).map(drop)
}

/// Everything one pod's network needs, given its netns exists: the veth pair (peer created directly inside the
/// netns as `eth0`, with a MAC derived from lab id and index so it is unique and predictable), the host side on
/// the bridge, `lo` up, and both addresses. The IPv6 address is added `nodad` so it is usable at once instead of
/// after ~1 s of duplicate address detection (nobody else can own it: the /64 is reserved for this lab).
pub struct PodNet<'a> {
    pub netns: &'a str,
    pub host_veth: &'a str,
    pub bridge: &'a str,
    pub pod_ifname: &'a str,
    pub mac: &'a str,
    pub ipv4_cidr: &'a str,
    pub ipv6_cidr: &'a str,
}

pub fn setup_pod(p: &PodNet<'_>) -> Result<()> {
    ip(&[
        "link",
        "add",
        p.host_veth,
        "type",
        "veth",
        "peer",
        "name",
        p.pod_ifname,
        "address",
        p.mac,
        "netns",
        p.netns,
    ])?;
    disable_host_ipv6(p.host_veth)?;
    ip(&["link", "set", "dev", p.host_veth, "master", p.bridge, "up"])?;
    ip(&["-n", p.netns, "link", "set", "dev", "lo", "up"])?;
    ip(&[
        "-n",
        p.netns,
        "addr",
        "add",
        p.ipv4_cidr,
        "dev",
        p.pod_ifname,
    ])?;
    ip(&[
        "-n",
        p.netns,
        "-6",
        "addr",
        "add",
        p.ipv6_cidr,
        "dev",
        p.pod_ifname,
        "nodad",
    ])?;
    ip(&["-n", p.netns, "link", "set", "dev", p.pod_ifname, "up"])?;
    Ok(())
}

/// Delete a host link; a link that is already gone is success (teardown is idempotent).
pub fn delete_link(name: &str) -> Result<()> {
    match ip(&["link", "del", "dev", name]) {
        Err(LabError::Command { stderr, .. }) if stderr.contains("Cannot find device") => Ok(()),
        other => other.map(drop),
    }
}

/// Delete a netns (its bind mount); one that is already gone is success.
pub fn delete_netns(netns: &str) -> Result<()> {
    if !paths::netns_path(netns).exists() {
        return Ok(());
    }
    match ip(&["netns", "del", netns]) {
        Err(LabError::Command { stderr, .. }) if stderr.contains("No such file") => Ok(()),
        other => other.map(drop),
    }
}

/// Names of all netns under /run/netns starting with `prefix`.
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(paths::NETNS_DIR) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json() {
        let json = r#"[{"ifindex":7,"ifname":"fh0a1b2c000","flags":["UP"],"master":"fb0a1b2c","address":"aa:bb:cc:dd:ee:ff"}]"#;
        let l = parse_links(json).unwrap();
        assert_eq!((l[0].ifindex, l[0].ifname.as_str()), (7, "fh0a1b2c000"));
        assert!(parse_links("").unwrap().is_empty());
    }
}
