//! The envelope for everything the pipeline emits. JSON carries a `type` field naming the kind.

use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::drop::DropRecord;
use crate::flow::Flow;
use crate::l7::L7Record;
use crate::policy::PolicyVerdictRecord;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
/// The kinds are boxed: they are hundreds of bytes each (endpoints, process, protocol detail),
/// and records are moved through queues, vectors, sorts and rings by the million; a 16-byte
/// envelope moves for the price of a pointer, and the hub shares one allocation per record.
pub enum Record {
    Flow(Box<Flow>),
    L7(Box<L7Record>),
    Drop(Box<DropRecord>),
    PolicyVerdict(Box<PolicyVerdictRecord>),
    Alert(Box<Alert>),
}

impl From<Flow> for Record {
    fn from(f: Flow) -> Self {
        Record::Flow(Box::new(f))
    }
}

impl From<L7Record> for Record {
    fn from(r: L7Record) -> Self {
        Record::L7(Box::new(r))
    }
}

impl From<DropRecord> for Record {
    fn from(d: DropRecord) -> Self {
        Record::Drop(Box::new(d))
    }
}

impl From<PolicyVerdictRecord> for Record {
    fn from(v: PolicyVerdictRecord) -> Self {
        Record::PolicyVerdict(Box::new(v))
    }
}

impl From<Alert> for Record {
    fn from(a: Alert) -> Self {
        Record::Alert(Box::new(a))
    }
}

impl Record {
    pub fn time(&self) -> Timestamp {
        match self {
            Record::Flow(f) => f.time,
            Record::L7(r) => r.time,
            Record::Drop(d) => d.time,
            Record::PolicyVerdict(v) => v.time,
            Record::Alert(a) => a.time,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Record::Flow(_) => "flow",
            Record::L7(_) => "l7",
            Record::Drop(_) => "drop",
            Record::PolicyVerdict(_) => "policy-verdict",
            Record::Alert(_) => "alert",
        }
    }
}
