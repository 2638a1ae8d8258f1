//! Connection-synchronisation daemon: the `IPVS_CMD_ATTR_DAEMON` nest
//! (`IPVS_DAEMON_ATTR_*`) and the typed [`SyncDaemon`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{DecodeError, DefaultNla, NLA_TYPE_MASK, Nla, NlaBuffer, Parseable};
use serde::Serialize;

use super::constants::*;
use super::nla::*;

/// One attribute of the `IPVS_CMD_ATTR_DAEMON` nest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAttr {
    /// `IPVS_DAEMON_ATTR_STATE` (u32): `IP_VS_STATE_MASTER`/`BACKUP`.
    State(u32),
    /// `IPVS_DAEMON_ATTR_MCAST_IFN`: interface name, NUL-terminated.
    McastIfn(String),
    /// `IPVS_DAEMON_ATTR_SYNC_ID` (u32).
    SyncId(u32),
    /// `IPVS_DAEMON_ATTR_SYNC_MAXLEN` (u16): UDP payload size.
    SyncMaxlen(u16),
    /// `IPVS_DAEMON_ATTR_MCAST_GROUP`: `struct in_addr`.
    McastGroup(Ipv4Addr),
    /// `IPVS_DAEMON_ATTR_MCAST_GROUP6`: `struct in6_addr`.
    McastGroup6(Ipv6Addr),
    /// `IPVS_DAEMON_ATTR_MCAST_PORT` (u16, host order: `nla_get_u16`).
    McastPort(u16),
    /// `IPVS_DAEMON_ATTR_MCAST_TTL` (u8).
    McastTtl(u8),
    Other(DefaultNla),
}

impl Nla for DaemonAttr {
    fn value_len(&self) -> usize {
        use DaemonAttr::*;
        match self {
            State(_) | SyncId(_) | McastGroup(_) => 4,
            McastIfn(s) => cstring_len(s),
            SyncMaxlen(_) | McastPort(_) => 2,
            McastGroup6(_) => 16,
            McastTtl(_) => 1,
            Other(nla) => nla.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use DaemonAttr::*;
        match self {
            State(_) => IPVS_DAEMON_ATTR_STATE,
            McastIfn(_) => IPVS_DAEMON_ATTR_MCAST_IFN,
            SyncId(_) => IPVS_DAEMON_ATTR_SYNC_ID,
            SyncMaxlen(_) => IPVS_DAEMON_ATTR_SYNC_MAXLEN,
            McastGroup(_) => IPVS_DAEMON_ATTR_MCAST_GROUP,
            McastGroup6(_) => IPVS_DAEMON_ATTR_MCAST_GROUP6,
            McastPort(_) => IPVS_DAEMON_ATTR_MCAST_PORT,
            McastTtl(_) => IPVS_DAEMON_ATTR_MCAST_TTL,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, b: &mut [u8]) {
        use DaemonAttr::*;
        match self {
            State(v) | SyncId(v) => b.copy_from_slice(&v.to_ne_bytes()),
            McastIfn(s) => emit_cstring(s, b),
            SyncMaxlen(v) | McastPort(v) => b.copy_from_slice(&v.to_ne_bytes()),
            McastGroup(a) => b.copy_from_slice(&a.octets()),
            McastGroup6(a) => b.copy_from_slice(&a.octets()),
            McastTtl(v) => b[0] = *v,
            Other(nla) => nla.emit_value(b),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DaemonAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let p = buf.value();
        Ok(match buf.kind() & NLA_TYPE_MASK {
            IPVS_DAEMON_ATTR_STATE => Self::State(u32_ne(p, "IPVS_DAEMON_ATTR_STATE")?),
            IPVS_DAEMON_ATTR_MCAST_IFN => Self::McastIfn(cstring(p, "IPVS_DAEMON_ATTR_MCAST_IFN")?),
            IPVS_DAEMON_ATTR_SYNC_ID => Self::SyncId(u32_ne(p, "IPVS_DAEMON_ATTR_SYNC_ID")?),
            IPVS_DAEMON_ATTR_SYNC_MAXLEN => {
                Self::SyncMaxlen(u16_ne(p, "IPVS_DAEMON_ATTR_SYNC_MAXLEN")?)
            }
            IPVS_DAEMON_ATTR_MCAST_GROUP => {
                let b: [u8; 4] = p.try_into().map_err(|_| {
                    DecodeError::from("IPVS_DAEMON_ATTR_MCAST_GROUP: expected 4 bytes")
                })?;
                Self::McastGroup(Ipv4Addr::from(b))
            }
            IPVS_DAEMON_ATTR_MCAST_GROUP6 => {
                let b: [u8; 16] = p.try_into().map_err(|_| {
                    DecodeError::from("IPVS_DAEMON_ATTR_MCAST_GROUP6: expected 16 bytes")
                })?;
                Self::McastGroup6(Ipv6Addr::from(b))
            }
            IPVS_DAEMON_ATTR_MCAST_PORT => {
                Self::McastPort(u16_ne(p, "IPVS_DAEMON_ATTR_MCAST_PORT")?)
            }
            IPVS_DAEMON_ATTR_MCAST_TTL => Self::McastTtl(u8_ne(p, "IPVS_DAEMON_ATTR_MCAST_TTL")?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// Role of a sync daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DaemonState {
    Master,
    Backup,
}

impl DaemonState {
    pub fn to_u32(self) -> u32 {
        match self {
            DaemonState::Master => IP_VS_STATE_MASTER,
            DaemonState::Backup => IP_VS_STATE_BACKUP,
        }
    }
    pub fn from_u32(v: u32) -> Result<Self, DecodeError> {
        match v {
            IP_VS_STATE_MASTER => Ok(DaemonState::Master),
            IP_VS_STATE_BACKUP => Ok(DaemonState::Backup),
            other => Err(DecodeError::from(format!(
                "unknown sync daemon state {other}"
            ))),
        }
    }
}

/// An IPVS connection-sync daemon (`ipvsadm --start-daemon`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncDaemon {
    pub state: DaemonState,
    /// Multicast interface (`--mcast-interface`).
    pub mcast_ifn: String,
    pub sync_id: u32,
    /// UDP payload size (`--sync-maxlen`); kernel default when `None`.
    pub sync_maxlen: Option<u16>,
    /// Multicast group (`--mcast-group`); kernel default 224.0.0.81 when `None`.
    pub mcast_group: Option<IpAddr>,
    /// Multicast port (`--mcast-port`); kernel default 8848 when `None`.
    pub mcast_port: Option<u16>,
    /// Multicast TTL (`--mcast-ttl`); kernel default 1 when `None`.
    pub mcast_ttl: Option<u8>,
}

impl SyncDaemon {
    pub fn new(state: DaemonState, mcast_ifn: impl Into<String>, sync_id: u32) -> Self {
        SyncDaemon {
            state,
            mcast_ifn: mcast_ifn.into(),
            sync_id,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        }
    }

    /// Attributes for `IPVS_CMD_NEW_DAEMON`.
    pub fn to_attrs(&self) -> Vec<DaemonAttr> {
        let mut v = vec![
            DaemonAttr::State(self.state.to_u32()),
            DaemonAttr::McastIfn(self.mcast_ifn.clone()),
            DaemonAttr::SyncId(self.sync_id),
        ];
        if let Some(m) = self.sync_maxlen {
            v.push(DaemonAttr::SyncMaxlen(m));
        }
        match self.mcast_group {
            Some(IpAddr::V4(a)) => v.push(DaemonAttr::McastGroup(a)),
            Some(IpAddr::V6(a)) => v.push(DaemonAttr::McastGroup6(a)),
            None => {}
        }
        if let Some(p) = self.mcast_port {
            v.push(DaemonAttr::McastPort(p));
        }
        if let Some(t) = self.mcast_ttl {
            v.push(DaemonAttr::McastTtl(t));
        }
        v
    }

    pub fn from_attrs(attrs: &[DaemonAttr]) -> Result<Self, DecodeError> {
        let mut state = None;
        let mut d = SyncDaemon::new(DaemonState::Master, String::new(), 0);
        for a in attrs {
            match a {
                DaemonAttr::State(v) => state = Some(DaemonState::from_u32(*v)?),
                DaemonAttr::McastIfn(s) => d.mcast_ifn = s.clone(),
                DaemonAttr::SyncId(v) => d.sync_id = *v,
                DaemonAttr::SyncMaxlen(v) => d.sync_maxlen = Some(*v),
                DaemonAttr::McastGroup(a) => d.mcast_group = Some(IpAddr::V4(*a)),
                DaemonAttr::McastGroup6(a) => d.mcast_group = Some(IpAddr::V6(*a)),
                DaemonAttr::McastPort(v) => d.mcast_port = Some(*v),
                DaemonAttr::McastTtl(v) => d.mcast_ttl = Some(*v),
                DaemonAttr::Other(_) => {}
            }
        }
        d.state = state.ok_or("sync daemon without IPVS_DAEMON_ATTR_STATE")?;
        Ok(d)
    }
}
