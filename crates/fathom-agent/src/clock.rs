//! Kernel timestamps are CLOCK_BOOTTIME nanoseconds; records carry wall-clock time. The offset
//! between the two is measured once and refreshed, so a wall-clock step (NTP) shows up in new
//! records without rewriting old ones.

use fathom_model::Timestamp;

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer; the clocks used here always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// Nanoseconds since boot, the clock of `bpf_ktime_get_boot_ns()`.
pub fn boot_ns() -> u64 {
    now_ns(libc::CLOCK_BOOTTIME).max(0) as u64
}

#[derive(Debug, Clone, Copy)]
pub struct BootClock {
    offset_ns: i128,
}

impl Default for BootClock {
    fn default() -> Self {
        Self::new()
    }
}

impl BootClock {
    pub fn new() -> Self {
        BootClock {
            offset_ns: now_ns(libc::CLOCK_REALTIME) - now_ns(libc::CLOCK_BOOTTIME),
        }
    }

    pub fn to_wall(&self, boot_ns: u64) -> Timestamp {
        Timestamp((boot_ns as i128 + self.offset_ns).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_time_converts_to_now() {
        let c = BootClock::new();
        let wall = c.to_wall(boot_ns()).as_nanos();
        let now = Timestamp::now().as_nanos();
        assert!(now.abs_diff(wall) < 50_000_000, "wall {wall} vs now {now}");
    }
}
