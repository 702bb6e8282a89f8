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
pub enum Record {
    Flow(Flow),
    L7(L7Record),
    Drop(DropRecord),
    PolicyVerdict(PolicyVerdictRecord),
    Alert(Alert),
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
