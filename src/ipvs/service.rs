//! Virtual services: the `IPVS_CMD_ATTR_SERVICE` nest (`IPVS_SVC_ATTR_*`) and the
//! typed [`Service`] model built on it.

use std::fmt;
use std::net::SocketAddr;

use netlink_packet_core::{DecodeError, DefaultNla, NLA_TYPE_MASK, Nla, NlaBuffer, Parseable};
use serde::{Deserialize, Serialize};

use super::constants::*;
use super::dest::Destination;
pub use super::family::{Family, addr_from_bytes, addr_to_bytes};
use super::nla::*;
use super::stats::{Stats, Stats32Attr, Stats64Attr};

/// `struct ip_vs_flags { __u32 flags; __u32 mask; }` — 8 bytes on the wire.
///
/// The kernel computes `new = (old & ~mask) | (flags & mask)`; we always send
/// `mask = 0xffffffff` so the flags we send are the flags the service ends up with
/// (the kernel re-adds its internal `IP_VS_SVC_F_HASHED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvcFlags {
    pub flags: u32,
    pub mask: u32,
}

/// One attribute of the `IPVS_CMD_ATTR_SERVICE` nest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAttr {
    /// `IPVS_SVC_ATTR_AF` (u16): `AF_INET` or `AF_INET6`.
    Af(u16),
    /// `IPVS_SVC_ATTR_PROTOCOL` (u16): `IPPROTO_TCP`/`UDP`/`SCTP`.
    Protocol(u16),
    /// `IPVS_SVC_ATTR_ADDR`: `union nf_inet_addr`, IPv4 in the first 4 bytes.
    Addr([u8; 16]),
    /// `IPVS_SVC_ATTR_PORT`: held in host order, big-endian on the wire.
    Port(u16),
    /// `IPVS_SVC_ATTR_FWMARK` (u32).
    Fwmark(u32),
    /// `IPVS_SVC_ATTR_SCHED_NAME`: NUL-terminated, at most 15 characters.
    SchedName(String),
    /// `IPVS_SVC_ATTR_FLAGS`: `struct ip_vs_flags`.
    Flags(SvcFlags),
    /// `IPVS_SVC_ATTR_TIMEOUT` (u32): persistence timeout in seconds.
    Timeout(u32),
    /// `IPVS_SVC_ATTR_NETMASK`: raw u32 as the kernel reads it with `nla_get_be32()`:
    /// for IPv4 the mask in network byte order, for IPv6 the prefix length.
    Netmask(u32),
    /// `IPVS_SVC_ATTR_STATS` nest.
    Stats(Vec<Stats32Attr>),
    /// `IPVS_SVC_ATTR_PE_NAME`: persistence engine (e.g. "sip").
    PeName(String),
    /// `IPVS_SVC_ATTR_STATS64` nest.
    Stats64(Vec<Stats64Attr>),
    Other(DefaultNla),
}

impl Nla for ServiceAttr {
    fn value_len(&self) -> usize {
        use ServiceAttr::*;
        match self {
            Af(_) | Protocol(_) | Port(_) => 2,
            Addr(_) => 16,
            Fwmark(_) | Timeout(_) | Netmask(_) => 4,
            Flags(_) => 8,
            SchedName(s) | PeName(s) => cstring_len(s),
            Stats(v) => nested_len(v),
            Stats64(v) => nested_len(v),
            Other(nla) => nla.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use ServiceAttr::*;
        match self {
            Af(_) => IPVS_SVC_ATTR_AF,
            Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            Addr(_) => IPVS_SVC_ATTR_ADDR,
            Port(_) => IPVS_SVC_ATTR_PORT,
            Fwmark(_) => IPVS_SVC_ATTR_FWMARK,
            SchedName(_) => IPVS_SVC_ATTR_SCHED_NAME,
            Flags(_) => IPVS_SVC_ATTR_FLAGS,
            Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            Stats(_) => IPVS_SVC_ATTR_STATS,
            PeName(_) => IPVS_SVC_ATTR_PE_NAME,
            Stats64(_) => IPVS_SVC_ATTR_STATS64,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, b: &mut [u8]) {
        use ServiceAttr::*;
        match self {
            Af(v) | Protocol(v) => b.copy_from_slice(&v.to_ne_bytes()),
            Port(v) => b.copy_from_slice(&v.to_be_bytes()),
            Addr(a) => b.copy_from_slice(a),
            Fwmark(v) | Timeout(v) | Netmask(v) => b.copy_from_slice(&v.to_ne_bytes()),
            Flags(f) => {
                b[..4].copy_from_slice(&f.flags.to_ne_bytes());
                b[4..8].copy_from_slice(&f.mask.to_ne_bytes());
            }
            SchedName(s) | PeName(s) => emit_cstring(s, b),
            Stats(v) => emit_nested(v, b),
            Stats64(v) => emit_nested(v, b),
            Other(nla) => nla.emit_value(b),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for ServiceAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let p = buf.value();
        Ok(match buf.kind() & NLA_TYPE_MASK {
            IPVS_SVC_ATTR_AF => Self::Af(u16_ne(p, "IPVS_SVC_ATTR_AF")?),
            IPVS_SVC_ATTR_PROTOCOL => Self::Protocol(u16_ne(p, "IPVS_SVC_ATTR_PROTOCOL")?),
            IPVS_SVC_ATTR_ADDR => Self::Addr(inet_addr(p, "IPVS_SVC_ATTR_ADDR")?),
            IPVS_SVC_ATTR_PORT => Self::Port(u16_be(p, "IPVS_SVC_ATTR_PORT")?),
            IPVS_SVC_ATTR_FWMARK => Self::Fwmark(u32_ne(p, "IPVS_SVC_ATTR_FWMARK")?),
            IPVS_SVC_ATTR_SCHED_NAME => Self::SchedName(cstring(p, "IPVS_SVC_ATTR_SCHED_NAME")?),
            IPVS_SVC_ATTR_FLAGS => {
                if p.len() != 8 {
                    return Err(DecodeError::from(format!(
                        "IPVS_SVC_ATTR_FLAGS: expected 8 bytes (struct ip_vs_flags), got {}",
                        p.len()
                    )));
                }
                Self::Flags(SvcFlags {
                    flags: u32_ne(&p[..4], "IPVS_SVC_ATTR_FLAGS")?,
                    mask: u32_ne(&p[4..], "IPVS_SVC_ATTR_FLAGS")?,
                })
            }
            IPVS_SVC_ATTR_TIMEOUT => Self::Timeout(u32_ne(p, "IPVS_SVC_ATTR_TIMEOUT")?),
            IPVS_SVC_ATTR_NETMASK => Self::Netmask(u32_ne(p, "IPVS_SVC_ATTR_NETMASK")?),
            IPVS_SVC_ATTR_STATS => Self::Stats(parse_nlas(p, "IPVS_SVC_ATTR_STATS")?),
            IPVS_SVC_ATTR_PE_NAME => Self::PeName(cstring(p, "IPVS_SVC_ATTR_PE_NAME")?),
            IPVS_SVC_ATTR_STATS64 => Self::Stats64(parse_nlas(p, "IPVS_SVC_ATTR_STATS64")?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Typed model
// ---------------------------------------------------------------------------------------

/// Transport protocol of an address-based virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn to_ipproto(self) -> u16 {
        match self {
            Protocol::Tcp => IPPROTO_TCP,
            Protocol::Udp => IPPROTO_UDP,
            Protocol::Sctp => IPPROTO_SCTP,
        }
    }
    pub fn from_ipproto(p: u16) -> Result<Protocol, DecodeError> {
        match p {
            IPPROTO_TCP => Ok(Protocol::Tcp),
            IPPROTO_UDP => Ok(Protocol::Udp),
            IPPROTO_SCTP => Ok(Protocol::Sctp),
            other => Err(DecodeError::from(format!(
                "unsupported IPVS protocol {other}"
            ))),
        }
    }
    /// Upper-case name as ipvsadm prints it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// What identifies a virtual service in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ServiceId {
    /// `-t`/`-u`/`--sctp-service addr:port`.
    Addr {
        protocol: Protocol,
        addr: SocketAddr,
    },
    /// `-f mark` (IPv4 or IPv6 family).
    Fwmark { mark: u32, family: Family },
}

impl ServiceId {
    pub fn tcp(addr: SocketAddr) -> Self {
        ServiceId::Addr {
            protocol: Protocol::Tcp,
            addr,
        }
    }
    pub fn udp(addr: SocketAddr) -> Self {
        ServiceId::Addr {
            protocol: Protocol::Udp,
            addr,
        }
    }
    pub fn fwmark(mark: u32) -> Self {
        ServiceId::Fwmark {
            mark,
            family: Family::Inet,
        }
    }
    pub fn family(&self) -> Family {
        match self {
            ServiceId::Addr { addr, .. } => Family::of(&addr.ip()),
            ServiceId::Fwmark { family, .. } => *family,
        }
    }

    /// The identifying attributes (`AF` + `FWMARK`, or `AF` + `PROTOCOL` + `ADDR` + `PORT`):
    /// what every service and destination command must carry.
    pub fn to_attrs(&self) -> Vec<ServiceAttr> {
        let mut v = vec![ServiceAttr::Af(self.family().to_af())];
        match self {
            ServiceId::Addr { protocol, addr } => {
                v.push(ServiceAttr::Protocol(protocol.to_ipproto()));
                v.push(ServiceAttr::Addr(addr_to_bytes(&addr.ip())));
                v.push(ServiceAttr::Port(addr.port()));
            }
            ServiceId::Fwmark { mark, .. } => v.push(ServiceAttr::Fwmark(*mark)),
        }
        v
    }

    /// Read the identity back from a service nest.
    pub fn from_attrs(attrs: &[ServiceAttr]) -> Result<Self, DecodeError> {
        let (mut af, mut proto, mut addr, mut port, mut mark) = (None, None, None, None, None);
        for a in attrs {
            match a {
                ServiceAttr::Af(v) => af = Some(*v),
                ServiceAttr::Protocol(v) => proto = Some(*v),
                ServiceAttr::Addr(v) => addr = Some(*v),
                ServiceAttr::Port(v) => port = Some(*v),
                ServiceAttr::Fwmark(v) => mark = Some(*v),
                _ => {}
            }
        }
        let family = Family::from_af(af.ok_or("service without IPVS_SVC_ATTR_AF")?)?;
        match (mark, proto, addr, port) {
            (Some(mark), ..) if mark != 0 => Ok(ServiceId::Fwmark { mark, family }),
            (_, Some(p), Some(a), Some(port)) => Ok(ServiceId::Addr {
                protocol: Protocol::from_ipproto(p)?,
                addr: SocketAddr::new(addr_from_bytes(family, &a), port),
            }),
            _ => Err(DecodeError::from(
                "service without FWMARK nor PROTOCOL+ADDR+PORT",
            )),
        }
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceId::Addr { protocol, addr } => write!(f, "{} {}", protocol.name(), addr),
            ServiceId::Fwmark {
                mark,
                family: Family::Inet,
            } => write!(f, "FWM {mark}"),
            ServiceId::Fwmark {
                mark,
                family: Family::Inet6,
            } => write!(f, "FWM {mark} IPv6"),
        }
    }
}

/// A virtual service with its real servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: ServiceId,
    /// Scheduler name: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos.
    pub scheduler: String,
    /// Persistence timeout in seconds (`-p`); `None` = not persistent.
    pub persistence: Option<u32>,
    /// Persistence granularity as a prefix length (`-M`): 32 (IPv4) / 128 (IPv6) by default.
    pub netmask: u8,
    /// Other service flags (`IP_VS_SVC_F_ONEPACKET`, `..._SCHED1..3`); never PERSISTENT
    /// (see `persistence`) nor HASHED (kernel-internal, masked off when read).
    pub flags: u32,
    /// Persistence engine (`--pe`), e.g. "sip".
    pub pe_name: Option<String>,
    /// Counters, when read from the kernel (64-bit nest preferred). Ignored when diffing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<Box<Stats>>,
    pub destinations: Vec<Destination>,
}

impl Service {
    /// A service with defaults like ipvsadm's: no persistence, full netmask, no destinations.
    pub fn new(id: ServiceId, scheduler: impl Into<String>) -> Self {
        Service {
            netmask: id.family().max_prefix(),
            id,
            scheduler: scheduler.into(),
            persistence: None,
            flags: 0,
            pe_name: None,
            stats: None,
            destinations: Vec::new(),
        }
    }

    /// Builder: make the service persistent for `seconds`.
    pub fn persistent(mut self, seconds: u32) -> Self {
        self.persistence = Some(seconds);
        self
    }

    /// Builder: add a destination.
    pub fn with_destination(mut self, d: Destination) -> Self {
        self.destinations.push(d);
        self
    }

    /// All flags as sent to the kernel.
    pub fn wire_flags(&self) -> u32 {
        let f = self.flags & !(IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_HASHED);
        if self.persistence.is_some() {
            f | IP_VS_SVC_F_PERSISTENT
        } else {
            f
        }
    }

    fn wire_netmask(&self) -> u32 {
        match self.id.family() {
            Family::Inet => {
                let p = u32::from(self.netmask.min(32));
                let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                // nla_get_be32: the bytes are the mask in network order.
                u32::from_ne_bytes(mask.to_be_bytes())
            }
            Family::Inet6 => u32::from(self.netmask.min(128)),
        }
    }

    /// The full attribute set `IPVS_CMD_NEW_SERVICE`/`SET_SERVICE` need: identity,
    /// SCHED_NAME, [PE_NAME], FLAGS (mask 0xffffffff), TIMEOUT, NETMASK.
    pub fn to_attrs(&self) -> Vec<ServiceAttr> {
        let mut v = self.id.to_attrs();
        v.push(ServiceAttr::SchedName(self.scheduler.clone()));
        if let Some(pe) = &self.pe_name {
            v.push(ServiceAttr::PeName(pe.clone()));
        }
        v.push(ServiceAttr::Flags(SvcFlags {
            flags: self.wire_flags(),
            mask: u32::MAX,
        }));
        v.push(ServiceAttr::Timeout(self.persistence.unwrap_or(0)));
        v.push(ServiceAttr::Netmask(self.wire_netmask()));
        v
    }

    /// Build the model from a service nest as the kernel sends it (destinations empty).
    pub fn from_attrs(attrs: &[ServiceAttr]) -> Result<Self, DecodeError> {
        let id = ServiceId::from_attrs(attrs)?;
        let mut svc = Service::new(id, String::new());
        let (mut flags, mut timeout, mut stats32, mut stats64) = (0u32, 0u32, None, None);
        let mut sched = None;
        for a in attrs {
            match a {
                ServiceAttr::SchedName(s) => sched = Some(s.clone()),
                ServiceAttr::PeName(s) => svc.pe_name = Some(s.clone()),
                ServiceAttr::Flags(f) => flags = f.flags & f.mask,
                ServiceAttr::Timeout(t) => timeout = *t,
                ServiceAttr::Netmask(m) => {
                    svc.netmask = match id.family() {
                        Family::Inet => u32::from_be_bytes(m.to_ne_bytes()).leading_ones() as u8,
                        Family::Inet6 => (*m).min(128) as u8,
                    }
                }
                ServiceAttr::Stats(s) => stats32 = Some(Stats::from_attrs(s)),
                ServiceAttr::Stats64(s) => stats64 = Some(Stats::from_attrs(s)),
                _ => {}
            }
        }
        svc.scheduler = sched.ok_or("service without IPVS_SVC_ATTR_SCHED_NAME")?;
        svc.persistence = (flags & IP_VS_SVC_F_PERSISTENT != 0).then_some(timeout);
        svc.flags = flags & !(IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_HASHED);
        svc.stats = stats64.or(stats32).map(Box::new);
        Ok(svc)
    }
}
