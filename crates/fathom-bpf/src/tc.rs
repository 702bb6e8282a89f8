//! Attaching the observer to an interface's TC hooks: TCX links where the kernel has them
//! (≥ 6.6: owned by a file descriptor, so a crash detaches them too, and they coexist with other
//! users' programs), the clsact qdisc through netlink otherwise.

use std::os::fd::AsFd;

use libbpf_rs::{AsRawLibbpf, Link, Program, TcHook, TcHookBuilder, TC_EGRESS, TC_INGRESS};

use crate::error::BpfError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TcMode {
    Tcx,
    /// clsact qdisc + cls_bpf filter (kernels before 6.6).
    Legacy,
}

/// One interface's ingress+egress attachment; detaches on drop.
pub struct TcAttachment {
    pub ifindex: u32,
    pub mode: TcMode,
    links: Vec<Link>,
    hooks: Vec<TcHook>,
}

impl std::fmt::Debug for TcAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcAttachment")
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .finish()
    }
}

/// Priority/handle of our legacy filters: fixed so a restarted agent replaces its own filters
/// instead of stacking a second copy.
const LEGACY_HANDLE: u32 = 0xfa70;
const LEGACY_PRIORITY: u32 = 0xfa70;

pub(crate) fn attach_tcx(prog: &Program<'_>, ifindex: u32) -> Result<Link, std::io::Error> {
    let opts = libbpf_sys::bpf_tcx_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_tcx_opts>() as libbpf_sys::size_t,
        ..Default::default()
    };
    // SAFETY: the program pointer is valid for the duration of the call; libbpf returns either
    // a new link we take ownership of, or NULL with errno set.
    let ptr = unsafe {
        libbpf_sys::bpf_program__attach_tcx(prog.as_libbpf_object().as_ptr(), ifindex as i32, &opts)
    };
    match std::ptr::NonNull::new(ptr) {
        // SAFETY: non-null link freshly created by libbpf, owned by nobody else.
        Some(p) => Ok(unsafe { Link::from_ptr(p) }),
        None => Err(std::io::Error::last_os_error()),
    }
}

fn attach_legacy(
    ingress: &Program<'_>,
    egress: &Program<'_>,
    ifindex: u32,
) -> Result<Vec<TcHook>, BpfError> {
    let mut hooks = Vec::new();
    for (prog, point, dir) in [
        (ingress, TC_INGRESS, "ingress"),
        (egress, TC_EGRESS, "egress"),
    ] {
        let mut builder = TcHookBuilder::new(prog.as_fd());
        builder
            .ifindex(ifindex as i32)
            .replace(true)
            .handle(LEGACY_HANDLE)
            .priority(LEGACY_PRIORITY);
        let mut hook = builder.hook(point);
        // EEXIST: the clsact qdisc is there already (ours from before, or another tool's).
        if let Err(e) = hook.create() {
            if e.kind() != libbpf_rs::ErrorKind::AlreadyExists {
                return Err(BpfError::attach(
                    format!("tc clsact on ifindex {ifindex}"),
                    e,
                ));
            }
        }
        hook.attach()
            .map_err(|e| BpfError::attach(format!("tc {dir} filter on ifindex {ifindex}"), e))?;
        hooks.push(hook);
    }
    Ok(hooks)
}

pub fn attach(
    ingress: &Program<'_>,
    egress: &Program<'_>,
    ifindex: u32,
) -> Result<TcAttachment, BpfError> {
    match (attach_tcx(ingress, ifindex), attach_tcx(egress, ifindex)) {
        (Ok(i), Ok(e)) => Ok(TcAttachment {
            ifindex,
            mode: TcMode::Tcx,
            links: vec![i, e],
            hooks: vec![],
        }),
        (first, second) => {
            let err = first
                .err()
                .or(second.err())
                .map(|e| e.to_string())
                .unwrap_or_default();
            tracing::debug!(ifindex, %err, "TCX attach failed, falling back to clsact");
            let hooks = attach_legacy(ingress, egress, ifindex)?;
            Ok(TcAttachment {
                ifindex,
                mode: TcMode::Legacy,
                links: vec![],
                hooks,
            })
        }
    }
}

impl Drop for TcAttachment {
    fn drop(&mut self) {
        for link in self.links.drain(..) {
            // Dropping the link closes its fd; detach first so a pinned copy cannot keep it.
            let _ = link.detach();
        }
        for hook in &mut self.hooks {
            // The interface may be gone already (lab torn down): nothing left to detach.
            let _ = hook.detach();
        }
    }
}
