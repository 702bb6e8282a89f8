//! Which process owns which socket, and what the TCP stack said about it, keyed by the
//! socket's own view of its tuple (local, remote). Fed by sock/proc kernel events; read when a
//! flow record is built (the flow's client side is a socket's local end, and so is its server
//! side). Bounded: entries expire after a TTL and the table has a hard size limit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fathom_bpf::events::{SockEvent, SockEventKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketTuple {
    pub proto: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub cgroup_id: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpStats {
    pub handshake_ns: Option<u64>,
    pub srtt_us: Option<u32>,
    pub retransmits: Option<u32>,
    pub bytes_acked: Option<u64>,
    pub bytes_received: Option<u64>,
}

#[derive(Debug, Clone)]
struct Entry {
    owner: Option<Owner>,
    tcp: TcpStats,
    touched: Instant,
}

#[derive(Debug)]
pub struct Attribution {
    sockets: HashMap<SocketTuple, Entry>,
    ttl: Duration,
    max_entries: usize,
    pub evicted: u64,
}

impl Attribution {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Attribution {
            sockets: HashMap::new(),
            ttl,
            max_entries: max_entries.max(16),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    pub fn on_sock_event(&mut self, e: &SockEvent, now: Instant) {
        let tuple = SocketTuple {
            proto: e.proto,
            local: e.local,
            remote: e.remote,
        };
        if self.sockets.len() >= self.max_entries && !self.sockets.contains_key(&tuple) {
            self.expire(now);
            if self.sockets.len() >= self.max_entries {
                // Still full of live entries: drop the oldest rather than grow without bound.
                if let Some(oldest) = self
                    .sockets
                    .iter()
                    .min_by_key(|(_, v)| v.touched)
                    .map(|(k, _)| *k)
                {
                    self.sockets.remove(&oldest);
                    self.evicted += 1;
                }
            }
        }
        let entry = self.sockets.entry(tuple).or_insert(Entry {
            owner: None,
            tcp: TcpStats::default(),
            touched: now,
        });
        entry.touched = now;
        let owner = (e.pid != 0).then(|| Owner {
            pid: e.pid,
            tid: e.tid,
            comm: e.comm.clone(),
            cgroup_id: e.cgroup_id,
        });
        match e.kind {
            SockEventKind::Connect => {
                if owner.is_some() {
                    entry.owner = owner;
                }
                if !e.failed {
                    entry.tcp.handshake_ns = Some(e.handshake_ns);
                }
            }
            SockEventKind::Accept | SockEventKind::Tuple => {
                if owner.is_some() {
                    entry.owner = owner;
                }
            }
            SockEventKind::Close => {
                entry.tcp.srtt_us = Some(e.srtt_us);
                entry.tcp.retransmits = Some(e.retransmits);
                entry.tcp.bytes_acked = Some(e.bytes_acked);
                entry.tcp.bytes_received = Some(e.bytes_received);
            }
        }
    }

    fn get(&self, proto: u8, local: SocketAddr, remote: SocketAddr) -> Option<&Entry> {
        self.sockets.get(&SocketTuple {
            proto,
            local,
            remote,
        })
    }

    pub fn owner(&self, proto: u8, local: SocketAddr, remote: SocketAddr) -> Option<&Owner> {
        self.get(proto, local, remote)
            .and_then(|e| e.owner.as_ref())
    }

    pub fn tcp(&self, proto: u8, local: SocketAddr, remote: SocketAddr) -> Option<TcpStats> {
        self.get(proto, local, remote).map(|e| e.tcp)
    }

    pub fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.sockets
            .retain(|_, v| now.duration_since(v.touched) < ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: SockEventKind, pid: u32, local: &str, remote: &str) -> SockEvent {
        SockEvent {
            kind,
            ts_ns: 0,
            pid,
            tid: pid,
            comm: "curl".into(),
            cgroup_id: 7,
            proto: 6,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            failed: false,
            cookie: 0,
            handshake_ns: 1500,
            srtt_us: 40,
            retransmits: 2,
            bytes_acked: 100,
            bytes_received: 200,
        }
    }

    #[test]
    fn connect_then_close_merges_owner_and_stats() {
        let mut a = Attribution::new(Duration::from_secs(60), 100);
        let now = Instant::now();
        a.on_sock_event(
            &ev(SockEventKind::Connect, 42, "10.0.0.1:4000", "10.0.0.2:80"),
            now,
        );
        // Close happens in softirq: no pid, must not erase the owner.
        a.on_sock_event(
            &ev(SockEventKind::Close, 0, "10.0.0.1:4000", "10.0.0.2:80"),
            now,
        );
        let l = "10.0.0.1:4000".parse().unwrap();
        let r = "10.0.0.2:80".parse().unwrap();
        assert_eq!(a.owner(6, l, r).map(|o| o.pid), Some(42));
        let t = a.tcp(6, l, r).unwrap();
        assert_eq!(t.handshake_ns, Some(1500));
        assert_eq!(t.srtt_us, Some(40));
        assert_eq!(t.bytes_received, Some(200));
        assert!(
            a.owner(6, r, l).is_none(),
            "the other end is a different socket"
        );
    }

    #[test]
    fn bounded_and_expiring() {
        let mut a = Attribution::new(Duration::from_secs(10), 16);
        let t0 = Instant::now();
        for p in 0..40u16 {
            a.on_sock_event(
                &ev(
                    SockEventKind::Tuple,
                    1,
                    &format!("10.0.0.1:{}", 1000 + p),
                    "10.0.0.2:53",
                ),
                t0,
            );
        }
        assert_eq!(a.len(), 16);
        assert_eq!(a.evicted, 24);
        a.expire(t0 + Duration::from_secs(11));
        assert!(a.is_empty());
    }
}
