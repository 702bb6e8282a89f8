//! policy.bpf.c from user space: load with configured map sizes, attach to endpoint interfaces,
//! apply a compiled policy atomically (standby slot written, then the generation flipped), read
//! per-decision counters and verdict events, and run the program on crafted packets.
//!
//! This module takes map entries as raw bytes (`fathom_policy::Compiled::policy_map_entries`
//! gives them) so that the kernel side does not depend on the policy crate.

use std::collections::{BTreeMap, HashMap};
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject, RingBuffer, RingBufferBuilder};
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
    attachments: BTreeMap<u32, TcAttachment>,
}

fn map_err(map: &'static str) -> impl Fn(libbpf_rs::Error) -> BpfError {
    move |source| BpfError::Map { map, source }
}

impl PolicyDatapath {
    pub fn load(cfg: &PolicyConfig) -> Result<Self, BpfError> {
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
        let max_decision = policy
            .iter()
            .filter_map(|(_, v)| PolicyValueRaw::from_bytes(v))
            .map(|v| v.decision_id)
            .max()
            .unwrap_or(0);
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

    /// Attach both directions to an interface (idempotent).
    pub fn attach(&mut self, ifindex: u32) -> Result<TcMode, BpfError> {
        if let Some(a) = self.attachments.get(&ifindex) {
            return Ok(a.mode);
        }
        let a = tc::attach(
            &self.skel.progs.policy_from_endpoint,
            &self.skel.progs.policy_to_endpoint,
            ifindex,
        )?;
        let mode = a.mode;
        self.attachments.insert(ifindex, a);
        Ok(mode)
    }

    pub fn detach(&mut self, ifindex: u32) {
        self.attachments.remove(&ifindex);
        self.remove_endpoint(ifindex);
    }

    pub fn attached(&self) -> Vec<u32> {
        self.attachments.keys().copied().collect()
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
            .map(|(name, map)| {
                let entries = map
                    .keys()
                    .filter_map(|k| {
                        let v = map.lookup(&k, MapFlags::ANY).ok().flatten()?;
                        Some((k, v))
                    })
                    .collect();
                (name, entries)
            })
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
