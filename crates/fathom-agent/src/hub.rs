//! The live hub: every record the pipeline produces, kept in a bounded in-memory ring for
//! `--last`/`--since` and broadcast to live subscribers (`observe -f`). A subscriber that
//! falls behind loses records (counted), it never slows the pipeline down.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fathom_model::{FlowFilter, Record, Timestamp};
use tokio::sync::broadcast;

#[derive(Debug, Clone)]
pub struct Published {
    pub seq: u64,
    pub record: Arc<Record>,
}

pub struct Hub {
    ring: Mutex<VecDeque<Published>>,
    capacity: usize,
    tx: broadcast::Sender<Published>,
    next_seq: AtomicU64,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RecentQuery {
    pub last: Option<usize>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl Hub {
    pub fn new(capacity: usize) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(8192);
        Arc::new(Hub {
            ring: Mutex::new(VecDeque::with_capacity(capacity.min(65536))),
            capacity: capacity.max(1),
            tx,
            next_seq: AtomicU64::new(1),
        })
    }

    pub fn publish(&self, record: Record) {
        let p = Published {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            record: Arc::new(record),
        };
        if let Ok(mut ring) = self.ring.lock() {
            if ring.len() == self.capacity {
                ring.pop_front();
            }
            ring.push_back(p.clone());
        }
        // No subscriber is not an error.
        let _ = self.tx.send(p);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }

    pub fn published(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed) - 1
    }

    pub fn len(&self) -> usize {
        self.ring.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Time of the oldest record still in memory.
    pub fn oldest(&self) -> Option<Timestamp> {
        self.ring
            .lock()
            .ok()
            .and_then(|r| r.front().map(|p| p.record.time()))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Matching records in time order: within [since, until], the last `last` of them.
    /// Returns them with the highest sequence number present in the ring, so a live stream
    /// started before this call can skip what was already returned.
    pub fn recent(&self, filter: &FlowFilter, q: &RecentQuery) -> (Vec<Published>, u64) {
        let Ok(ring) = self.ring.lock() else {
            return (Vec::new(), 0);
        };
        let high = ring.back().map(|p| p.seq).unwrap_or(0);
        let mut out: Vec<Published> = ring
            .iter()
            .filter(|p| {
                let t = p.record.time();
                q.since.is_none_or(|s| t >= s)
                    && q.until.is_none_or(|u| t <= u)
                    && filter.matches(&p.record)
            })
            .cloned()
            .collect();
        if let Some(n) = q.last {
            let skip = out.len().saturating_sub(n);
            out.drain(..skip);
        }
        (out, high)
    }
}
