//! lvsup: build whole Linux Virtual Server (LVS/IPVS) clusters from one `cluster.toml`.

pub mod apply;
pub mod cmd;
pub mod config;
pub mod contract;
pub mod desired;
pub mod director;
pub mod health;
pub mod import;
pub mod ipvs;
pub mod lab;
pub mod layout;
pub mod observe;
pub mod plan;
pub mod remote;
pub mod script;
pub mod vrrp;

// `lvsup verify` (its own group: stays clear of other branches' module lines).
pub mod verify;
