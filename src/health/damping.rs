//! Rise/fall damping of health-check results: keepalived's `rise`/`fall`,
//! pingora's `observe_health`, as a pure function of the result sequence.
//!
//! Probing (TCP connect, HTTP GET, timeouts) lives in the daemon; each probe
//! result is fed to [`Damper::observe`], which says when the real server's
//! health flips.
//!
//! # The first result
//!
//! A damper starts [`Health::Unknown`], and **the first result decides**:
//! one success → `Up`, one failure → `Down`. Afterwards `fall` consecutive
//! failures take an `Up` server down and `rise` consecutive successes bring a
//! `Down` server up.
//!
//! Why:
//! * A new (or restarted-director) real server gets no traffic before it has
//!   answered once. keepalived instead starts servers as up (unless its
//!   `alpha` option is set, which starts them failed and needs a success),
//!   so for up to `fall × interval` it sends clients to servers it has never
//!   checked.
//! * Waiting for `rise` successes at start would delay the moment "health
//!   state is known" — which gates VRRP mastership — by `rise × interval`
//!   although no flapping has been seen yet: `rise` is there to distrust a
//!   server that *was* failing, not one we have no history for.
//! * A first failure marks the server down at once rather than after `fall`
//!   failures: `fall` forgives a blip on a server that has been serving, and
//!   an unchecked server has not earned that.
//!
//! So health is known after one check interval (plus the check timeout at
//! worst) for every real server, and that is when the daemon opens the VRRP
//! health gate.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// No result yet.
    Unknown,
    Up,
    Down,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        })
    }
}

/// A flip of a real server's health, returned by [`Damper::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Health,
    pub to: Health,
}

/// Rise/fall state of one real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damper {
    /// Consecutive successes that bring a `Down` server up (at least 1).
    pub rise: u32,
    /// Consecutive failures that take an `Up` server down (at least 1).
    pub fall: u32,
    pub state: Health,
    /// Consecutive results against the current state (failures while `Up`,
    /// successes while `Down`); 0 while `Unknown`.
    pub streak: u32,
}

impl Damper {
    /// `rise`/`fall` of 0 are treated as 1.
    pub fn new(rise: u32, fall: u32) -> Damper {
        Damper {
            rise: rise.max(1),
            fall: fall.max(1),
            state: Health::Unknown,
            streak: 0,
        }
    }

    /// Whether any result has been seen yet.
    pub fn is_known(&self) -> bool {
        self.state != Health::Unknown
    }

    pub fn is_up(&self) -> bool {
        self.state == Health::Up
    }

    /// Record one probe result; `Some` when the state flips.
    pub fn observe(&mut self, ok: bool) -> Option<Transition> {
        let from = self.state;
        let to = match (from, ok) {
            // The first result decides (see the module docs).
            (Health::Unknown, true) => Health::Up,
            (Health::Unknown, false) => Health::Down,
            // A result agreeing with the state breaks any streak against it.
            (Health::Up, true) | (Health::Down, false) => {
                self.streak = 0;
                return None;
            }
            (Health::Up, false) => {
                self.streak += 1;
                if self.streak < self.fall {
                    return None;
                }
                Health::Down
            }
            (Health::Down, true) => {
                self.streak += 1;
                if self.streak < self.rise {
                    return None;
                }
                Health::Up
            }
        };
        self.state = to;
        self.streak = 0;
        Some(Transition { from, to })
    }
}

/// Whether every damper has seen a result: the daemon's "health state of the
/// real servers is known", which opens the VRRP health gate. True for none.
pub fn all_known<'a>(dampers: impl IntoIterator<Item = &'a Damper>) -> bool {
    dampers.into_iter().all(Damper::is_known)
}
