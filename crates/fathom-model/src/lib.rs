//! The vocabulary every Fathom stage speaks: records produced by the pipeline and the filters
//! that select them. Everything here is plain data with serde; no kernel, no I/O.

pub mod alert;
pub mod drop;
pub mod filter;
pub mod flow;
pub mod l7;
pub mod l7filter;
pub mod policy;
pub mod record;
pub mod time;

pub use alert::{Alert, Severity};
pub use drop::DropRecord;
pub use filter::{FilterError, FlowFilter, PodSelector};
pub use flow::{
    Endpoint, Flow, FlowEndReason, FlowEvent, InterfaceRef, L4Info, L4Protocol, ProcessInfo,
    TcpFlags, TcpInfo, Traffic,
};
pub use policy::{PolicyRuleRef, PolicyVerdict, PolicyVerdictRecord};
pub use record::Record;
pub use time::Timestamp;
