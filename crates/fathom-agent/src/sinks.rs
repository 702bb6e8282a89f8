//! Where every record goes, whichever thread made it (flow pipeline, live L7, policy engine,
//! shield): metrics, the history store, the detectors and the live hub, in that order, so
//! that metrics and history see exactly what subscribers see and every record, whatever its
//! source, is visible to the detectors.

use std::sync::{Arc, Mutex, OnceLock};

use fathom_model::Record;
use fathom_store::StoreWriter;

use crate::detect::Detectors;
use crate::hub::Hub;
use crate::metrics::RecordMetrics;

pub struct Sinks {
    hub: Arc<Hub>,
    metrics: Option<Arc<RecordMetrics>>,
    store: Option<StoreWriter>,
    /// Set once, after start-up: the detectors' automatic response needs the shield, which
    /// itself emits its audit records here.
    detect: OnceLock<Mutex<Detectors>>,
}

impl Sinks {
    pub fn new(
        hub: Arc<Hub>,
        metrics: Option<Arc<RecordMetrics>>,
        store: Option<StoreWriter>,
    ) -> Arc<Self> {
        Arc::new(Sinks {
            hub,
            metrics,
            store,
            detect: OnceLock::new(),
        })
    }

    /// Run these detectors over every record from now on (a second call is ignored).
    pub fn set_detectors(&self, d: Detectors) {
        let _ = self.detect.set(Mutex::new(d));
    }

    pub fn emit(&self, r: Record) {
        if let Some(m) = &self.metrics {
            m.observe(&r);
        }
        if let Some(s) = &self.store {
            s.try_record(r.clone());
        }
        // Alerts are not fed back: a detector must never alert on alerts.
        let alerts = match (self.detect.get(), &r) {
            (_, Record::Alert(_)) | (None, _) => Vec::new(),
            (Some(d), _) => d.lock().map(|mut d| d.observe(&r)).unwrap_or_default(),
        };
        self.hub.publish(r);
        for a in alerts {
            self.emit(Record::from(a));
        }
    }
}
