//! The VRRPv3 state machine of RFC 5798 §6.4, sans-IO.
//!
//! Same shape as quinn-proto's connection: the daemon feeds inputs with the
//! current time, [`Machine::handle`]`(now, input)`, and carries out the
//! returned [`Output`]s in order (send an advert, add the VIP, arm a timer…).
//! No sockets, no clock: tests drive it with a fake clock.
//!
//! Section numbers are RFC 5798's, as keepalived's and holo's comments use
//! them; RFC 9568 (2024) obsoletes 5798 and calls Master "Active".
//!
//! On top of the RFC, two refinements, both from what keepalived did in our
//! lab (`docs/design/protocols.md`, "What keepalived did in our lab"):
//!
//! * **Health gate** ([`Input::HealthGate`]). Until the daemon knows the
//!   health of the real servers, the machine never *becomes* Master: a
//!   Master_Down_Timer that fires while the gate is closed is remembered
//!   ("takeover deferred") and acted on the moment the gate opens — unless a
//!   master showed up meanwhile. This covers startup, failback and
//!   preemption alike, so a director that comes back never pulls the VIP
//!   onto a virtual service with no destinations yet. Closing the gate again
//!   does not demote a Master: the gate means "health is known", not
//!   "healthy", and dropping the VIP on a reload would only add a flap.
//!
//! * **Preempt delay** ([`MachineConfig::preempt_delay`], keepalived's
//!   `preempt_delay`). For this long after a Startup (daemon start, return
//!   from fault, a step-down's restart), a Backup treats a lower-priority
//!   master like a legitimate one: it learns it and restarts its
//!   Master_Down_Timer instead of letting it run out. Once the delay is over
//!   it preempts as usual (discards the lower-priority adverts and takes
//!   over when the timer fires, within Master_Down_Interval). The delay
//!   never holds up a takeover when no master is heard, and does not apply
//!   to a router that became Backup by being preempted itself.
//!
//! * **Graceful handover** ([`MachineConfig::graceful_handover`], default
//!   on). RFC §6.4.3 has a leaving Master send priority 0 and stop at once;
//!   the Backup only takes over after its Skew_Time, so nobody owns the VIP
//!   for up to one advert interval (~0.6 s at 1 s, priority 100). In graceful
//!   mode the Master still sends priority 0 right away (and again every
//!   advert interval, against packet loss), but keeps the VIP until it sees
//!   an advert from the new master (or Master_Down_Interval passes, if nobody
//!   takes over), then releases it and reports [`Output::Stopped`].

use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::vrrp::packet::MAX_ADVER_INT_CS;

/// Centiseconds: the unit of every VRRPv3 interval (RFC 5798 §5.2.7).
pub type Centis = u32;

/// keepalived's `vrrp_garp_master_repeat` default: gratuitous ARPs per burst.
pub const DEFAULT_GARP_REPEAT: u32 = 5;
/// keepalived's `vrrp_garp_master_delay` default: the second burst, 5 s after
/// taking over (switches that missed the first, slow ARP caches).
pub const DEFAULT_GARP_MASTER_DELAY: Duration = Duration::from_secs(5);

/// Everything the machine needs to know about this router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    pub vrid: u8,
    /// 1..=255; 255 = the address owner (RFC 5798 §6.1). 0 is treated as 1.
    pub priority: u8,
    /// Advertisement_Interval in centiseconds, 1..=4095.
    pub advert_interval: u16,
    /// Preempt_Mode (RFC 5798 §6.1). The owner (255) always preempts.
    pub preempt: bool,
    /// This router's primary address: the advert source, and the tie-break
    /// between equal priorities (RFC 5798 §6.4.3).
    pub address: Ipv4Addr,
    /// Keep the VIP after a Shutdown as Master until a new master is seen.
    pub graceful_handover: bool,
    /// Start with the health gate closed: no mastership before the first
    /// `HealthGate(true)`. `false` = plain RFC behaviour from the start.
    pub wait_for_health: bool,
    /// Gratuitous ARPs per burst when becoming Master.
    pub garp_repeat: u32,
    /// Delay of the second gratuitous-ARP burst; zero = no second burst.
    pub garp_master_delay: Duration,
    /// As Master, answer a lower-priority advert with an advert of our own
    /// at once (and restart the Adver_Timer) instead of only discarding it.
    /// keepalived does this by default ("forcing new election", off with
    /// `lower_prio_no_advert`): after a partition heals, the other master
    /// yields within one packet instead of up to one advert interval.
    /// Default off: RFC 5798 §6.4.3 says discard.
    pub advert_on_lower_priority: bool,
    /// keepalived's `preempt_delay` (see the module docs); zero = none.
    pub preempt_delay: Duration,
}

impl MachineConfig {
    /// Defaults: graceful handover on, wait for health, keepalived's GARP
    /// timings. `advert_interval` is rounded down to centiseconds and
    /// clamped to 10 ms..=40.95 s.
    pub fn new(
        vrid: u8,
        priority: u8,
        advert_interval: Duration,
        preempt: bool,
        address: Ipv4Addr,
    ) -> MachineConfig {
        MachineConfig {
            vrid,
            priority,
            advert_interval: duration_to_centis(advert_interval),
            preempt,
            address,
            graceful_handover: true,
            wait_for_health: true,
            garp_repeat: DEFAULT_GARP_REPEAT,
            garp_master_delay: DEFAULT_GARP_MASTER_DELAY,
            advert_on_lower_priority: false,
            preempt_delay: Duration::ZERO,
        }
    }

    fn priority(&self) -> u8 {
        self.priority.max(1)
    }

    fn is_owner(&self) -> bool {
        self.priority == 255
    }

    /// RFC 5798 §6.1: the owner always preempts, whatever Preempt_Mode says.
    fn preempts(&self) -> bool {
        self.preempt || self.is_owner()
    }
}

/// A `Duration` as whole centiseconds, clamped to what the 12-bit field holds.
pub fn duration_to_centis(d: Duration) -> u16 {
    let cs = (d.as_millis() / 10).clamp(1, u128::from(MAX_ADVER_INT_CS));
    cs as u16
}

/// RFC 5798 §6.1: Skew_Time = ((256 − Priority) × Master_Adver_Interval) / 256,
/// in centiseconds, integer division as written: priority 100 at 100 cs →
/// 60 cs (60.9 truncated).
///
/// keepalived computes the same formula in microseconds (`VRRP_TIMER_SKEW`
/// in `vrrp.h`: 609 375 µs here, so its Master_Down_Interval is 3.609 s
/// against our 3.60 s). The 9 ms difference only means an lvsup backup gives
/// up on a silent master a few ms sooner than a keepalived one would.
pub fn skew_time(priority: u8, master_adver_interval: u16) -> Centis {
    (256 - Centis::from(priority)) * Centis::from(master_adver_interval) / 256
}

/// RFC 5798 §6.1: Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time.
pub fn master_down_interval(priority: u8, master_adver_interval: u16) -> Centis {
    3 * Centis::from(master_adver_interval) + skew_time(priority, master_adver_interval)
}

fn centis(cs: Centis) -> Duration {
    Duration::from_millis(u64::from(cs) * 10)
}

/// RFC 5798 §6.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Initialize,
    Backup,
    Master,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Initialize => "Initialize",
            State::Backup => "Backup",
            State::Master => "Master",
        })
    }
}

/// The machine's timers (RFC 5798 §6.2) plus two of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// Adver_Timer: Master sends the next advert.
    Adver,
    /// Master_Down_Timer: Backup declares the master dead.
    MasterDown,
    /// The second gratuitous-ARP burst after taking over.
    GarpRepeat,
    /// Graceful handover: stop waiting for a new master.
    Handover,
}

impl TimerKind {
    const ALL: [TimerKind; 4] = [
        TimerKind::Adver,
        TimerKind::MasterDown,
        TimerKind::GarpRepeat,
        TimerKind::Handover,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for TimerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimerKind::Adver => "adver",
            TimerKind::MasterDown => "master-down",
            TimerKind::GarpRepeat => "garp-repeat",
            TimerKind::Handover => "handover",
        })
    }
}

/// What the daemon tells the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// RFC 5798 §6.4.1 Startup event.
    Startup,
    /// RFC 5798 §6.4.2/§6.4.3 Shutdown event.
    Shutdown,
    /// A received advert for our VRID that passed [`crate::vrrp::packet`]
    /// validation (TTL, version, checksum, length).
    Advert {
        from: Ipv4Addr,
        priority: u8,
        /// Centiseconds.
        max_adver_int: u16,
    },
    /// A timer armed by [`Output::ArmTimer`] came due.
    Timer(TimerKind),
    /// `true` once the real servers' health is known (see the module docs).
    HealthGate(bool),
}

/// Why the state changed: for logs and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Startup as a non-owner: Backup, waiting Master_Down_Interval.
    Startup,
    /// Startup as the address owner (priority 255): Master at once.
    AddressOwner,
    /// Master_Down_Timer fired: no master heard.
    MasterDown,
    /// The Master_Down_Timer had fired while the health gate was closed
    /// (or we are the owner); the gate just opened.
    HealthKnown,
    /// An advert with a higher priority, or an equal one from a higher address.
    Preempted { by: Ipv4Addr, priority: u8 },
    /// Shutdown event.
    Shutdown,
    /// Graceful handover finished: `to` advertised as the new master.
    HandedOver { to: Ipv4Addr },
    /// Graceful handover: nobody took over within Master_Down_Interval.
    HandoverTimeout,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Startup => f.write_str("startup"),
            Reason::AddressOwner => f.write_str("startup as address owner (priority 255)"),
            Reason::MasterDown => f.write_str("master down timer expired"),
            Reason::HealthKnown => f.write_str("health of the real servers known"),
            Reason::Preempted { by, priority } => {
                write!(f, "preempted by {by} priority {priority}")
            }
            Reason::Shutdown => f.write_str("shutdown"),
            Reason::HandedOver { to } => write!(f, "handed over to {to}"),
            Reason::HandoverTimeout => f.write_str("handover timed out"),
        }
    }
}

/// What the daemon must do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Send an advert with this priority (our interval, our VIPs).
    SendAdvert { priority: u8 },
    /// Put the VIP (and the NAT gateway, if any) on the interface.
    AddVip,
    /// Take the VIP off.
    RemoveVip,
    /// Send `count` gratuitous ARPs for each VIP.
    SendGratuitousArp { count: u32 },
    /// (Re)arm timer `kind` to fire at `at`; replaces any earlier arming.
    ArmTimer { kind: TimerKind, at: Instant },
    /// Disarm timer `kind`.
    CancelTimer { kind: TimerKind },
    StateChanged {
        from: State,
        to: State,
        reason: Reason,
    },
    /// The Shutdown is complete: the VIP is released, the daemon may exit.
    Stopped,
}

/// Counters for status output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every `Input::Advert`, whatever came of it.
    pub adverts_received: u64,
    /// Adverts with priority 0 received.
    pub priority_zero_received: u64,
    /// Priority-0 adverts received as Master within one advert interval of
    /// the last one answered: not answered (rate limit).
    pub priority_zero_unanswered: u64,
    /// Adverts discarded by the rules of §6.4.2/§6.4.3 (lower priority).
    pub adverts_discarded: u64,
    /// Adverts carrying our own address (multicast loop): ignored.
    pub own_adverts: u64,
    pub adverts_sent: u64,
    pub transitions: u64,
    pub became_master: u64,
    pub became_backup: u64,
}

/// One VRRP virtual router, sans-IO.
#[derive(Debug, Clone)]
pub struct Machine {
    cfg: MachineConfig,
    state: State,
    /// Master_Adver_Interval (RFC 5798 §6.1), centiseconds.
    master_adver_interval: u16,
    gate_open: bool,
    /// Master_Down_Timer fired while the health gate was closed.
    takeover_deferred: bool,
    /// Graceful handover under way: Shutdown received as Master, VIP kept.
    leaving: bool,
    /// The master we last accepted an advert from (us when Master).
    master: Option<Ipv4Addr>,
    timers: [Option<Instant>; 4],
    /// When we last answered a priority-0 advert as Master.
    last_zero_reply: Option<Instant>,
    /// End of the preempt delay that started with the last Startup.
    preempt_after: Option<Instant>,
    stats: Stats,
}

impl Machine {
    /// An `advert_interval` outside 1..=4095 cs is clamped into it (0 would
    /// make the Adver_Timer fire in a loop).
    pub fn new(mut cfg: MachineConfig) -> Machine {
        cfg.advert_interval = cfg.advert_interval.clamp(1, MAX_ADVER_INT_CS);
        let gate_open = !cfg.wait_for_health;
        let master_adver_interval = cfg.advert_interval;
        Machine {
            cfg,
            state: State::Initialize,
            master_adver_interval,
            gate_open,
            takeover_deferred: false,
            leaving: false,
            master: None,
            timers: [None; 4],
            last_zero_reply: None,
            preempt_after: None,
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &MachineConfig {
        &self.cfg
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Master_Adver_Interval in centiseconds: ours, or the master's learned one.
    pub fn master_adver_interval(&self) -> u16 {
        self.master_adver_interval
    }

    /// The current master as far as we know: us when Master, else the source
    /// of the last accepted advert (`None` after its priority-0 advert).
    pub fn master(&self) -> Option<Ipv4Addr> {
        self.master
    }

    pub fn health_gate_open(&self) -> bool {
        self.gate_open
    }

    /// The master is gone but the health gate is still closed.
    pub fn takeover_deferred(&self) -> bool {
        self.takeover_deferred
    }

    /// Graceful handover under way: priority 0 sent, VIP still held.
    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    /// The earliest armed timer, quinn's `poll_timeout`: an alternative to
    /// tracking `ArmTimer`/`CancelTimer` outputs.
    pub fn poll_timeout(&self) -> Option<(Instant, TimerKind)> {
        TimerKind::ALL
            .iter()
            .filter_map(|k| self.timers[k.index()].map(|at| (at, *k)))
            .min()
    }

    /// Feed one input at time `now`; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Startup => self.on_startup(now, &mut out),
            Input::Shutdown => self.on_shutdown(now, &mut out),
            Input::Advert {
                from,
                priority,
                max_adver_int,
            } => self.on_advert(now, from, priority, max_adver_int, &mut out),
            Input::Timer(kind) => self.on_timer(now, kind, &mut out),
            Input::HealthGate(open) => self.on_gate(now, open, &mut out),
        }
        out
    }

    // RFC 5798 §6.4.1
    fn on_startup(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.state != State::Initialize {
            return;
        }
        self.leaving = false;
        self.takeover_deferred = false;
        self.master = None;
        self.preempt_after =
            (!self.cfg.preempt_delay.is_zero()).then(|| now + self.cfg.preempt_delay);
        if self.cfg.is_owner() && self.gate_open {
            self.become_master(now, Reason::AddressOwner, out);
            return;
        }
        // Set Master_Adver_Interval to Advertisement_Interval, Master_Down_Timer
        // to Master_Down_Interval, go Backup. (An owner waiting for health
        // goes here too and takes over when the gate opens.)
        self.master_adver_interval = self.cfg.advert_interval;
        self.transition(State::Backup, Reason::Startup, out);
        let mdi = master_down_interval(self.cfg.priority(), self.master_adver_interval);
        self.arm(TimerKind::MasterDown, now + centis(mdi), out);
    }

    fn on_shutdown(&mut self, now: Instant, out: &mut Vec<Output>) {
        match self.state {
            State::Initialize => {}
            // §6.4.2: cancel Master_Down_Timer, go Initialize.
            State::Backup => {
                self.cancel(TimerKind::MasterDown, out);
                self.takeover_deferred = false;
                self.master = None;
                self.transition(State::Initialize, Reason::Shutdown, out);
            }
            // A second Shutdown during a handover: release now (release()
            // reports Stopped, once).
            State::Master if self.leaving => {
                self.release(Reason::Shutdown, out);
                return;
            }
            // §6.4.3: cancel Adver_Timer, send priority 0, go Initialize.
            State::Master => {
                self.cancel(TimerKind::GarpRepeat, out);
                self.send_advert(0, out);
                if self.cfg.graceful_handover {
                    self.leaving = true;
                    // Repeat priority 0 every advert interval while waiting, so
                    // one lost packet costs a backup one interval, not a whole
                    // Master_Down_Interval. A repeat never delays a takeover:
                    // Skew_Time < Master_Adver_Interval at any priority.
                    self.arm(
                        TimerKind::Adver,
                        now + centis(Centis::from(self.cfg.advert_interval)),
                        out,
                    );
                    let mdi = master_down_interval(self.cfg.priority(), self.cfg.advert_interval);
                    self.arm(TimerKind::Handover, now + centis(mdi), out);
                    // Stopped comes with the release.
                    return;
                }
                // release() cancels the Adver_Timer.
                self.release(Reason::Shutdown, out);
                return;
            }
        }
        out.push(Output::Stopped);
    }

    /// Master → Initialize: drop the VIP and report Stopped.
    fn release(&mut self, reason: Reason, out: &mut Vec<Output>) {
        self.cancel(TimerKind::Adver, out);
        self.cancel(TimerKind::Handover, out);
        self.leaving = false;
        self.master = None;
        out.push(Output::RemoveVip);
        self.transition(State::Initialize, reason, out);
        out.push(Output::Stopped);
    }

    fn on_advert(
        &mut self,
        now: Instant,
        from: Ipv4Addr,
        priority: u8,
        max_adver_int: u16,
        out: &mut Vec<Output>,
    ) {
        self.stats.adverts_received += 1;
        if priority == 0 {
            self.stats.priority_zero_received += 1;
        }
        if from == self.cfg.address {
            // Our own advert looped back.
            self.stats.own_adverts += 1;
            return;
        }
        let interval = max_adver_int.clamp(1, MAX_ADVER_INT_CS);
        let ours = self.cfg.priority();
        match self.state {
            // Initialize does not process adverts.
            State::Initialize => {}
            // §6.4.2
            State::Backup => {
                if priority == 0 {
                    // The master is leaving: take over after Skew_Time only.
                    self.master = None;
                    let skew = skew_time(ours, self.master_adver_interval);
                    self.arm(TimerKind::MasterDown, now + centis(skew), out);
                } else if !self.cfg.preempts() || priority >= ours || self.preempt_delayed(now) {
                    self.master = Some(from);
                    self.takeover_deferred = false;
                    self.master_adver_interval = interval;
                    let mdi = master_down_interval(ours, interval);
                    self.arm(TimerKind::MasterDown, now + centis(mdi), out);
                } else {
                    // Lower priority and we preempt: let the timer run out.
                    self.stats.adverts_discarded += 1;
                }
            }
            // Graceful handover: the first advert of a new master ends it.
            State::Master if self.leaving => {
                if priority != 0 {
                    self.master_adver_interval = interval;
                    self.release(Reason::HandedOver { to: from }, out);
                }
            }
            // §6.4.3
            State::Master => {
                if priority == 0 {
                    // Someone else leaving: make sure the backups hear a master
                    // now (§6.4.3: "Send an ADVERTISEMENT"). At most once per
                    // advert interval: the RFC has no limit, so a flood of
                    // priority-0 adverts would turn into a flood of ours, one
                    // for one. An unanswered one is answered by our next
                    // advert, due at most one interval after the last reply
                    // (every reply re-arms the Adver_Timer). The director
                    // drops adverts from non-directors before they get here
                    // (`director::core`), so this only limits a broken peer
                    // or a mixed cluster with `vrrp_accept_foreign`.
                    let interval = centis(Centis::from(self.cfg.advert_interval));
                    if self
                        .last_zero_reply
                        .is_some_and(|t| now.saturating_duration_since(t) < interval)
                    {
                        self.stats.priority_zero_unanswered += 1;
                        return;
                    }
                    self.last_zero_reply = Some(now);
                    self.send_advert(ours, out);
                    self.arm(TimerKind::Adver, now + interval, out);
                } else if priority > ours || (priority == ours && from > self.cfg.address) {
                    self.cancel(TimerKind::Adver, out);
                    self.cancel(TimerKind::GarpRepeat, out);
                    self.master_adver_interval = interval;
                    self.master = Some(from);
                    out.push(Output::RemoveVip);
                    self.transition(State::Backup, Reason::Preempted { by: from, priority }, out);
                    let mdi = master_down_interval(ours, interval);
                    self.arm(TimerKind::MasterDown, now + centis(mdi), out);
                } else {
                    // Lower priority: discard; our Adver_Timer keeps running.
                    self.stats.adverts_discarded += 1;
                    if self.cfg.advert_on_lower_priority {
                        self.send_advert(ours, out);
                        self.arm(
                            TimerKind::Adver,
                            now + centis(Centis::from(self.cfg.advert_interval)),
                            out,
                        );
                    }
                }
            }
        }
    }

    /// Within the preempt delay: a lower-priority master is not preempted.
    /// The owner (priority 255) always preempts (RFC 5798 §6.1).
    fn preempt_delayed(&self, now: Instant) -> bool {
        !self.cfg.is_owner() && self.preempt_after.is_some_and(|t| now < t)
    }

    /// When the preempt delay of the last Startup ends (`None`: no delay).
    pub fn preempt_after(&self) -> Option<Instant> {
        self.preempt_after
    }

    fn on_timer(&mut self, now: Instant, kind: TimerKind, out: &mut Vec<Output>) {
        match self.timers[kind.index()] {
            // Disarmed or re-armed since: a stale wakeup.
            None => return,
            // Early wakeup: tell the driver again when.
            Some(at) if now < at => {
                out.push(Output::ArmTimer { kind, at });
                return;
            }
            Some(_) => self.timers[kind.index()] = None,
        }
        match (self.state, kind) {
            // §6.4.2: Master_Down_Timer fires → Master (if health is known).
            (State::Backup, TimerKind::MasterDown) => {
                self.master = None;
                if self.gate_open {
                    self.become_master(now, Reason::MasterDown, out);
                } else {
                    self.takeover_deferred = true;
                }
            }
            // §6.4.3: Adver_Timer fires → send, re-arm.
            (State::Master, TimerKind::Adver) if !self.leaving => {
                self.send_advert(self.cfg.priority(), out);
                self.arm(
                    TimerKind::Adver,
                    now + centis(Centis::from(self.cfg.advert_interval)),
                    out,
                );
            }
            // Graceful handover: priority 0 again (see on_shutdown).
            (State::Master, TimerKind::Adver) => {
                self.send_advert(0, out);
                self.arm(
                    TimerKind::Adver,
                    now + centis(Centis::from(self.cfg.advert_interval)),
                    out,
                );
            }
            (State::Master, TimerKind::GarpRepeat) if !self.leaving => {
                out.push(Output::SendGratuitousArp {
                    count: self.cfg.garp_repeat,
                });
            }
            (State::Master, TimerKind::Handover) if self.leaving => {
                self.release(Reason::HandoverTimeout, out);
            }
            _ => {}
        }
    }

    fn on_gate(&mut self, now: Instant, open: bool, out: &mut Vec<Output>) {
        let was_open = self.gate_open;
        self.gate_open = open;
        if !open || was_open || self.state != State::Backup {
            return;
        }
        // The owner takes over as soon as it may (§6.4.1); anyone else only if
        // the master was found dead while we waited.
        if self.takeover_deferred || self.cfg.is_owner() {
            self.become_master(now, Reason::HealthKnown, out);
        }
    }

    // §6.4.1 / §6.4.2: send an advert, broadcast gratuitous ARP, set
    // Adver_Timer, go Master.
    //
    // The gratuitous ARP goes out *before* the advert (the RFC lists them the
    // other way round, without an order requirement). A master we preempt,
    // and a leaving master in graceful handover, drop the VIP as soon as our
    // advert arrives; clients still sending to their MAC from then on until
    // our ARP reaches them lose the packet (a dropped SYN costs the client a
    // 1 s retransmit: measured at failback in the VM lab). Announced first,
    // the clients move before the old master lets go.
    fn become_master(&mut self, now: Instant, reason: Reason, out: &mut Vec<Output>) {
        self.cancel(TimerKind::MasterDown, out);
        self.takeover_deferred = false;
        self.master = Some(self.cfg.address);
        self.transition(State::Master, reason, out);
        out.push(Output::AddVip);
        out.push(Output::SendGratuitousArp {
            count: self.cfg.garp_repeat,
        });
        self.send_advert(self.cfg.priority(), out);
        self.arm(
            TimerKind::Adver,
            now + centis(Centis::from(self.cfg.advert_interval)),
            out,
        );
        if !self.cfg.garp_master_delay.is_zero() {
            self.arm(TimerKind::GarpRepeat, now + self.cfg.garp_master_delay, out);
        }
    }

    fn transition(&mut self, to: State, reason: Reason, out: &mut Vec<Output>) {
        let from = self.state;
        self.state = to;
        self.stats.transitions += 1;
        match to {
            State::Master => self.stats.became_master += 1,
            State::Backup => self.stats.became_backup += 1,
            State::Initialize => {}
        }
        out.push(Output::StateChanged { from, to, reason });
    }

    fn send_advert(&mut self, priority: u8, out: &mut Vec<Output>) {
        self.stats.adverts_sent += 1;
        out.push(Output::SendAdvert { priority });
    }

    fn arm(&mut self, kind: TimerKind, at: Instant, out: &mut Vec<Output>) {
        self.timers[kind.index()] = Some(at);
        out.push(Output::ArmTimer { kind, at });
    }

    fn cancel(&mut self, kind: TimerKind, out: &mut Vec<Output>) {
        if self.timers[kind.index()].take().is_some() {
            out.push(Output::CancelTimer { kind });
        }
    }
}
