//! Loading and attaching Fathom's programs, and the handles user space needs afterwards:
//! ringbuf readers, per-object counters, the flow table, and a status snapshot.
//!
//! Degradation: only the flow object is required. The sock and proc objects, and each of their
//! attach points, may fail on a given kernel; the failure is recorded in `warnings` with the
//! reason, and the agent runs with what it has.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{
    Link, MapCore, MapFlags, MapHandle, OpenObject, PrintLevel, RingBuffer, RingBufferBuilder,
    TracepointCategory,
};
use serde::Serialize;

use crate::abi::{self, Counter, Pod, WatchedIfaceRaw};
use crate::error::BpfError;
use crate::events::{decode, KernelEvent};
use crate::features::{cgroup2_mount, FeatureReport};
use crate::skel::drop::{DropSkel, DropSkelBuilder};
use crate::skel::flow::{FlowSkel, FlowSkelBuilder};
use crate::skel::proc::{ProcSkel, ProcSkelBuilder};
use crate::skel::sock::{SockSkel, SockSkelBuilder};
use crate::tc::{self, TcAttachment, TcMode};

#[derive(Debug, Clone)]
pub struct SensorConfig {
    /// Entries of the kernel flow table (LRU: when full, the least recently used flow is
    /// evicted, never a packet).
    pub flow_table_entries: u32,
    /// Where to attach the cgroup programs; default: the cgroup v2 root from /proc/mounts.
    pub cgroup_root: Option<PathBuf>,
    /// Load the socket lifecycle programs (sock.bpf.c).
    pub sock: bool,
    /// Load the attribution/process programs (proc.bpf.c).
    pub proc: bool,
    /// Load the kernel drop reason program (drop.bpf.c).
    pub drop: bool,
    /// Drop events per reason per CPU per second (counters stay exact above it).
    pub drop_events_per_sec: u32,
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            flow_table_entries: 65536,
            cgroup_root: None,
            sock: true,
            proc: true,
            drop: true,
            drop_events_per_sec: 100,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttachPoint {
    pub program: String,
    /// "tcx", "tc", "tracepoint", "tp_btf", "cgroup".
    pub kind: String,
    pub target: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ProgramStatus {
    pub name: String,
    pub object: &'static str,
    pub prog_type: String,
    pub id: u32,
    pub attach: Vec<AttachPoint>,
    /// Only counted while the kernel.bpf_stats_enabled sysctl is 1.
    pub run_count: u64,
    pub run_time_ns: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct MapStatus {
    pub name: String,
    pub object: &'static str,
    pub map_type: String,
    pub max_entries: u32,
    /// Entries in use, for hash-like maps.
    pub entries: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SensorStatus {
    pub programs: Vec<ProgramStatus>,
    pub maps: Vec<MapStatus>,
    /// Summed over CPUs and objects.
    pub counters: BTreeMap<String, u64>,
    /// Ringbuf events lost per object (kernel side: ringbuf full).
    pub lost_events: BTreeMap<String, u64>,
    /// Records user space could not decode.
    pub decode_errors: u64,
    /// Exact kernel drop counts by reason name (drop.bpf.c).
    pub drops: BTreeMap<String, u64>,
    pub interfaces: Vec<InterfaceStatus>,
    pub warnings: Vec<String>,
    pub bpf_stats_enabled: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct InterfaceStatus {
    pub ifindex: u32,
    pub name: String,
    pub mode: TcMode,
    pub flags: u32,
}

static VERIFIER_LOG: Mutex<String> = Mutex::new(String::new());

/// libbpf prints the verifier log through its print callback; keep the latest output so a
/// failed load can be reported with the program's own log.
fn libbpf_print(level: PrintLevel, msg: String) {
    if let Ok(mut log) = VERIFIER_LOG.lock() {
        if log.len() > 256 * 1024 {
            let cut = log.len() - 128 * 1024;
            log.drain(..cut);
        }
        log.push_str(&msg);
    }
    if level == PrintLevel::Warn {
        tracing::debug!(target: "libbpf", "{}", msg.trim_end());
    }
}

/// Route libbpf's own messages (verifier logs, probe failures) through us instead of stderr.
pub fn install_libbpf_print() {
    libbpf_rs::set_print(Some((PrintLevel::Debug, libbpf_print)));
}

fn open_failed(object: &'static str) -> impl FnOnce(libbpf_rs::Error) -> BpfError {
    move |source| BpfError::Load {
        object,
        log: String::new(),
        source,
    }
}

/// A failed load carries the verifier's log: the program name and the tail of the log are
/// what someone needs to see why their kernel refused it.
fn load_failed(object: &'static str) -> impl FnOnce(libbpf_rs::Error) -> BpfError {
    move |source| BpfError::Load {
        object,
        log: take_verifier_log(),
        source,
    }
}

pub(crate) fn take_verifier_log() -> String {
    VERIFIER_LOG
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default()
}

/// Skeletons borrow their OpenObject storage for their whole life; the agent keeps them until
/// exit, so the (small) storage is leaked rather than made self-referential.
fn storage() -> &'static mut MaybeUninit<OpenObject> {
    Box::leak(Box::new(MaybeUninit::uninit()))
}

pub struct Sensors {
    flow: FlowSkel<'static>,
    sock: Option<SockSkel<'static>>,
    proc: Option<ProcSkel<'static>>,
    drop: Option<DropSkel<'static>>,
    drop_reasons: crate::kernelsyms::DropReasons,
    links: Vec<(AttachPoint, Link)>,
    interfaces: BTreeMap<u32, (String, u32, TcAttachment)>,
    warnings: Vec<String>,
    decode_errors: Arc<AtomicU64>,
}

impl Sensors {
    pub fn load(cfg: &SensorConfig, features: &FeatureReport) -> Result<Sensors, BpfError> {
        install_libbpf_print();
        let mut warnings = Vec::new();

        let flow = load_flow(cfg)?;
        let mut links = Vec::new();

        let sock = if cfg.sock {
            match load_sock(features, &mut links) {
                Ok(s) => Some(s),
                Err(e) => {
                    warnings.push(format!(
                        "socket lifecycle disabled (no handshake/RTT/retransmits): {e}"
                    ));
                    None
                }
            }
        } else {
            None
        };

        let proc = if cfg.proc {
            match load_proc(cfg, &mut links, &mut warnings) {
                Ok(p) => Some(p),
                Err(e) => {
                    warnings.push(format!("process attribution disabled: {e}"));
                    None
                }
            }
        } else {
            None
        };

        let drop = if cfg.drop {
            match load_drop(cfg, &mut links) {
                Ok(d) => Some(d),
                Err(e) => {
                    warnings.push(format!("kernel drop reasons disabled: {e}"));
                    None
                }
            }
        } else {
            None
        };

        for w in &warnings {
            tracing::warn!("{w}");
        }
        Ok(Sensors {
            flow,
            sock,
            proc,
            drop_reasons: if drop.is_some() {
                crate::kernelsyms::DropReasons::from_vmlinux().unwrap_or_default()
            } else {
                Default::default()
            },
            drop,
            links,
            interfaces: BTreeMap::new(),
            warnings,
            decode_errors: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Start accounting on an interface. `flags` are `abi::IFACE_*`; use [`iface_flags_for`].
    pub fn attach_interface(
        &mut self,
        ifindex: u32,
        name: &str,
        flags: u32,
    ) -> Result<TcMode, BpfError> {
        if let Some((_, _, a)) = self.interfaces.get(&ifindex) {
            return Ok(a.mode);
        }
        let w = WatchedIfaceRaw { flags, pad: 0 };
        // Registered before attaching so the first packets already see the right flags.
        self.flow
            .maps
            .watched_ifaces
            .update(&ifindex.to_ne_bytes(), w.as_bytes(), MapFlags::ANY)
            .map_err(|e| BpfError::Map {
                map: "watched_ifaces",
                source: e,
            })?;
        match tc::attach(
            &self.flow.progs.flow_ingress,
            &self.flow.progs.flow_egress,
            ifindex,
        ) {
            Ok(a) => {
                let mode = a.mode;
                self.interfaces
                    .insert(ifindex, (name.to_string(), flags, a));
                Ok(mode)
            }
            Err(e) => {
                let _ = self.flow.maps.watched_ifaces.delete(&ifindex.to_ne_bytes());
                Err(e)
            }
        }
    }

    pub fn detach_interface(&mut self, ifindex: u32) {
        self.interfaces.remove(&ifindex);
        let _ = self.flow.maps.watched_ifaces.delete(&ifindex.to_ne_bytes());
    }

    pub fn attached_interfaces(&self) -> Vec<u32> {
        self.interfaces.keys().copied().collect()
    }

    /// A ring buffer reader over every loaded object's ringbuf. Decoded events go to `sink`;
    /// records that do not decode are counted in the status' `decode_errors`.
    pub fn ring_buffer<F>(&self, sink: F) -> Result<RingBuffer<'static>, BpfError>
    where
        F: FnMut(KernelEvent) + 'static,
    {
        let sink = Rc::new(RefCell::new(sink));
        let callback = || {
            let sink = Rc::clone(&sink);
            let errors = Arc::clone(&self.decode_errors);
            move |data: &[u8]| {
                match decode(data) {
                    Some(ev) => (sink.borrow_mut())(ev),
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                0
            }
        };
        let err = |map: &'static str| move |e| BpfError::Map { map, source: e };
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&self.flow.maps.flow_events, callback())
            .map_err(err("flow_events"))?;
        if let Some(s) = &self.sock {
            builder
                .add(&s.maps.sock_events, callback())
                .map_err(err("sock_events"))?;
        }
        if let Some(p) = &self.proc {
            builder
                .add(&p.maps.proc_events, callback())
                .map_err(err("proc_events"))?;
        }
        if let Some(d) = &self.drop {
            builder
                .add(&d.maps.drop_events, callback())
                .map_err(err("drop_events"))?;
        }
        builder.build().map_err(|e| BpfError::Map {
            map: "ringbuf",
            source: e,
        })
    }

    /// An independent handle on the kernel flow table, usable from another thread.
    pub fn flow_table(&self) -> Result<MapHandle, BpfError> {
        MapHandle::try_from(&self.flow.maps.flows).map_err(|e| BpfError::Map {
            map: "flows",
            source: e,
        })
    }

    /// Counters per object ("flow", "sock", "proc"), summed over CPUs.
    pub fn counters(&self) -> BTreeMap<&'static str, [u64; abi::COUNTER_MAX]> {
        let mut out = BTreeMap::new();
        out.insert("flow", read_counters(&self.flow.maps.counters));
        if let Some(s) = &self.sock {
            out.insert("sock", read_counters(&s.maps.counters));
        }
        if let Some(p) = &self.proc {
            out.insert("proc", read_counters(&p.maps.counters));
        }
        if let Some(d) = &self.drop {
            out.insert("drop", read_counters(&d.maps.counters));
        }
        out
    }

    /// Exact drop counts per kernel drop reason (summed over CPUs); empty without drop.bpf.c.
    pub fn drop_counts(&self) -> BTreeMap<u32, u64> {
        let mut out = BTreeMap::new();
        let Some(d) = &self.drop else { return out };
        for k in d.maps.drop_counts.keys() {
            let Some(reason) = k
                .get(..4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            else {
                continue;
            };
            out.insert(reason, sum_percpu(&d.maps.drop_counts, &k));
        }
        out
    }

    /// A status snapshot. Counting the entries of hash maps walks every key (one syscall
    /// each, ~200k a second with full tables), so it is done only when `count_entries`.
    pub fn status(&self, count_entries: bool) -> SensorStatus {
        let mut st = SensorStatus {
            warnings: self.warnings.clone(),
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
            bpf_stats_enabled: std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
                .map(|s| s.trim() == "1")
                .unwrap_or(false),
            ..Default::default()
        };
        st.drops = self
            .drop_counts()
            .into_iter()
            .map(|(r, n)| (self.drop_reasons.name(r), n))
            .collect();
        for (object, counters) in self.counters() {
            for c in Counter::ALL {
                let v = counters[c as usize];
                if v != 0 || c == Counter::EventsLost {
                    *st.counters.entry(c.name().to_string()).or_default() += v;
                }
            }
            st.lost_events
                .insert(object.to_string(), counters[Counter::EventsLost as usize]);
        }

        let mut tc_points: Vec<AttachPoint> = Vec::new();
        for (ifindex, (name, flags, a)) in &self.interfaces {
            st.interfaces.push(InterfaceStatus {
                ifindex: *ifindex,
                name: name.clone(),
                mode: a.mode,
                flags: *flags,
            });
            let kind = match a.mode {
                TcMode::Tcx => "tcx",
                TcMode::Legacy => "tc",
            };
            tc_points.push(AttachPoint {
                program: String::new(),
                kind: kind.into(),
                target: name.clone(),
            });
        }

        let mut programs = Vec::new();
        collect_programs(&mut programs, "flow", self.flow.object());
        if let Some(s) = &self.sock {
            collect_programs(&mut programs, "sock", s.object());
        }
        if let Some(p) = &self.proc {
            collect_programs(&mut programs, "proc", p.object());
        }
        if let Some(d) = &self.drop {
            collect_programs(&mut programs, "drop", d.object());
        }
        for p in &mut programs {
            p.attach = self
                .links
                .iter()
                .filter(|(a, _)| a.program == p.name)
                .map(|(a, _)| a.clone())
                .collect();
            if p.name == "flow_ingress" || p.name == "flow_egress" {
                let dir = if p.name == "flow_ingress" {
                    "ingress"
                } else {
                    "egress"
                };
                p.attach = tc_points
                    .iter()
                    .map(|a| AttachPoint {
                        program: p.name.clone(),
                        kind: a.kind.clone(),
                        target: format!("{}:{dir}", a.target),
                    })
                    .collect();
            }
        }
        st.programs = programs;

        collect_maps(&mut st.maps, "flow", self.flow.object(), count_entries);
        if let Some(s) = &self.sock {
            collect_maps(&mut st.maps, "sock", s.object(), count_entries);
        }
        if let Some(p) = &self.proc {
            collect_maps(&mut st.maps, "proc", p.object(), count_entries);
        }
        if let Some(d) = &self.drop {
            collect_maps(&mut st.maps, "drop", d.object(), count_entries);
        }
        st
    }

    /// Run the flow program once on `packet` (BPF_PROG_TEST_RUN), as if it arrived on
    /// `ifindex`; returns the program's verdict. For tests and benchmarks.
    pub fn test_run_flow(
        &self,
        ingress: bool,
        packet: &[u8],
        repeat: u32,
    ) -> Result<(i32, std::time::Duration), BpfError> {
        test_run_flow(&self.flow, ingress, packet, repeat, None)
    }

    /// As [`Self::test_run_flow`], with `__sk_buff` fields set.
    pub fn test_run_flow_ctx(
        &self,
        ingress: bool,
        packet: &[u8],
        ctx: TestRunCtx,
    ) -> Result<i32, BpfError> {
        test_run_flow(&self.flow, ingress, packet, 1, Some(ctx)).map(|(r, _)| r)
    }

    /// Mark an interface as watched without attaching anything (tests of the dedup rule).
    pub fn set_watched(&self, ifindex: u32, flags: u32) -> Result<(), BpfError> {
        let w = WatchedIfaceRaw { flags, pad: 0 };
        self.flow
            .maps
            .watched_ifaces
            .update(&ifindex.to_ne_bytes(), w.as_bytes(), MapFlags::ANY)
            .map_err(|e| BpfError::Map {
                map: "watched_ifaces",
                source: e,
            })
    }
}

/// Flags for an interface from its link type (ARPHRD_* in /sys/class/net/NAME/type).
pub fn iface_flags_for(name: &str) -> u32 {
    let arphrd: u32 = std::fs::read_to_string(format!("/sys/class/net/{name}/type"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1);
    match arphrd {
        // Loopback: every packet is sent and received on lo; count it once, at egress.
        772 => abi::IFACE_L2_ETHER | abi::IFACE_COUNT_EGRESS,
        // Ethernet and friends carry an Ethernet header.
        1 => abi::IFACE_L2_ETHER | abi::IFACE_COUNT_INGRESS | abi::IFACE_COUNT_EGRESS,
        // tun, wireguard, ip tunnels: frames start at the IP header.
        _ => abi::IFACE_COUNT_INGRESS | abi::IFACE_COUNT_EGRESS,
    }
}

fn load_flow(cfg: &SensorConfig) -> Result<FlowSkel<'static>, BpfError> {
    let mut open = FlowSkelBuilder::default()
        .open(storage())
        .map_err(open_failed("flow"))?;
    open.maps
        .flows
        .set_max_entries(cfg.flow_table_entries.max(1024))
        .map_err(open_failed("flow"))?;
    take_verifier_log();
    open.load().map_err(load_failed("flow"))
}

fn load_sock(
    features: &FeatureReport,
    links: &mut Vec<(AttachPoint, Link)>,
) -> Result<SockSkel<'static>, BpfError> {
    let mut open = SockSkelBuilder::default()
        .open(storage())
        .map_err(open_failed("sock"))?;
    let typed = features.has("tp_btf");
    open.progs.sock_state_btf.set_autoload(typed);
    open.progs.sock_state_tp.set_autoload(!typed);
    take_verifier_log();
    let skel = open.load().map_err(load_failed("sock"))?;
    let (prog, kind) = if typed {
        ("sock_state_btf", "tp_btf")
    } else {
        ("sock_state_tp", "tracepoint")
    };
    let link = if typed {
        skel.progs.sock_state_btf.attach()
    } else {
        skel.progs.sock_state_tp.attach_tracepoint(
            TracepointCategory::Custom("sock".into()),
            "inet_sock_set_state",
        )
    }
    .map_err(|e| BpfError::attach("sock/inet_sock_set_state", e))?;
    links.push((
        AttachPoint {
            program: prog.into(),
            kind: kind.into(),
            target: "sock/inet_sock_set_state".into(),
        },
        link,
    ));
    match skel.progs.tcp_retransmit.attach_tracepoint(
        TracepointCategory::Custom("tcp".into()),
        "tcp_retransmit_skb",
    ) {
        Ok(l) => links.push((
            AttachPoint {
                program: "tcp_retransmit".into(),
                kind: "tracepoint".into(),
                target: "tcp/tcp_retransmit_skb".into(),
            },
            l,
        )),
        Err(e) => tracing::warn!(
            "tcp/tcp_retransmit_skb not attached ({e}): retransmits still read at close"
        ),
    }
    Ok(skel)
}

fn load_proc(
    cfg: &SensorConfig,
    links: &mut Vec<(AttachPoint, Link)>,
    warnings: &mut Vec<String>,
) -> Result<ProcSkel<'static>, BpfError> {
    let open = ProcSkelBuilder::default()
        .open(storage())
        .map_err(open_failed("proc"))?;
    take_verifier_log();
    let skel = open.load().map_err(load_failed("proc"))?;

    let root = cfg.cgroup_root.clone().or_else(cgroup2_mount);
    match root.as_deref().map(open_dir) {
        Some(Ok(dir)) => {
            let target = root
                .as_deref()
                .map(Path::display)
                .map(|d| d.to_string())
                .unwrap_or_default();
            let fd = dir.as_fd().as_raw_fd();
            for (name, prog) in [
                ("proc_sock_create", &skel.progs.proc_sock_create),
                ("proc_connect4", &skel.progs.proc_connect4),
                ("proc_connect6", &skel.progs.proc_connect6),
                ("proc_sendmsg4", &skel.progs.proc_sendmsg4),
                ("proc_sendmsg6", &skel.progs.proc_sendmsg6),
                ("proc_skb_egress", &skel.progs.proc_skb_egress),
            ] {
                match prog.attach_cgroup(fd) {
                    Ok(l) => links.push((
                        AttachPoint {
                            program: name.into(),
                            kind: "cgroup".into(),
                            target: target.clone(),
                        },
                        l,
                    )),
                    Err(e) => warnings.push(format!("{name} not attached to cgroup {target}: {e}")),
                }
            }
        }
        Some(Err(e)) => warnings.push(format!("cgroup programs not attached: {e}")),
        None => warnings
            .push("cgroup programs not attached: no cgroup2 mount found in /proc/mounts".into()),
    }

    for (name, prog, cat, tp) in [
        (
            "proc_accept4_exit",
            &skel.progs.proc_accept4_exit,
            "syscalls",
            "sys_exit_accept4",
        ),
        (
            "proc_accept_exit",
            &skel.progs.proc_accept_exit,
            "syscalls",
            "sys_exit_accept",
        ),
        (
            "proc_exec",
            &skel.progs.proc_exec,
            "sched",
            "sched_process_exec",
        ),
        (
            "proc_exit",
            &skel.progs.proc_exit,
            "sched",
            "sched_process_exit",
        ),
    ] {
        match prog.attach_tracepoint(TracepointCategory::Custom(cat.into()), tp) {
            Ok(l) => links.push((
                AttachPoint {
                    program: name.into(),
                    kind: "tracepoint".into(),
                    target: format!("{cat}/{tp}"),
                },
                l,
            )),
            Err(e) => warnings.push(format!("{name} not attached to {cat}/{tp}: {e}")),
        }
    }
    Ok(skel)
}

fn load_drop(
    cfg: &SensorConfig,
    links: &mut Vec<(AttachPoint, Link)>,
) -> Result<DropSkel<'static>, BpfError> {
    let mut open = DropSkelBuilder::default()
        .open(storage())
        .map_err(open_failed("drop"))?;
    if let Some(ro) = open.maps.rodata_data.as_deref_mut() {
        ro.events_per_sec = cfg.drop_events_per_sec.max(1);
    }
    take_verifier_log();
    let skel = open.load().map_err(load_failed("drop"))?;
    let link = skel
        .progs
        .drop_kfree_skb
        .attach_tracepoint(TracepointCategory::Custom("skb".into()), "kfree_skb")
        .map_err(|e| BpfError::attach("skb/kfree_skb", e))?;
    links.push((
        AttachPoint {
            program: "drop_kfree_skb".into(),
            kind: "tracepoint".into(),
            target: "skb/kfree_skb".into(),
        },
        link,
    ));
    Ok(skel)
}

fn open_dir(p: &Path) -> Result<File, String> {
    File::open(p).map_err(|e| format!("opening {}: {e}", p.display()))
}

fn read_counters(map: &dyn MapCore) -> [u64; abi::COUNTER_MAX] {
    let mut out = [0u64; abi::COUNTER_MAX];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = sum_percpu(map, &(i as u32).to_ne_bytes());
    }
    out
}

/// A per-CPU u64 counter summed over CPUs; a missing key or short value counts as 0.
fn sum_percpu(map: &dyn MapCore, key: &[u8]) -> u64 {
    let Ok(Some(per_cpu)) = map.lookup_percpu(key, MapFlags::ANY) else {
        return 0;
    };
    per_cpu
        .iter()
        .filter_map(|b| {
            b.get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_ne_bytes)
        })
        .sum()
}

fn collect_programs(out: &mut Vec<ProgramStatus>, object: &'static str, obj: &libbpf_rs::Object) {
    for p in obj.progs() {
        let mut info = libbpf_sys::bpf_prog_info::default();
        let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
        // SAFETY: info is a properly sized, zeroed bpf_prog_info; len tells the kernel its size.
        let rc = unsafe {
            libbpf_sys::bpf_prog_get_info_by_fd(
                p.as_fd().as_raw_fd(),
                &mut info as *mut _,
                &mut len as *mut _,
            )
        };
        let (id, run_count, run_time_ns) = if rc == 0 {
            (info.id, info.run_cnt, info.run_time_ns)
        } else {
            (0, 0, 0)
        };
        out.push(ProgramStatus {
            name: p.name().to_string_lossy().into_owned(),
            object,
            prog_type: format!("{:?}", p.prog_type()),
            id,
            attach: Vec::new(),
            run_count,
            run_time_ns,
        });
    }
}

fn collect_maps(
    out: &mut Vec<MapStatus>,
    object: &'static str,
    obj: &libbpf_rs::Object,
    count_entries: bool,
) {
    for m in obj.maps() {
        let name = m.name().to_string_lossy().into_owned();
        if name.ends_with(".bss") || name.ends_with(".data") || name.ends_with(".rodata") {
            continue;
        }
        let hashlike = count_entries
            && matches!(
                m.map_type(),
                libbpf_rs::MapType::Hash
                    | libbpf_rs::MapType::LruHash
                    | libbpf_rs::MapType::PercpuHash
                    | libbpf_rs::MapType::LruPercpuHash
            );
        out.push(MapStatus {
            entries: hashlike.then(|| m.keys().count() as u64),
            name,
            object,
            map_type: format!("{:?}", m.map_type()),
            max_entries: m.max_entries(),
        });
    }
}

/// The parts of `struct __sk_buff` a test run may set (the kernel rejects the others).
#[derive(Debug, Clone, Copy, Default)]
pub struct TestRunCtx {
    /// Where the packet entered the host (0: locally generated).
    pub ingress_ifindex: u32,
    /// Segments of a GSO super-packet (0 or 1: a plain packet).
    pub gso_segs: u32,
    pub gso_size: u32,
}

fn test_run_flow(
    flow: &FlowSkel<'_>,
    ingress: bool,
    packet: &[u8],
    repeat: u32,
    ctx: Option<TestRunCtx>,
) -> Result<(i32, std::time::Duration), BpfError> {
    use crate::skel::flow::types::__sk_buff;
    use std::mem::{offset_of, size_of};
    let prog = if ingress {
        &flow.progs.flow_ingress
    } else {
        &flow.progs.flow_egress
    };
    let mut ctx_buf = vec![0u8; size_of::<__sk_buff>()];
    if let Some(c) = ctx {
        let mut put = |off: usize, v: u32| ctx_buf[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        put(offset_of!(__sk_buff, ingress_ifindex), c.ingress_ifindex);
        put(offset_of!(__sk_buff, gso_segs), c.gso_segs);
        put(offset_of!(__sk_buff, gso_size), c.gso_size);
    }
    let input = libbpf_rs::ProgramInput {
        data_in: Some(packet),
        context_in: ctx.is_some().then_some(ctx_buf.as_mut_slice()),
        repeat,
        ..Default::default()
    };
    let out = prog
        .test_run(input)
        .map_err(|e| BpfError::Other(format!("BPF_PROG_TEST_RUN: {e}")))?;
    Ok((out.return_value as i32, out.duration))
}
