//! `lvsup director status`: the core's [`Status`] with the driver's I/O
//! parts (counters, records, IPVS).

use std::time::{Instant, SystemTime};

use crate::contract::status::{self, IpvsStatus, Status, TransitionRecord};
use crate::director::core::status::DriverStatus;

use super::Driver;

impl Driver {
    /// The core's status with what the driver's I/O knows.
    pub(super) fn status(&self) -> Status {
        let io = DriverStatus {
            pid: std::process::id(),
            started_at: status::timestamp(self.started_at),
            path: self.path.display().to_string(),
            counters: self.counters.clone(),
            transitions: self.transitions.iter().cloned().collect(),
            hooks: self
                .hooks
                .runs
                .lock()
                .map(|v| v.iter().cloned().collect())
                .unwrap_or_default(),
            ipvs: IpvsStatus {
                enabled: self.ipvs.is_some(),
                last_reconcile: self.recon_status.lock().ok().and_then(|s| s.clone()),
                sync_daemon: self.sync_state.lock().ok().and_then(|s| s.clone()),
                error: None,
                timeouts: None,
            },
            checks: status::CheckCounters {
                completed: self.checks_completed,
                skipped: self
                    .checks_skipped
                    .load(std::sync::atomic::Ordering::Relaxed),
            },
            wall: SystemTime::now(),
        };
        self.core.status(Instant::now(), io)
    }

    /// A state change or a note for status (the last [`status::MAX_TRANSITIONS`]).
    pub(super) fn record(&mut self, from: String, to: String, reason: String) {
        self.transitions.push_back(TransitionRecord {
            at: status::timestamp(SystemTime::now()),
            from,
            to,
            reason,
        });
        while self.transitions.len() > status::MAX_TRANSITIONS {
            self.transitions.pop_front();
        }
    }
}
