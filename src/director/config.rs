//! The director's config file, `director.toml`: its type is a contract
//! between the operator's lvsup (which renders it) and the daemon (which
//! reads it), [`crate::contract::director_config`]; re-exported here for the
//! daemon's modules and existing callers.

pub use crate::contract::director_config::*;
