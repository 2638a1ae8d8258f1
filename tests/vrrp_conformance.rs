//! RFC 5798 §6.4 conformance cases for the sans-IO VRRP machine, one
//! directory per case under `tests/vrrp_conformance/` (holo-vrrp's layout):
//!
//! * `input`: comment lines (`#`, the first names the RFC section), one
//!   `config` line, then timed events, milliseconds since start:
//!   `startup`, `shutdown`, `advert <from> prio=<p> int=<cs>`,
//!   `gate open|closed`, and a final `end` (run the timers up to there).
//! * `expected`: every input and every output, with its time.
//!
//! A fake clock drives the machine: before each event, the runner fires every
//! timer armed (by `ArmTimer` outputs) at or before the event's time, in
//! time order, at the time it was armed for.
//!
//! `VRRP_CONFORMANCE_BLESS=1 cargo test --test vrrp_conformance` rewrites the
//! `expected` files; read every diff before committing one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use lvsup::vrrp::machine::{Input, Machine, MachineConfig, Output, TimerKind};

#[macro_use]
#[path = "common/cases.rs"]
mod cases;

fn parse_config(line: &str) -> MachineConfig {
    let mut cfg = MachineConfig::new(
        1,
        100,
        Duration::from_secs(1),
        true,
        Ipv4Addr::new(10, 0, 0, 1),
    );
    cfg.wait_for_health = false;
    for kv in line.split_whitespace().skip(1) {
        let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("bad {kv}"));
        match k {
            "priority" => cfg.priority = v.parse().expect("priority"),
            // centiseconds
            "advert" => cfg.advert_interval = v.parse().expect("advert"),
            "preempt" => cfg.preempt = v == "on",
            "address" => cfg.address = v.parse().expect("address"),
            "graceful" => cfg.graceful_handover = v == "on",
            // "closed": wait for health (the gate starts closed)
            "health" => cfg.wait_for_health = v == "closed",
            "lower-prio-advert" => cfg.advert_on_lower_priority = v == "on",
            // milliseconds
            "preempt-delay" => {
                cfg.preempt_delay = Duration::from_millis(v.parse().expect("preempt-delay"))
            }
            _ => panic!("unknown config key {k}"),
        }
    }
    cfg
}

fn parse_event(words: &[&str]) -> Option<Input> {
    Some(match words {
        ["startup"] => Input::Startup,
        ["shutdown"] => Input::Shutdown,
        ["gate", "open"] => Input::HealthGate(true),
        ["gate", "closed"] => Input::HealthGate(false),
        ["advert", from, prio, int] => Input::Advert {
            from: from.parse().expect("advert source"),
            priority: prio
                .strip_prefix("prio=")
                .and_then(|p| p.parse().ok())
                .expect("prio=N"),
            max_adver_int: int
                .strip_prefix("int=")
                .and_then(|p| p.parse().ok())
                .expect("int=CS"),
        },
        ["end"] => return None,
        other => panic!("unknown event {other:?}"),
    })
}

fn ms(base: Instant, t: Instant) -> u128 {
    (t - base).as_millis()
}

fn render_input(i: &Input) -> String {
    match i {
        Input::Startup => "< startup".into(),
        Input::Shutdown => "< shutdown".into(),
        Input::Advert {
            from,
            priority,
            max_adver_int,
        } => format!("< advert from {from} prio={priority} int={max_adver_int}"),
        Input::Timer(k) => format!("< timer {k}"),
        Input::HealthGate(open) => format!("< gate {}", if *open { "open" } else { "closed" }),
    }
}

fn render_output(base: Instant, o: &Output) -> String {
    match o {
        Output::SendAdvert { priority } => format!("> SendAdvert prio={priority}"),
        Output::AddVip => "> AddVip".into(),
        Output::RemoveVip => "> RemoveVip".into(),
        Output::SendGratuitousArp { count } => format!("> SendGratuitousArp x{count}"),
        Output::ArmTimer { kind, at } => format!("> ArmTimer {kind} @{}", ms(base, *at)),
        Output::CancelTimer { kind } => format!("> CancelTimer {kind}"),
        Output::StateChanged { from, to, reason } => {
            format!("> StateChanged {from} -> {to} ({reason})")
        }
        Output::Stopped => "> Stopped".into(),
    }
}

struct Run {
    base: Instant,
    machine: Machine,
    armed: BTreeMap<TimerKind, Instant>,
    log: String,
}

impl Run {
    fn step(&mut self, now: Instant, input: Input) {
        let outputs = self.machine.handle(now, input);
        writeln!(
            self.log,
            "{:<6} {}",
            ms(self.base, now),
            render_input(&input)
        )
        .unwrap();
        for o in &outputs {
            writeln!(
                self.log,
                "{:<6} {}",
                ms(self.base, now),
                render_output(self.base, o)
            )
            .unwrap();
            match o {
                Output::ArmTimer { kind, at } => {
                    assert!(*at >= now, "timer armed in the past");
                    self.armed.insert(*kind, *at);
                }
                Output::CancelTimer { kind } => {
                    assert!(
                        self.armed.remove(kind).is_some(),
                        "cancel of unarmed {kind}"
                    );
                }
                _ => {}
            }
        }
        // The driver's view of the timers and the machine's agree.
        let earliest = self.armed.iter().map(|(k, at)| (*at, *k)).min();
        assert_eq!(earliest, self.machine.poll_timeout(), "timer bookkeeping");
    }

    /// Fire every timer due at or before `until`, in time order.
    fn run_timers(&mut self, until: Instant) {
        while let Some((at, kind)) = self
            .armed
            .iter()
            .map(|(k, at)| (*at, *k))
            .filter(|(at, _)| *at <= until)
            .min()
        {
            self.armed.remove(&kind);
            self.step(at, Input::Timer(kind));
        }
    }
}

fn run_case(input: &str) -> String {
    let base = Instant::now();
    let mut run: Option<Run> = None;
    let mut header = String::new();
    for line in input.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            writeln!(header, "{line}").unwrap();
            continue;
        }
        if line.starts_with("config") {
            run = Some(Run {
                base,
                machine: Machine::new(parse_config(line)),
                armed: BTreeMap::new(),
                log: String::new(),
            });
            continue;
        }
        let run = run.as_mut().expect("config line first");
        let words: Vec<&str> = line.split_whitespace().collect();
        let t: u64 = words[0].parse().expect("time in ms");
        let now = base + Duration::from_millis(t);
        run.run_timers(now);
        match parse_event(&words[1..]) {
            Some(input) => run.step(now, input),
            None => {
                let s = run.machine.stats();
                writeln!(
                    run.log,
                    "{t:<6} end: state {} master {:?} | received {} (prio 0: {}, discarded {}) sent {} transitions {}",
                    run.machine.state(),
                    run.machine.master(),
                    s.adverts_received,
                    s.priority_zero_received,
                    s.adverts_discarded,
                    s.adverts_sent,
                    s.transitions,
                )
                .unwrap();
                break;
            }
        }
    }
    let run = run.expect("case has a config line");
    format!("{header}{}", run.log)
}

const SUITE: &str = "tests/vrrp_conformance";
const BLESS: &str = "VRRP_CONFORMANCE_BLESS";

cases! {
    c01_startup_backup_then_master_after_master_down: "01-startup-backup-then-master-after-master-down",
    c02_startup_owner_master_at_once: "02-startup-owner-master-at-once",
    c03_backup_higher_priority_stays_backup_learns_interval: "03-backup-higher-priority-stays-backup-learns-interval",
    c04_backup_equal_priority_stays_backup: "04-backup-equal-priority-stays-backup",
    c05_backup_preempt_lower_priority_ignored_takes_over: "05-backup-preempt-lower-priority-ignored-takes-over",
    c06_backup_no_preempt_does_not_preempt: "06-backup-no-preempt-does-not-preempt",
    c07_master_higher_priority_becomes_backup: "07-master-higher-priority-becomes-backup",
    c08_master_equal_priority_higher_address_yields: "08-master-equal-priority-higher-address-yields",
    c09_master_equal_priority_lower_address_keeps: "09-master-equal-priority-lower-address-keeps",
    c10_master_lower_priority_discarded: "10-master-lower-priority-discarded",
    c11_backup_priority_zero_takes_over_after_skew: "11-backup-priority-zero-takes-over-after-skew",
    c12_master_receives_priority_zero_sends_advert_now: "12-master-receives-priority-zero-sends-advert-now",
    c13_shutdown_master_rfc_mode: "13-shutdown-master-rfc-mode",
    c14_shutdown_master_graceful_handover: "14-shutdown-master-graceful-handover",
    c15_shutdown_master_graceful_handover_timeout: "15-shutdown-master-graceful-handover-timeout",
    c16_shutdown_backup: "16-shutdown-backup",
    c17_health_gate_closed_no_mastership: "17-health-gate-closed-no-mastership",
    c18_health_gate_closed_master_present_stays_backup: "18-health-gate-closed-master-present-stays-backup",
    c19_health_gate_delays_preemption: "19-health-gate-delays-preemption",
    c20_health_gate_closing_does_not_demote_master: "20-health-gate-closing-does-not-demote-master",
    c21_health_gate_owner_waits_then_master_at_once: "21-health-gate-owner-waits-then-master-at-once",
    c22_skew_priority_100_advert_1s: "22-skew-priority-100-advert-1s",
    c23_own_advert_ignored: "23-own-advert-ignored",
    c24_master_lower_priority_answered_keepalived_style: "24-master-lower-priority-answered-keepalived-style",
    c25_shutdown_twice_during_handover_stops_once: "25-shutdown-twice-during-handover-stops-once",
    c26_master_priority_zero_burst_one_reply_per_interval: "26-master-priority-zero-burst-one-reply-per-interval",
    c27_backup_preempt_delay_holds_off_lower_priority_master: "27-backup-preempt-delay-holds-off-lower-priority-master",
    c28_preempt_delay_no_master_takes_over_at_master_down: "28-preempt-delay-no-master-takes-over-at-master-down",
    c29_preempt_delay_restarts_with_startup: "29-preempt-delay-restarts-with-startup",
}
