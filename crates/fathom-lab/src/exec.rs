//! Running things inside a pod.
//!
//! [`LabPod::command`] returns an ordinary `std::process::Command` whose child joins the pod's cgroup and network
//! namespace *between fork and exec*, so the pid the caller gets is the program's own pid (no `ip netns exec` or
//! shell in between): tests can match it against what the agent attributes. Only the network namespace changes;
//! mounts stay the host's, so `/sys/class/net` inside the child still shows host interfaces (use `ip`, which asks
//! the kernel over netlink, or `/proc/self/net/*`).

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

use crate::error::{LabError, Result};
use crate::state::LabPod;

/// The two files the child needs, opened in the parent (with O_CLOEXEC, so they don't leak into the program).
/// Opening before fork keeps the post-fork code to two syscalls, which is all that is safe there.
struct PodHandles {
    netns: File,
    cgroup_procs: File,
}

impl LabPod {
    fn open_handles(&self) -> Result<PodHandles> {
        let netns_path = self.netns_path();
        let netns = File::open(&netns_path).map_err(|e| {
            LabError::io(
                format!(
                    "opening netns {} of pod {} (is the lab up?)",
                    netns_path.display(),
                    self.full_name()
                ),
                e,
            )
        })?;
        let procs_path = self.cgroup_path.join("cgroup.procs");
        let cgroup_procs = OpenOptions::new()
            .write(true)
            .open(&procs_path)
            .map_err(|e| {
                LabError::io(
                    format!(
                        "opening {} of pod {}",
                        procs_path.display(),
                        self.full_name()
                    ),
                    e,
                )
            })?;
        Ok(PodHandles {
            netns,
            cgroup_procs,
        })
    }

    /// A `Command` for `program` that runs inside the pod (its cgroup and its network namespace). If the pod's
    /// netns or cgroup cannot be opened, spawning fails with that OS error; use [`LabPod::try_command`] to get the
    /// error, with context, right away.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        match self.try_command(program.as_ref()) {
            Ok(cmd) => cmd,
            Err(e) => {
                let errno = match &e {
                    LabError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EINVAL),
                    _ => libc::EINVAL,
                };
                let mut cmd = Command::new(program);
                // SAFETY: the closure only builds an io::Error from an errno, which does not allocate.
                unsafe {
                    cmd.pre_exec(move || Err(std::io::Error::from_raw_os_error(errno)));
                }
                cmd
            }
        }
    }

    /// Like [`LabPod::command`], but reports a missing netns/cgroup now, with the path and pod in the message.
    pub fn try_command(&self, program: impl AsRef<OsStr>) -> Result<Command> {
        let handles = self.open_handles()?;
        let mut cmd = Command::new(program);
        // SAFETY: runs in the forked child before exec. It only calls write(2) and setns(2) on descriptors opened
        // beforehand; neither allocates nor takes locks, which is what async-signal-safety requires here.
        unsafe {
            cmd.pre_exec(move || {
                // Join the cgroup first: from here on, everything the program does is attributed to the pod.
                // Writing "0" moves the writing process (the child) itself.
                (&handles.cgroup_procs).write_all(b"0")?;
                setns(&handles.netns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// Run `f` on a fresh thread that has entered the pod's network namespace, and return its result. Sockets
    /// created there stay in the pod's namespace when handed back to other threads, so this is a cheap way to
    /// listen or connect "from the pod" without spawning a process (such traffic is not in the pod's cgroup).
    pub fn in_netns<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let netns = File::open(self.netns_path())
            .map_err(|e| LabError::io(format!("opening netns of pod {}", self.full_name()), e))?;
        std::thread::scope(|s| {
            s.spawn(move || {
                // Only this thread changes namespace; it ends when `f` returns, so nothing else is affected.
                setns(&netns, CloneFlags::CLONE_NEWNET).map_err(|e| LabError::Other {
                    context: format!("entering netns of pod {}", self.full_name()),
                    message: e.to_string(),
                })?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(LabError::Other {
                    context: format!("in pod {}", self.full_name()),
                    message: "thread panicked".into(),
                })
            })
        })
    }

    /// Wait until something in the pod listens on TCP `port` (any address), polling the pod's `/proc/net/tcp{,6}`.
    /// Sends no packets, so it adds nothing to what an observer of the lab sees.
    pub fn wait_for_tcp_listen(&self, port: u16, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let listening = self.in_netns(|| {
                ["/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"]
                    .iter()
                    .any(|f| {
                        std::fs::read_to_string(f)
                            .map(|t| proc_net_tcp_listens(&t, port))
                            .unwrap_or(false)
                    })
            })?;
            if listening {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LabError::Other {
                    context: format!("pod {}", self.full_name()),
                    message: format!("nothing listens on TCP port {port} after {timeout:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pod's IPv4 or IPv6 address with `port`.
    pub fn addr(&self, ipv6: bool, port: u16) -> SocketAddr {
        let ip: IpAddr = if ipv6 {
            self.ipv6.into()
        } else {
            self.ipv4.into()
        };
        SocketAddr::new(ip, port)
    }
}

/// True when a `/proc/net/tcp`-format table has a socket in LISTEN state (0A) on local `port`.
fn proc_net_tcp_listens(table: &str, port: u16) -> bool {
    let want = format!(":{port:04X}");
    table.lines().skip(1).any(|line| {
        let mut f = line.split_whitespace();
        let (_sl, local, _remote, state) = (f.next(), f.next(), f.next(), f.next());
        local.is_some_and(|l| l.ends_with(&want)) && state == Some("0A")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue\n   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n   1: 0100007F:0050 0100007F:9C40 01 0\n";
        assert!(proc_net_tcp_listens(t, 8080));
        assert!(!proc_net_tcp_listens(t, 80)); // established, not listening
        assert!(!proc_net_tcp_listens(t, 9090));
    }
}
