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
//! - [`client`] module: [`IpvsClient`], async over genetlink (tokio); bulk writes via
//!   [`IpvsClient::batch`], encoded by the [`batch`] module (many messages per datagram).
//! - [`reconcile`] module: desired vs. kernel table → minimal ordered [`reconcile::Op`] list.
//! - [`render`]: the `ipvsadm -Ln` text, [`render_ipvsadm_ln`].

pub mod batch;
pub mod client;
pub mod constants;
pub mod daemon;
pub mod dest;
pub mod error;
pub mod family;
pub mod message;
mod nla;
mod raw;
pub mod reconcile;
pub mod render;
pub mod service;
pub mod stats;

pub use batch::{Acks, Request};
pub use client::{BatchOutcome, IpvsClient, IpvsError, IpvsInfo, Timeouts};
pub use daemon::{DaemonAttr, DaemonState, SyncDaemon};
pub use dest::{DestAttr, Destination, Forward, Tunnel, TunnelType};
pub use message::{IpvsAttr, IpvsCmd, IpvsMessage};
pub use reconcile::{ApplyReport, Op, ReconcileOptions, apply, apply_report, reconcile};
pub use render::render_ipvsadm_ln;
pub use service::{Family, Protocol, Service, ServiceAttr, ServiceId, SvcFlags};
pub use stats::{Stats, Stats32Attr, Stats64Attr, StatsAttr};
