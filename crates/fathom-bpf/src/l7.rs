//! Live L7 capture, kernel side from user space: loading and attaching `bpf/l7.bpf.c` (syscall
//! tracepoints), its ringbuf, its counters, and decoding its variable-sized payload records.
//!
//! The object is independent of [`crate::sensors::Sensors`]: it is optional (agent config),
//! has its own ringbuf read on its own thread (payload volume must never delay flow events),
//! and degrades per tracepoint: a syscall whose tracepoint is missing is reported in
//! `warnings` and the others still work.

pub mod tls;

use std::collections::BTreeMap;
use std::mem::{size_of, MaybeUninit};
use std::net::SocketAddr;
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{
    Link, MapCore, MapFlags, OpenObject, RingBuffer, RingBufferBuilder, TracepointCategory,
};

use crate::abi::l7::{self as l7abi, L7Counter, L7EventRaw, L7_COUNTER_MAX};
use crate::abi::Pod;
use crate::error::BpfError;
use crate::events::ip_from_raw;
use crate::sensors::AttachPoint;
use crate::skel::l7::{L7Skel, L7SkelBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L7EventKind {
    #[default]
    Data,
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum L7Role {
    #[default]
    Unknown,
    /// connect() was called on this socket.
    Client,
    /// accept() returned this socket.
    Server,
}

/// One syscall's payload on a socket (or its close), decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L7Event {
    pub kind: L7EventKind,
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub fd: i32,
    pub cookie: u64,
    pub cgroup_id: u64,
    /// The syscall's real return value: bytes moved (may exceed `data.len()`).
    pub ret: i64,
    /// True: the process wrote/sent; false: it read/received.
    pub egress: bool,
    /// The kernel's guess (`abi::l7::L7_PROTO_*`).
    pub protocol_guess: u8,
    pub role: L7Role,
    pub truncated: bool,
    /// Plaintext from TLS library uprobes.
    pub tls: bool,
    pub l4proto: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub comm: String,
    pub data: Vec<u8>,
}

impl Default for L7Event {
    fn default() -> Self {
        let unspecified = SocketAddr::from(([0u8; 4], 0));
        L7Event {
            kind: L7EventKind::Data,
            ts_ns: 0,
            pid: 0,
            tid: 0,
            fd: -1,
            cookie: 0,
            cgroup_id: 0,
            ret: 0,
            egress: false,
            protocol_guess: 0,
            role: L7Role::Unknown,
            truncated: false,
            tls: false,
            l4proto: 0,
            local: unspecified,
            remote: unspecified,
            comm: String::new(),
            data: Vec::new(),
        }
    }
}

/// A record of `l7.bpf.c`: the fixed header then `data_len` bytes. `None` when the record is
/// shorter than it claims or claims more than the kernel can send.
pub fn decode(bytes: &[u8]) -> Option<L7Event> {
    let mut e = L7Event::default();
    decode_into(bytes, &mut e).then_some(e)
}

/// [`decode`] into an event whose buffers are reused (the ring reader decodes every record
/// into the same one: no allocation per event). Returns false, `e` unspecified, when the
/// record does not decode.
pub fn decode_into(bytes: &[u8], e: &mut L7Event) -> bool {
    let Some(h) = L7EventRaw::from_bytes(bytes) else {
        return false;
    };
    let kind = match h.r#type {
        l7abi::EV_L7_DATA => L7EventKind::Data,
        l7abi::EV_L7_CLOSE => L7EventKind::Close,
        _ => return false,
    };
    let len = h.data_len as usize;
    if len > l7abi::L7_MAX_DATA {
        return false;
    }
    let Some(data) = bytes.get(size_of::<L7EventRaw>()..size_of::<L7EventRaw>() + len) else {
        return false;
    };
    e.kind = kind;
    e.ts_ns = h.ts_ns;
    e.pid = h.pid;
    e.tid = h.tid;
    e.fd = h.fd;
    e.cookie = h.cookie;
    e.cgroup_id = h.cgroup_id;
    e.ret = h.ret;
    e.egress = h.direction == l7abi::L7_EGRESS;
    e.protocol_guess = h.protocol;
    e.role = match h.role {
        l7abi::L7_ROLE_CLIENT => L7Role::Client,
        l7abi::L7_ROLE_SERVER => L7Role::Server,
        _ => L7Role::Unknown,
    };
    e.truncated = h.flags & l7abi::L7_F_TRUNCATED != 0;
    e.tls = h.flags & l7abi::L7_F_TLS != 0;
    e.l4proto = h.l4proto;
    e.local = SocketAddr::new(ip_from_raw(&h.local_addr), h.local_port);
    e.remote = SocketAddr::new(ip_from_raw(&h.remote_addr), h.remote_port);
    let comm = &h.comm[..h.comm.iter().position(|&b| b == 0).unwrap_or(h.comm.len())];
    if e.comm.as_bytes() != comm {
        e.comm.clear();
        e.comm.push_str(&String::from_utf8_lossy(comm));
    }
    e.data.clear();
    e.data.extend_from_slice(data);
    true
}

#[derive(Debug, Clone)]
pub struct L7Config {
    /// Payload bytes copied per syscall (clamped to `abi::l7::L7_MAX_DATA`).
    pub capture_bytes: u32,
    /// Ring buffer size in bytes (a power of two, at least one page).
    pub ringbuf_bytes: u32,
    /// (process, fd) entries tracked at once (LRU).
    pub connections: u32,
    /// This process's tgid: its own sockets are never captured (no feedback loop).
    pub self_tgid: u32,
    /// Bytes waiting in the ring before the kernel wakes the reader (which also polls on a
    /// timer): batches instead of a wakeup per event.
    pub wakeup_bytes: u32,
}

impl Default for L7Config {
    fn default() -> Self {
        L7Config {
            capture_bytes: l7abi::L7_DEFAULT_CAP,
            ringbuf_bytes: 8 << 20,
            connections: 65536,
            self_tgid: std::process::id(),
            wakeup_bytes: 1 << 20,
        }
    }
}

/// The payload ring. The kernel writes without waking the reader until
/// [`L7Config::wakeup_bytes`] wait: [`L7Ring::poll`] waits for that or its timeout, whichever
/// comes first, then reads everything there is.
pub struct L7Ring {
    rb: RingBuffer<'static>,
}

impl L7Ring {
    /// Wait up to `timeout` for a batch, then hand every waiting record to the callback.
    pub fn poll(&self, timeout: Duration) -> Result<(), BpfError> {
        let map_err = |source| BpfError::Map {
            map: "l7_events",
            source,
        };
        self.rb.poll(timeout).map_err(map_err)?;
        self.rb.consume().map_err(map_err)
    }
}

fn storage() -> &'static mut MaybeUninit<OpenObject> {
    Box::leak(Box::new(MaybeUninit::uninit()))
}

pub struct L7Sensor {
    skel: L7Skel<'static>,
    links: Vec<(AttachPoint, Link)>,
    pub warnings: Vec<String>,
}

/// (program, tracepoint) pairs, all in the `syscalls` category.
const TRACEPOINTS: &[&str] = &[
    "sys_enter_read",
    "sys_exit_read",
    "sys_enter_write",
    "sys_exit_write",
    "sys_enter_readv",
    "sys_exit_readv",
    "sys_enter_writev",
    "sys_exit_writev",
    "sys_enter_sendto",
    "sys_exit_sendto",
    "sys_enter_recvfrom",
    "sys_exit_recvfrom",
    "sys_enter_sendmsg",
    "sys_exit_sendmsg",
    "sys_enter_recvmsg",
    "sys_exit_recvmsg",
    "sys_enter_sendmmsg",
    "sys_exit_sendmmsg",
    "sys_enter_recvmmsg",
    "sys_exit_recvmmsg",
    "sys_enter_connect",
    "sys_exit_connect",
    "sys_exit_accept",
    "sys_exit_accept4",
    "sys_enter_close",
];

impl L7Sensor {
    pub fn load(cfg: &L7Config) -> Result<L7Sensor, BpfError> {
        crate::sensors::install_libbpf_print();
        let open_err = |source| BpfError::Load {
            object: "l7",
            log: String::new(),
            source,
        };
        let mut open = L7SkelBuilder::default().open(storage()).map_err(open_err)?;
        if let Some(ro) = open.maps.rodata_data.as_deref_mut() {
            ro.capture_bytes = cfg.capture_bytes.clamp(1, l7abi::L7_MAX_DATA as u32);
            ro.self_tgid = cfg.self_tgid;
            // A wakeup before the ring is half full, whatever the configured sizes.
            ro.wakeup_bytes = cfg.wakeup_bytes.clamp(1, cfg.ringbuf_bytes.max(4096) / 2);
        }
        open.maps
            .l7_events
            .set_max_entries(cfg.ringbuf_bytes.max(4096).next_power_of_two())
            .map_err(open_err)?;
        open.maps
            .l7_conns
            .set_max_entries(cfg.connections.max(1024))
            .map_err(open_err)?;
        let skel = open.load().map_err(|source| BpfError::Load {
            object: "l7",
            log: crate::sensors::take_verifier_log(),
            source,
        })?;
        let mut links = Vec::new();
        let mut warnings = Vec::new();
        for tp in TRACEPOINTS {
            let prog_name = format!("l7_{}", tp.trim_start_matches("sys_"));
            let Some(prog) = skel
                .object()
                .progs_mut()
                .find(|p| p.name().to_string_lossy() == prog_name)
            else {
                warnings.push(format!("l7: program {prog_name} missing from the object"));
                continue;
            };
            match prog.attach_tracepoint(TracepointCategory::Syscalls, tp) {
                Ok(l) => links.push((
                    AttachPoint {
                        program: prog_name,
                        kind: "tracepoint".into(),
                        target: format!("syscalls/{tp}"),
                    },
                    l,
                )),
                Err(e) => warnings.push(format!(
                    "l7: {prog_name} not attached to syscalls/{tp} ({e}): calls of that kind are not captured"
                )),
            }
        }
        if links.is_empty() {
            return Err(BpfError::Other(format!(
                "l7: no syscall tracepoint could be attached: {}",
                warnings.join("; ")
            )));
        }
        for w in &warnings {
            tracing::warn!("{w}");
        }
        Ok(L7Sensor {
            skel,
            links,
            warnings,
        })
    }

    /// A reader of the payload ringbuf; records that do not decode go to `bad`. Every record
    /// is decoded into the same [`L7Event`] (clone it to keep it).
    pub fn ring_buffer<F, B>(&self, mut sink: F, mut bad: B) -> Result<L7Ring, BpfError>
    where
        F: FnMut(&L7Event) + 'static,
        B: FnMut() + 'static,
    {
        let mut event = L7Event::default();
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&self.skel.maps.l7_events, move |data: &[u8]| {
                if decode_into(data, &mut event) {
                    sink(&event);
                } else {
                    bad();
                }
                0
            })
            .map_err(|e| BpfError::Map {
                map: "l7_events",
                source: e,
            })?;
        let rb = builder.build().map_err(|e| BpfError::Map {
            map: "l7_events",
            source: e,
        })?;
        Ok(L7Ring { rb })
    }

    /// The per-CPU counters summed over CPUs, by name.
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        let map = &self.skel.maps.l7_counters;
        L7Counter::ALL
            .iter()
            .map(|c| {
                let key = (*c as u32).to_ne_bytes();
                let sum = match map.lookup_percpu(&key, MapFlags::ANY) {
                    Ok(Some(per_cpu)) => per_cpu
                        .iter()
                        .filter_map(|b| b.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()))
                        .map(u64::from_ne_bytes)
                        .sum(),
                    _ => 0,
                };
                (c.name(), sum)
            })
            .collect()
    }

    pub fn counter(&self, c: L7Counter) -> u64 {
        self.counters().get(c.name()).copied().unwrap_or(0)
    }

    pub fn attach_points(&self) -> Vec<AttachPoint> {
        self.links.iter().map(|(a, _)| a.clone()).collect()
    }

    pub fn counter_max() -> usize {
        L7_COUNTER_MAX
    }
}
