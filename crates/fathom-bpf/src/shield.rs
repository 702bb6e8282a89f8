//! The XDP shield from user space: load `shield.bpf.c` (blocklist and counters pinned so they
//! outlive the agent), attach it to ingress interfaces (native XDP when the driver has it,
//! generic otherwise), edit the blocklist/allowlist, set the mode and rates, read counters and
//! drop events.
//!
//! Addresses: both lists are one LPM trie each, IPv4 stored IPv4-mapped with prefix 96 + len
//! (see bpf/shield.h), so one lookup per packet covers both families.

use std::collections::BTreeMap;
use std::fmt;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject, RingBuffer, RingBufferBuilder};
use serde::Serialize;

use crate::abi::shield::{
    ShieldAllowRaw, ShieldBlockRaw, ShieldConfigRaw, ShieldEventRaw, ShieldLpmKeyRaw,
    ShieldNoteRaw, ShieldProto, ShieldReason, ShieldStat, EV_SHIELD_DROP, MODE_MONITOR,
    SHIELD_NOTE_LEN, SHIELD_PROTO_MAX, SHIELD_REASON_MAX, SHIELD_STAT_MAX,
};
use crate::abi::Pod;
use crate::error::BpfError;
use crate::events::ip_from_raw;
use crate::skel::shield::{ShieldSkel, ShieldSkelBuilder};

/// Where the shield pins its state unless told otherwise.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/fathom/shield";

/// Maps pinned under the pin root: the blocklist (enforcement must survive a restart) and the
/// counters (so totals do not reset with the agent). The allowlist, config and buckets are
/// rebuilt from the agent's config on every start.
pub const PINNED_MAPS: &[&str] = &[
    "shield_blocklist",
    "shield_drops",
    "shield_protos",
    "shield_stats",
    "shield_notes",
];

/// Largest bucket capacity: tokens are kept in nano-tokens in a u64.
pub const MAX_BURST: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShieldMode {
    Enforce,
    Monitor,
}

impl std::str::FromStr for ShieldMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "enforce" => Ok(ShieldMode::Enforce),
            "monitor" => Ok(ShieldMode::Monitor),
            other => Err(format!(
                "unknown shield mode {other:?} (expected enforce or monitor)"
            )),
        }
    }
}

/// Per-source rate limits; a rate of 0 disables that limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RateLimits {
    pub syn_per_sec: u64,
    pub syn_burst: u64,
    pub packets_per_sec: u64,
    pub packet_burst: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShieldSettings {
    pub mode: ShieldMode,
    pub rates: RateLimits,
    /// Drop events per CPU per second (0: none; counters stay exact).
    pub events_per_sec: u32,
}

impl Default for ShieldSettings {
    fn default() -> Self {
        ShieldSettings {
            mode: ShieldMode::Enforce,
            rates: RateLimits::default(),
            events_per_sec: 100,
        }
    }
}

impl ShieldSettings {
    /// Refuse settings the kernel side cannot represent exactly.
    pub fn validate(&self) -> Result<(), String> {
        let r = &self.rates;
        for (name, rate, burst) in [
            ("syn", r.syn_per_sec, r.syn_burst),
            ("packet", r.packets_per_sec, r.packet_burst),
        ] {
            if burst > MAX_BURST {
                return Err(format!(
                    "{name} burst {burst} is above the maximum {MAX_BURST}"
                ));
            }
            if rate > 0 && burst == 0 {
                return Err(format!(
                    "{name} rate {rate}/s needs a burst of at least 1 (0 would drop everything)"
                ));
            }
            if rate > MAX_BURST {
                return Err(format!(
                    "{name} rate {rate}/s is above the maximum {MAX_BURST}/s"
                ));
            }
        }
        Ok(())
    }

    fn raw(&self, clock_ns: u64) -> ShieldConfigRaw {
        ShieldConfigRaw {
            mode: match self.mode {
                ShieldMode::Enforce => 0,
                ShieldMode::Monitor => MODE_MONITOR,
            },
            events_per_sec: self.events_per_sec,
            syn_rate: self.rates.syn_per_sec,
            syn_burst: self.rates.syn_burst,
            pkt_rate: self.rates.packets_per_sec,
            pkt_burst: self.rates.packet_burst,
            clock_ns,
        }
    }
}

/// How XDP ended up attached to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// In the driver: before any skb is allocated.
    Native,
    /// After skb allocation (drivers without XDP support): same verdicts, less saving.
    Generic,
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        })
    }
}

struct Attachment {
    name: String,
    mode: XdpMode,
    /// The bpf_link: closing it detaches the program, so a crashed agent leaves nothing attached.
    _link: OwnedFd,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShieldInterface {
    pub ifindex: u32,
    pub name: String,
    pub mode: XdpMode,
}

/// A blocklist entry as user space sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockEntry {
    pub cidr: IpNet,
    /// CLOCK_BOOTTIME ns; None: permanent.
    pub expires_ns: Option<u64>,
    pub added_ns: u64,
    /// 0: operator, 1: a detector's automatic response.
    pub origin: u32,
    /// Why, from the pinned notes map (so it survives an agent restart).
    pub reason: Option<String>,
}

pub const ORIGIN_OPERATOR: u32 = 0;
pub const ORIGIN_DETECTOR: u32 = 1;

/// Exact counters summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShieldCounters {
    /// Drops (or would-be drops in monitor mode) per reason name.
    pub drops: BTreeMap<&'static str, u64>,
    /// (packets, bytes) per protocol class name.
    pub protocols: BTreeMap<&'static str, (u64, u64)>,
    pub stats: BTreeMap<&'static str, u64>,
}

impl ShieldCounters {
    pub fn drop_count(&self, r: ShieldReason) -> u64 {
        self.drops.get(r.name()).copied().unwrap_or(0)
    }
    pub fn stat(&self, s: ShieldStat) -> u64 {
        self.stats.get(s.name()).copied().unwrap_or(0)
    }
    pub fn protocol(&self, p: ShieldProto) -> (u64, u64) {
        self.protocols.get(p.name()).copied().unwrap_or((0, 0))
    }
}

/// A decoded drop event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShieldDropEvent {
    pub reason: &'static str,
    pub ts_ns: u64,
    pub ifindex: u32,
    pub suppressed: u32,
    pub len: u32,
    pub proto: u8,
    pub tcp_flags: u8,
    /// Passed because the shield is in monitor mode.
    pub monitor: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

impl ShieldDropEvent {
    pub fn decode(data: &[u8]) -> Option<ShieldDropEvent> {
        let raw = ShieldEventRaw::from_bytes(data)?;
        if raw.r#type != EV_SHIELD_DROP {
            return None;
        }
        Some(ShieldDropEvent {
            reason: ShieldReason::from_raw(raw.reason)?.name(),
            ts_ns: raw.ts_ns,
            ifindex: raw.ifindex,
            suppressed: raw.suppressed,
            len: raw.len,
            proto: raw.proto,
            tcp_flags: raw.tcp_flags,
            monitor: raw.monitor != 0,
            src: ip_from_raw(&raw.saddr),
            dst: ip_from_raw(&raw.daddr),
            sport: raw.sport,
            dport: raw.dport,
        })
    }
}

/// Parse an operator-supplied CIDR (or bare address = one host). Host bits set are refused
/// rather than silently widened: `10.0.0.7/24` is almost always a typo.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty CIDR".into());
    }
    let net = if t.contains('/') {
        t.parse::<IpNet>().map_err(|_| {
            format!("invalid CIDR {t:?}: expected ADDRESS/PREFIX like 10.0.0.0/8 or fd00::/64")
        })?
    } else {
        let ip = t
            .parse::<IpAddr>()
            .map_err(|_| format!("invalid address {t:?}: expected an IPv4/IPv6 address or CIDR"))?;
        IpNet::from(ip)
    };
    if net.trunc() != net {
        return Err(format!(
            "CIDR {t} has host bits set (did you mean {}?)",
            net.trunc()
        ));
    }
    Ok(normalize(net))
}

/// `::ffff:a.b.c.d/N` (N ≥ 96) is the same set as `a.b.c.d/(N-96)`: show it as IPv4.
fn normalize(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if v6.prefix_len() >= 96 {
            if let Some(v4) = v6.network().to_ipv4_mapped() {
                if let Ok(n) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n);
                }
            }
        }
    }
    net
}

pub fn lpm_key(net: &IpNet) -> ShieldLpmKeyRaw {
    match net.trunc() {
        IpNet::V4(n) => ShieldLpmKeyRaw {
            prefixlen: 96 + n.prefix_len() as u32,
            addr: n.network().to_ipv6_mapped().octets(),
        },
        IpNet::V6(n) => ShieldLpmKeyRaw {
            prefixlen: n.prefix_len() as u32,
            addr: n.network().octets(),
        },
    }
}

pub fn net_from_key(k: &ShieldLpmKeyRaw) -> Option<IpNet> {
    let v6 = Ipv6Addr::from(k.addr);
    let len = u8::try_from(k.prefixlen).ok()?;
    normalize(IpNet::V6(Ipv6Net::new(v6, len).ok()?)).into()
}

/// CLOCK_BOOTTIME in ns: the clock of expiry times and of bpf_ktime_get_boot_ns().
pub fn boot_time_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

fn storage() -> &'static mut MaybeUninit<OpenObject> {
    Box::leak(Box::new(MaybeUninit::uninit()))
}

fn map_err(map: &'static str) -> impl FnOnce(libbpf_rs::Error) -> BpfError {
    move |source| BpfError::Map { map, source }
}

pub struct Shield {
    skel: ShieldSkel<'static>,
    settings: ShieldSettings,
    /// Tests only: a fixed clock for the program (0: the kernel's boot clock).
    clock_ns: u64,
    pin_root: Option<PathBuf>,
    attachments: BTreeMap<u32, Attachment>,
}

impl Shield {
    /// Load the shield. With a pin root, the pinned maps there are re-adopted (a previous
    /// agent's blocklist and counters) or created and pinned.
    pub fn load(pin_root: Option<&Path>, settings: &ShieldSettings) -> Result<Shield, BpfError> {
        settings.validate().map_err(BpfError::Other)?;
        crate::sensors::install_libbpf_print();
        let mut open = ShieldSkelBuilder::default()
            .open(storage())
            .map_err(|source| BpfError::Load {
                object: "shield",
                log: String::new(),
                source,
            })?;
        if let Some(root) = pin_root {
            crate::pin::ensure_bpffs_dir(root).map_err(BpfError::Other)?;
            let maps = &mut open.maps;
            for (name, map) in [
                (PINNED_MAPS[0], &mut maps.shield_blocklist),
                (PINNED_MAPS[1], &mut maps.shield_drops),
                (PINNED_MAPS[2], &mut maps.shield_protos),
                (PINNED_MAPS[3], &mut maps.shield_stats),
                (PINNED_MAPS[4], &mut maps.shield_notes),
            ] {
                map.set_pin_path(root.join(name))
                    .map_err(map_err("pin path"))?;
            }
        }
        let skel = open.load().map_err(|source| BpfError::Load {
            object: "shield",
            log: String::new(),
            source,
        })?;
        let s = Shield {
            skel,
            settings: *settings,
            clock_ns: 0,
            pin_root: pin_root.map(Path::to_path_buf),
            attachments: BTreeMap::new(),
        };
        s.write_config()?;
        Ok(s)
    }

    fn write_config(&self) -> Result<(), BpfError> {
        let raw = self.settings.raw(self.clock_ns);
        self.skel
            .maps
            .shield_config
            .update(&0u32.to_ne_bytes(), raw.as_bytes(), MapFlags::ANY)
            .map_err(map_err("shield_config"))
    }

    pub fn settings(&self) -> ShieldSettings {
        self.settings
    }

    /// New mode/rates, applied to the kernel in one map write (validated first).
    pub fn set_settings(&mut self, settings: &ShieldSettings) -> Result<(), BpfError> {
        settings.validate().map_err(BpfError::Other)?;
        self.settings = *settings;
        self.write_config()
    }

    /// Tests only: pin the program's clock (ns) so token-bucket refill is deterministic.
    pub fn set_test_clock(&mut self, ns: u64) -> Result<(), BpfError> {
        self.clock_ns = ns;
        self.write_config()
    }

    pub fn pin_root(&self) -> Option<&Path> {
        self.pin_root.as_deref()
    }

    // ---- blocklist / allowlist ----

    pub fn block(&self, net: &IpNet, expires_ns: Option<u64>, origin: u32) -> Result<(), BpfError> {
        let v = ShieldBlockRaw {
            expires_ns: expires_ns.unwrap_or(0),
            added_ns: boot_time_ns(),
            origin,
            pad: 0,
        };
        self.skel
            .maps
            .shield_blocklist
            .update(lpm_key(net).as_bytes(), v.as_bytes(), MapFlags::ANY)
            .map_err(map_err("shield_blocklist"))
    }

    /// Ok(false) when the CIDR was not in the list. Its note goes with it.
    pub fn unblock(&self, net: &IpNet) -> Result<bool, BpfError> {
        self.set_note(net, None)?;
        delete(
            &self.skel.maps.shield_blocklist,
            &lpm_key(net),
            "shield_blocklist",
        )
    }

    /// Keep (or, with None, forget) why `net` is blocked, in the pinned notes map: text
    /// longer than the slot is cut at a character boundary.
    pub fn set_note(&self, net: &IpNet, text: Option<&str>) -> Result<(), BpfError> {
        let map = &self.skel.maps.shield_notes;
        let key = lpm_key(net);
        let Some(text) = text else {
            delete(map, &key, "shield_notes")?;
            return Ok(());
        };
        let mut end = text.len().min(SHIELD_NOTE_LEN);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut v = ShieldNoteRaw {
            text: [0; SHIELD_NOTE_LEN],
        };
        v.text[..end].copy_from_slice(&text.as_bytes()[..end]);
        map.update(key.as_bytes(), v.as_bytes(), MapFlags::ANY)
            .map_err(map_err("shield_notes"))
    }

    /// Why `net` is blocked, if a reason was given.
    pub fn note(&self, net: &IpNet) -> Option<String> {
        let v = self
            .skel
            .maps
            .shield_notes
            .lookup(lpm_key(net).as_bytes(), MapFlags::ANY)
            .ok()??;
        ShieldNoteRaw::from_bytes(&v).map(|n| crate::abi::c_str(&n.text))
    }

    pub fn blocks(&self) -> Vec<BlockEntry> {
        let map = &self.skel.maps.shield_blocklist;
        let mut out = Vec::new();
        for k in map.keys() {
            let Some(key) = ShieldLpmKeyRaw::from_bytes(&k) else {
                continue;
            };
            let (Some(cidr), Ok(Some(v))) = (net_from_key(&key), map.lookup(&k, MapFlags::ANY))
            else {
                continue;
            };
            let Some(v) = ShieldBlockRaw::from_bytes(&v) else {
                continue;
            };
            out.push(BlockEntry {
                cidr,
                expires_ns: (v.expires_ns != 0).then_some(v.expires_ns),
                added_ns: v.added_ns,
                origin: v.origin,
                reason: self.note(&cidr),
            });
        }
        out.sort_by_key(|e| e.cidr);
        out
    }

    /// Remove entries expired at `now_ns` (boot clock); returns what was removed.
    pub fn reap_expired(&self, now_ns: u64) -> Vec<BlockEntry> {
        let mut gone = Vec::new();
        for e in self.blocks() {
            if e.expires_ns.is_some_and(|t| t <= now_ns)
                && matches!(self.unblock(&e.cidr), Ok(true))
            {
                gone.push(e);
            }
        }
        gone
    }

    pub fn allow(&self, net: &IpNet) -> Result<(), BpfError> {
        self.skel
            .maps
            .shield_allowlist
            .update(
                lpm_key(net).as_bytes(),
                ShieldAllowRaw::default().as_bytes(),
                MapFlags::ANY,
            )
            .map_err(map_err("shield_allowlist"))
    }

    pub fn disallow(&self, net: &IpNet) -> Result<bool, BpfError> {
        delete(
            &self.skel.maps.shield_allowlist,
            &lpm_key(net),
            "shield_allowlist",
        )
    }

    pub fn allows(&self) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self
            .skel
            .maps
            .shield_allowlist
            .keys()
            .filter_map(|k| ShieldLpmKeyRaw::from_bytes(&k).and_then(|k| net_from_key(&k)))
            .collect();
        out.sort();
        out
    }

    /// Replace the allowlist with `nets` (entries not in `nets` are removed).
    pub fn set_allowlist(&self, nets: &[IpNet]) -> Result<(), BpfError> {
        for n in nets {
            self.allow(n)?;
        }
        for old in self.allows() {
            if !nets.iter().any(|n| normalize(n.trunc()) == old) {
                self.disallow(&old)?;
            }
        }
        Ok(())
    }

    // ---- counters and events ----

    pub fn counters(&self) -> ShieldCounters {
        let m = &self.skel.maps;
        let mut c = ShieldCounters::default();
        for r in ShieldReason::ALL {
            c.drops
                .insert(r.name(), sum_percpu(&m.shield_drops, r as u32));
        }
        for p in ShieldProto::ALL {
            let i = p as u32 * 2;
            c.protocols.insert(
                p.name(),
                (
                    sum_percpu(&m.shield_protos, i),
                    sum_percpu(&m.shield_protos, i + 1),
                ),
            );
        }
        for s in ShieldStat::ALL {
            c.stats
                .insert(s.name(), sum_percpu(&m.shield_stats, s as u32));
        }
        debug_assert_eq!(c.drops.len(), SHIELD_REASON_MAX);
        debug_assert_eq!(c.protocols.len(), SHIELD_PROTO_MAX);
        debug_assert_eq!(c.stats.len(), SHIELD_STAT_MAX);
        c
    }

    /// Zero every counter (all CPUs).
    pub fn reset_counters(&self) -> Result<(), BpfError> {
        let m = &self.skel.maps;
        let ncpu = libbpf_rs::num_possible_cpus().map_err(map_err("cpus"))?;
        let zeros = vec![vec![0u8; 8]; ncpu];
        for (map, n, name) in [
            (&m.shield_drops, SHIELD_REASON_MAX, "shield_drops"),
            (&m.shield_protos, SHIELD_PROTO_MAX * 2, "shield_protos"),
            (&m.shield_stats, SHIELD_STAT_MAX, "shield_stats"),
        ] {
            for i in 0..n as u32 {
                map.update_percpu(&i.to_ne_bytes(), &zeros, MapFlags::ANY)
                    .map_err(map_err(name))?;
            }
        }
        Ok(())
    }

    /// Number of per-source token buckets currently held.
    pub fn bucket_count(&self) -> usize {
        self.skel.maps.shield_buckets.keys().count()
    }

    /// A reader of drop events; records that do not decode are skipped.
    pub fn ring_buffer<F>(&self, mut sink: F) -> Result<RingBuffer<'static>, BpfError>
    where
        F: FnMut(ShieldDropEvent) + 'static,
    {
        let mut b = RingBufferBuilder::new();
        b.add(&self.skel.maps.shield_events, move |data: &[u8]| {
            if let Some(e) = ShieldDropEvent::decode(data) {
                sink(e);
            }
            0
        })
        .map_err(map_err("shield_events"))?;
        b.build().map_err(map_err("shield_events"))
    }

    // ---- attach ----

    /// Attach to an interface: native XDP first, generic if the driver refuses.
    pub fn attach(&mut self, ifindex: u32, name: &str) -> Result<XdpMode, BpfError> {
        if let Some(a) = self.attachments.get(&ifindex) {
            return Ok(a.mode);
        }
        let prog = self.skel.progs.shield_xdp.as_fd().as_raw_fd();
        let mut last = String::new();
        for (mode, flags) in [
            (XdpMode::Native, libbpf_sys::XDP_FLAGS_DRV_MODE),
            (XdpMode::Generic, libbpf_sys::XDP_FLAGS_SKB_MODE),
        ] {
            let opts = libbpf_sys::bpf_link_create_opts {
                sz: std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _,
                flags,
                ..Default::default()
            };
            // SAFETY: prog is a valid program fd owned by the skeleton; opts is initialised.
            let fd = unsafe {
                libbpf_sys::bpf_link_create(prog, ifindex as i32, libbpf_sys::BPF_XDP, &opts)
            };
            if fd >= 0 {
                // SAFETY: bpf_link_create returned a new fd that nothing else owns.
                let link = unsafe { OwnedFd::from_raw_fd(fd) };
                self.attachments.insert(
                    ifindex,
                    Attachment {
                        name: name.to_string(),
                        mode,
                        _link: link,
                    },
                );
                return Ok(mode);
            }
            last = format!("{mode}: {}", std::io::Error::from_raw_os_error(-fd));
        }
        Err(BpfError::Other(format!(
            "attaching XDP shield to {name} (ifindex {ifindex}): {last}"
        )))
    }

    pub fn detach(&mut self, ifindex: u32) {
        self.attachments.remove(&ifindex);
    }

    pub fn interfaces(&self) -> Vec<ShieldInterface> {
        self.attachments
            .iter()
            .map(|(i, a)| ShieldInterface {
                ifindex: *i,
                name: a.name.clone(),
                mode: a.mode,
            })
            .collect()
    }

    /// Run the program once per `repeat` over `packet` (BPF_PROG_TEST_RUN); returns the XDP
    /// action and the kernel's mean time per run.
    pub fn test_run(&self, packet: &[u8], repeat: u32) -> Result<(u32, Duration), BpfError> {
        let input = libbpf_rs::ProgramInput {
            data_in: Some(packet),
            repeat,
            ..Default::default()
        };
        let out = self
            .skel
            .progs
            .shield_xdp
            .test_run(input)
            .map_err(|e| BpfError::Other(format!("BPF_PROG_TEST_RUN: {e}")))?;
        Ok((out.return_value, out.duration))
    }

    /// The raw program fd (for status: id, run counts).
    pub fn program(&self) -> &libbpf_rs::Program<'static> {
        &self.skel.progs.shield_xdp
    }
}

/// Remove the shield's pins (for `fathom uninstall`); returns the paths removed.
pub fn remove_pins(pin_root: &Path) -> Result<Vec<PathBuf>, String> {
    let removed = crate::pin::remove_files(pin_root, PINNED_MAPS)?;
    // The directory goes too when nothing else lives there.
    let _ = std::fs::remove_dir(pin_root);
    Ok(removed)
}

fn delete(map: &dyn MapCore, key: &ShieldLpmKeyRaw, name: &'static str) -> Result<bool, BpfError> {
    match map.delete(key.as_bytes()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(BpfError::Map {
            map: name,
            source: e,
        }),
    }
}

fn sum_percpu(map: &dyn MapCore, idx: u32) -> u64 {
    let Ok(Some(per_cpu)) = map.lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY) else {
        return 0;
    };
    per_cpu
        .iter()
        .filter_map(|b| b.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()))
        .map(u64::from_ne_bytes)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_normalise_and_refuse_garbage() {
        assert_eq!(parse_cidr("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(parse_cidr("fd00::/64").unwrap().to_string(), "fd00::/64");
        assert_eq!(parse_cidr("fd00::1").unwrap().to_string(), "fd00::1/128");
        assert_eq!(
            parse_cidr("::ffff:10.0.0.0/104").unwrap().to_string(),
            "10.0.0.0/8"
        );
        let e = parse_cidr("10.0.0.7/24").unwrap_err();
        assert!(e.contains("host bits") && e.contains("10.0.0.0/24"), "{e}");
        assert!(parse_cidr("10.0.0.0/33")
            .unwrap_err()
            .contains("invalid CIDR"));
        assert!(parse_cidr("banana")
            .unwrap_err()
            .contains("invalid address"));
        assert!(parse_cidr("").is_err());
    }

    #[test]
    fn lpm_keys_round_trip_both_families() {
        for s in [
            "10.0.0.0/8",
            "192.168.1.5/32",
            "0.0.0.0/0",
            "fd00::/64",
            "::/0",
            "2001:db8::1/128",
        ] {
            let n = parse_cidr(s).unwrap();
            let k = lpm_key(&n);
            assert_eq!(net_from_key(&k), Some(n), "{s}");
        }
        let k = lpm_key(&parse_cidr("10.0.0.0/8").unwrap());
        assert_eq!(k.prefixlen, 104);
        assert_eq!(&k.addr[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
    }

    #[test]
    fn settings_validation() {
        let mut s = ShieldSettings::default();
        assert!(s.validate().is_ok());
        s.rates.syn_per_sec = 10;
        assert!(s.validate().unwrap_err().contains("burst"));
        s.rates.syn_burst = MAX_BURST + 1;
        assert!(s.validate().unwrap_err().contains("maximum"));
        s.rates.syn_burst = 5;
        assert!(s.validate().is_ok());
        assert!("monitor".parse::<ShieldMode>().is_ok());
        assert!("block"
            .parse::<ShieldMode>()
            .unwrap_err()
            .contains("enforce or monitor"));
    }
}
