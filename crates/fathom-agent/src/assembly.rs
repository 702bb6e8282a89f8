//! Flow assembly: the user-space side of the kernel flow table. The kernel counts and says when
//! a flow starts and when TCP ends it; this module decides when to publish records (start,
//! periodic updates, end), expires idle flows, notices LRU evictions, and builds each record
//! from the kernel counters joined with socket attribution and the pod inventory.
//!
//! Lifecycle of one flow:
//! - kernel START event → pending start, published at the next tick (so that the connect/accept
//!   attribution, which the kernel reports a moment after the first packet, is already known);
//! - kernel END event (FIN both ways / RST) → the end record is published `end_linger` later
//!   with the final counters read from the table (the last ACK, the socket's close stats);
//! - no packet for the idle timeout → end record (reason idle) and the entry is deleted;
//! - the entry vanished from the kernel table without an end → end record (reason evicted).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use fathom_bpf::abi::{FlowKeyRaw, FlowValueRaw};
use fathom_bpf::events::{ip_from_raw, FlowEndKind};
use fathom_enrich::Enricher;
use fathom_model::{
    Flow, FlowEndReason, FlowEvent, InterfaceRef, L4Info, L4Protocol, ProcessInfo, TcpFlags,
    TcpInfo, Timestamp, Traffic,
};

use crate::attribution::{Attribution, Owner};
use crate::clock::BootClock;
use crate::inventory::Inventory;

#[derive(Debug, Clone)]
pub struct AssemblyConfig {
    /// Wait after the kernel reports a TCP end before publishing it, for late ACKs and the
    /// sockets' close statistics.
    pub end_linger: Duration,
    /// Keep an ended entry in the kernel table this long after publishing its end, so stray
    /// retransmissions do not open a phantom flow.
    pub ended_retention: Duration,
    pub tcp_idle_timeout: Duration,
    pub other_idle_timeout: Duration,
    /// Publish an update record for a live flow this often (0: never).
    pub update_interval: Duration,
    pub node: String,
}

impl Default for AssemblyConfig {
    fn default() -> Self {
        AssemblyConfig {
            end_linger: Duration::from_secs(1),
            ended_retention: Duration::from_secs(10),
            tcp_idle_timeout: Duration::from_secs(300),
            other_idle_timeout: Duration::from_secs(30),
            update_interval: Duration::from_secs(30),
            node: hostname(),
        }
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[derive(Debug)]
struct LiveFlow {
    id: String,
    last: FlowValueRaw,
    start_pending: bool,
    /// Boot-time ns of the last record published for this flow.
    last_record_ns: u64,
    /// Kernel-reported end: (boot ns when it was reported, reason).
    ended: Option<(u64, FlowEndReason)>,
    end_published_ns: Option<u64>,
}

/// Everything a record needs besides the kernel counters.
pub struct Context<'a> {
    pub attribution: &'a Attribution,
    pub inventory: &'a Inventory,
    pub enricher: Option<&'a Enricher>,
    pub clock: &'a BootClock,
    /// ifindex → interface name in the host netns.
    pub ifnames: &'a BTreeMap<u32, String>,
}

/// What the assembler wants done to the kernel table after a tick.
#[derive(Debug, Default)]
pub struct TickOutcome {
    pub records: Vec<Flow>,
    pub delete: Vec<FlowKeyRaw>,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct AssemblyStats {
    pub active: u64,
    pub started: u64,
    pub ended_fin: u64,
    pub ended_rst: u64,
    pub ended_idle: u64,
    pub evicted: u64,
    pub picked_up: u64,
}

pub struct FlowAssembler {
    cfg: AssemblyConfig,
    flows: HashMap<FlowKeyRaw, LiveFlow>,
    pub stats: AssemblyStats,
}

fn flow_id(key: &FlowKeyRaw, first_seen_ns: u64) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    first_seen_ns.hash(&mut h);
    format!("{:016x}", h.finish())
}

impl FlowAssembler {
    pub fn new(cfg: AssemblyConfig) -> Self {
        FlowAssembler {
            cfg,
            flows: HashMap::new(),
            stats: AssemblyStats::default(),
        }
    }

    pub fn active(&self) -> usize {
        self.flows.len()
    }

    pub fn on_start(
        &mut self,
        key: FlowKeyRaw,
        value: FlowValueRaw,
        ctx: &Context<'_>,
        out: &mut Vec<Flow>,
    ) {
        // Already known from a table snapshot that raced ahead of this event: same incarnation
        // (the kernel stamps first_seen once per entry), nothing to do.
        if self
            .flows
            .get(&key)
            .is_some_and(|f| f.last.first_seen_ns == value.first_seen_ns)
        {
            return;
        }
        // A new connection on the tuple of one not yet published as ended: close the old one.
        if let Some(old) = self.flows.remove(&key) {
            if old.end_published_ns.is_none() {
                let reason = old.ended.map(|(_, r)| r).unwrap_or(FlowEndReason::Evicted);
                out.push(build(
                    &self.cfg,
                    &key,
                    &old.last,
                    &old.id,
                    FlowEvent::End,
                    Some(reason),
                    ctx,
                ));
            }
        }
        self.stats.started += 1;
        self.flows.insert(
            key,
            LiveFlow {
                id: flow_id(&key, value.first_seen_ns),
                last: value,
                start_pending: true,
                last_record_ns: value.first_seen_ns,
                ended: None,
                end_published_ns: None,
            },
        );
    }

    pub fn on_end(&mut self, key: FlowKeyRaw, value: FlowValueRaw, kind: FlowEndKind, now_ns: u64) {
        let reason = match kind {
            FlowEndKind::Fin => FlowEndReason::Fin,
            FlowEndKind::Rst => FlowEndReason::Rst,
        };
        let f = self.flows.entry(key).or_insert_with(|| LiveFlow {
            id: flow_id(&key, value.first_seen_ns),
            last: value,
            start_pending: false,
            last_record_ns: now_ns,
            ended: None,
            end_published_ns: None,
        });
        f.last = value;
        if f.ended.is_none() {
            f.ended = Some((now_ns, reason));
        }
    }

    /// Reconcile with the kernel table (`table` is a full snapshot) at boot time `now_ns`.
    pub fn tick(
        &mut self,
        table: &[(FlowKeyRaw, FlowValueRaw)],
        now_ns: u64,
        ctx: &Context<'_>,
    ) -> TickOutcome {
        let mut out = TickOutcome::default();
        let mut seen: HashMap<FlowKeyRaw, FlowValueRaw> = HashMap::with_capacity(table.len());
        for (k, v) in table {
            seen.insert(*k, *v);
        }

        // Flows the kernel has that we do not know: agent restarted, or a START event was lost.
        for (k, v) in &seen {
            if !self.flows.contains_key(k) {
                self.stats.picked_up += 1;
                self.flows.insert(
                    *k,
                    LiveFlow {
                        id: flow_id(k, v.first_seen_ns),
                        last: *v,
                        start_pending: true,
                        last_record_ns: now_ns,
                        ended: None,
                        end_published_ns: None,
                    },
                );
            }
        }

        let cfg = &self.cfg;
        let stats = &mut self.stats;
        self.flows.retain(|key, f| {
            let Some(v) = seen.get(key) else {
                // Gone from the kernel table: evicted (or deleted by us after retention).
                if f.end_published_ns.is_none() {
                    stats.evicted += 1;
                    let reason = f.ended.map(|(_, r)| r).unwrap_or(FlowEndReason::Evicted);
                    out.records.push(build(
                        cfg,
                        key,
                        &f.last,
                        &f.id,
                        FlowEvent::End,
                        Some(reason),
                        ctx,
                    ));
                }
                return false;
            };
            f.last = *v;

            if f.start_pending {
                f.start_pending = false;
                out.records
                    .push(build(cfg, key, v, &f.id, FlowEvent::Start, None, ctx));
            }

            if let Some(published) = f.end_published_ns {
                if now_ns.saturating_sub(published) >= cfg.ended_retention.as_nanos() as u64 {
                    out.delete.push(*key);
                    return false;
                }
                return true;
            }

            if let Some((at, reason)) = f.ended {
                if now_ns.saturating_sub(at) >= cfg.end_linger.as_nanos() as u64 {
                    match reason {
                        FlowEndReason::Rst => stats.ended_rst += 1,
                        _ => stats.ended_fin += 1,
                    }
                    out.records
                        .push(build(cfg, key, v, &f.id, FlowEvent::End, Some(reason), ctx));
                    f.end_published_ns = Some(now_ns);
                }
                return true;
            }

            let idle = if key.proto == 6 {
                cfg.tcp_idle_timeout
            } else {
                cfg.other_idle_timeout
            };
            if now_ns.saturating_sub(v.last_seen_ns) >= idle.as_nanos() as u64 {
                stats.ended_idle += 1;
                out.records.push(build(
                    cfg,
                    key,
                    v,
                    &f.id,
                    FlowEvent::End,
                    Some(FlowEndReason::Idle),
                    ctx,
                ));
                out.delete.push(*key);
                return false;
            }

            if !cfg.update_interval.is_zero()
                && now_ns.saturating_sub(f.last_record_ns) >= cfg.update_interval.as_nanos() as u64
                && v.last_seen_ns > f.last_record_ns
            {
                f.last_record_ns = now_ns;
                out.records
                    .push(build(cfg, key, v, &f.id, FlowEvent::Update, None, ctx));
            }
            true
        });
        self.stats.active = self.flows.len() as u64;
        out
    }

    /// The agent is stopping: an end record for every flow not yet ended.
    pub fn shutdown(&mut self, ctx: &Context<'_>) -> Vec<Flow> {
        let mut out = Vec::new();
        for (key, f) in self.flows.drain() {
            if f.end_published_ns.is_none() {
                let reason = f.ended.map(|(_, r)| r).unwrap_or(FlowEndReason::Shutdown);
                out.push(build(
                    &self.cfg,
                    &key,
                    &f.last,
                    &f.id,
                    FlowEvent::End,
                    Some(reason),
                    ctx,
                ));
            }
        }
        out
    }
}

fn process_of(owner: Option<&Owner>, ctx: &Context<'_>) -> Option<ProcessInfo> {
    let o = owner?;
    Some(match ctx.enricher {
        Some(e) => e.process_info(o.pid, Some(o.tid), Some(&o.comm), Some(o.cgroup_id)),
        None => ProcessInfo {
            pid: o.pid,
            tid: Some(o.tid),
            comm: o.comm.clone(),
            cgroup_id: Some(o.cgroup_id),
            ..Default::default()
        },
    })
}

fn flags(v: u32) -> TcpFlags {
    TcpFlags(v as u8)
}

/// A flow record from the kernel's canonical entry: orient it by the initiator, attach the
/// processes on both ends and the TCP stack's view.
pub fn build(
    cfg: &AssemblyConfig,
    key: &FlowKeyRaw,
    v: &FlowValueRaw,
    id: &str,
    event: FlowEvent,
    end_reason: Option<FlowEndReason>,
    ctx: &Context<'_>,
) -> Flow {
    let sides = [
        SocketAddr::new(ip_from_raw(&key.addr_lo), key.port_lo),
        SocketAddr::new(ip_from_raw(&key.addr_hi), key.port_hi),
    ];
    let c = (v.initiator & 1) as usize;
    let s = 1 - c;
    let (client, server) = (sides[c], sides[s]);
    let protocol = L4Protocol::from_ip_proto(key.proto);
    let is_tcp = key.proto == 6;
    let is_icmp = matches!(protocol, L4Protocol::Icmp | L4Protocol::Icmpv6);

    let client_owner = ctx.attribution.owner(key.proto, client, server);
    let server_owner = ctx.attribution.owner(key.proto, server, client);
    let client_tcp = ctx.attribution.tcp(key.proto, client, server);
    let server_tcp = ctx.attribution.tcp(key.proto, server, client);
    let tcp = if is_tcp {
        // The client socket's view first (it measured the handshake); the server's otherwise.
        let pick = |f: fn(&crate::attribution::TcpStats) -> Option<u64>| {
            client_tcp
                .as_ref()
                .and_then(f)
                .or_else(|| server_tcp.as_ref().and_then(f))
        };
        TcpInfo {
            handshake_us: client_tcp.and_then(|t| t.handshake_ns).map(|ns| ns / 1000),
            srtt_us: pick(|t| t.srtt_us.map(u64::from)).map(|x| x as u32),
            retransmits: pick(|t| t.retransmits.map(u64::from)).map(|x| x as u32),
            bytes_acked: pick(|t| t.bytes_acked),
            bytes_received: pick(|t| t.bytes_received),
        }
    } else {
        TcpInfo::default()
    };

    let mut source = ctx.inventory.endpoint(client.ip(), client.port());
    let mut destination = ctx.inventory.endpoint(server.ip(), server.port());
    if is_icmp && key.port_lo == 0 {
        source.port = 0;
        destination.port = 0;
    }

    Flow {
        time: Timestamp::now(),
        flow_id: id.to_string(),
        event,
        source,
        destination,
        process: process_of(client_owner, ctx),
        destination_process: process_of(server_owner, ctx),
        l4: L4Info {
            protocol,
            tcp_flags: is_tcp.then(|| flags(v.tcp_flags[0] | v.tcp_flags[1])),
            tcp_flags_out: is_tcp.then(|| flags(v.tcp_flags[c])),
            tcp_flags_in: is_tcp.then(|| flags(v.tcp_flags[s])),
            icmp_type: is_icmp.then_some(v.icmp_type),
            icmp_code: is_icmp.then_some(v.icmp_code),
        },
        traffic: Traffic {
            packets_out: v.packets[c],
            packets_in: v.packets[s],
            bytes_out: v.bytes[c],
            bytes_in: v.bytes[s],
            payload_bytes_out: v.payload_bytes[c],
            payload_bytes_in: v.payload_bytes[s],
        },
        tcp,
        first_seen: ctx.clock.to_wall(v.first_seen_ns),
        last_seen: ctx.clock.to_wall(v.last_seen_ns),
        end_reason,
        interface: (v.ifindex != 0).then(|| InterfaceRef {
            ifindex: v.ifindex,
            name: ctx.ifnames.get(&v.ifindex).cloned(),
        }),
        node: cfg.node.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fathom_bpf::abi;
    use fathom_bpf::events::{ip_to_raw, SockEvent, SockEventKind};
    use std::time::Instant;

    fn key() -> FlowKeyRaw {
        FlowKeyRaw {
            addr_lo: ip_to_raw("10.0.0.2".parse().unwrap()),
            addr_hi: ip_to_raw("10.0.0.1".parse().unwrap()),
            port_lo: 80,
            port_hi: 40000,
            proto: 6,
            family: abi::AF_INET,
            pad: [0; 2],
        }
    }

    fn value(t: u64) -> FlowValueRaw {
        FlowValueRaw {
            first_seen_ns: 1_000,
            last_seen_ns: t,
            packets: [3, 5],
            bytes: [300, 500],
            payload_bytes: [200, 100],
            tcp_flags: [0x12, 0x02 | 0x10],
            initiator: 1,
            ifindex: 7,
            ..Default::default()
        }
    }

    fn ctx_parts() -> (Attribution, Inventory, BootClock) {
        let mut a = Attribution::new(Duration::from_secs(60), 100);
        a.on_sock_event(
            &SockEvent {
                kind: SockEventKind::Connect,
                ts_ns: 0,
                pid: 4242,
                tid: 4242,
                comm: "curl".into(),
                cgroup_id: 1,
                proto: 6,
                local: "10.0.0.1:40000".parse().unwrap(),
                remote: "10.0.0.2:80".parse().unwrap(),
                failed: false,
                cookie: 0,
                handshake_ns: 250_000,
                srtt_us: 0,
                retransmits: 0,
                bytes_acked: 0,
                bytes_received: 0,
            },
            Instant::now(),
        );
        (a, Inventory::default(), BootClock::new())
    }

    #[test]
    fn records_are_oriented_by_the_initiator() {
        let (a, inv, clock) = ctx_parts();
        let name: BTreeMap<u32, String> = [(7, "veth0".to_string())].into();
        let ctx = Context {
            attribution: &a,
            inventory: &inv,
            enricher: None,
            clock: &clock,
            ifnames: &name,
        };
        let f = build(
            &AssemblyConfig::default(),
            &key(),
            &value(5_000),
            "id",
            FlowEvent::End,
            Some(FlowEndReason::Fin),
            &ctx,
        );
        assert_eq!(f.source.ip.to_string(), "10.0.0.1");
        assert_eq!(f.source.port, 40000);
        assert_eq!(f.destination.port, 80);
        assert_eq!(f.traffic.packets_out, 5);
        assert_eq!(f.traffic.packets_in, 3);
        assert_eq!(f.traffic.payload_bytes_out, 100);
        assert_eq!(f.l4.tcp_flags_out, Some(TcpFlags(0x12)));
        assert_eq!(
            f.process.as_ref().map(|p| (p.pid, p.comm.as_str())),
            Some((4242, "curl"))
        );
        assert!(f.destination_process.is_none());
        assert_eq!(f.tcp.handshake_us, Some(250));
        assert_eq!(
            f.interface.as_ref().and_then(|i| i.name.as_deref()),
            Some("veth0")
        );
    }

    #[test]
    fn lifecycle_start_end_linger_retention_idle_and_eviction() {
        let (a, inv, clock) = ctx_parts();
        let name = BTreeMap::new();
        let ctx = Context {
            attribution: &a,
            inventory: &inv,
            enricher: None,
            clock: &clock,
            ifnames: &name,
        };
        let cfg = AssemblyConfig {
            end_linger: Duration::from_nanos(100),
            ended_retention: Duration::from_nanos(1000),
            ..Default::default()
        };
        let mut asm = FlowAssembler::new(cfg);
        let mut out = Vec::new();
        asm.on_start(key(), value(1_000), &ctx, &mut out);
        assert!(out.is_empty(), "start waits for the tick");
        let t = asm.tick(&[(key(), value(1_500))], 2_000, &ctx);
        assert_eq!(t.records.len(), 1);
        assert_eq!(t.records[0].event, FlowEvent::Start);

        asm.on_end(key(), value(3_000), FlowEndKind::Fin, 3_000);
        assert!(
            asm.tick(&[(key(), value(3_050))], 3_050, &ctx)
                .records
                .is_empty(),
            "still lingering"
        );
        let t = asm.tick(&[(key(), value(3_090))], 3_200, &ctx);
        assert_eq!(t.records.len(), 1);
        assert_eq!(t.records[0].event, FlowEvent::End);
        assert_eq!(t.records[0].end_reason, Some(FlowEndReason::Fin));
        assert!(t.delete.is_empty());
        let t = asm.tick(&[(key(), value(3_090))], 4_300, &ctx);
        assert!(t.records.is_empty());
        assert_eq!(
            t.delete,
            vec![key()],
            "deleted after retention, without a second end record"
        );
        assert_eq!(asm.active(), 0);

        // Idle UDP flow, and an evicted one.
        let mut udp = key();
        udp.proto = 17;
        let t = asm.tick(&[(udp, value(1))], 31_000_000_002, &ctx);
        assert_eq!(
            t.records.iter().map(|r| r.event).collect::<Vec<_>>(),
            vec![FlowEvent::Start, FlowEvent::End]
        );
        assert_eq!(t.records[1].end_reason, Some(FlowEndReason::Idle));
        assert_eq!(t.delete, vec![udp]);
        asm.tick(&[(key(), value(10))], 20, &ctx);
        // The START event of an entry a snapshot already picked up changes nothing.
        let mut out = Vec::new();
        asm.on_start(key(), value(10), &ctx, &mut out);
        assert!(out.is_empty());
        assert_eq!(asm.active(), 1);
        let t = asm.tick(&[], 30, &ctx);
        assert_eq!(t.records.len(), 1);
        assert_eq!(t.records[0].end_reason, Some(FlowEndReason::Evicted));
        assert_eq!(asm.stats.evicted, 1);
    }
}
