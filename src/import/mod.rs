//! Importers: other load balancers' configurations → cluster.toml.

pub mod keepalived;
