//! The director role: the daemon `apply` installs on every director
//! (`lvsup director run`), its configuration file (which `desired` renders)
//! and its status (`lvsup director status`; the document's schema is
//! [`crate::contract::status`], shared with the operator's side).
//!
//! Pure pieces: [`core`] (the director's policy around the VRRP machine,
//! sans-IO), [`config`], [`table`] (config ×
//! health → IPVS table), the tagging rules of [`addr`], the frames of [`net`],
//! the HTTP status parsing of [`probe`]. I/O at the edges: [`daemon`] (the
//! loop), [`control`] (unix socket), sockets in [`net`], rtnetlink in [`addr`].

pub mod config;
pub mod core;
pub mod socket;
pub mod table;

#[cfg(target_os = "linux")]
pub mod addr;
#[cfg(target_os = "linux")]
pub mod control;
#[cfg(target_os = "linux")]
pub mod daemon;
#[cfg(target_os = "linux")]
pub mod exec;
pub mod metrics;
#[cfg(target_os = "linux")]
pub mod net;
#[cfg(target_os = "linux")]
pub mod probe;
