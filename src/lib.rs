//! lvsup: build whole Linux Virtual Server (LVS/IPVS) clusters from one `cluster.toml`.
pub mod ipvs;
