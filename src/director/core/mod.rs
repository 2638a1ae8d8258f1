//! The director's policy, sans-IO: [`Director::handle`]`(now, event)`
//! returns the [`Action`]s to carry out, in order. It owns the VRRP
//! [`Machine`], the real servers' health, the floating addresses held (and
//! those a crashed earlier run left), and the director's [`Phase`]. No
//! sockets, no netlink, no clock: the daemon (`director::daemon`) reads the
//! world, feeds events with the current time, and executes actions.
//!
//! What it decides on top of the VRRP machine:
//!
//! * **Crash adoption.** Addresses of an earlier run that died while Master,
//!   still the ones this config floats, are kept until another master is
//!   heard (or Master_Down_Interval passes): the VIP keeps forwarding until
//!   the backup takes over. Becoming Master again adopts them. The driver
//!   feeds every address on the host at start; [`found::classify`] decides
//!   (another prefix of ours goes at once, anything else stays).
//! * **Split brain.** Still Master after another router's advert (priority
//!   above 0): re-announce the VIP (at most once a second); but if every real
//!   server looked down from here (we were cut off), step down and start over
//!   as Backup rather than pull the VIP onto weight-0 destinations.
//! * **Fault.** VRRP interface down: release the addresses, hold VRRP in
//!   Initialize. Up again: forget the health seen while cut off, start over.
//! * **Address drift.** Master must hold every floating address, anyone else
//!   none of ours: repaired on every address check.
//! * **Reload.** Services and checks change in place, health carried over;
//!   anything else is refused (it needs a VRRP restart).
//! * **Connection sync.** With `sync_daemon`, the kernel's sync daemon
//!   follows the VRRP state ([`Action::SyncDaemon`]).
//! * **Drain.** A real server a reload removes stays at weight 0 until its
//!   connections end or `drain_timeout` passes ([`drain`]); the driver feeds
//!   the kernel's counters ([`Event::Connections`]).
//!
//! The status document is built here too ([`status`]), from this state and
//! what the driver adds (records, counters of its I/O).
//!
//! Logs go out through `tracing` as the daemon wrote them before this split
//! (messages and fields unchanged); logging is not I/O the core waits on.

pub mod drain;
pub mod found;
pub mod health;
pub mod status;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ipnet::Ipv4Net;
use tracing::{debug, error, info, warn};

use crate::contract::director_config::{DirectorConfig, restart_needed};
use crate::contract::status::ReloadStatus;
use crate::director::table;
use crate::health::damping::Health;
use crate::ipvs::{DaemonState, ServiceId};
use crate::vrrp::machine::{self, Input, Machine, Output, Reason, State};
use crate::vrrp::packet::{Advert, VRRP_MULTICAST_V4};

use self::drain::{DRAIN_CHECK, DestConns, Drain, End};
use self::found::{Found, HostAddress};
use self::health::RsState;

/// A config file as loaded (the daemon reads it; the core keeps it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Shared: every health change hands the config to the reconcile task,
    /// and a copy of 10,000 real servers per change was the daemon's largest
    /// cost per check at scale.
    pub cfg: Arc<DirectorConfig>,
    pub sha256: String,
    pub loaded_at: SystemTime,
}

/// A floating address and the interface it goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Floating {
    pub interface: String,
    pub net: Ipv4Net,
}

/// The interfaces the daemon resolved at start (a reload cannot change them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces {
    /// The VRRP interface: the VIP goes here.
    pub vrrp: String,
    /// The NAT internal interface: the gateway address goes here.
    pub nat: Option<String>,
}

/// Where the director is in its life. Replaces the daemon's four flags
/// (`swallow_stop`, `restart_vrrp`, `pending_startup`, `fault`): what a
/// `Stopped` from the VRRP machine means follows from the phase alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// VRRP runs (Initialize until [`Event::Start`], then Backup or Master).
    Running,
    /// Split brain while cut off: the machine hands the VIP to `other`; its
    /// `Stopped` starts VRRP again as Backup.
    SteppingDown { other: Ipv4Addr },
    /// The VRRP interface is down: addresses released, the machine held in
    /// Initialize until the link comes back.
    Fault,
    /// SIGTERM/SIGINT: handing over; `deadline` is the backstop.
    ShuttingDown { deadline: Instant },
    /// Done: every address released, the daemon exits.
    Stopped,
}

/// What the daemon tells the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start: the IPv4 addresses on the host. This config's floating
    /// addresses with lvsup's label are an earlier run's that crashed while
    /// Master ([`found::classify`] decides what is kept, removed, left).
    Start { found: Vec<HostAddress> },
    /// A received VRRP advert that passed the codec's checks.
    Advert {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        advert: Advert,
    },
    /// One health-check result of real server `rs` of service `svc`.
    Probe {
        svc: usize,
        rs: usize,
        record: health::Check,
    },
    /// The VRRP interface's state as read now (announcement or poll).
    Link { up: bool },
    /// Address check: the IPv4 addresses on the host (drift repair looks
    /// for the floating ones, on their interfaces with lvsup's label).
    AddressesPresent(Vec<HostAddress>),
    /// The outcome of an [`Action::AddAddress`]: `ours` = added with our
    /// label (false: already there without it, or the add failed).
    AddressAdded { net: Ipv4Net, ours: bool },
    /// SIGHUP: the config file read again (`Err`: why it could not be).
    Reload {
        at: String,
        result: Result<Box<Loaded>, String>,
    },
    /// SIGTERM/SIGINT.
    Shutdown { why: &'static str },
    /// [`Director::poll_timeout`] has come.
    Timeout,
    /// The kernel's connection counters of the draining destinations, read
    /// by a reconcile.
    Connections(Vec<DestConns>),
}

/// Why an address goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// VRRP released it (Backup, Initialize, fault, stop).
    Release,
    /// Not Master but the address is on the interface.
    Drift,
    /// A kept address of a crashed earlier run.
    Stale(String),
}

/// What the daemon must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a VRRP advert with this priority (to the group, or each peer).
    SendAdvert {
        priority: u8,
    },
    /// Add this address with lvsup's label; answer with
    /// [`Event::AddressAdded`] before the next action.
    AddAddress(Floating),
    RemoveAddress {
        addr: Floating,
        why: Removal,
    },
    /// `count` gratuitous ARPs for each address held (at execution time).
    SendGarp {
        count: u32,
    },
    /// The VRRP state changed (log, status, connection-sync daemon).
    StateChanged {
        from: State,
        to: State,
        reason: Reason,
    },
    /// A status note without a state change (fault entered, cleared).
    Note {
        state: State,
        what: &'static str,
    },
    /// (Re)start the health probes of the config in force; results of the
    /// earlier ones are no longer wanted.
    StartProbes,
    /// Reconcile the kernel's IPVS table with config × health; delete
    /// `dropped` services.
    Reconcile {
        trigger: &'static str,
        dropped: Vec<ServiceId>,
    },
    /// Run the `[cluster] notify` program of this state change (only
    /// emitted when one is configured): in the background, in order, with
    /// the hooks' timeout.
    RunHook {
        hook: Hook,
        argv: Vec<String>,
        /// Its environment: `LVSUP_STATE` (the hook), `LVSUP_CLUSTER`,
        /// `LVSUP_DIRECTOR`, `LVSUP_VIP`, `LVSUP_PRIORITY`.
        env: Vec<(String, String)>,
    },
    /// The kernel's connection-sync daemon (`[cluster] sync_daemon` only):
    /// stop the daemons of `stop` (an error is only logged: it may not run),
    /// then (re)start `start`. Follows the VRRP state: the master daemon on
    /// the Master, the backup one on a Backup; leaving for Initialize stops
    /// the master one; both stop before [`Action::Exit`].
    SyncDaemon {
        stop: Vec<DaemonState>,
        start: Option<crate::ipvs::SyncDaemon>,
    },
    /// Stop: the daemon exits.
    Exit,
}

/// The state changes `[cluster] notify` has programs for (keepalived's
/// notify_master / notify_backup / notify_fault / notify_stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Became VRRP Master (holds the VIP).
    Master,
    /// Became Backup: at start, preempted, after a handover or a fault.
    Backup,
    /// The VRRP interface went down (addresses released).
    Fault,
    /// The daemon stops (addresses released).
    Stop,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Master => "master",
            Hook::Backup => "backup",
            Hook::Fault => "fault",
            Hook::Stop => "stop",
        }
    }
}

/// Counters the core keeps for status (the daemon keeps the I/O ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub other_vrid: u64,
    /// Adverts from an address that is not one of the other directors
    /// (unicast, or multicast without `accept_foreign`): dropped.
    pub unknown_peer: u64,
    /// Adverts whose Max Adver Int differs from ours: accepted for the
    /// election, ignored for timing.
    pub interval_mismatch: u64,
}

/// At most one "interval differs" warning per this long.
const INTERVAL_WARN_EVERY: Duration = Duration::from_secs(60);

/// One director, sans-IO.
#[derive(Debug, Clone)]
pub struct Director {
    loaded: Loaded,
    ifaces: Interfaces,
    phase: Phase,
    machine: Machine,
    rs: Vec<Vec<RsState>>,
    /// How many of `rs` have no known health yet: counted when `rs` is made
    /// afresh ([`Self::check_gate`]), then one less per first result. A
    /// count of the whole matrix per result was quadratic at start
    /// (10,000 real servers: 10^8 looks).
    unknown: usize,
    gate_open: bool,
    /// Addresses this director added and holds.
    held: Vec<Floating>,
    /// Addresses of a crashed earlier run, kept until a master is heard.
    stale: Vec<Floating>,
    stale_deadline: Option<Instant>,
    last_reannounce: Option<Instant>,
    last_interval_warn: Option<Instant>,
    last_reload: Option<ReloadStatus>,
    counters: Counters,
    /// Real servers a reload removed, still in IPVS at weight 0.
    draining: Vec<Drain>,
    /// When to read their counters next.
    drain_check: Option<Instant>,
}

impl Director {
    pub fn new(loaded: Loaded, ifaces: Interfaces) -> Director {
        let mut mcfg = loaded.cfg.vrrp.machine_config();
        mcfg.wait_for_health = true;
        Director {
            machine: Machine::new(mcfg),
            loaded,
            ifaces,
            phase: Phase::Running,
            rs: Vec::new(),
            unknown: 0,
            gate_open: false,
            held: Vec::new(),
            stale: Vec::new(),
            stale_deadline: None,
            last_reannounce: None,
            last_interval_warn: None,
            last_reload: None,
            counters: Counters::default(),
            draining: Vec::new(),
            drain_check: None,
        }
    }

    pub fn config(&self) -> &DirectorConfig {
        &self.loaded.cfg
    }

    /// The config in force, shared (no copy).
    pub fn config_shared(&self) -> Arc<DirectorConfig> {
        Arc::clone(&self.loaded.cfg)
    }

    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    pub fn held(&self) -> &[Floating] {
        &self.held
    }

    pub fn stale(&self) -> &[Floating] {
        &self.stale
    }

    pub fn real_server(&self, svc: usize, rs: usize) -> Option<&RsState> {
        self.rs.get(svc).and_then(|v| v.get(rs))
    }

    pub fn health_matrix(&self) -> Vec<Vec<Health>> {
        health::matrix(&self.rs)
    }

    pub fn last_reload(&self) -> Option<&ReloadStatus> {
        self.last_reload.as_ref()
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Removed real servers draining at weight 0.
    pub fn draining(&self) -> &[Drain] {
        &self.draining
    }

    /// The floating addresses of the config: every VIP (on the VRRP
    /// interface), and the NAT gateway.
    pub fn wanted(&self) -> Vec<Floating> {
        let cfg = &self.loaded.cfg;
        let mut v: Vec<Floating> = cfg
            .vips()
            .into_iter()
            .map(|vip| Floating {
                interface: self.ifaces.vrrp.clone(),
                net: Ipv4Net::from(vip),
            })
            .collect();
        if let (Some(n), Some(l)) = (&cfg.nat, &self.ifaces.nat) {
            v.push(Floating {
                interface: l.clone(),
                net: n.gateway,
            });
        }
        v
    }

    /// When to feed [`Event::Timeout`] next: the earliest of the VRRP
    /// timers, the stale-address deadline and the shutdown backstop.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Stopped {
            return None;
        }
        let shutdown = match self.phase {
            Phase::ShuttingDown { deadline } => Some(deadline),
            _ => None,
        };
        [
            self.machine.poll_timeout().map(|(at, _)| at),
            self.stale_deadline,
            shutdown,
            self.drain_check,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Feed one event at time `now`; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Stopped {
            return out;
        }
        match event {
            Event::Start { found } => self.on_start(now, found, &mut out),
            Event::Advert { src, dst, advert } => self.on_advert(now, src, dst, &advert, &mut out),
            Event::Probe { svc, rs, record } => self.on_probe(now, svc, rs, record, &mut out),
            Event::Link { up } => self.on_link(now, up, &mut out),
            Event::AddressesPresent(found) => self.check_addresses(&found, &mut out),
            Event::AddressAdded { net, ours } => {
                if ours
                    && !self.held.iter().any(|f| f.net == net)
                    && let Some(f) = self.wanted().into_iter().find(|f| f.net == net)
                {
                    self.held.push(f);
                }
            }
            Event::Reload { at, result } => self.on_reload(now, at, result, &mut out),
            Event::Shutdown { why } => self.on_shutdown(now, why, &mut out),
            Event::Timeout => self.on_timeout(now, &mut out),
            Event::Connections(seen) => self.on_connections(now, seen, &mut out),
        }
        out
    }

    fn on_start(&mut self, now: Instant, found: Vec<HostAddress>, out: &mut Vec<Action>) {
        self.adopt_leftovers(&found, out);
        if !self.stale.is_empty() {
            let v = &self.loaded.cfg.vrrp;
            let mdi = machine::master_down_interval(
                v.priority.max(1),
                machine::duration_to_centis(v.advert_interval),
            );
            self.stale_deadline = Some(now + Duration::from_millis(u64::from(mdi) * 10));
        }
        self.rs = health::fresh(&self.loaded.cfg, &[]);
        out.push(Action::StartProbes);
        self.reconcile("start", Vec::new(), out);
        self.check_gate(now, out);
        self.feed(now, Input::Startup, out);
    }

    fn on_advert(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        adv: &Advert,
        out: &mut Vec<Action>,
    ) {
        let v = &self.loaded.cfg.vrrp;
        if adv.vrid != v.vrid {
            self.counters.other_vrid += 1;
            return;
        }
        if src == v.address {
            // Our own, looped back despite IP_MULTICAST_LOOP off.
            return;
        }
        // Only the other directors may take part in the election: every
        // director.toml lists them. Without this a single spoofed advert from
        // any host on the segment (multicast needs no route) can take the VIP
        // away, or — priority 1 with Max Adver Int 4095 cs — hold every
        // director in Backup for minutes. `accept_foreign` (multicast only)
        // restores keepalived's accept-anything for mixed clusters.
        if (v.unicast || !v.accept_foreign) && !v.peers.contains(&src) {
            self.counters.unknown_peer += 1;
            // First, then every 100th: a flood cannot flood the log.
            if self.counters.unknown_peer == 1 || self.counters.unknown_peer % 100 == 0 {
                warn!(
                    from = %src,
                    count = self.counters.unknown_peer,
                    "VRRP advert from an address that is not one of the cluster's directors: dropped"
                );
            }
            return;
        }
        if dst != VRRP_MULTICAST_V4 && dst != v.address {
            return;
        }
        // RFC 5798 §6.4.2 has a Backup adopt the master's Max Adver Int as
        // its Master_Adver_Interval (Skew_Time, Master_Down_Interval). We
        // deviate on purpose, as VRRPv2 did (RFC 3768 §7.1 discards an advert
        // whose interval differs from the configured one): every director of
        // a cluster has the same interval from the same cluster.toml, so a
        // different one is a misconfiguration or an attack, and adopting it
        // lets one advert with 4095 cs stretch the failover to over two
        // minutes. The advert still counts for the election; the timing
        // stays ours (the machine computes Master_Down_Interval from the
        // interval fed here).
        let ours = self.machine.config().advert_interval;
        let mut interval = adv.max_adver_int;
        if interval != ours {
            self.counters.interval_mismatch += 1;
            if self
                .last_interval_warn
                .is_none_or(|t| now.saturating_duration_since(t) >= INTERVAL_WARN_EVERY)
            {
                self.last_interval_warn = Some(now);
                warn!(
                    from = %src,
                    theirs_cs = adv.max_adver_int,
                    ours_cs = ours,
                    count = self.counters.interval_mismatch,
                    "VRRP advert with another advert interval: ignored for timing, ours kept \
                     (check advert_interval on every director)"
                );
            }
            interval = ours;
        }
        debug!(from = %src, priority = adv.priority, interval_cs = adv.max_adver_int, "advert");
        if adv.priority > 0 && !self.stale.is_empty() {
            self.drop_stale(&format!("{src} is master"), out);
        }
        let was_master = self.machine.state() == State::Master && !self.machine.is_leaving();
        self.feed(
            now,
            Input::Advert {
                from: src,
                priority: adv.priority,
                max_adver_int: interval,
            },
            out,
        );
        // Still Master after another router's advert (priority > 0): it
        // thinks it is master too — split brain after a partition (our link
        // was down, its master-down timer fired). It yields on our next
        // advert, but the clients' ARP caches point at it: re-announce the
        // VIP now (at most once a second) instead of leaving them to time out.
        let split_brain = was_master && adv.priority > 0 && self.machine.state() == State::Master;
        if split_brain && health::all_down(&self.rs) {
            // We were cut off (every probe failed: our link, not the real
            // servers) and the other router took over meanwhile. Taking the
            // VIP back now would point it at weight-0 destinations until our
            // probes rise again — keepalived's "failback onto an empty
            // service". Step down instead (graceful: the other router is
            // already advertising) and start over as Backup: we preempt back
            // after Master_Down_Interval, with health known by then.
            warn!(
                other = %src,
                "another router took over while every real server looked down from here: \
                 stepping down, back as Backup"
            );
            self.phase = Phase::SteppingDown { other: src };
            self.feed(now, Input::Shutdown, out);
            return;
        }
        if split_brain
            && self
                .last_reannounce
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            self.last_reannounce = Some(now);
            info!(other = %src, priority = adv.priority, "another router advertises as master: re-announcing the VIP");
            out.push(Action::SendGarp {
                count: machine::DEFAULT_GARP_REPEAT,
            });
        }
    }

    fn on_probe(
        &mut self,
        now: Instant,
        i: usize,
        j: usize,
        record: health::Check,
        out: &mut Vec<Action>,
    ) {
        let Some(st) = self.rs.get_mut(i).and_then(|v| v.get_mut(j)) else {
            return;
        };
        let ok = record.ok;
        if record.inconclusive {
            // The director could not probe (no socket): the result says
            // nothing about the real server, so its health and weight stay;
            // logged once per run of such results.
            if !st.last.as_ref().is_some_and(|l| l.inconclusive) {
                warn!(address = %st.key.addr, detail = %record.detail, "health check could not run: health unchanged");
            }
            st.last = Some(record);
            return;
        }
        st.last = Some(record);
        if !ok {
            st.failed = st.failed.saturating_add(1);
        }
        let Some(t) = st.damper.observe(ok) else {
            return;
        };
        st.flips = st.flips.saturating_add(1);
        let addr = st.key.addr;
        // copied on a flip only, not on every check
        let detail = st
            .last
            .as_ref()
            .map(|l| l.detail.clone())
            .unwrap_or_default();
        if let Some(s) = self.loaded.cfg.services.get(i)
            && let Some(rsc) = s.real_servers.get(j)
        {
            if t.to != Health::Up {
                warn!(
                    service = %self.loaded.cfg.service_label(s),
                    real_server = %rsc.name,
                    address = %addr,
                    from = %t.from,
                    to = %t.to,
                    detail = %detail,
                    "real server health: weight 0"
                );
            } else {
                info!(
                    service = %self.loaded.cfg.service_label(s),
                    real_server = %rsc.name,
                    address = %addr,
                    from = %t.from,
                    to = %t.to,
                    detail = %detail,
                    "real server health: weight {}", rsc.weight
                );
            }
        }
        self.reconcile("health", Vec::new(), out);
        // Only a first result (from unknown) can open the gate; a damper
        // never goes back to unknown.
        if t.from == Health::Unknown {
            self.unknown = self.unknown.saturating_sub(1);
            self.follow_gate(now, out);
        }
    }

    /// FAULT handling. Interface down: release the addresses at once and
    /// hold the machine in Initialize (no adverts, no mastership). Interface
    /// up again: forget the health seen while cut off (every probe failed:
    /// that was our link, not the real servers), so the health gate closes
    /// until fresh results arrive, and start over as Backup — the director
    /// never takes the VIP back before its real servers answer again
    /// (keepalived's "failback onto an empty service").
    fn on_link(&mut self, now: Instant, up: bool, out: &mut Vec<Action>) {
        match (self.phase, up) {
            // A stop under way: the link no longer matters.
            (Phase::ShuttingDown { .. } | Phase::Stopped, _) => {}
            (Phase::Fault, true) => {
                info!(interface = %self.ifaces.vrrp, "interface up: leaving fault, fresh health checks, Backup");
                self.phase = Phase::Running;
                self.rs = health::fresh(&self.loaded.cfg, &[]);
                out.push(Action::StartProbes);
                self.check_gate(now, out);
                self.note("fault cleared: interface up", out);
                self.feed(now, Input::Startup, out);
            }
            (Phase::Running | Phase::SteppingDown { .. }, false) => {
                warn!(interface = %self.ifaces.vrrp, state = %self.machine.state(), "interface down: VRRP fault, releasing the addresses");
                self.phase = Phase::Fault;
                self.feed(now, Input::Shutdown, out);
                if self.machine.is_leaving() {
                    // Nobody can hear us: no handover to wait for.
                    self.feed(now, Input::Shutdown, out);
                }
                self.note("fault: interface down", out);
                self.hook(Hook::Fault, out);
            }
            (Phase::Fault, false) | (Phase::Running | Phase::SteppingDown { .. }, true) => {}
        }
    }

    /// Our own addresses of a run that died (kill -9, crash) while Master.
    /// If they are still the ones we would hold, they are kept until another
    /// master is heard (or Master_Down_Interval passes): with the unit's
    /// restart after 1 s, the old VIP keeps forwarding (the IPVS table
    /// survives the process) until the backup takes over, so a crash leaves
    /// no gap. The same address with another prefix goes at once. Only this
    /// config's addresses on their interfaces are touched
    /// ([`found::classify`]): another cluster's VIP with the same VRID on
    /// another NIC stays.
    fn adopt_leftovers(&mut self, found: &[HostAddress], out: &mut Vec<Action>) {
        let wanted = self.wanted();
        let vrid = self.loaded.cfg.vrrp.vrid;
        for a in found {
            let label = a.label.as_deref().unwrap_or("");
            match found::classify(a, vrid, &wanted) {
                Found::Leftover(f) => {
                    warn!(
                        address = %a.net,
                        label,
                        "found a stale lvsup address left by an earlier run: kept until a master \
                         is heard or Master_Down_Interval passes"
                    );
                    if !self.stale.contains(&f) {
                        self.stale.push(f);
                    }
                }
                Found::Stale(f) => out.push(Action::RemoveAddress {
                    addr: f,
                    why: Removal::Stale("another prefix than the config's".into()),
                }),
                Found::Foreign => warn!(
                    address = %a.net,
                    label,
                    "the VIP is already on this host without lvsup's label: leaving it alone \
                     (remove it by hand, or this director answers for the VIP while backup)"
                ),
                Found::Other => {}
            }
        }
    }

    /// Address drift repair: Master (not leaving) must hold every floating
    /// address, anyone else none of ours.
    fn check_addresses(&mut self, found: &[HostAddress], out: &mut Vec<Action>) {
        let leaving = self.machine.is_leaving();
        let master = self.machine.state() == State::Master && !leaving;
        let vrid = self.loaded.cfg.vrrp.vrid;
        let mut repaired = false;
        for f in self.wanted() {
            let here = found.iter().any(|a| a.holds(&f, vrid));
            if master && !here {
                warn!(address = %f.net, interface = %f.interface, "Master without its address: re-adding");
                self.held.retain(|h| h.net != f.net);
                repaired = true;
            } else if !master && here && !leaving && !self.stale.iter().any(|s| s.net == f.net) {
                warn!(address = %f.net, interface = %f.interface, "not Master but holding the address: removing");
                self.held.retain(|h| h.net != f.net);
                out.push(Action::RemoveAddress {
                    addr: f,
                    why: Removal::Drift,
                });
            }
        }
        if repaired {
            self.add_vips(out);
            out.push(Action::SendGarp {
                count: machine::DEFAULT_GARP_REPEAT,
            });
        }
    }

    fn on_reload(
        &mut self,
        now: Instant,
        at: String,
        result: Result<Box<Loaded>, String>,
        out: &mut Vec<Action>,
    ) {
        let new = match result {
            Ok(l) => *l,
            Err(e) => {
                error!(
                    running_sha256 = %self.loaded.sha256,
                    "reload REFUSED, the running config stays in force: {e}"
                );
                self.last_reload = Some(ReloadStatus {
                    at,
                    ok: false,
                    error: Some(e),
                });
                // Still repair the kernel from the running config.
                self.reconcile("reload", Vec::new(), out);
                return;
            }
        };
        if let Some(what) = restart_needed(&self.loaded.cfg, &new.cfg) {
            let msg = format!(
                "{what} changed: a reload only changes services and health checks; restart \
                 the daemon to apply it (`systemctl restart {}`: it hands the VIP over first)",
                crate::layout::director_unit(&new.cfg.cluster)
            );
            error!(running_sha256 = %self.loaded.sha256, "reload REFUSED: {msg}");
            self.last_reload = Some(ReloadStatus {
                at,
                ok: false,
                error: Some(msg),
            });
            self.reconcile("reload", Vec::new(), out);
            return;
        }
        let dropped = table::dropped_services(&self.loaded.cfg, &new.cfg);
        let removed = drain::removed(&self.loaded.cfg, &new.cfg);
        let old_rs = std::mem::take(&mut self.rs);
        info!(sha256 = %new.sha256, services = new.cfg.services.len(), "reload: new config in force");
        self.loaded = new;
        self.start_drains(now, removed);
        self.rs = health::fresh(&self.loaded.cfg, &old_rs);
        out.push(Action::StartProbes);
        self.last_reload = Some(ReloadStatus {
            at,
            ok: true,
            error: None,
        });
        self.reconcile("reload", dropped, out);
        self.check_gate(now, out);
    }

    fn on_shutdown(&mut self, now: Instant, why: &'static str, out: &mut Vec<Action>) {
        info!(signal = why, state = %self.machine.state(), "shutting down");
        if !matches!(self.phase, Phase::ShuttingDown { .. }) {
            // The machine's own handover timer is Master_Down_Interval; this
            // is the backstop.
            let mdi = machine::master_down_interval(
                self.machine.config().priority.max(1),
                self.machine.config().advert_interval,
            );
            let deadline =
                now + Duration::from_millis(u64::from(mdi) * 10) + Duration::from_secs(2);
            self.phase = Phase::ShuttingDown { deadline };
        }
        self.feed(now, Input::Shutdown, out);
    }

    fn on_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.drain_check.is_some_and(|at| at <= now) {
            self.check_drains(now, out);
        }
        // Everything due, in time order.
        loop {
            if self.phase == Phase::Stopped {
                return;
            }
            let vrrp = self
                .machine
                .poll_timeout()
                .filter(|(at, _)| *at <= now)
                .map(|(at, kind)| (at, Some(kind)));
            let stale = self
                .stale_deadline
                .filter(|at| *at <= now)
                .map(|at| (at, None));
            let shutdown = match self.phase {
                Phase::ShuttingDown { deadline } if deadline <= now => Some(deadline),
                _ => None,
            };
            let first = [vrrp, stale]
                .into_iter()
                .flatten()
                .min_by_key(|(at, _)| *at);
            match (first, shutdown) {
                (Some((at, _)), Some(d)) if d < at => self.handover_too_long(now, out),
                (Some((_, Some(kind))), _) => self.feed(now, Input::Timer(kind), out),
                (Some((_, None)), _) => {
                    self.drop_stale("no master heard within Master_Down_Interval", out)
                }
                (None, Some(_)) => self.handover_too_long(now, out),
                (None, None) => return,
            }
        }
    }

    fn handover_too_long(&mut self, now: Instant, out: &mut Vec<Action>) {
        warn!("graceful handover took too long: releasing now");
        self.feed(now, Input::Shutdown, out);
        if self.phase != Phase::Stopped {
            self.stop(out);
        }
    }

    /// Feed the machine and carry out what it says.
    fn feed(&mut self, now: Instant, input: Input, out: &mut Vec<Action>) {
        let mut restart = false;
        let mut hooks = Vec::new();
        for o in self.machine.handle(now, input) {
            match o {
                Output::SendAdvert { priority } => out.push(Action::SendAdvert { priority }),
                Output::AddVip => self.add_vips(out),
                Output::RemoveVip => self.release_all(out),
                Output::SendGratuitousArp { count } => out.push(Action::SendGarp { count }),
                // The driver sleeps until poll_timeout().
                Output::ArmTimer { .. } | Output::CancelTimer { .. } => {}
                Output::StateChanged { from, to, reason } => {
                    out.push(Action::StateChanged { from, to, reason });
                    self.switch_sync(to, out);
                    // After the machine's other outputs (the master hook
                    // after the VIP is added). Fault and stop have their
                    // own hooks, where the phase changes (on_link, stop).
                    hooks.extend(match to {
                        State::Master => Some(Hook::Master),
                        State::Backup => Some(Hook::Backup),
                        State::Initialize => None,
                    });
                }
                Output::Stopped => match self.phase {
                    // A step-down: back as Backup at once.
                    Phase::SteppingDown { .. } => {
                        self.phase = Phase::Running;
                        restart = true;
                    }
                    // A fault: the machine stays in Initialize until the link is back.
                    Phase::Fault => {}
                    Phase::Running | Phase::ShuttingDown { .. } => self.stop(out),
                    Phase::Stopped => {}
                },
            }
        }
        for h in hooks {
            self.hook(h, out);
        }
        if restart {
            self.feed(now, Input::Startup, out);
        }
    }

    /// The end: whatever is left goes.
    fn stop(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::Stopped;
        self.release_all(out);
        if !self.stale.is_empty() {
            self.drop_stale("shutting down", out);
        }
        self.hook(Hook::Stop, out);
        if self.loaded.cfg.vrrp.sync_daemon {
            out.push(Action::SyncDaemon {
                stop: vec![DaemonState::Master, DaemonState::Backup],
                start: None,
            });
        }
        out.push(Action::Exit);
    }

    /// The connection-sync daemon follows a VRRP state change (when
    /// `sync_daemon` is on): master on the Master, backup on a Backup, the
    /// master one stopped in Initialize.
    fn switch_sync(&self, to: State, out: &mut Vec<Action>) {
        let v = &self.loaded.cfg.vrrp;
        if !v.sync_daemon {
            return;
        }
        let (stop, start) = match to {
            State::Master => (DaemonState::Backup, Some(DaemonState::Master)),
            State::Backup => (DaemonState::Master, Some(DaemonState::Backup)),
            State::Initialize => (DaemonState::Master, None),
        };
        out.push(Action::SyncDaemon {
            stop: vec![stop],
            start: start.map(|st| {
                crate::ipvs::SyncDaemon::new(st, self.ifaces.vrrp.clone(), u32::from(v.vrid))
            }),
        });
    }

    /// `RunHook` when `[cluster] notify` has a program for `hook`.
    fn hook(&self, hook: Hook, out: &mut Vec<Action>) {
        let n = &self.loaded.cfg.notify;
        let argv = match hook {
            Hook::Master => &n.master,
            Hook::Backup => &n.backup,
            Hook::Fault => &n.fault,
            Hook::Stop => &n.stop,
        };
        if let Some(argv) = argv {
            let cfg = &self.loaded.cfg;
            let env = [
                ("LVSUP_STATE", hook.as_str().to_string()),
                ("LVSUP_CLUSTER", cfg.cluster.clone()),
                ("LVSUP_DIRECTOR", cfg.director.clone()),
                ("LVSUP_VIP", cfg.vip.to_string()),
                ("LVSUP_PRIORITY", cfg.vrrp.priority.to_string()),
            ];
            out.push(Action::RunHook {
                hook,
                argv: argv.clone(),
                env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            });
        }
    }

    fn add_vips(&mut self, out: &mut Vec<Action>) {
        for f in self.wanted() {
            if self.held.iter().any(|h| h.net == f.net) {
                continue;
            }
            if let Some(pos) = self.stale.iter().position(|s| s.net == f.net) {
                // Master again before anyone else: the address never left.
                let s = self.stale.remove(pos);
                info!(address = %s.net, interface = %s.interface, "kept the address of the earlier run");
                self.held.push(s);
                if self.stale.is_empty() {
                    self.stale_deadline = None;
                }
                continue;
            }
            out.push(Action::AddAddress(f));
        }
    }

    fn release_all(&mut self, out: &mut Vec<Action>) {
        for addr in std::mem::take(&mut self.held) {
            out.push(Action::RemoveAddress {
                addr,
                why: Removal::Release,
            });
        }
    }

    /// Remove the kept addresses of a crashed earlier run.
    fn drop_stale(&mut self, why: &str, out: &mut Vec<Action>) {
        self.stale_deadline = None;
        for addr in std::mem::take(&mut self.stale) {
            out.push(Action::RemoveAddress {
                addr,
                why: Removal::Stale(why.to_string()),
            });
        }
    }

    /// The VRRP health gate after `rs` was made afresh: the unknowns counted.
    fn check_gate(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.unknown = health::unknown(&self.rs);
        self.follow_gate(now, out);
    }

    /// The gate open when no health is unknown, closed otherwise.
    fn follow_gate(&mut self, now: Instant, out: &mut Vec<Action>) {
        let known = self.unknown == 0;
        if known != self.gate_open {
            self.gate_open = known;
            if known {
                info!("health of every real server known: VRRP health gate open");
            }
            self.feed(now, Input::HealthGate(known), out);
        }
    }

    /// After a reload: servers put back stop draining, those of dropped
    /// services go with their service, the newly removed ones start.
    fn start_drains(
        &mut self,
        now: Instant,
        removed: Vec<(
            ServiceId,
            crate::config::Protocol,
            String,
            std::net::SocketAddr,
            crate::config::Forward,
        )>,
    ) {
        let cfg = &self.loaded.cfg;
        self.draining.retain(|d| {
            let back = drain::configured(cfg, &d.service, d.addr);
            if back {
                info!(real_server = %d.name, address = %d.addr, service = %d.service, "back in the config: drain ended");
            }
            !back && drain::has_service(cfg, &d.service)
        });
        let timeout = cfg.drain_timeout;
        for (service, protocol, name, addr, forward) in removed {
            if self
                .draining
                .iter()
                .any(|d| d.service == service && d.addr == addr)
            {
                continue;
            }
            if timeout.is_zero() {
                info!(real_server = %name, address = %addr, service = %service, "removed from the config: deleting (drain_timeout = 0s)");
                continue;
            }
            info!(
                real_server = %name,
                address = %addr,
                service = %service,
                "removed from the config: draining at weight 0 until its connections end (at most {})",
                crate::config::format_duration(timeout)
            );
            self.draining.push(Drain {
                service,
                protocol,
                name,
                addr,
                forward,
                since: now,
                deadline: now + timeout,
                conns: None,
            });
        }
        self.drain_check = (!self.draining.is_empty()).then(|| now + DRAIN_CHECK);
    }

    /// The counters a reconcile read: drains whose connections ended go.
    fn on_connections(&mut self, now: Instant, seen: Vec<DestConns>, out: &mut Vec<Action>) {
        let mut gone = false;
        for s in seen {
            let Some(pos) = self
                .draining
                .iter()
                .position(|d| d.service == s.service && d.addr == s.addr)
            else {
                continue;
            };
            match s.conns {
                Some(c) => self.draining[pos].conns = Some(c),
                None => {
                    let d = self.draining.remove(pos);
                    info!(real_server = %d.name, address = %d.addr, service = %d.service, "draining real server no longer in the kernel: drain ended");
                    gone = true;
                }
            }
        }
        if self.draining.is_empty() {
            self.drain_check = None;
        }
        if self.end_drains(now) || gone {
            self.reconcile("drain", Vec::new(), out);
        }
    }

    /// Drain check due: end what is over, else read the counters again.
    fn check_drains(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.end_drains(now);
        self.drain_check = (!self.draining.is_empty()).then(|| now + DRAIN_CHECK);
        // Deletes what ended and reads the counters of the rest.
        self.reconcile("drain", Vec::new(), out);
    }

    /// Remove the drains that are over (logged); whether any was.
    fn end_drains(&mut self, now: Instant) -> bool {
        let before = self.draining.len();
        self.draining.retain(|d| match d.end(now) {
            None => true,
            Some(End::Idle) => {
                info!(real_server = %d.name, address = %d.addr, service = %d.service, "drained: no connection left, deleting");
                false
            }
            Some(End::Timeout) => {
                warn!(
                    real_server = %d.name,
                    address = %d.addr,
                    service = %d.service,
                    active = d.conns.map_or(0, |c| c.active),
                    inactive = d.conns.map_or(0, |c| c.inactive),
                    "drain_timeout passed with connections left: deleting"
                );
                false
            }
        });
        if self.draining.is_empty() {
            self.drain_check = None;
        }
        self.draining.len() != before
    }

    fn reconcile(&self, trigger: &'static str, dropped: Vec<ServiceId>, out: &mut Vec<Action>) {
        out.push(Action::Reconcile { trigger, dropped });
    }

    fn note(&self, what: &'static str, out: &mut Vec<Action>) {
        out.push(Action::Note {
            state: self.machine.state(),
            what,
        });
    }
}
