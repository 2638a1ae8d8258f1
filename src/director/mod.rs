//! The director role: the daemon `apply` installs on every director.
//! For now: the daemon's configuration file, which `desired` renders.

pub mod config;
