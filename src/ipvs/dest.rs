//! Real servers: the `IPVS_CMD_ATTR_DEST` nest (`IPVS_DEST_ATTR_*`) and the typed
//! [`Destination`] model built on it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::{DecodeError, DefaultNla, NLA_TYPE_MASK, Nla, NlaBuffer, Parseable};
use serde::{Deserialize, Serialize};

use super::constants::*;
use super::family::{Family, addr_from_bytes, addr_to_bytes};
use super::nla::*;
use super::stats::{Stats, Stats32Attr, Stats64Attr};

/// One attribute of the `IPVS_CMD_ATTR_DEST` nest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestAttr {
    /// `IPVS_DEST_ATTR_ADDR`: `union nf_inet_addr`.
    Addr([u8; 16]),
    /// `IPVS_DEST_ATTR_PORT`: host order here, big-endian on the wire.
    Port(u16),
    /// `IPVS_DEST_ATTR_FWD_METHOD` (u32, `IP_VS_CONN_F_FWD_MASK` bits).
    FwdMethod(u32),
    /// `IPVS_DEST_ATTR_WEIGHT` (u32).
    Weight(u32),
    /// `IPVS_DEST_ATTR_U_THRESH` (u32).
    UThresh(u32),
    /// `IPVS_DEST_ATTR_L_THRESH` (u32).
    LThresh(u32),
    /// `IPVS_DEST_ATTR_ACTIVE_CONNS` (u32, read-only).
    ActiveConns(u32),
    /// `IPVS_DEST_ATTR_INACT_CONNS` (u32, read-only).
    InactConns(u32),
    /// `IPVS_DEST_ATTR_PERSIST_CONNS` (u32, read-only).
    PersistConns(u32),
    /// `IPVS_DEST_ATTR_STATS` nest.
    Stats(Vec<Stats32Attr>),
    /// `IPVS_DEST_ATTR_ADDR_FAMILY` (u16).
    AddrFamily(u16),
    /// `IPVS_DEST_ATTR_STATS64` nest.
    Stats64(Vec<Stats64Attr>),
    /// `IPVS_DEST_ATTR_TUN_TYPE` (u8).
    TunType(u8),
    /// `IPVS_DEST_ATTR_TUN_PORT`: host order here, big-endian on the wire.
    TunPort(u16),
    /// `IPVS_DEST_ATTR_TUN_FLAGS` (u16).
    TunFlags(u16),
    Other(DefaultNla),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        use DestAttr::*;
        match self {
            Addr(_) => 16,
            Port(_) | AddrFamily(_) | TunPort(_) | TunFlags(_) => 2,
            TunType(_) => 1,
            FwdMethod(_) | Weight(_) | UThresh(_) | LThresh(_) | ActiveConns(_) | InactConns(_)
            | PersistConns(_) => 4,
            Stats(v) => nested_len(v),
            Stats64(v) => nested_len(v),
            Other(nla) => nla.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use DestAttr::*;
        match self {
            Addr(_) => IPVS_DEST_ATTR_ADDR,
            Port(_) => IPVS_DEST_ATTR_PORT,
            FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            UThresh(_) => IPVS_DEST_ATTR_U_THRESH,
            LThresh(_) => IPVS_DEST_ATTR_L_THRESH,
            ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            InactConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            PersistConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            Stats(_) => IPVS_DEST_ATTR_STATS,
            AddrFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            Stats64(_) => IPVS_DEST_ATTR_STATS64,
            TunType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            TunPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            TunFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, b: &mut [u8]) {
        use DestAttr::*;
        match self {
            Addr(a) => b.copy_from_slice(a),
            Port(v) | TunPort(v) => b.copy_from_slice(&v.to_be_bytes()),
            AddrFamily(v) | TunFlags(v) => b.copy_from_slice(&v.to_ne_bytes()),
            TunType(v) => b[0] = *v,
            FwdMethod(v) | Weight(v) | UThresh(v) | LThresh(v) | ActiveConns(v) | InactConns(v)
            | PersistConns(v) => b.copy_from_slice(&v.to_ne_bytes()),
            Stats(v) => emit_nested(v, b),
            Stats64(v) => emit_nested(v, b),
            Other(nla) => nla.emit_value(b),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DestAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let p = buf.value();
        Ok(match buf.kind() & NLA_TYPE_MASK {
            IPVS_DEST_ATTR_ADDR => Self::Addr(inet_addr(p, "IPVS_DEST_ATTR_ADDR")?),
            IPVS_DEST_ATTR_PORT => Self::Port(u16_be(p, "IPVS_DEST_ATTR_PORT")?),
            IPVS_DEST_ATTR_FWD_METHOD => Self::FwdMethod(u32_ne(p, "IPVS_DEST_ATTR_FWD_METHOD")?),
            IPVS_DEST_ATTR_WEIGHT => Self::Weight(u32_ne(p, "IPVS_DEST_ATTR_WEIGHT")?),
            IPVS_DEST_ATTR_U_THRESH => Self::UThresh(u32_ne(p, "IPVS_DEST_ATTR_U_THRESH")?),
            IPVS_DEST_ATTR_L_THRESH => Self::LThresh(u32_ne(p, "IPVS_DEST_ATTR_L_THRESH")?),
            IPVS_DEST_ATTR_ACTIVE_CONNS => {
                Self::ActiveConns(u32_ne(p, "IPVS_DEST_ATTR_ACTIVE_CONNS")?)
            }
            IPVS_DEST_ATTR_INACT_CONNS => {
                Self::InactConns(u32_ne(p, "IPVS_DEST_ATTR_INACT_CONNS")?)
            }
            IPVS_DEST_ATTR_PERSIST_CONNS => {
                Self::PersistConns(u32_ne(p, "IPVS_DEST_ATTR_PERSIST_CONNS")?)
            }
            IPVS_DEST_ATTR_STATS => Self::Stats(parse_nlas(p, "IPVS_DEST_ATTR_STATS")?),
            IPVS_DEST_ATTR_ADDR_FAMILY => {
                Self::AddrFamily(u16_ne(p, "IPVS_DEST_ATTR_ADDR_FAMILY")?)
            }
            IPVS_DEST_ATTR_STATS64 => Self::Stats64(parse_nlas(p, "IPVS_DEST_ATTR_STATS64")?),
            IPVS_DEST_ATTR_TUN_TYPE => Self::TunType(u8_ne(p, "IPVS_DEST_ATTR_TUN_TYPE")?),
            IPVS_DEST_ATTR_TUN_PORT => Self::TunPort(u16_be(p, "IPVS_DEST_ATTR_TUN_PORT")?),
            IPVS_DEST_ATTR_TUN_FLAGS => Self::TunFlags(u16_ne(p, "IPVS_DEST_ATTR_TUN_FLAGS")?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Typed model
// ---------------------------------------------------------------------------------------

/// Packet forwarding method (`IP_VS_CONN_F_*` under `IP_VS_CONN_F_FWD_MASK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// NAT (`-m`, `IP_VS_CONN_F_MASQ`).
    Masq,
    /// Local node (`IP_VS_CONN_F_LOCALNODE`).
    Local,
    /// IP-in-IP / GUE / GRE tunnel (`-i`, `IP_VS_CONN_F_TUNNEL`).
    Tunnel,
    /// Direct routing (`-g`, `IP_VS_CONN_F_DROUTE`).
    Route,
}

impl Forward {
    pub fn to_conn_flags(self) -> u32 {
        match self {
            Forward::Masq => IP_VS_CONN_F_MASQ,
            Forward::Local => IP_VS_CONN_F_LOCALNODE,
            Forward::Tunnel => IP_VS_CONN_F_TUNNEL,
            Forward::Route => IP_VS_CONN_F_DROUTE,
        }
    }
    pub fn from_conn_flags(flags: u32) -> Result<Self, DecodeError> {
        match flags & IP_VS_CONN_F_FWD_MASK {
            IP_VS_CONN_F_MASQ => Ok(Forward::Masq),
            IP_VS_CONN_F_LOCALNODE => Ok(Forward::Local),
            IP_VS_CONN_F_TUNNEL => Ok(Forward::Tunnel),
            IP_VS_CONN_F_DROUTE => Ok(Forward::Route),
            other => Err(DecodeError::from(format!(
                "unknown forwarding method {other}"
            ))),
        }
    }
    /// The name ipvsadm prints in the Forward column.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Forward::Masq => "Masq",
            Forward::Local => "Local",
            Forward::Tunnel => "Tunnel",
            Forward::Route => "Route",
        }
    }
}

/// Tunnel encapsulation (`IP_VS_CONN_F_TUNNEL_TYPE_*`), meaningful with [`Forward::Tunnel`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunnelType {
    pub fn to_u8(self) -> u8 {
        match self {
            TunnelType::Ipip => IP_VS_CONN_F_TUNNEL_TYPE_IPIP,
            TunnelType::Gue => IP_VS_CONN_F_TUNNEL_TYPE_GUE,
            TunnelType::Gre => IP_VS_CONN_F_TUNNEL_TYPE_GRE,
        }
    }
    pub fn from_u8(v: u8) -> Result<Self, DecodeError> {
        match v {
            IP_VS_CONN_F_TUNNEL_TYPE_IPIP => Ok(TunnelType::Ipip),
            IP_VS_CONN_F_TUNNEL_TYPE_GUE => Ok(TunnelType::Gue),
            IP_VS_CONN_F_TUNNEL_TYPE_GRE => Ok(TunnelType::Gre),
            other => Err(DecodeError::from(format!("unknown tunnel type {other}"))),
        }
    }
}

/// Tunnel options (kernel ≥ 5.2); defaults are plain IPIP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tunnel {
    pub kind: TunnelType,
    /// GUE destination port.
    pub port: u16,
    /// `IP_VS_TUNNEL_ENCAP_FLAG_*`.
    pub flags: u16,
}

/// A real server of a virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: Forward,
    /// 0 = quiesced: no new connections, existing ones are kept.
    pub weight: u32,
    /// Upper connection threshold (0 = none).
    pub u_thresh: u32,
    /// Lower connection threshold (0 = none).
    pub l_thresh: u32,
    /// Only sent when `fwd` is [`Forward::Tunnel`].
    pub tunnel: Tunnel,
    /// Observed counters (read from the kernel; ignored when sending and diffing).
    pub active_conns: u32,
    pub inact_conns: u32,
    pub persist_conns: u32,
    /// Boxed: 8 bytes where there are none (every destination the director
    /// wants, and its record of the kernel's table) instead of 88; 0.8 MB at
    /// 10,000 destinations per copy of the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<Box<Stats>>,
}

impl Destination {
    pub fn new(addr: SocketAddr, fwd: Forward, weight: u32) -> Self {
        Destination {
            addr: addr.ip(),
            port: addr.port(),
            fwd,
            weight,
            u_thresh: 0,
            l_thresh: 0,
            tunnel: Tunnel::default(),
            active_conns: 0,
            inact_conns: 0,
            persist_conns: 0,
            stats: None,
        }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    /// Identifying attributes (`ADDR`, `PORT`, `ADDR_FAMILY`), enough for `DEL_DEST`.
    pub fn id_attrs(addr: SocketAddr) -> Vec<DestAttr> {
        vec![
            DestAttr::Addr(addr_to_bytes(&addr.ip())),
            DestAttr::Port(addr.port()),
            DestAttr::AddrFamily(Family::of(&addr.ip()).to_af()),
        ]
    }

    /// Full attribute set for `NEW_DEST`/`SET_DEST`: identity, FWD_METHOD, WEIGHT, both
    /// thresholds, and the tunnel options for tunnelled destinations.
    pub fn to_attrs(&self) -> Vec<DestAttr> {
        let mut v = Self::id_attrs(self.socket_addr());
        v.push(DestAttr::FwdMethod(self.fwd.to_conn_flags()));
        v.push(DestAttr::Weight(self.weight));
        v.push(DestAttr::UThresh(self.u_thresh));
        v.push(DestAttr::LThresh(self.l_thresh));
        if self.fwd == Forward::Tunnel {
            v.push(DestAttr::TunType(self.tunnel.kind.to_u8()));
            v.push(DestAttr::TunPort(self.tunnel.port));
            v.push(DestAttr::TunFlags(self.tunnel.flags));
        }
        v
    }

    /// Build the model from a destination nest; `service_family` is used when the
    /// kernel is too old to send `IPVS_DEST_ATTR_ADDR_FAMILY`.
    pub fn from_attrs(attrs: &[DestAttr], service_family: Family) -> Result<Self, DecodeError> {
        let (mut addr, mut port, mut fwd, mut af) = (None, None, None, None);
        let mut d = Destination::new(SocketAddr::from(([0, 0, 0, 0], 0)), Forward::Masq, 0);
        let (mut stats32, mut stats64) = (None, None);
        for a in attrs {
            match a {
                DestAttr::Addr(v) => addr = Some(*v),
                DestAttr::Port(v) => port = Some(*v),
                DestAttr::FwdMethod(v) => fwd = Some(Forward::from_conn_flags(*v)?),
                DestAttr::Weight(v) => d.weight = *v,
                DestAttr::UThresh(v) => d.u_thresh = *v,
                DestAttr::LThresh(v) => d.l_thresh = *v,
                DestAttr::ActiveConns(v) => d.active_conns = *v,
                DestAttr::InactConns(v) => d.inact_conns = *v,
                DestAttr::PersistConns(v) => d.persist_conns = *v,
                DestAttr::AddrFamily(v) => af = Some(Family::from_af(*v)?),
                DestAttr::TunType(v) => d.tunnel.kind = TunnelType::from_u8(*v)?,
                DestAttr::TunPort(v) => d.tunnel.port = *v,
                DestAttr::TunFlags(v) => d.tunnel.flags = *v,
                DestAttr::Stats(s) => stats32 = Some(Stats::from_attrs(s)),
                DestAttr::Stats64(s) => stats64 = Some(Stats::from_attrs(s)),
                DestAttr::Other(_) => {}
            }
        }
        let family = af.unwrap_or(service_family);
        d.addr = addr_from_bytes(
            family,
            &addr.ok_or("destination without IPVS_DEST_ATTR_ADDR")?,
        );
        d.port = port.ok_or("destination without IPVS_DEST_ATTR_PORT")?;
        d.fwd = fwd.ok_or("destination without IPVS_DEST_ATTR_FWD_METHOD")?;
        d.stats = stats64.or(stats32).map(Box::new);
        Ok(d)
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.socket_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination without counters (each one the director wants, and
    /// its record of the kernel's table: 10,000 of each at 1,000 × 10)
    /// takes 64 bytes, not 144: the counters are boxed when read.
    #[test]
    fn a_destination_without_counters_is_small() {
        let size = std::mem::size_of::<Destination>();
        assert!(size <= 64, "a destination is {size} bytes");
        let mut d = Destination::new(SocketAddr::from(([10, 0, 0, 1], 80)), Forward::Route, 1);
        d.stats = Some(Box::new(Stats {
            conns: 7,
            ..Stats::default()
        }));
        let json = serde_json::to_string(&d).expect("json");
        assert!(json.contains(r#""stats":{"conns":7"#), "{json}");
        assert_eq!(serde_json::from_str::<Destination>(&json).expect("back"), d);
    }
}
