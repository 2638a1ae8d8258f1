//! What the daemon tells systemd (`Type=notify`, `WatchdogSec=` in
//! `templates/lvsup-director.service.j2`), through the `sd-notify` crate
//! (the `NOTIFY_SOCKET` datagram; a no-op when the daemon does not run
//! under systemd, e.g. in tests).
//!
//! * `READY=1` once the first IPVS reconcile has run (or at once with
//!   `--no-ipvs`): `systemctl start|restart` returns when the kernel table
//!   is programmed, not when the process exists.
//! * `WATCHDOG=1` from the main loop's own tick (never from a task of its
//!   own): a loop stuck in a handler stops pinging and systemd restarts the
//!   daemon (a restart adopts the addresses the dead run left, as after any
//!   crash).
//! * `STOPPING=1` when SIGTERM/SIGINT starts the handover.
//!
//! [`Notify`] decides what to send (pure, tested); [`send`] sends it.

use std::time::Duration;

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Ready,
    Stopping,
    Watchdog,
    /// Free text for `systemctl status` (`STATUS=`).
    Status(String),
}

/// What has been said so far.
#[derive(Debug, Default)]
pub struct Notify {
    ready: bool,
    stopping: bool,
}

impl Notify {
    /// A reconcile finished (`error`: why it failed). The first one makes the
    /// daemon ready, failed or not: it runs and keeps retrying (every
    /// periodic reconcile), and holding the start back would only make
    /// systemd kill it at `TimeoutStartSec`. Later ones only update the
    /// status line when the outcome changes the picture (a failure).
    pub fn reconciled(&mut self, error: Option<&str>) -> Vec<Msg> {
        if self.stopping {
            return Vec::new();
        }
        let status = match error {
            None => "running: IPVS table programmed".to_string(),
            Some(e) => format!("running: IPVS reconcile failed: {e}"),
        };
        if !self.ready {
            self.ready = true;
            return vec![Msg::Status(status), Msg::Ready];
        }
        if error.is_some() {
            return vec![Msg::Status(status)];
        }
        Vec::new()
    }

    /// Running without IPVS (`--no-ipvs`): ready once started.
    pub fn started_without_ipvs(&mut self) -> Vec<Msg> {
        if self.ready {
            return Vec::new();
        }
        self.ready = true;
        vec![
            Msg::Status("running without IPVS (--no-ipvs)".into()),
            Msg::Ready,
        ]
    }

    /// The handover began (once).
    pub fn stopping(&mut self) -> Vec<Msg> {
        if self.stopping {
            return Vec::new();
        }
        self.stopping = true;
        vec![
            Msg::Stopping,
            Msg::Status("stopping: handing the VIP over".into()),
        ]
    }
}

/// How often to ping a watchdog of `timeout`: half of it (sd_watchdog_enabled(3)
/// recommends pinging at half the interval), at most every 10 ms.
pub fn ping_period(timeout: Duration) -> Duration {
    (timeout / 2).max(Duration::from_millis(10))
}

/// Send `msgs` to systemd; errors only logged (the daemon runs on without).
pub fn send(msgs: &[Msg]) {
    if msgs.is_empty() {
        return;
    }
    let states: Vec<sd_notify::NotifyState<'_>> = msgs
        .iter()
        .map(|m| match m {
            Msg::Ready => sd_notify::NotifyState::Ready,
            Msg::Stopping => sd_notify::NotifyState::Stopping,
            Msg::Watchdog => sd_notify::NotifyState::Watchdog,
            Msg::Status(s) => sd_notify::NotifyState::Status(s),
        })
        .collect();
    if let Err(e) = sd_notify::notify(&states) {
        tracing::warn!("telling systemd {msgs:?}: {e}");
    }
}

/// The watchdog timeout systemd set for this process (`WATCHDOG_USEC` for
/// our pid), if any.
pub fn watchdog() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_after_the_first_reconcile_only() {
        let mut n = Notify::default();
        let first = n.reconciled(None);
        assert_eq!(first.last(), Some(&Msg::Ready));
        // Later successes: nothing to say.
        assert!(n.reconciled(None).is_empty());
        // A later failure: a status line, never a second READY.
        let f = n.reconciled(Some("EPERM"));
        assert_eq!(f.len(), 1);
        assert!(matches!(&f[0], Msg::Status(s) if s.contains("EPERM")));
    }

    #[test]
    fn a_failed_first_reconcile_still_makes_it_ready() {
        let mut n = Notify::default();
        let m = n.reconciled(Some("no such file"));
        assert!(m.contains(&Msg::Ready));
        assert!(
            m.iter()
                .any(|x| matches!(x, Msg::Status(s) if s.contains("failed")))
        );
    }

    #[test]
    fn without_ipvs_ready_at_start_once() {
        let mut n = Notify::default();
        assert!(n.started_without_ipvs().contains(&Msg::Ready));
        assert!(n.started_without_ipvs().is_empty());
    }

    #[test]
    fn stopping_once_and_nothing_after() {
        let mut n = Notify::default();
        n.reconciled(None);
        let s = n.stopping();
        assert_eq!(s[0], Msg::Stopping);
        assert!(n.stopping().is_empty());
        assert!(n.reconciled(Some("x")).is_empty());
    }

    #[test]
    fn pings_at_half_the_watchdog() {
        assert_eq!(
            ping_period(Duration::from_secs(30)),
            Duration::from_secs(15)
        );
        assert_eq!(
            ping_period(Duration::from_millis(4)),
            Duration::from_millis(10)
        );
    }
}
