//! IPVS (IP Virtual Server) over generic netlink: codec, typed model, async client,
//! reconciliation and an `ipvsadm -Ln` renderer.
//!
//! Layers, from the wire up:
//! - [`constants`] module: uapi names and values from `include/uapi/linux/ip_vs.h`.
//! - [`message`], [`service`], [`dest`], [`daemon`], [`stats`]: attribute codecs
//!   (`Nla` + `Parseable`) and [`IpvsMessage`] (`GenlFamily` + `Emitable` +
//!   `ParseableParametrized<[u8], GenlHeader>`), pure and byte-tested.
//! - the typed model: [`Service`], [`ServiceId`], [`Destination`], [`Forward`], [`Stats`],
//!   [`SyncDaemon`] (serde `Serialize` for `--json`).
//! - [`client`] module: [`IpvsClient`], async over genetlink (tokio).
//! - [`reconcile`] module: desired vs. kernel table → minimal ordered [`reconcile::Op`] list.
//! - [`render`]: the `ipvsadm -Ln` text, [`render_ipvsadm_ln`].

pub mod client;
pub mod constants;
pub mod daemon;
pub mod dest;
pub mod message;
mod nla;
pub mod reconcile;
pub mod render;
pub mod service;
pub mod stats;

pub use client::{IpvsClient, IpvsError, IpvsInfo, Timeouts};
pub use daemon::{DaemonAttr, DaemonState, SyncDaemon};
pub use dest::{DestAttr, Destination, Forward, Tunnel, TunnelType};
pub use message::{IpvsAttr, IpvsCmd, IpvsMessage};
pub use reconcile::{Op, ReconcileOptions, apply, reconcile};
pub use render::render_ipvsadm_ln;
pub use service::{Family, Protocol, Service, ServiceAttr, ServiceId, SvcFlags};
pub use stats::{Stats, Stats32Attr, Stats64Attr, StatsAttr};
