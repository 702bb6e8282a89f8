//! Fathom's kernel side from user space: the BPF skeletons built from `bpf/`, the ABI mirror,
//! the feature probe, loading and attaching, and the ringbuf readers.

pub mod abi;
pub mod baseline;
pub mod error;
pub mod events;
pub mod features;
pub mod flowtable;
pub mod kernelsyms;
pub mod l7;
pub mod percpu_array;
pub mod pin;
pub mod policy;
pub mod sensors;
pub mod shield;
pub mod skel;
pub mod tc;

pub use error::BpfError;
