//! policy.bpf.c from user space: load with configured map sizes, attach to endpoint interfaces,
//! apply a compiled policy atomically (standby slot written, then the generation flipped), read
//! per-decision counters and verdict events, and run the program on crafted packets.
//!
//! This module takes map entries as raw bytes (`fathom_policy::Compiled::policy_map_entries`
//! gives them) so that the kernel side does not depend on the policy crate.
//!
//! Pinned (`load_pinned`): the maps and the TCX links live under a pin root on bpffs, so the
//! programs keep enforcing while no agent runs. The next agent re-adopts them: it reuses the
//! maps (the generation continues, so it writes only the standby slot) and swaps its own
//! program into each link with `bpf_link_update` (see [`PolicyDatapath::attach`]).

use std::collections::{BTreeMap, HashMap};
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject, RingBuffer, RingBufferBuilder};
use serde::Serialize;

use crate::abi::policy::*;
use crate::abi::Pod;
use crate::error::BpfError;
use crate::events::ip_from_raw;
use crate::percpu_array;
use crate::skel::policy::{PolicySkel, PolicySkelBuilder};
use crate::tc::{self, TcAttachment, TcMode};

/// Time a slot stays untouched after it stopped being the active one, so that program runs
/// that read the old generation (microseconds) are long finished before it is rewritten.
const SLOT_GRACE: Duration = Duration::from_millis(20);

/// Where the policy datapath pins its maps and links unless told otherwise.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/fathom/policy";

/// Maps pinned under the pin root, and why each must outlive the agent:
/// - the six slot maps and `policy_state`: the programs left on the links keep enforcing the
///   active slot while no agent runs, and the next agent must read the generation to write
///   only the standby slot (rewriting the active one would break the flip's atomicity);
/// - `policy_endpoints`, `policy_endpoint_slots`: which interfaces are enforced, read by
///   those programs;
/// - `policy_ct`: established connections (a reply passes on its connection's entry; without
///   it, the reply to an allowed connection would be judged as a new connection the other
///   way and could be dropped);
/// - `policy_counters`, `policy_stats`: so counts continue across a restart.
///
/// Not pinned: `policy_events` (a ring buffer nobody reads while no agent runs: verdicts in
/// that window are counted, not recorded) and `.rodata` (set at load).
pub const PINNED_MAPS: &[&str] = &[
    "policy_rules0",
    "policy_rules1",
    "policy_ipcache0",
    "policy_ipcache1",
    "policy_ipcache_exact0",
    "policy_ipcache_exact1",
    "policy_state",
    "policy_endpoints",
    "policy_endpoint_slots",
    "policy_ct",
    "policy_counters",
    "policy_stats",
];

/// Under the pin root: one pinned TCX link per interface and direction, named
/// `<ifindex>-from-endpoint` / `<ifindex>-to-endpoint` after the program it runs.
const LINK_DIR: &str = "links";
const LINK_SUFFIXES: [&str; 2] = ["from-endpoint", "to-endpoint"];

/// Map sizes, fixed at load.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PolicyConfig {
    /// Entries of each policy trie (one per slot).
    pub policy_capacity: u32,
    /// Entries of each ipcache trie (one per slot).
    pub ipcache_capacity: u32,
    /// Conntrack entries (LRU).
    pub ct_capacity: u32,
    /// Per-decision counters, both slots together: a policy may have up to
    /// `counter_capacity / 2 - 1` decisions.
    pub counter_capacity: u32,
    /// Endpoint interfaces.
    pub endpoint_capacity: u32,
    /// Track connections (the product always does). Off, every packet is judged as a new
    /// connection and no verdict events are sent: for benchmarking the lookup itself.
    pub conntrack: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            policy_capacity: 65_536,
            ipcache_capacity: 65_536,
            ct_capacity: 65_536,
            counter_capacity: 32_768,
            endpoint_capacity: 4096,
            conntrack: true,
        }
    }
}

/// What an apply did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// The generation packets now use.
    pub generation: u32,
    pub slot: u32,
    pub policy_written: usize,
    pub policy_deleted: usize,
    pub ipcache_written: usize,
    pub ipcache_deleted: usize,
    /// Counters of the slot that was just rewritten (it held generation `generation - 2`), by
    /// decision id: fold them into totals with that generation's decision table.
    #[serde(skip)]
    pub retired_counters: BTreeMap<u32, PolicyCounterRaw>,
}

/// What user space last wrote into one slot's maps; `None` when unknown (a failed write), in
/// which case the next apply clears the maps first.
#[derive(Default)]
struct SlotShadow {
    policy: Option<HashMap<Vec<u8>, Vec<u8>>>,
    ipcache: Option<HashMap<Vec<u8>, Vec<u8>>>,
    ipcache_exact: Option<HashMap<Vec<u8>, Vec<u8>>>,
}

/// One decoded verdict event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyVerdictEvent {
    pub ts_ns: u64,
    pub ifindex: u32,
    pub endpoint_id: u32,
    pub peer_identity: u32,
    /// 0: the endpoint is not selected in this direction.
    pub decision_id: u32,
    pub generation: u32,
    pub verdict: KernelVerdict,
    /// `POLICY_INGRESS` / `POLICY_EGRESS` (the endpoint's view).
    pub direction: u8,
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub len: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KernelVerdict {
    Forwarded,
    Dropped,
    Audit,
}

impl PolicyVerdictEvent {
    /// Decode one ringbuf record; `None` when it is short or of another type.
    pub fn decode(data: &[u8]) -> Option<Self> {
        let raw = PolicyEventRaw::from_bytes(data)?;
        if raw.r#type != EV_POLICY_VERDICT {
            return None;
        }
        let verdict = match raw.verdict {
            VERDICT_FORWARDED => KernelVerdict::Forwarded,
            VERDICT_DROPPED => KernelVerdict::Dropped,
            VERDICT_AUDIT => KernelVerdict::Audit,
            _ => return None,
        };
        Some(Self {
            ts_ns: raw.ts_ns,
            ifindex: raw.ifindex,
            endpoint_id: raw.endpoint_id,
            peer_identity: raw.peer_identity,
            decision_id: raw.decision_id,
            generation: raw.generation,
            verdict,
            direction: raw.direction,
            proto: raw.proto,
            src: ip_from_raw(&raw.saddr),
            dst: ip_from_raw(&raw.daddr),
            sport: raw.sport,
            dport: raw.dport,
            icmp_type: raw.icmp_type,
            icmp_code: raw.icmp_code,
            len: raw.len,
        })
    }

    /// The slot whose decision table `decision_id` indexes.
    pub fn slot(&self) -> u32 {
        self.generation & 1
    }
}

/// What `load_pinned` found under the pin root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Readopted {
    /// The generation packets were using (0: no pinned state).
    pub generation: u32,
    /// Interfaces whose pinned links still enforce (both directions, interface present).
    pub endpoints: usize,
    /// Pinned links removed because their interface is gone (or one direction was missing).
    pub stale_links: usize,
    /// The pinned maps did not fit this program (sizes or layout changed): new maps were
    /// pinned in their place; the old programs keep theirs until `attach` replaces them.
    pub maps_replaced: bool,
}

/// One interface's attachment.
enum Attachment {
    /// Not pinned (no pin root, or clsact on a kernel without TCX): detaches on drop.
    Owned(TcAttachment),
    /// TCX links (ingress, egress of the host-side interface).
    Links(PolicyLinks),
}

impl Attachment {
    fn mode(&self) -> TcMode {
        match self {
            Attachment::Owned(t) => t.mode,
            Attachment::Links(_) => TcMode::Tcx,
        }
    }
}

struct PolicyLinks {
    links: [Link; 2],
    /// Pin paths; `None`: not pinned, so the links detach with the agent.
    pins: Option<[PathBuf; 2]>,
    /// Re-adopted from a previous agent: the links still run its program until `attach`.
    adopted: bool,
}

impl PolicyLinks {
    /// Detach now and remove the pins.
    fn remove(mut self) {
        for link in &self.links {
            let _ = link.detach();
        }
        for path in self.pins.take().into_iter().flatten() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for PolicyLinks {
    fn drop(&mut self) {
        // Pinned links stay attached (that is the point); closing our fds is all.
        if self.pins.is_none() {
            for link in &self.links {
                let _ = link.detach();
            }
        }
    }
}

pub struct PolicyDatapath {
    skel: PolicySkel<'static>,
    cfg: PolicyConfig,
    generation: u32,
    /// The largest decision id written into each slot: its counters are at
    /// `slot * counter_slot_entries + 1 ..= + max_decision`.
    max_decision: [u32; 2],
    slots: [SlotShadow; 2],
    /// When each slot stopped being active.
    retired_at: [Option<Instant>; 2],
    attachments: BTreeMap<u32, Attachment>,
    pin_root: Option<PathBuf>,
}

fn map_err(map: &'static str) -> impl Fn(libbpf_rs::Error) -> BpfError {
    move |source| BpfError::Map { map, source }
}

impl PolicyDatapath {
    /// Load unpinned: everything goes with this object.
    pub fn load(cfg: &PolicyConfig) -> Result<Self, BpfError> {
        Self::open_load(cfg, None)
    }

    /// Load with the maps pinned under `pin_root` (bpffs, mounted on /sys/fs/bpf if nothing
    /// is there yet), re-adopting what a previous agent left: its maps (generation, slots,
    /// endpoints, conntrack, counters) and its links, which keep running its program until
    /// [`attach`](Self::attach) swaps this one in. Links whose interface is gone, and
    /// endpoint entries without links, are removed.
    pub fn load_pinned(cfg: &PolicyConfig, pin_root: &Path) -> Result<(Self, Readopted), BpfError> {
        crate::pin::ensure_bpffs_dir(&pin_root.join(LINK_DIR)).map_err(BpfError::Other)?;
        let had_maps = PINNED_MAPS.iter().any(|m| pin_root.join(m).exists());
        let (mut dp, maps_replaced) = match Self::open_load(cfg, Some(pin_root)) {
            Ok(dp) => (dp, false),
            Err(e) if had_maps => {
                tracing::warn!(
                    "pinned policy maps under {} do not fit this program ({e}): pinning new ones",
                    pin_root.display()
                );
                crate::pin::remove_files(pin_root, PINNED_MAPS).map_err(BpfError::Other)?;
                (Self::open_load(cfg, Some(pin_root))?, true)
            }
            Err(e) => return Err(e),
        };
        let mut found = dp.readopt(pin_root)?;
        found.maps_replaced = maps_replaced;
        Ok((dp, found))
    }

    fn readopt(&mut self, pin_root: &Path) -> Result<Readopted, BpfError> {
        let state = self
            .skel
            .maps
            .policy_state
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_err("policy_state"))?
            .and_then(|v| PolicyStateRaw::from_bytes(&v).map(|s| s.generation))
            .unwrap_or(0);
        self.generation = state;
        // Both slots' contents as they are, so the next apply writes only what changes.
        let m = &self.skel.maps;
        for (slot, (rules, cache, exact)) in [
            (
                &m.policy_rules0,
                &m.policy_ipcache0,
                &m.policy_ipcache_exact0,
            ),
            (
                &m.policy_rules1,
                &m.policy_ipcache1,
                &m.policy_ipcache_exact1,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let policy: HashMap<Vec<u8>, Vec<u8>> = read_map(rules);
            // Where this slot's counters end, as the previous agent's apply had it.
            self.max_decision[slot] = max_decision_of(policy.values().map(Vec::as_slice));
            self.slots[slot] = SlotShadow {
                policy: Some(policy),
                ipcache: Some(read_map(cache)),
                ipcache_exact: Some(read_map(exact)),
            };
        }
        // The standby slot may have been the active one a moment ago (a previous agent
        // flipped and died): the grace period applies as if we had flipped.
        self.retired_at[((state & 1) ^ 1) as usize] = Some(Instant::now());

        let mut found = Readopted {
            generation: state,
            ..Readopted::default()
        };
        let mut by_ifindex: BTreeMap<u32, [Option<(Link, PathBuf)>; 2]> = BTreeMap::new();
        let dir = pin_root.join(LINK_DIR);
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| BpfError::Other(format!("reading {}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let parsed = name.split_once('-').and_then(|(idx, dir)| {
                let d = LINK_SUFFIXES.iter().position(|s| *s == dir)?;
                Some((idx.parse::<u32>().ok()?, d))
            });
            let link = Link::open(&path).ok();
            // A link whose interface went away is defunct: its ifindex reads 0.
            let live = match (&parsed, &link) {
                (Some((idx, _)), Some(l)) => l.info().is_ok_and(|i| {
                    matches!(i.info, libbpf_rs::query::LinkTypeInfo::Tcx(t) if t.ifindex == *idx)
                }),
                _ => false,
            };
            match (parsed, link) {
                (Some((idx, d)), Some(l)) if live => {
                    by_ifindex.entry(idx).or_default()[d] = Some((l, path));
                }
                (_, link) => {
                    if let Some(l) = link {
                        let _ = l.detach();
                    }
                    let _ = std::fs::remove_file(&path);
                    found.stale_links += 1;
                }
            }
        }
        for (idx, pair) in by_ifindex {
            match pair {
                [Some((i, ip)), Some((e, ep))] => {
                    self.attachments.insert(
                        idx,
                        Attachment::Links(PolicyLinks {
                            links: [i, e],
                            pins: Some([ip, ep]),
                            adopted: true,
                        }),
                    );
                }
                half => {
                    for (l, path) in half.into_iter().flatten() {
                        let _ = l.detach();
                        let _ = std::fs::remove_file(path);
                        found.stale_links += 1;
                    }
                }
            }
        }
        found.endpoints = self.attachments.len();
        // Endpoint entries without a link (their interface left, or an agent died between
        // registering and attaching) are not enforced anywhere: drop them.
        let eps = &self.skel.maps.policy_endpoints;
        let mut registered: Vec<u32> = eps
            .keys()
            .filter_map(|k| <[u8; 4]>::try_from(k.as_slice()).ok())
            .map(u32::from_ne_bytes)
            .collect();
        let slots = &self.skel.maps.policy_endpoint_slots;
        registered.extend(
            (0..endpoint_slots(&self.cfg))
                .filter_map(|i| slots.lookup(&i.to_ne_bytes(), MapFlags::ANY).ok().flatten())
                .filter_map(|v| PolicyEndpointSlotRaw::from_bytes(&v))
                .map(|v| v.ifindex)
                .filter(|&i| i != 0),
        );
        for idx in registered {
            if !self.attachments.contains_key(&idx) {
                self.remove_endpoint(idx);
            }
        }
        Ok(found)
    }

    /// The pin root, when pinned.
    pub fn pin_root(&self) -> Option<&Path> {
        self.pin_root.as_deref()
    }

    fn open_load(cfg: &PolicyConfig, pin_root: Option<&Path>) -> Result<Self, BpfError> {
        crate::sensors::install_libbpf_print();
        let storage: &'static mut MaybeUninit<OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let open_err = |source| BpfError::Load {
            object: "policy",
            log: String::new(),
            source,
        };
        let mut open = PolicySkelBuilder::default()
            .open(storage)
            .map_err(open_err)?;
        let m = &mut open.maps;
        let sizes = [
            (&mut m.policy_rules0, cfg.policy_capacity),
            (&mut m.policy_rules1, cfg.policy_capacity),
            (&mut m.policy_ipcache0, cfg.ipcache_capacity),
            (&mut m.policy_ipcache1, cfg.ipcache_capacity),
            (&mut m.policy_ipcache_exact0, cfg.ipcache_capacity),
            (&mut m.policy_ipcache_exact1, cfg.ipcache_capacity),
            (&mut m.policy_ct, cfg.ct_capacity),
            (&mut m.policy_counters, counter_slot_entries(cfg) * 2),
            (&mut m.policy_endpoints, cfg.endpoint_capacity),
            (&mut m.policy_endpoint_slots, endpoint_slots(cfg)),
        ];
        for (map, n) in sizes {
            map.set_max_entries(n.max(16)).map_err(open_err)?;
        }
        let Some(ro) = open.maps.rodata_data.as_deref_mut() else {
            return Err(BpfError::Other("policy.bpf.c has no .rodata".into()));
        };
        ro.conntrack_disabled = u8::from(!cfg.conntrack);
        ro.counter_slot_entries = counter_slot_entries(cfg);
        ro.endpoint_slot_mask = endpoint_slots(cfg) - 1;
        if let Some(root) = pin_root {
            let m = &mut open.maps;
            let pinned = [
                &mut m.policy_rules0,
                &mut m.policy_rules1,
                &mut m.policy_ipcache0,
                &mut m.policy_ipcache1,
                &mut m.policy_ipcache_exact0,
                &mut m.policy_ipcache_exact1,
                &mut m.policy_state,
                &mut m.policy_endpoints,
                &mut m.policy_endpoint_slots,
                &mut m.policy_ct,
                &mut m.policy_counters,
                &mut m.policy_stats,
            ];
            for (name, map) in PINNED_MAPS.iter().zip(pinned) {
                map.set_pin_path(root.join(name)).map_err(open_err)?;
            }
        }
        let skel = open.load().map_err(|source| BpfError::Load {
            object: "policy",
            log: String::new(),
            source,
        })?;
        Ok(Self {
            skel,
            cfg: *cfg,
            generation: 0,
            max_decision: [0, 0],
            slots: Default::default(),
            retired_at: [None, None],
            attachments: BTreeMap::new(),
            pin_root: pin_root.map(Path::to_path_buf),
        })
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// The generation packets use (0 before the first apply: empty maps, everything allowed
    /// for lack of entries, and no endpoint is registered yet anyway).
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Refuse a set that does not fit, before touching anything. `max_decision`: the largest
    /// decision id of the policy entries.
    pub fn check_capacity(
        &self,
        policy: usize,
        ipcache: usize,
        max_decision: u32,
    ) -> Result<(), BpfError> {
        let per_slot = counter_slot_entries(&self.cfg);
        if max_decision >= per_slot {
            return Err(BpfError::Other(format!(
                "policy has {max_decision} decisions, the counters hold {} per generation (raise counter_capacity)",
                per_slot - 1
            )));
        }
        if policy > self.cfg.policy_capacity as usize {
            return Err(BpfError::Other(format!(
                "policy needs {policy} policy map entries, the map holds {} (raise policy_capacity)",
                self.cfg.policy_capacity
            )));
        }
        if ipcache > self.cfg.ipcache_capacity as usize {
            return Err(BpfError::Other(format!(
                "policy needs {ipcache} ipcache entries, the map holds {} (raise ipcache_capacity)",
                self.cfg.ipcache_capacity
            )));
        }
        Ok(())
    }

    /// Write `policy` and `ipcache` into the standby slot, then make it the active one. On an
    /// error the active slot is untouched: packets keep the previous policy.
    pub fn apply(
        &mut self,
        policy: &[([u8; 16], [u8; 8])],
        ipcache: &[([u8; 20], [u8; 8])],
    ) -> Result<ApplyReport, BpfError> {
        let max_decision = max_decision_of(policy.iter().map(|(_, v)| &v[..]));
        self.check_capacity(policy.len(), ipcache.len(), max_decision)?;
        let next = self.generation.wrapping_add(1);
        let slot = (next & 1) as usize;
        if let Some(t) = self.retired_at[slot] {
            let since = t.elapsed();
            if since < SLOT_GRACE {
                std::thread::sleep(SLOT_GRACE - since);
            }
        }
        let m = &self.skel.maps;
        let (rules, cache, exact) = if slot == 0 {
            (
                &m.policy_rules0,
                &m.policy_ipcache0,
                &m.policy_ipcache_exact0,
            )
        } else {
            (
                &m.policy_rules1,
                &m.policy_ipcache1,
                &m.policy_ipcache_exact1,
            )
        };
        // Full-length ipcache entries (pods, the host) go to the exact hash the program reads
        // first; the LPM trie keeps the CIDRs.
        let mut full: Vec<([u8; 16], [u8; 8])> = Vec::new();
        let mut prefixes: Vec<([u8; 20], [u8; 8])> = Vec::new();
        for (k, v) in ipcache {
            if k[0..4] == 128u32.to_ne_bytes() {
                let mut addr = [0u8; 16];
                addr.copy_from_slice(&k[4..20]);
                full.push((addr, *v));
            } else {
                prefixes.push((*k, *v));
            }
        }
        let shadow = &mut self.slots[slot];
        let (policy_written, policy_deleted) =
            write_map(rules, "policy_rules", &mut shadow.policy, policy)?;
        let (trie_written, trie_deleted) =
            write_map(cache, "policy_ipcache", &mut shadow.ipcache, &prefixes)?;
        let (exact_written, exact_deleted) = write_map(
            exact,
            "policy_ipcache_exact",
            &mut shadow.ipcache_exact,
            &full,
        )?;
        let (ipcache_written, ipcache_deleted) =
            (trie_written + exact_written, trie_deleted + exact_deleted);

        let retired_counters = self.take_counters(slot as u32)?;
        self.max_decision[slot] = max_decision;
        let state = PolicyStateRaw {
            generation: next,
            pad: 0,
        };
        self.skel
            .maps
            .policy_state
            .update(&0u32.to_ne_bytes(), state.as_bytes(), MapFlags::ANY)
            .map_err(map_err("policy_state"))?;
        let old = (self.generation & 1) as usize;
        self.retired_at[old] = Some(Instant::now());
        self.generation = next;
        Ok(ApplyReport {
            generation: next,
            slot: slot as u32,
            policy_written,
            policy_deleted,
            ipcache_written,
            ipcache_deleted,
            retired_counters,
        })
    }

    /// One slot's counters, summed over CPUs, by decision id (those that counted packets).
    fn read_counters(&self, slot: u32) -> Result<BTreeMap<u32, PolicyCounterRaw>, BpfError> {
        let map = &self.skel.maps.policy_counters;
        let first = slot * counter_slot_entries(&self.cfg) + 1;
        let per_cpu = percpu_array::read_range(map, first, self.max_decision[slot as usize])
            .map_err(|e| BpfError::Other(format!("policy_counters: {e}")))?;
        Ok(per_cpu
            .iter()
            .enumerate()
            .filter_map(|(i, cpus)| {
                let sum = cpus
                    .iter()
                    .filter_map(|b| PolicyCounterRaw::from_bytes(b))
                    .fold(PolicyCounterRaw::default(), |a, c| PolicyCounterRaw {
                        packets: a.packets + c.packets,
                        bytes: a.bytes + c.bytes,
                    });
                (sum.packets > 0).then_some((i as u32 + 1, sum))
            })
            .collect())
    }

    /// Read and clear one slot's counters, by decision id.
    fn take_counters(&self, slot: u32) -> Result<BTreeMap<u32, PolicyCounterRaw>, BpfError> {
        let out = self.read_counters(slot)?;
        let first = slot * counter_slot_entries(&self.cfg) + 1;
        percpu_array::zero_range(
            &self.skel.maps.policy_counters,
            first,
            self.max_decision[slot as usize],
        )
        .map_err(|e| BpfError::Other(format!("policy_counters: {e}")))?;
        Ok(out)
    }

    /// Counters of the active generation, by decision id (those that counted packets).
    pub fn counters(&self) -> BTreeMap<u32, PolicyCounterRaw> {
        self.read_counters(self.generation & 1).unwrap_or_default()
    }

    /// The program's own counters, by name.
    pub fn stats(&self) -> BTreeMap<&'static str, u64> {
        let map = &self.skel.maps.policy_stats;
        POLICY_STAT_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let per_cpu = map
                    .lookup_percpu(&(i as u32).to_ne_bytes(), MapFlags::ANY)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let sum = per_cpu
                    .iter()
                    .filter_map(|b| b.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()))
                    .map(u64::from_ne_bytes)
                    .sum();
                (*name, sum)
            })
            .collect()
    }

    /// The entry of `ifindex`'s slot in policy_endpoint_slots: its index and what it holds.
    fn endpoint_slot(&self, ifindex: u32) -> (u32, PolicyEndpointSlotRaw) {
        let i = ifindex & (endpoint_slots(&self.cfg) - 1);
        let held = self
            .skel
            .maps
            .policy_endpoint_slots
            .lookup(&i.to_ne_bytes(), MapFlags::ANY)
            .ok()
            .flatten()
            .and_then(|v| PolicyEndpointSlotRaw::from_bytes(&v))
            .unwrap_or_default();
        (i, held)
    }

    /// Enforce policy for `endpoint_id` on packets crossing `ifindex` (not 0): in the
    /// interface's slot when it is free or already its own, else in the overflow hash.
    pub fn set_endpoint(&self, ifindex: u32, endpoint_id: u32) -> Result<(), BpfError> {
        if ifindex == 0 {
            return Err(BpfError::Other("ifindex 0 is no interface".into()));
        }
        let m = &self.skel.maps;
        let key = ifindex.to_ne_bytes();
        let (i, held) = self.endpoint_slot(ifindex);
        if held.ifindex == 0 || held.ifindex == ifindex {
            let v = PolicyEndpointSlotRaw {
                ifindex,
                endpoint_id,
            };
            m.policy_endpoint_slots
                .update(&i.to_ne_bytes(), v.as_bytes(), MapFlags::ANY)
                .map_err(map_err("policy_endpoint_slots"))?;
            // It may have been in the overflow hash while another interface held the slot
            // (written first, so the interface is never missing).
            return match m.policy_endpoints.delete(&key) {
                Err(e) if e.kind() != libbpf_rs::ErrorKind::NotFound => {
                    Err(map_err("policy_endpoints")(e))
                }
                _ => Ok(()),
            };
        }
        let v = PolicyEndpointRaw {
            endpoint_id,
            flags: 0,
        };
        m.policy_endpoints
            .update(&key, v.as_bytes(), MapFlags::ANY)
            .map_err(map_err("policy_endpoints"))
    }

    pub fn remove_endpoint(&self, ifindex: u32) {
        let m = &self.skel.maps;
        let (i, held) = self.endpoint_slot(ifindex);
        if ifindex != 0 && held.ifindex == ifindex {
            let empty = PolicyEndpointSlotRaw::default();
            let _ =
                m.policy_endpoint_slots
                    .update(&i.to_ne_bytes(), empty.as_bytes(), MapFlags::ANY);
        }
        let _ = m.policy_endpoints.delete(&ifindex.to_ne_bytes());
    }

    /// Attach both directions to an interface (idempotent). Pinned, the links are TCX links
    /// pinned under the pin root. A link re-adopted from a previous agent gets this program
    /// swapped in with `bpf_link_update`: one atomic replacement in the same place of the
    /// hook's chain, so every packet is judged by exactly one of the two programs (attaching
    /// ours next to the old one and detaching that after would judge and count packets twice
    /// in between; detaching first would leave a window with no judge). Only when the update
    /// fails is ours attached next to the old link first, and the old one detached after.
    pub fn attach(&mut self, ifindex: u32) -> Result<TcMode, BpfError> {
        match self.attachments.remove(&ifindex) {
            Some(Attachment::Links(mut old)) if old.adopted => {
                let taken = self.take_over(ifindex, &mut old);
                let current = match taken {
                    Ok(None) => {
                        old.adopted = false;
                        Ok(old)
                    }
                    Ok(Some(new)) => {
                        old.remove();
                        Ok(new)
                    }
                    // The old links keep enforcing with the previous program; the next
                    // reconcile tries again.
                    Err(e) => Err((old, e)),
                };
                return match current {
                    Ok(l) => {
                        self.attachments.insert(ifindex, Attachment::Links(l));
                        Ok(TcMode::Tcx)
                    }
                    Err((old, e)) => {
                        self.attachments.insert(ifindex, Attachment::Links(old));
                        Err(e)
                    }
                };
            }
            Some(a) => {
                let mode = a.mode();
                self.attachments.insert(ifindex, a);
                return Ok(mode);
            }
            None => {}
        }
        let progs = &self.skel.progs;
        let (from, to) = (&progs.policy_from_endpoint, &progs.policy_to_endpoint);
        let a = match &self.pin_root {
            Some(root) => match (tc::attach_tcx(from, ifindex), tc::attach_tcx(to, ifindex)) {
                (Ok(i), Ok(e)) => Attachment::Links(pin_links(root, ifindex, [i, e])),
                (i, e) => {
                    // Both or neither: a half-attached interface would enforce one way only.
                    drop((i, e));
                    tracing::warn!(
                        ifindex,
                        "no TCX: clsact filters are not pinned, enforcement on this interface stops with the agent"
                    );
                    Attachment::Owned(tc::attach(from, to, ifindex)?)
                }
            },
            None => Attachment::Owned(tc::attach(from, to, ifindex)?),
        };
        let mode = a.mode();
        self.attachments.insert(ifindex, a);
        Ok(mode)
    }

    /// Put this program into a re-adopted pair of links (see `attach`): `None` when swapped
    /// in place, else new pinned links already attached next to `old`, which the caller
    /// removes.
    fn take_over(
        &self,
        ifindex: u32,
        old: &mut PolicyLinks,
    ) -> Result<Option<PolicyLinks>, BpfError> {
        let progs = [
            &self.skel.progs.policy_from_endpoint,
            &self.skel.progs.policy_to_endpoint,
        ];
        let mut updated = true;
        for (link, prog) in old.links.iter_mut().zip(progs) {
            if let Err(e) = link.update_prog(prog) {
                tracing::warn!(
                    ifindex,
                    "bpf_link_update: {e}; attaching next to the old link"
                );
                updated = false;
            }
        }
        if updated {
            return Ok(None);
        }
        match (
            tc::attach_tcx(progs[0], ifindex),
            tc::attach_tcx(progs[1], ifindex),
        ) {
            (Ok(i), Ok(e)) => {
                // The old pins' paths are reused: free them first (the old links stay
                // attached through our fds until the caller removes them, which then only
                // detaches them).
                for p in old.pins.take().into_iter().flatten() {
                    let _ = std::fs::remove_file(p);
                }
                let root = self.pin_root.as_deref().unwrap_or(Path::new(""));
                Ok(Some(pin_links(root, ifindex, [i, e])))
            }
            (i, e) => Err(BpfError::Other(format!(
                "attaching TCX to ifindex {ifindex}: {}",
                i.err()
                    .or(e.err())
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            ))),
        }
    }

    /// Stop enforcing on an interface: detach, unpin, forget its endpoint entry.
    pub fn detach(&mut self, ifindex: u32) {
        match self.attachments.remove(&ifindex) {
            Some(Attachment::Links(l)) => l.remove(),
            Some(Attachment::Owned(t)) => drop(t),
            None => {}
        }
        self.remove_endpoint(ifindex);
    }

    /// Interfaces with an attachment (ours, or re-adopted and not yet taken over).
    pub fn attached(&self) -> Vec<u32> {
        self.attachments.keys().copied().collect()
    }

    /// Whether `attach(ifindex)` has work to do: nothing attached, or links still running a
    /// previous agent's program.
    pub fn needs_attach(&self, ifindex: u32) -> bool {
        match self.attachments.get(&ifindex) {
            None => true,
            Some(Attachment::Links(l)) => l.adopted,
            Some(Attachment::Owned(_)) => false,
        }
    }

    /// Forget every tracked connection (tests; the agent never needs it).
    pub fn flush_conntrack(&self) {
        let map = &self.skel.maps.policy_ct;
        let keys: Vec<Vec<u8>> = map.keys().collect();
        for k in keys {
            let _ = map.delete(&k);
        }
    }

    /// Every entry of the policy, ipcache, state and endpoint maps, by map name: for checking
    /// that a refused apply changed nothing.
    pub fn dump(&self) -> BTreeMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>> {
        let m = &self.skel.maps;
        let maps: [(&'static str, &dyn MapCore); 9] = [
            ("policy_rules0", &m.policy_rules0),
            ("policy_rules1", &m.policy_rules1),
            ("policy_ipcache0", &m.policy_ipcache0),
            ("policy_ipcache1", &m.policy_ipcache1),
            ("policy_ipcache_exact0", &m.policy_ipcache_exact0),
            ("policy_ipcache_exact1", &m.policy_ipcache_exact1),
            ("policy_state", &m.policy_state),
            ("policy_endpoints", &m.policy_endpoints),
            ("policy_endpoint_slots", &m.policy_endpoint_slots),
        ];
        maps.into_iter()
            .map(|(name, map)| (name, read_map(map)))
            .collect()
    }

    /// A reader of verdict events.
    pub fn ring_buffer<F>(&self, mut sink: F) -> Result<RingBuffer<'static>, BpfError>
    where
        F: FnMut(PolicyVerdictEvent) + 'static,
    {
        let mut b = RingBufferBuilder::new();
        b.add(&self.skel.maps.policy_events, move |data: &[u8]| {
            if let Some(ev) = PolicyVerdictEvent::decode(data) {
                sink(ev);
            }
            0
        })
        .map_err(map_err("policy_events"))?;
        b.build().map_err(map_err("policy_events"))
    }

    /// Run the program on one Ethernet frame (BPF_PROG_TEST_RUN). The test run's device is
    /// the loopback interface (ifindex 1): register the endpoint under test with
    /// `set_endpoint(1, id)`. `to_endpoint`: the endpoint receives the packet (its ingress);
    /// otherwise it sends it (its egress). Returns the TC verdict (-1 pass, 2 drop).
    pub fn test_run(
        &self,
        to_endpoint: bool,
        packet: &[u8],
        repeat: u32,
    ) -> Result<(i32, Duration), BpfError> {
        let prog = if to_endpoint {
            &self.skel.progs.policy_to_endpoint
        } else {
            &self.skel.progs.policy_from_endpoint
        };
        let input = libbpf_rs::ProgramInput {
            data_in: Some(packet),
            repeat,
            ..Default::default()
        };
        let out = prog
            .test_run(input)
            .map_err(|e| BpfError::Other(format!("BPF_PROG_TEST_RUN: {e}")))?;
        Ok((out.return_value as i32, out.duration))
    }
}

fn link_pin(root: &Path, ifindex: u32, dir: usize) -> PathBuf {
    root.join(LINK_DIR)
        .join(format!("{ifindex}-{}", LINK_SUFFIXES[dir]))
}

/// Pin a freshly attached pair. Pinning failing leaves them unpinned (they then detach with
/// the agent), with a warning: enforcement now matters more than surviving a restart.
fn pin_links(root: &Path, ifindex: u32, mut links: [Link; 2]) -> PolicyLinks {
    let paths = [link_pin(root, ifindex, 0), link_pin(root, ifindex, 1)];
    let mut pinned = 0;
    for (link, path) in links.iter_mut().zip(&paths) {
        // A leftover file there names no live link of ours (re-adoption removed those).
        let _ = std::fs::remove_file(path);
        if let Err(e) = link.pin(path) {
            tracing::warn!(
                ifindex,
                "pinning the policy link at {}: {e}; enforcement on this interface stops with the agent",
                path.display()
            );
            break;
        }
        pinned += 1;
    }
    if pinned < 2 {
        for path in &paths[..pinned] {
            let _ = std::fs::remove_file(path);
        }
    }
    PolicyLinks {
        links,
        pins: (pinned == 2).then_some(paths),
        adopted: false,
    }
}

/// Every entry of a map.
fn read_map<C: FromIterator<(Vec<u8>, Vec<u8>)>>(map: &dyn MapCore) -> C {
    map.keys()
        .filter_map(|k| {
            let v = map.lookup(&k, MapFlags::ANY).ok().flatten()?;
            Some((k, v))
        })
        .collect()
}

/// The TCX links on `ifindex` that run a policy program, as (link id, program id), from the
/// kernel's own lists (whoever attached them, agent or not).
pub fn policy_links_on(ifindex: u32) -> Vec<(u32, u32)> {
    use libbpf_rs::query::{LinkInfoIter, LinkTypeInfo, ProgInfoIter};
    let programs: std::collections::BTreeSet<u32> = ProgInfoIter::default()
        .filter(|p| p.name.to_string_lossy().starts_with("policy_"))
        .map(|p| p.id)
        .collect();
    LinkInfoIter::default()
        .filter(|l| matches!(&l.info, LinkTypeInfo::Tcx(t) if t.ifindex == ifindex))
        .filter(|l| programs.contains(&l.prog_id))
        .map(|l| (l.id, l.prog_id))
        .collect()
}

/// Remove the policy datapath's pins (for `fathom uninstall`): every pinned link is detached
/// (enforcement stops), then the maps go. Returns the paths removed. Stop the agent first: a
/// running agent keeps the maps, and would not re-attach links removed under it.
pub fn remove_pins(pin_root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut removed = Vec::new();
    let dir = pin_root.join(LINK_DIR);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if let Ok(link) = Link::open(&path) {
                let _ = link.detach();
            }
            std::fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
            removed.push(path);
        }
    }
    let _ = std::fs::remove_dir(&dir);
    removed.extend(crate::pin::remove_files(pin_root, PINNED_MAPS)?);
    // The directory goes too when nothing else lives there.
    let _ = std::fs::remove_dir(pin_root);
    Ok(removed)
}

/// The largest decision id among policy map values (0: none).
fn max_decision_of<'a>(values: impl Iterator<Item = &'a [u8]>) -> u32 {
    values
        .filter_map(PolicyValueRaw::from_bytes)
        .map(|v| v.decision_id)
        .max()
        .unwrap_or(0)
}

/// Entries of policy_endpoint_slots: a power of two (the program masks the ifindex), at least
/// the endpoint capacity.
fn endpoint_slots(cfg: &PolicyConfig) -> u32 {
    cfg.endpoint_capacity.clamp(16, 1 << 20).next_power_of_two()
}

/// Counters per slot (the program's `counter_slot_entries`): index 0 of a slot is unused
/// (decision 0 is not counted).
fn counter_slot_entries(cfg: &PolicyConfig) -> u32 {
    (cfg.counter_capacity / 2).max(8)
}

/// Make a map hold exactly `entries`, touching only what changed since the last write
/// (so an apply costs what it changes). Stale keys go first, so the map never holds more than
/// the larger of the old and the new set.
fn write_map<const K: usize>(
    map: &dyn MapCore,
    name: &'static str,
    shadow: &mut Option<HashMap<Vec<u8>, Vec<u8>>>,
    entries: &[([u8; K], [u8; 8])],
) -> Result<(usize, usize), BpfError> {
    let old = match shadow.take() {
        Some(s) => s,
        None => {
            // Unknown contents: clear. (Key iteration while deleting restarts from the first
            // key each time, so collect first.)
            let keys: Vec<Vec<u8>> = map.keys().collect();
            for k in &keys {
                map.delete(k).map_err(map_err(name))?;
            }
            HashMap::new()
        }
    };
    let new: HashMap<Vec<u8>, Vec<u8>> = entries
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    if new.len() != entries.len() {
        return Err(BpfError::Other(format!(
            "{name}: {} duplicate keys in the compiled entries",
            entries.len() - new.len()
        )));
    }
    // One batch syscall each for the deletes and the writes (a 10k-rule apply is ~20k
    // entries; one syscall per entry was most of the kernel-write time). Maps without batch
    // support (the LPM trie on some kernels) take them one by one.
    let stale: Vec<&Vec<u8>> = old.keys().filter(|k| !new.contains_key(*k)).collect();
    if !stale.is_empty() {
        let keys: Vec<u8> = stale.iter().flat_map(|k| k.iter().copied()).collect();
        let batched = map
            .delete_batch(&keys, stale.len() as u32, MapFlags::ANY, MapFlags::ANY)
            .is_ok();
        if !batched {
            for k in &stale {
                match map.delete(k) {
                    Ok(()) => {}
                    // A batch that failed part-way may have deleted it already.
                    Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => {}
                    Err(e) => return Err(map_err(name)(e)),
                }
            }
        }
    }
    let deleted = stale.len();
    let changed: Vec<(&Vec<u8>, &Vec<u8>)> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .collect();
    if !changed.is_empty() {
        let keys: Vec<u8> = changed
            .iter()
            .flat_map(|(k, _)| k.iter().copied())
            .collect();
        let values: Vec<u8> = changed
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        let batched = map
            .update_batch(
                &keys,
                &values,
                changed.len() as u32,
                MapFlags::ANY,
                MapFlags::ANY,
            )
            .is_ok();
        if !batched {
            for (k, v) in &changed {
                map.update(k, v, MapFlags::ANY).map_err(map_err(name))?;
            }
        }
    }
    let written = changed.len();
    *shadow = Some(new);
    Ok((written, deleted))
}
