//! Pure analysis: from observed facts (counter deltas, addresses, sysctls, a
//! probe timeline) to a verdict with the property that was checked. No I/O;
//! everything here is unit-tested with canned facts.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::config::{ClusterSpec, Mode};

/// The outcome of one check: passed or not, what was measured, what was
/// expected, and (on failure) why, in sentences a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub passed: bool,
    /// The property could not be checked from what was collected: the
    /// report shows SKIP with the reasons (why not), never PASS. `passed` is
    /// false then.
    pub skipped: bool,
    /// The property that was checked ("rr: every server within ±5 of 50").
    pub property: String,
    pub measured: String,
    pub expected: String,
    pub reasons: Vec<String>,
}

impl Verdict {
    fn new(
        property: impl Into<String>,
        measured: String,
        expected: String,
        reasons: Vec<String>,
    ) -> Self {
        Verdict {
            passed: reasons.is_empty(),
            skipped: false,
            property: property.into(),
            measured,
            expected,
            reasons,
        }
    }

    /// A property that could not be checked: SKIP, with why.
    pub fn skip(property: impl Into<String>, measured: String, why: impl Into<String>) -> Self {
        Verdict {
            passed: false,
            skipped: true,
            property: property.into(),
            measured,
            expected: "-".into(),
            reasons: vec![why.into()],
        }
    }

    /// A check that failed outright (also when it would have been skipped).
    pub fn failed(property: impl Into<String>, reason: impl Into<String>) -> Self {
        Verdict {
            passed: false,
            skipped: false,
            property: property.into(),
            measured: "-".into(),
            expected: "-".into(),
            reasons: vec![reason.into()],
        }
    }

    /// Add a reason that makes the verdict a failure (a skip becomes a failure too).
    pub fn fail_with(&mut self, reason: impl Into<String>) {
        if self.skipped {
            self.skipped = false;
            self.reasons.clear();
        }
        self.passed = false;
        self.reasons.push(reason.into());
    }
}

// ------------------------------------------------------------ scheduling

/// A destination's connection entries (observed: [`crate::observe::live`]).
pub use crate::observe::live::Load;

/// One destination of the virtual service on the active director, as seen
/// before/after a batch, joined with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestSample {
    /// The real server's name from the file (or its address when not in the file).
    pub name: String,
    /// Weight in cluster.toml (`None`: a destination the file does not have).
    pub configured_weight: Option<u32>,
    /// Weight in the kernel's table after the batch (`None`: not in the table).
    pub kernel_weight: Option<u32>,
    /// New connections scheduled to it during the batch (after − before of `conns`).
    pub delta: u64,
    /// Its connection entries just before / just after the batch (`None`:
    /// not read: the table source does not report them).
    pub load_before: Option<Load>,
    pub load_after: Option<Load>,
}

/// What a batch of new connections to one service did.
///
/// The batch's connections are sequential: each one is closed before the
/// next is opened, from one client address (the operator's machine), each
/// from a new source port, all to one destination address (the VIP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub scheduler: String,
    pub persistent: bool,
    /// Connections attempted / accepted (TCP connect, plus the expected HTTP status).
    pub sent: u32,
    pub accepted: u32,
    /// All connections came from one source address (always true from the operator's machine).
    pub one_source: bool,
    /// The destinations in the kernel's list order (the order `lvsup ipvs
    /// list` / `ipvsadm -Ln` print them, which is the order the schedulers
    /// walk them in: ties go to the first).
    pub dests: Vec<DestSample>,
}

/// Which scheduler property is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Property {
    /// rr: equal shares.
    EqualShares,
    /// wrr: shares proportional to the weights.
    WeightedShares,
    /// lc, wlc, sed, nq: the kernel's rule replayed from the destinations'
    /// live connection counts before the batch predicts each one's share.
    LeastLoad,
    /// persistence, sh, mh (per source address), dh, lblc, lblcr (per
    /// destination address): one client → one real server.
    Affinity,
    /// fo: everything on one highest-weight server.
    HighestWeight,
    /// ovf: everything on the highest-weight server whose active connections
    /// do not exceed its weight.
    Overflow,
    /// A scheduler verify has no property for (not one of the 13).
    Unknown,
}

pub fn property_for(scheduler: &str, persistent: bool) -> Property {
    if persistent {
        return Property::Affinity;
    }
    match scheduler {
        "rr" => Property::EqualShares,
        "wrr" => Property::WeightedShares,
        "lc" | "wlc" | "sed" | "nq" => Property::LeastLoad,
        "sh" | "dh" | "mh" | "lblc" | "lblcr" => Property::Affinity,
        "fo" => Property::HighestWeight,
        "ovf" => Property::Overflow,
        _ => Property::Unknown,
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Allowed deviation from the expected count for one server.
///
/// IPVS rr and wrr are deterministic: the kernel walks its list (wrr: with a
/// current weight stepping down by the gcd of the weights), so in any window
/// of D consecutive schedulings a server of weight w gets its exact share
/// D·w/W give or take one cycle's worth of its turns, w/g (g = gcd of the
/// weights; for rr and for equal weights w/g = 1). That bound holds wherever
/// the window starts and whatever other clients do, because the deltas we
/// compare are totals, foreign connections included. On top we allow 10 % of
/// the expected count, so that a server (re)admitted or a weight change in the
/// middle of the batch does not make a healthy cluster fail; a wrong weight
/// (3:1 configured, 1:1 in effect: 50 instead of 75 of 100) is far outside.
/// For N = 100 over two equal servers: ±max(1, 5) = ±5 of 50.
pub fn share_tolerance(expected: f64, weight: u64, gcd: u64) -> u64 {
    let cycle = weight.div_ceil(gcd.max(1)).max(1);
    let slack = (expected * 0.10).ceil() as u64;
    cycle.max(slack).max(1)
}

/// How many connections a batch should have so that the shares mean
/// something: at least 100, and for wrr a whole number of weight cycles
/// (W/g connections each) where that stays under 1000.
pub fn batch_size(scheduler: &str, weights: &[u32]) -> u32 {
    if scheduler != "wrr" {
        return 100;
    }
    let w: Vec<u64> = weights
        .iter()
        .filter(|w| **w > 0)
        .map(|w| u64::from(*w))
        .collect();
    let g = w.iter().copied().fold(0, gcd).max(1);
    let cycle: u64 = w.iter().map(|x| x / g).sum::<u64>().max(1);
    let n = 100u64.div_ceil(cycle) * cycle;
    u32::try_from(n.min(1000)).unwrap_or(1000)
}

/// The kernel's choice among the candidates `(weight, load)` (in list
/// order) for lc, wlc, sed and nq (net/netfilter/ipvs/ip_vs_{lc,wlc,sed,nq}.c;
/// a later candidate replaces the current one only when strictly better, so
/// ties go to the first in the list):
/// - lc: least overhead, overhead = (activeconns << 8) + inactconns;
/// - wlc: least overhead / weight;
/// - sed: least (activeconns + 1) / weight;
/// - nq: the first server with no active connection, else as sed.
///
/// None: no candidate or not one of the four.
pub fn least_load_choice(scheduler: &str, cands: &[(u32, Load)]) -> Option<usize> {
    let overhead = |l: &Load| (u64::from(l.active) << 8) + u64::from(l.inactive);
    let sed = |l: &Load| u64::from(l.active) + 1;
    // a/wa < b/wb  ⇔  a·wb < b·wa (weights > 0)
    let better = |cost: &dyn Fn(&Load) -> u64, i: usize, j: usize| {
        let (wi, li) = cands[i];
        let (wj, lj) = cands[j];
        u128::from(cost(&li)) * u128::from(wj) < u128::from(cost(&lj)) * u128::from(wi)
    };
    let pick = |cost: &dyn Fn(&Load) -> u64| {
        let mut best: Option<usize> = None;
        for (i, (w, _)) in cands.iter().enumerate() {
            if *w == 0 {
                continue;
            }
            match best {
                None => best = Some(i),
                Some(b) if better(cost, i, b) => best = Some(i),
                _ => {}
            }
        }
        best
    };
    match scheduler {
        // lc ignores weights (other than 0): compare with equal weights.
        "lc" => {
            let unweighted: Vec<(u32, Load)> =
                cands.iter().map(|(w, l)| (u32::from(*w > 0), *l)).collect();
            least_load_choice("wlc", &unweighted)
        }
        "wlc" => pick(&overhead),
        "sed" => pick(&sed),
        "nq" => cands
            .iter()
            .position(|(w, l)| *w > 0 && l.active == 0)
            .or_else(|| pick(&sed)),
        _ => None,
    }
}

/// Connections verify holds open across the scheduling batch of a TCP
/// service, so that the rule is checked with active connections in the
/// counters, not only idle servers: lc/wlc/sed/nq weigh active connections
/// (sed and nq look at nothing else), ovf overflows a server once its active
/// connections exceed its weight. The held connections are scheduled by the
/// same rule and read in the counters before the batch; the batch is then
/// replayed from those counters.
///
/// lc/wlc/sed/nq: two per server in the pool (at least 2). ovf: the highest
/// weight + 2, so that the top server overflows (it takes weight + 1 before
/// its active count exceeds its weight) and the batch must go to the next
/// one. At most [`MAX_HELD`]: beyond that the counters still decide, the
/// overflow is just not reached. Persistent services and the other
/// schedulers: none (their rule does not read active connections).
pub fn connections_to_hold(scheduler: &str, persistent: bool, weights: &[u32]) -> u32 {
    if persistent {
        return 0;
    }
    let in_pool = weights.iter().filter(|w| **w > 0).count();
    let n = match scheduler {
        "lc" | "wlc" | "sed" | "nq" => u32::try_from(in_pool * 2).unwrap_or(MAX_HELD).max(2),
        "ovf" => weights.iter().copied().max().unwrap_or(0).saturating_add(2),
        _ => 0,
    };
    n.min(MAX_HELD)
}

/// The most connections [`connections_to_hold`] asks for.
pub const MAX_HELD: u32 = 16;

/// Replay lc/wlc/sed/nq over a batch of `n` sequential connections, starting
/// from the loads before it: each connection goes where the rule says and is
/// closed before the next, so it adds one inactive entry to its server.
/// Returns the predicted count per candidate.
pub fn replay_least_load(scheduler: &str, cands: &[(u32, Load)], n: u64) -> Vec<u64> {
    let mut state: Vec<(u32, Load)> = cands.to_vec();
    let mut counts = vec![0u64; cands.len()];
    for _ in 0..n {
        let Some(i) = least_load_choice(scheduler, &state) else {
            break;
        };
        counts[i] += 1;
        state[i].1.inactive = state[i].1.inactive.saturating_add(1);
    }
    counts
}

/// Allowed deviation from the replayed count of a least-load scheduler:
/// max(2, 10 % of the prediction) plus the batch's drift.
///
/// The replay assumes the loads change only by the batch's own
/// connections. Entries of earlier connections that expire during the batch
/// (FIN_WAIT/TIME_WAIT: 2 min) and other clients' connections make the
/// loads move otherwise; the drift, |Σ loads after − (Σ loads before +
/// accepted)|, measures that movement and each such entry can shift at most
/// one of the batch's choices. The 2 / 10 % covers a connection the director
/// still counts as active when the next one is scheduled (the client's FIN
/// racing its next SYN). All 100 of a batch on one of two servers that start
/// equal (prediction 50 each, ±5) is far outside.
pub fn least_load_tolerance(predicted: u64, drift: u64) -> u64 {
    let slack = predicted.div_ceil(10);
    slack.max(2) + drift
}

fn load_sum(l: Option<Load>) -> u64 {
    l.map_or(0, |l| u64::from(l.active) + u64::from(l.inactive))
}

fn describe_load(l: Option<Load>) -> String {
    l.map_or("-".into(), |l| format!("{}/{}", l.active, l.inactive))
}

/// Decide a scheduling batch (see [`analyse_scheduling`] for the rows it
/// gives). Servers in the pool are those the kernel has with weight > 0;
/// every configured server with weight > 0 must be there.
pub fn analyse_batch(b: &Batch) -> Verdict {
    let prop = property_for(&b.scheduler, b.persistent);
    let mut reasons = Vec::new();
    let total: u64 = b.dests.iter().map(|d| d.delta).sum();
    let counts = b
        .dests
        .iter()
        .map(|d| format!("{} {}", d.name, d.delta))
        .collect::<Vec<_>>()
        .join(", ");
    let measured = format!("{}/{} accepted; {counts}", b.accepted, b.sent);

    if b.accepted < b.sent {
        reasons.push(format!(
            "{} of {} connections to the VIP failed",
            b.sent - b.accepted,
            b.sent
        ));
    }
    if total < u64::from(b.accepted) {
        reasons.push(format!(
            "the active director counted {total} new connections but {} were accepted: \
             traffic did not pass through its IPVS table",
            b.accepted
        ));
    }
    // Pool membership against the file.
    for d in &b.dests {
        match (d.configured_weight, d.kernel_weight) {
            (Some(c), None) if c > 0 => reasons.push(format!(
                "{} (weight {c}) is not in the director's table: failing its health check?",
                d.name
            )),
            (Some(c), Some(0)) if c > 0 => reasons.push(format!(
                "{} has weight 0 in the director's table, {c} in the file: failing its health check?",
                d.name
            )),
            (Some(c), Some(k)) if c != k => reasons.push(format!(
                "{} has weight {k} in the director's table, {c} in the file",
                d.name
            )),
            (None, Some(_)) => reasons.push(format!(
                "{} is in the director's table but not in the file",
                d.name
            )),
            _ => {}
        }
        let off = d.kernel_weight.unwrap_or(0) == 0 || d.configured_weight.unwrap_or(0) == 0;
        if off && d.delta > 0 {
            reasons.push(format!(
                "{} got {} connections but has weight 0 / is out of the pool: it must get none",
                d.name, d.delta
            ));
        }
    }
    // The servers that should share the load: configured weight > 0 (the
    // file is the truth; a kernel weight that differs is a failure above
    // and shows again in the shares).
    let pool: Vec<&DestSample> = b
        .dests
        .iter()
        .filter(|d| d.configured_weight.unwrap_or(0) > 0)
        .collect();
    // Servers the kernel can choose from: in the file and in its table with weight > 0.
    let live: Vec<&DestSample> = pool
        .iter()
        .copied()
        .filter(|d| d.kernel_weight.unwrap_or(0) > 0)
        .collect();
    let grew: Vec<&DestSample> = b.dests.iter().filter(|d| d.delta > 0).collect();
    let grew_list = || {
        grew.iter()
            .map(|d| format!("{} {}", d.name, d.delta))
            .collect::<Vec<_>>()
            .join(", ")
    };

    let (property, expected) = match prop {
        Property::EqualShares | Property::WeightedShares => {
            let weights: Vec<u64> = pool
                .iter()
                .map(|d| {
                    if prop == Property::EqualShares {
                        1
                    } else {
                        u64::from(d.configured_weight.unwrap_or(0))
                    }
                })
                .collect();
            let wsum: u64 = weights.iter().sum();
            let g = weights.iter().copied().fold(0, gcd).max(1);
            let mut exp = Vec::new();
            for (d, w) in pool.iter().zip(&weights) {
                let e = if wsum == 0 {
                    0.0
                } else {
                    total as f64 * *w as f64 / wsum as f64
                };
                let tol = share_tolerance(e, *w, g);
                exp.push(format!("{} {:.0}±{tol}", d.name, e));
                if (d.delta as f64 - e).abs() > tol as f64 {
                    reasons.push(format!(
                        "{} got {} of {total} connections, expected {:.1} ± {tol} ({}): \
                         {}",
                        d.name,
                        d.delta,
                        e,
                        if prop == Property::EqualShares {
                            "equal shares".to_string()
                        } else {
                            format!("weight {w} of {wsum}")
                        },
                        if prop == Property::EqualShares {
                            "round robin is not sharing evenly"
                        } else {
                            "shares do not follow the configured weights"
                        }
                    ));
                }
            }
            let property = if prop == Property::EqualShares {
                format!(
                    "{}: every server in the pool gets an equal share (± max(1, 10%))",
                    b.scheduler
                )
            } else {
                format!(
                    "{}: shares follow the weights (± max(w/gcd, 10%))",
                    b.scheduler
                )
            };
            (property, exp.join(", "))
        }
        Property::LeastLoad => {
            let property = format!(
                "{}: each connection goes where {} says, replayed from the servers' \
                 active/inactive connections before the batch (± max(2, 10%) + drift)",
                b.scheduler,
                match b.scheduler.as_str() {
                    "lc" => "least (active·256 + inactive)",
                    "wlc" => "least (active·256 + inactive)/weight",
                    "sed" => "least (active + 1)/weight",
                    _ => "the first idle server, else least (active + 1)/weight,",
                }
            );
            if live.iter().any(|d| d.load_before.is_none()) {
                return Verdict::skip(
                    property,
                    measured,
                    "the director's table gave no active/inactive connection counts \
                     (needed to replay the rule); lvsup ipvs list --json or ipvsadm -Ln give them",
                );
            }
            let cands: Vec<(u32, Load)> = live
                .iter()
                .map(|d| {
                    (
                        d.configured_weight.unwrap_or(0),
                        d.load_before.unwrap_or_default(),
                    )
                })
                .collect();
            let predicted = replay_least_load(&b.scheduler, &cands, total);
            let before: u64 = live.iter().map(|d| load_sum(d.load_before)).sum();
            let drift = if live.iter().all(|d| d.load_after.is_some()) {
                let after: u64 = live.iter().map(|d| load_sum(d.load_after)).sum();
                after.abs_diff(before + total)
            } else {
                0
            };
            let loads = live
                .iter()
                .map(|d| format!("{} {}", d.name, describe_load(d.load_before)))
                .collect::<Vec<_>>()
                .join(", ");
            let mut exp = Vec::new();
            for (d, p) in live.iter().zip(&predicted) {
                let tol = least_load_tolerance(*p, drift);
                exp.push(format!("{} {p}±{tol}", d.name));
                if d.delta.abs_diff(*p) > tol {
                    reasons.push(format!(
                        "{} got {} of {total} connections; {} predicts {p} ± {tol} from the \
                         loads before the batch (active/inactive: {loads}; drift {drift})",
                        d.name, d.delta, b.scheduler
                    ));
                }
            }
            (property, exp.join(", "))
        }
        Property::Affinity => {
            if !b.one_source {
                reasons.push("affinity needs every connection from one source address".into());
            }
            if grew.len() > 1 {
                reasons.push(format!(
                    "connections from one client went to {} servers ({}): no client affinity",
                    grew.len(),
                    grew_list()
                ));
            }
            let why = if b.persistent {
                format!("persistence ({})", b.scheduler)
            } else {
                let key = match b.scheduler.as_str() {
                    "sh" | "mh" => "source address",
                    _ => "destination address",
                };
                format!("{} (by {key})", b.scheduler)
            };
            (
                format!("{why}: the same client always lands on one real server"),
                format!("all {} on one server", b.accepted),
            )
        }
        Property::HighestWeight | Property::Overflow => {
            // ovf skips a server whose active connections exceed its weight
            // (ip_vs_ovf.c); fo looks at the weight only (ip_vs_fo.c). Ties:
            // the first in the list, so all on ONE of the top ones.
            let eligible: Vec<&DestSample> = live
                .iter()
                .copied()
                .filter(|d| {
                    // ip_vs_ovf.c skips a server when `activeconns > weight`:
                    // one with exactly its weight in active connections still
                    // takes the next one.
                    prop == Property::HighestWeight
                        || d.load_before
                            .is_none_or(|l| l.active <= d.configured_weight.unwrap_or(0))
                })
                .collect();
            let max = eligible
                .iter()
                .map(|d| d.configured_weight.unwrap_or(0))
                .max()
                .unwrap_or(0);
            let top: Vec<&str> = eligible
                .iter()
                .filter(|d| d.configured_weight == Some(max))
                .map(|d| d.name.as_str())
                .collect();
            for d in &b.dests {
                if d.delta > 0 && !top.contains(&d.name.as_str()) {
                    reasons.push(format!(
                        "{} got {} of {total} connections; {} sends every connection to the \
                         highest-weight server in the pool ({})",
                        d.name,
                        d.delta,
                        b.scheduler,
                        top.join(" or ")
                    ));
                }
            }
            if grew.len() > 1 && grew.iter().all(|d| top.contains(&d.name.as_str())) {
                reasons.push(format!(
                    "connections went to {} servers of the same highest weight ({}); {} sends \
                     all of them to the first of those in the director's list",
                    grew.len(),
                    grew_list(),
                    b.scheduler
                ));
            }
            (
                format!(
                    "{}: every connection on one highest-weight healthy server{}",
                    b.scheduler,
                    if prop == Property::Overflow {
                        " whose active connections do not exceed its weight"
                    } else {
                        ""
                    }
                ),
                format!("all {total} on {}", top.join(" or ")),
            )
        }
        Property::Unknown => {
            return Verdict::skip(
                format!("{}: no scheduling property known", b.scheduler),
                measured,
                format!("verify has no property for scheduler {}", b.scheduler),
            );
        }
    };
    Verdict::new(property, measured, expected, reasons)
}

/// The part of a scheduler's property verify cannot check from one client
/// address to one VIP: how the hash/locality schedulers spread several
/// sources (sh, mh) or destinations (dh, lblc, lblcr) over the servers.
/// Always a SKIP with the reason; None for the other schedulers.
pub fn spread_verdict(b: &Batch) -> Option<Verdict> {
    if b.persistent {
        return None;
    }
    let (what, why) = match b.scheduler.as_str() {
        "sh" | "mh" => (
            "source addresses spread over the servers by weight",
            "needs connections from several client addresses; verify connects from one \
             (the machine it runs on) unless given local addresses with --source ADDR …",
        ),
        "dh" | "lblc" | "lblcr" => (
            "destination addresses spread over the servers",
            "needs connections to several destination addresses; a service has one (the VIP)",
        ),
        _ => return None,
    };
    Some(Verdict::skip(
        format!("{}: {what}", b.scheduler),
        "-".into(),
        why,
    ))
}

/// Every verdict of a batch: the property ([`analyse_batch`]) and, for the
/// hash/locality schedulers, the spread that cannot be checked ([`spread_verdict`]).
pub fn analyse_scheduling(b: &Batch) -> Vec<Verdict> {
    std::iter::once(analyse_batch(b))
        .chain(spread_verdict(b))
        .collect()
}

// ------------------------------------------------------------ timelines

/// One probe: when it started (ms after the timeline's start) and whether the
/// VIP answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    pub at_ms: u64,
    pub ok: bool,
}

/// What a probe timeline says about an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Outage {
    pub probes: u32,
    pub failed: u32,
    /// Start of the first failed probe.
    pub first_failure_ms: Option<u64>,
    /// Start of the first good probe after the last failure (None: never recovered).
    pub recovered_ms: Option<u64>,
    /// Longest window without an answer: from the first failed probe of a run
    /// to the next good probe (to the last probe when it never recovered).
    pub longest_gap_ms: u64,
    pub recovered: bool,
}

/// Summarise a timeline (probes in any order; sorted by start here).
pub fn outage(timeline: &[ProbeResult]) -> Outage {
    let mut t: Vec<ProbeResult> = timeline.to_vec();
    t.sort_by_key(|p| p.at_ms);
    let mut o = Outage {
        probes: u32::try_from(t.len()).unwrap_or(u32::MAX),
        recovered: true,
        ..Outage::default()
    };
    let mut run_start: Option<u64> = None;
    for p in &t {
        if p.ok {
            if let Some(s) = run_start.take() {
                o.longest_gap_ms = o.longest_gap_ms.max(p.at_ms - s);
                o.recovered_ms = Some(p.at_ms);
            }
        } else {
            o.failed += 1;
            o.first_failure_ms.get_or_insert(p.at_ms);
            run_start.get_or_insert(p.at_ms);
        }
    }
    if let Some(s) = run_start {
        let last = t.last().map_or(s, |p| p.at_ms);
        o.longest_gap_ms = o.longest_gap_ms.max(last - s);
        o.recovered = false;
        o.recovered_ms = None;
    }
    o
}

impl Outage {
    pub fn describe(&self) -> String {
        if self.failed == 0 {
            return format!("gap 0 ms ({} probes, none failed)", self.probes);
        }
        format!(
            "gap {} ms ({}/{} probes failed{})",
            self.longest_gap_ms,
            self.failed,
            self.probes,
            if self.recovered {
                ""
            } else {
                ", never recovered"
            }
        )
    }
}

// ------------------------------------------------------------ reachability facts

/// What a director showed: which addresses it holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectorFacts {
    pub name: String,
    /// (interface, address) pairs from `ip -j addr`.
    pub addrs: Vec<(String, Ipv4Addr)>,
    /// Could not be read (ssh failed): the reason.
    pub error: Option<String>,
}

/// What a real server showed (observed: [`crate::observe::live`]).
pub use crate::observe::live::RealServerFacts;

/// The director(s) holding `addr`.
pub fn holders(dirs: &[DirectorFacts], addr: Ipv4Addr) -> Vec<String> {
    dirs.iter()
        .filter(|d| d.addrs.iter().any(|(_, a)| *a == addr))
        .map(|d| d.name.clone())
        .collect()
}

/// The VIP is held by exactly one director (and in NAT the gateway by the same one).
pub fn check_vip_holder(spec: &ClusterSpec, dirs: &[DirectorFacts]) -> Verdict {
    let mut reasons = Vec::new();
    for d in dirs {
        if let Some(e) = &d.error {
            reasons.push(format!("cannot read the addresses of {}: {e}", d.name));
        }
    }
    let h = holders(dirs, spec.vip);
    match h.len() {
        0 => reasons.push(format!(
            "no director holds the VIP {}: is {} running on any of {}?",
            spec.vip,
            crate::layout::director_unit(&spec.name),
            dirs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
        )),
        1 => {}
        _ => reasons.push(format!(
            "the VIP {} is on {} directors at once ({}): split brain, VRRP adverts are not getting through",
            spec.vip,
            h.len(),
            h.join(", ")
        )),
    }
    // The services' own VIPs float with the same VRRP instance: with it.
    if let [holder] = h.as_slice() {
        for vip in spec.vips().into_iter().skip(1) {
            let o = holders(dirs, vip);
            if o.as_slice() != std::slice::from_ref(holder) {
                reasons.push(format!(
                    "the VIP {vip} is on [{}], not with the VIP {} on {holder}",
                    o.join(", "),
                    spec.vip
                ));
            }
        }
    }
    if let (Some(nat), [holder]) = (&spec.nat, h.as_slice()) {
        let g = holders(dirs, nat.gateway.addr());
        if g.as_slice() != std::slice::from_ref(holder) {
            reasons.push(format!(
                "the NAT gateway {} is on [{}], not with the VIP on {holder}",
                nat.gateway.addr(),
                g.join(", ")
            ));
        }
    }
    Verdict::new(
        "the VIP is held by exactly one director",
        if h.is_empty() {
            "held by none".into()
        } else {
            format!("held by {}", h.join(", "))
        },
        "exactly one".into(),
        reasons,
    )
}

fn sysctl(f: &RealServerFacts, iface: &str, key: &str) -> Option<i64> {
    f.sysctls
        .get(&(iface.to_string(), key.to_string()))
        .copied()
}

/// A real server is set up for its mode: VIP on lo (DR) / tunl0 (TUN) with ARP
/// suppression in effect on every interface facing the LAN, rp_filter off on
/// tunl0 (TUN); default route via the NAT gateway (NAT).
pub fn check_real_server(spec: &ClusterSpec, f: &RealServerFacts) -> Verdict {
    let mut reasons = Vec::new();
    if let Some(e) = &f.error {
        reasons.push(format!("cannot read the state of {}: {e}", f.name));
        return Verdict::new(
            "real server set up",
            "unknown".into(),
            String::new(),
            reasons,
        );
    }
    let (measured, expected, property) = match spec.mode {
        Mode::Dr | Mode::Tun => {
            let dev = if spec.mode == Mode::Dr { "lo" } else { "tunl0" };
            // Every VIP of the cluster: apply puts them all on `dev`. The
            // measured figure names where the cluster's VIP is.
            let mut on_cluster_vip: Vec<&str> = Vec::new();
            for vip in spec.vips() {
                let on: Vec<&str> = f
                    .addrs
                    .iter()
                    .filter(|(_, a)| *a == vip)
                    .map(|(i, _)| i.as_str())
                    .collect();
                if on.is_empty() {
                    reasons.push(format!(
                        "{} does not have the VIP {vip} (expected on {dev}): it will drop the requests the director forwards",
                        f.name
                    ));
                } else if !on.contains(&dev) {
                    reasons.push(format!(
                        "{} has the VIP on {} instead of {dev} ({vip}): it would answer ARP for the VIP",
                        f.name,
                        on.join(", ")
                    ));
                }
                if vip == spec.vip {
                    on_cluster_vip = on;
                }
            }
            let on = on_cluster_vip;
            // ARP: the kernel uses max(all, receiving interface).
            let mut arp = Vec::new();
            let lan: Vec<&str> = {
                let mut v: Vec<&str> = f
                    .addrs
                    .iter()
                    .map(|(i, _)| i.as_str())
                    .filter(|i| *i != "lo" && *i != "tunl0")
                    .collect();
                v.dedup();
                v
            };
            for i in &lan {
                let ig = sysctl(f, "all", "arp_ignore")
                    .unwrap_or(0)
                    .max(sysctl(f, i, "arp_ignore").unwrap_or(0));
                let an = sysctl(f, "all", "arp_announce")
                    .unwrap_or(0)
                    .max(sysctl(f, i, "arp_announce").unwrap_or(0));
                arp.push(format!("{i} arp_ignore={ig} arp_announce={an}"));
                if ig < 1 || an < 2 {
                    reasons.push(format!(
                        "{} has no ARP suppression on {i} (arp_ignore {ig}, arp_announce {an}; \
                         need ≥1 and ≥2): it answers ARP for the VIP and steals traffic from the director",
                        f.name
                    ));
                }
            }
            if spec.mode == Mode::Tun {
                let rp = sysctl(f, "all", "rp_filter")
                    .unwrap_or(0)
                    .max(sysctl(f, "tunl0", "rp_filter").unwrap_or(0));
                if rp == 1 {
                    reasons.push(format!(
                        "{} filters tunl0 strictly (rp_filter 1): decapsulated requests are dropped",
                        f.name
                    ));
                }
            }
            (
                format!(
                    "VIP on {}; {}",
                    if on.is_empty() {
                        "nowhere".into()
                    } else {
                        on.join(",")
                    },
                    arp.join("; ")
                ),
                format!("VIP on {dev}, arp_ignore≥1, arp_announce≥2"),
                format!("{} real server: VIP on {dev}, ARP suppressed", spec.mode),
            )
        }
        Mode::Nat => {
            let want = spec.nat.as_ref().map(|n| n.gateway.addr());
            if f.default_gateway != want || want.is_none() {
                reasons.push(format!(
                    "{}'s default route is via {}, not the NAT gateway {}: replies bypass the director",
                    f.name,
                    f.default_gateway.map_or("nothing".into(), |g| g.to_string()),
                    want.map_or("?".into(), |g| g.to_string())
                ));
            }
            (
                format!(
                    "default via {}",
                    f.default_gateway.map_or("-".into(), |g| g.to_string())
                ),
                format!("default via {}", want.map_or("?".into(), |g| g.to_string())),
                "NAT real server: default route via the gateway".to_string(),
            )
        }
    };
    Verdict::new(property, measured, expected, reasons)
}

/// Every probe of a service answered.
pub fn check_answers(
    label: &str,
    sent: u32,
    ok: u32,
    what: &str,
    first_error: Option<&str>,
) -> Verdict {
    let mut reasons = Vec::new();
    if ok < sent {
        reasons.push(format!(
            "{label}: {} of {sent} {what} failed{}",
            sent - ok,
            first_error.map(|e| format!(" ({e})")).unwrap_or_default()
        ));
    }
    Verdict::new(
        format!("{label} answers ({what})"),
        format!("{ok}/{sent} answered"),
        format!("{sent}/{sent}"),
        reasons,
    )
}

/// The replies of a UDP batch, "rs1 ×6, rs2 ×4" (empty replies as "(empty)").
pub fn describe_replies(replies: &BTreeMap<String, u32>) -> String {
    replies
        .iter()
        .map(|(t, n)| {
            let t = if t.is_empty() { "(empty)" } else { t.as_str() };
            format!("{t} ×{n}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// UDP scheduling: where every reply of the batch names a destination (the
/// lab's demo responder answers with its host name, which is the real
/// server's name in the file), the replies per server must equal the IPVS
/// counter deltas the scheduler analysis used: the datagrams were answered
/// by the servers the director says it chose. None: some reply names no
/// destination (an application that does not say who it is), nothing to
/// compare. Some(reasons): empty when they agree.
pub fn replies_vs_counters(
    replies: &BTreeMap<String, u32>,
    dests: &[DestSample],
) -> Option<Vec<String>> {
    if replies.is_empty() || !replies.keys().all(|t| dests.iter().any(|d| &d.name == t)) {
        return None;
    }
    let reasons = dests
        .iter()
        .filter_map(|d| {
            let got = u64::from(replies.get(&d.name).copied().unwrap_or(0));
            (got != d.delta).then(|| {
                format!(
                    "{} answered {got} datagrams but the director scheduled {} to it",
                    d.name, d.delta
                )
            })
        })
        .collect();
    Some(reasons)
}

// ------------------------------------------------------------ failover

/// How the master is made to fail in a director failover check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailoverMode {
    /// `systemctl stop` of the master's daemon: it hands the VIP over
    /// (priority-0 advert, RFC 5798 §6.4.3), so the backup takes over at once.
    PlannedStop,
    /// The master's daemon is frozen (SIGSTOP) and sends nothing more: the
    /// backup takes over only when its Master_Down_Interval runs out.
    Crash,
}

impl FailoverMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverMode::PlannedStop => "planned stop",
            FailoverMode::Crash => "crash",
        }
    }
}

/// A planned stop may lose at most this many probes: the master gives the
/// VIP away before it goes, so only a connection caught at the switch (one
/// SYN or reset) may fail. The VM lab and the failover bench measure 0–1.
pub const PLANNED_STOP_MAX_FAILED_PROBES: u32 = 1;

/// NAT: the longest a planned stop may leave the VIP unanswered. In NAT mode
/// the real servers' replies come back through the gateway address, which
/// moves with the VIP: a probe whose SYN went through the old master and whose
/// reply reaches the new one after the switch finds no IPVS entry there (the
/// sync daemon, where enabled, sends only established connections, in
/// batches) and fails. So every probe in flight during the switch of the two
/// addresses can fail (the VM lab measured 4 failed probes in a 52 ms gap,
/// probes starting every 10 ms); the bound is on the gap instead: 20 probe
/// intervals. A stop without a handover (the VIP held until the backup's
/// Master_Down_Interval, ~3.5 s) still fails.
pub const NAT_PLANNED_STOP_MAX_GAP_MS: u64 = 200;

/// RFC 5798 §6.1: Master_Down_Interval = 3 × Master_Adver_Interval +
/// Skew_Time, Skew_Time = ((256 − Priority) × Master_Adver_Interval) / 256,
/// for a backup of `priority` (in ms, rounded down like the RFC's centiseconds).
pub fn master_down_interval_ms(advert_ms: u64, priority: u8) -> u64 {
    3 * advert_ms + (256 - u64::from(priority)) * advert_ms / 256
}

/// What a crash may take on top of the backup's Master_Down_Interval.
///
/// The interval is counted from the last advert the backup received, which
/// is at most the moment of the crash, so the VIP moves no later than
/// Master_Down_Interval after it. On top come: the backup adding the VIP and
/// sending gratuitous ARP (milliseconds), the probe that notices (probes
/// start every 10 ms; one that started just before the takeover can fail on
/// its 500 ms timeout, but the gap ends at the next *good* probe, ≤ 10 ms
/// after the takeover), and a stall of an emulated host (the VM lab under
/// TCG has shown single stalls of about 1 s — not the daemon's doing, but
/// there to stay under emulation): 1000 ms in all. A daemon that waits
/// a whole extra advert interval at 1 s, or a backup with a long interval
/// (or blocked adverts), is far outside.
pub const CRASH_MARGIN_MS: u64 = 1000;

/// How late the holder poll may see a takeover: the VIP holder is read over
/// ssh every 200 ms, one read taking up to about 1.5 s on the emulated lab.
pub const HOLDER_POLL_SLACK_MS: u64 = 2000;

/// The crash bound on the outage: Master_Down_Interval + [`CRASH_MARGIN_MS`].
pub fn crash_gap_limit_ms(advert_ms: u64, backup_priority: u8) -> u64 {
    master_down_interval_ms(advert_ms, backup_priority) + CRASH_MARGIN_MS
}

/// Director failover facts: who held the VIP before, after the stop, after the restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorFailover {
    pub mode: FailoverMode,
    pub master: String,
    pub backup: String,
    /// VIP holder once the master failed (None: nobody took it). In crash
    /// mode the frozen master keeps the address: this is the backup when it
    /// took the VIP.
    pub holder_after_stop: Option<String>,
    pub outage: Outage,
    /// ms from the failure until the backup held the VIP (None: not seen):
    /// see `takeover_exact`.
    pub takeover_ms: Option<u64>,
    /// `takeover_ms` is the backup daemon's own time of its Backup → Master
    /// transition less the master's clock right after the freeze (directors'
    /// clocks agree: same host in the lab, NTP on real ones): bounded like
    /// the gap. false: it is when the holder poll saw the backup with the
    /// VIP, which can be late by one poll over ssh ([`HOLDER_POLL_SLACK_MS`]).
    pub takeover_exact: bool,
    /// The cluster's advert interval (ms) and the backup's priority: the
    /// crash bound ([`crash_gap_limit_ms`]).
    pub advert_ms: u64,
    pub backup_priority: u8,
    /// VIP holder a while after the master's daemon started (planned stop)
    /// or was resumed (crash) again.
    pub holder_after_start: Option<String>,
    pub preempt: bool,
    /// The higher-priority one of master and backup: where preemption puts the VIP.
    pub preferred: String,
    /// VRRP state the backup's daemon reported after the takeover
    /// (`lvsup director status --json`); None: not readable.
    pub backup_state: Option<String>,
    /// NAT mode: the planned stop is bounded by [`NAT_PLANNED_STOP_MAX_GAP_MS`]
    /// instead of [`PLANNED_STOP_MAX_FAILED_PROBES`].
    pub nat: bool,
}

pub fn analyse_director_failover(f: &DirectorFailover) -> Verdict {
    let mut reasons = Vec::new();
    let failed_how = match f.mode {
        FailoverMode::PlannedStop => "'s daemon stopped",
        FailoverMode::Crash => "'s daemon froze",
    };
    match &f.holder_after_stop {
        Some(h) if *h == f.backup => {}
        Some(h) => reasons.push(format!(
            "after {}{failed_how}, the VIP went to {h}, expected the backup {}",
            f.master, f.backup
        )),
        None => reasons.push(format!(
            "after {}{failed_how}, no director took the VIP: the backup {} did not become master",
            f.master, f.backup
        )),
    }
    if let Some(st) = &f.backup_state
        && !st.eq_ignore_ascii_case("master")
    {
        reasons.push(format!(
            "{}'s daemon reports VRRP state {st} after the takeover, expected Master",
            f.backup
        ));
    }
    if !f.outage.recovered {
        reasons.push(format!(
            "the VIP stopped answering {} ms after the {} and never answered again",
            f.outage.first_failure_ms.unwrap_or(0),
            f.mode.as_str()
        ));
    }
    let mdi = master_down_interval_ms(f.advert_ms, f.backup_priority);
    let gap_limit = crash_gap_limit_ms(f.advert_ms, f.backup_priority);
    let bound = match f.mode {
        FailoverMode::PlannedStop if f.nat => {
            if f.outage.longest_gap_ms > NAT_PLANNED_STOP_MAX_GAP_MS {
                reasons.push(format!(
                    "the VIP did not answer for {} ms during the planned stop ({} of {} probes \
                     failed), expected at most {NAT_PLANNED_STOP_MAX_GAP_MS} ms in NAT mode: the \
                     master did not hand the VIP and gateway over before it went",
                    f.outage.longest_gap_ms, f.outage.failed, f.outage.probes
                ));
            }
            format!("gap ≤ {NAT_PLANNED_STOP_MAX_GAP_MS} ms (NAT: replies in flight at the switch)")
        }
        FailoverMode::PlannedStop => {
            if f.outage.failed > PLANNED_STOP_MAX_FAILED_PROBES {
                reasons.push(format!(
                    "{} of {} probes failed during the planned stop (longest gap {} ms), \
                     expected at most {PLANNED_STOP_MAX_FAILED_PROBES}: the master did not \
                     hand the VIP over before it went",
                    f.outage.failed, f.outage.probes, f.outage.longest_gap_ms
                ));
            }
            format!("≤ {PLANNED_STOP_MAX_FAILED_PROBES} failed probe")
        }
        FailoverMode::Crash => {
            if f.outage.longest_gap_ms > gap_limit {
                reasons.push(format!(
                    "the VIP did not answer for {} ms after the crash, more than \
                     Master_Down_Interval {mdi} ms (advert {} ms, backup priority {}) + \
                     {CRASH_MARGIN_MS} ms",
                    f.outage.longest_gap_ms, f.advert_ms, f.backup_priority
                ));
            }
            match f.takeover_ms {
                Some(t) if f.takeover_exact && t > gap_limit => reasons.push(format!(
                    "{} became Master {t} ms after the crash (its daemon's clock), more than \
                     Master_Down_Interval {mdi} ms + {CRASH_MARGIN_MS} ms",
                    f.backup
                )),
                Some(t) if !f.takeover_exact && t > gap_limit + HOLDER_POLL_SLACK_MS => reasons
                    .push(format!(
                        "{} held the VIP {t} ms after the crash, more than Master_Down_Interval \
                         {mdi} ms + {CRASH_MARGIN_MS} ms + {HOLDER_POLL_SLACK_MS} ms (polling)",
                        f.backup
                    )),
                _ => {}
            }
            if f.takeover_exact {
                format!(
                    "gap and takeover ≤ {gap_limit} ms (Master_Down_Interval {mdi} + \
                     {CRASH_MARGIN_MS})"
                )
            } else {
                format!(
                    "gap ≤ {gap_limit} ms (Master_Down_Interval {mdi} + {CRASH_MARGIN_MS}), \
                     takeover seen ≤ {} ms",
                    gap_limit + HOLDER_POLL_SLACK_MS
                )
            }
        }
    };
    // After a planned stop the master starts as Backup: preemption decides.
    // A resumed (crashed) master still thinks it is Master and, with the
    // higher priority, takes the VIP back whatever `preempt` says (RFC 5798
    // §6.4.3: a Backup that hears a higher priority steps down); so with
    // preempt = false only "exactly one holder" is expected.
    let want_back: Vec<&str> = match (f.mode, f.preempt) {
        (_, true) => vec![f.preferred.as_str()],
        (FailoverMode::PlannedStop, false) => vec![f.backup.as_str()],
        (FailoverMode::Crash, false) => vec![f.master.as_str(), f.backup.as_str()],
    };
    let again = match f.mode {
        FailoverMode::PlannedStop => "started again",
        FailoverMode::Crash => "resumed",
    };
    match &f.holder_after_start {
        Some(h) if want_back.contains(&h.as_str()) => {}
        other => reasons.push(format!(
            "after {}'s daemon {again} the VIP is on {}; with preempt = {} it should be on {}",
            f.master,
            other.as_deref().unwrap_or("no director"),
            f.preempt,
            want_back.join(" or ")
        )),
    }
    let (fail_verb, back_verb) = match f.mode {
        FailoverMode::PlannedStop => ("stop", "restart"),
        FailoverMode::Crash => ("crash (freeze)", "resume"),
    };
    Verdict::new(
        format!(
            "{fail_verb} {}'s daemon: {} takes the VIP; {back_verb}: preempt = {}",
            f.master, f.backup, f.preempt
        ),
        format!(
            "{}{}; then {}{}, back on {}",
            f.outage.describe(),
            f.takeover_ms
                .map(|t| if f.takeover_exact {
                    format!(", Master after {t} ms")
                } else {
                    format!(", takeover seen after {t} ms")
                })
                .unwrap_or_default(),
            f.holder_after_stop.as_deref().unwrap_or("nobody"),
            f.backup_state
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            f.holder_after_start.as_deref().unwrap_or("nobody")
        ),
        format!(
            "{} takes over, {bound}; then on {}",
            f.backup,
            want_back.join(" or ")
        ),
        reasons,
    )
}

/// The VIP "keeps answering" while a real server leaves and rejoins the pool:
/// no window without an answer longer than this. Single failed probes are
/// counted and reported, not failed on: connections in flight to a server at
/// the moment it is removed die with it (`expire_nodest_conn=1`), which the
/// VM lab showed as 5 of 2465 probes, longest gap 52 ms.
pub const RS_FAILOVER_MAX_GAP_MS: u64 = 1000;

/// Real-server failover facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerFailover {
    pub server: String,
    /// ms from making it fail until the active director took it out (None: never).
    pub out_ms: Option<u64>,
    /// ms from recovery until it was back with its weight (None: never).
    pub back_ms: Option<u64>,
    /// Upper bounds we waited for.
    pub out_limit_ms: u64,
    pub back_limit_ms: u64,
    /// VIP probes during the whole exercise.
    pub outage: Outage,
    /// Failed probes after the server was out of the pool (must be 0).
    pub failed_after_out: u32,
    /// The default method (prohibit routes) keeps the server serving clients:
    /// then no probe may fail at all.
    pub serving_while_failed: bool,
}

pub fn analyse_rs_failover(f: &RealServerFailover) -> Verdict {
    let mut reasons = Vec::new();
    match f.out_ms {
        None => reasons.push(format!(
            "{} failed its health checks but was still in the pool after {} ms",
            f.server, f.out_limit_ms
        )),
        Some(ms) if ms > f.out_limit_ms => reasons.push(format!(
            "{} was taken out after {ms} ms, more than {} ms",
            f.server, f.out_limit_ms
        )),
        _ => {}
    }
    match f.back_ms {
        None => reasons.push(format!(
            "{} passes its health checks again but was not back in the pool after {} ms",
            f.server, f.back_limit_ms
        )),
        Some(ms) if ms > f.back_limit_ms => reasons.push(format!(
            "{} came back after {ms} ms, more than {} ms",
            f.server, f.back_limit_ms
        )),
        _ => {}
    }
    if f.serving_while_failed && f.outage.longest_gap_ms > RS_FAILOVER_MAX_GAP_MS {
        reasons.push(format!(
            "the VIP did not answer for {} ms ({} of {} probes failed) while {} was failing its checks",
            f.outage.longest_gap_ms, f.outage.failed, f.outage.probes, f.server
        ));
    } else if !f.serving_while_failed && f.failed_after_out > 0 {
        reasons.push(format!(
            "{} probes failed after {} was out of the pool",
            f.failed_after_out, f.server
        ));
    }
    let ms = |v: Option<u64>| v.map_or("never".into(), |v| format!("{v} ms"));
    Verdict::new(
        format!(
            "{} fails its health checks: out of the pool, back after recovery, VIP answers",
            f.server
        ),
        format!(
            "out {}, back {}; {}",
            ms(f.out_ms),
            ms(f.back_ms),
            f.outage.describe()
        ),
        format!(
            "out ≤ {} ms, back ≤ {} ms, no gap > {RS_FAILOVER_MAX_GAP_MS} ms",
            f.out_limit_ms, f.back_limit_ms
        ),
        reasons,
    )
}

/// With preempt = true the VIP belongs on the highest-priority director.
pub fn check_preempt_owner(
    preferred: &str,
    holder: Option<&str>,
    waited_ms: u64,
    settled: bool,
) -> Verdict {
    let mut reasons = Vec::new();
    if !settled {
        reasons.push(format!(
            "the VIP is on {} after {waited_ms} ms; with preempt = true it belongs on {preferred} \
             (highest priority): is its daemon running and its health gate open?",
            holder.unwrap_or("no director")
        ));
    }
    Verdict::new(
        format!("preempt = true: the VIP is on the highest-priority director {preferred}"),
        format!(
            "on {}{}",
            holder.unwrap_or("nobody"),
            if waited_ms > 0 {
                format!(" (after {waited_ms} ms)")
            } else {
                String::new()
            }
        ),
        format!("on {preferred}"),
        reasons,
    )
}

/// What happened to connections opened through the VIP before a director
/// failover and used again after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldOutcome {
    /// Data went both ways after the failover (`bytes` came back).
    Answered(usize),
    /// The server closed it in order (FIN) after the new data: the packets
    /// reached the same real server, so the connection was alive.
    ClosedByServer,
    /// Reset, refused or no answer: the connection did not survive.
    Broken(String),
}

/// Connection sync across a director failover (`sync_daemon`).
#[derive(Debug, Clone)]
pub struct ConnectionSync {
    pub sync_daemon: bool,
    /// Connections opened (and given their first data) before the failover;
    /// `opened < wanted` when some could not be opened at all.
    pub wanted: u32,
    pub outcomes: Vec<HeldOutcome>,
}

/// With `sync_daemon = true` every established connection must survive the
/// failover (the backup had its IPVS entry from the sync daemon); without it
/// they are expected to break (the new director has no entry and resets
/// them): reported as SKIP with what was seen, never PASS or FAIL.
pub fn analyse_connection_sync(c: &ConnectionSync) -> Verdict {
    let opened = c.outcomes.len() as u32;
    let kept = c
        .outcomes
        .iter()
        .filter(|o| !matches!(o, HeldOutcome::Broken(_)))
        .count() as u32;
    let answered = c
        .outcomes
        .iter()
        .filter(|o| matches!(o, HeldOutcome::Answered(_)))
        .count() as u32;
    let measured = format!("{kept} of {opened} established connections kept ({answered} answered)");
    let broken: Vec<String> = c
        .outcomes
        .iter()
        .filter_map(|o| match o {
            HeldOutcome::Broken(why) => Some(why.clone()),
            _ => None,
        })
        .collect();
    if !c.sync_daemon {
        return Verdict::skip(
            "established connections across a director failover",
            measured,
            "sync_daemon = false: the new director has no entry for them and resets them \
             (set sync_daemon = true to keep them)",
        );
    }
    let mut reasons = Vec::new();
    if opened < c.wanted || opened == 0 {
        reasons.push(format!(
            "only {opened} of {} connections could be opened before the failover",
            c.wanted
        ));
    }
    if kept < opened {
        let mut first: Vec<String> = broken.clone();
        first.sort();
        first.dedup();
        reasons.push(format!(
            "{} of {opened} connections broke across the failover ({}): the backup had no \
             synced entry for them (is the sync daemon running on both directors? \
             `ipvsadm -L --daemon`)",
            opened - kept,
            first.join("; ")
        ));
    }
    Verdict::new(
        "sync_daemon = true: established connections survive a director failover",
        measured,
        format!("{} of {} kept", c.wanted, c.wanted),
        reasons,
    )
}

// ------------------------------------------------------------ several sources

/// Where the connections of each client address went (`verify --source`),
/// for the schedulers that hash the source address (sh, mh).
#[derive(Debug, Clone)]
pub struct SourceSpread {
    pub scheduler: String,
    /// Every real server of the service with its weight, in file order.
    pub servers: Vec<(String, u32)>,
    /// Per source address: the new connections the director counted on each
    /// real server (by name) while only that source connected.
    pub per_source: Vec<(String, BTreeMap<String, u64>)>,
}

/// A spread this unlikely under the weights fails the check (about one
/// false alarm in 10,000 runs per server).
pub const SPREAD_ALPHA: f64 = 1e-4;

/// P(X <= k) and P(X >= k) for X ~ Binomial(n, p).
pub fn binomial_tails(n: u64, p: f64, k: u64) -> (f64, f64) {
    if p <= 0.0 {
        return (1.0, if k == 0 { 1.0 } else { 0.0 });
    }
    if p >= 1.0 {
        return (if k >= n { 1.0 } else { 0.0 }, 1.0);
    }
    let mut pmf = (1.0 - p).powi(i32::try_from(n).unwrap_or(i32::MAX));
    let (mut le, mut ge) = (0.0, 0.0);
    for i in 0..=n {
        if i <= k {
            le += pmf;
        }
        if i >= k {
            ge += pmf;
        }
        pmf *= (n - i) as f64 / (i + 1) as f64 * p / (1.0 - p);
    }
    (le.min(1.0), ge.min(1.0))
}

/// sh/mh with several client addresses: every source's connections land on
/// one real server (a weight-0 server gets none), and the sources spread
/// over the servers by weight: a server's count of sources is FAIL when it
/// is less likely than [`SPREAD_ALPHA`] under Binomial(sources, weight
/// share). With too few sources for any spread to be that unlikely, the
/// spread part is SKIP (the per-source part still fails when broken).
pub fn analyse_source_spread(s: &SourceSpread) -> Verdict {
    let property = format!(
        "{}: each client address lands on one server, and addresses spread over the servers by weight",
        s.scheduler
    );
    let sources = s.per_source.len() as u64;
    if sources < 2 {
        return Verdict::skip(
            property,
            "-".into(),
            "needs connections from at least 2 client addresses (--source ADDR …)",
        );
    }
    let total_w: u64 = s.servers.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut reasons = Vec::new();
    let mut per_server: BTreeMap<&str, u64> =
        s.servers.iter().map(|(n, _)| (n.as_str(), 0)).collect();
    for (src, got) in &s.per_source {
        let hit: Vec<&String> = got
            .iter()
            .filter(|(_, c)| **c > 0)
            .map(|(n, _)| n)
            .collect();
        match hit.as_slice() {
            [] => reasons.push(format!(
                "{src}: the director counted none of its connections"
            )),
            [one] => {
                if let Some(c) = per_server.get_mut(one.as_str()) {
                    *c += 1;
                }
            }
            many => reasons.push(format!(
                "{src}: its connections went to {} servers ({}), not one",
                many.len(),
                many.iter()
                    .map(|n| format!("{n} {}", got[*n]))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    let measured = format!(
        "{sources} client addresses: {}",
        per_server
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let expected = s
        .servers
        .iter()
        .map(|(n, w)| {
            format!(
                "{n} ~{:.1}",
                sources as f64 * f64::from(*w) / total_w.max(1) as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    // Could any spread be judged? The likeliest-to-be-empty server (largest
    // share) getting no source must be unlikely enough.
    let p_max = s
        .servers
        .iter()
        .map(|(_, w)| f64::from(*w) / total_w.max(1) as f64)
        .fold(0.0, f64::max);
    let decidable = total_w > 0 && binomial_tails(sources, p_max, 0).0 < SPREAD_ALPHA;
    for (n, w) in &s.servers {
        let got = per_server.get(n.as_str()).copied().unwrap_or(0);
        if *w == 0 {
            if got > 0 {
                reasons.push(format!(
                    "{n} has weight 0 but {got} client addresses went to it"
                ));
            }
            continue;
        }
        if !decidable {
            continue;
        }
        let p = f64::from(*w) / total_w as f64;
        let (le, ge) = binomial_tails(sources, p, got);
        if le.min(ge) < SPREAD_ALPHA {
            reasons.push(format!(
                "{n} got {got} of {sources} client addresses, expected ~{:.1} by weight \
                 (probability {:.1e} under the weights)",
                sources as f64 * p,
                le.min(ge)
            ));
        }
    }
    if reasons.is_empty() && !decidable {
        let mut v = Verdict::skip(
            property,
            measured,
            format!(
                "every client address landed on one server, but {sources} addresses are too few \
                 to judge the spread: use more --source addresses"
            ),
        );
        v.expected = expected;
        return v;
    }
    Verdict::new(property, measured, expected, reasons)
}
