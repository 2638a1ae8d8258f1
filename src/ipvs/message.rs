//! The IPVS generic-netlink message: a command plus top-level attributes.
//!
//! ```text
//!  nlmsghdr | genlmsghdr {cmd, version=1} | IPVS_CMD_ATTR_* ...
//!                                            SERVICE 1 -> nest of IPVS_SVC_ATTR_*
//!                                            DEST    2 -> nest of IPVS_DEST_ATTR_*
//!                                            DAEMON  3 -> nest of IPVS_DAEMON_ATTR_*
//!                                            TIMEOUT_TCP/TCP_FIN/UDP 4/5/6 -> u32
//! ```
//! The reply to `IPVS_CMD_GET_INFO` is an `IPVS_CMD_SET_INFO` message whose top-level
//! attributes are `IPVS_INFO_ATTR_VERSION` (1) and `IPVS_INFO_ATTR_CONN_TAB_SIZE` (2):
//! the numbers collide with SERVICE/DEST, so top-level attributes are parsed by command.

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, ErrorContext, NLA_TYPE_MASK, Nla, NlaBuffer, NlasIterator,
    Parseable, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use super::constants::*;
use super::daemon::DaemonAttr;
use super::dest::DestAttr;
use super::nla::*;
use super::service::ServiceAttr;

/// `IPVS_CMD_*`.
/// Connection timeouts in seconds (`ipvsadm --set tcp tcpfin udp`). When setting,
/// 0 leaves that value unchanged (kernel semantics of `ip_vs_set_timeout`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpvsCmd {
    NewService,
    SetService,
    DelService,
    GetService,
    NewDest,
    SetDest,
    DelDest,
    GetDest,
    NewDaemon,
    DelDaemon,
    GetDaemon,
    SetConfig,
    GetConfig,
    SetInfo,
    GetInfo,
    Zero,
    Flush,
    Other(u8),
}

impl From<IpvsCmd> for u8 {
    fn from(c: IpvsCmd) -> u8 {
        use IpvsCmd::*;
        match c {
            NewService => IPVS_CMD_NEW_SERVICE,
            SetService => IPVS_CMD_SET_SERVICE,
            DelService => IPVS_CMD_DEL_SERVICE,
            GetService => IPVS_CMD_GET_SERVICE,
            NewDest => IPVS_CMD_NEW_DEST,
            SetDest => IPVS_CMD_SET_DEST,
            DelDest => IPVS_CMD_DEL_DEST,
            GetDest => IPVS_CMD_GET_DEST,
            NewDaemon => IPVS_CMD_NEW_DAEMON,
            DelDaemon => IPVS_CMD_DEL_DAEMON,
            GetDaemon => IPVS_CMD_GET_DAEMON,
            SetConfig => IPVS_CMD_SET_CONFIG,
            GetConfig => IPVS_CMD_GET_CONFIG,
            SetInfo => IPVS_CMD_SET_INFO,
            GetInfo => IPVS_CMD_GET_INFO,
            Zero => IPVS_CMD_ZERO,
            Flush => IPVS_CMD_FLUSH,
            Other(v) => v,
        }
    }
}

impl From<u8> for IpvsCmd {
    fn from(v: u8) -> IpvsCmd {
        use IpvsCmd::*;
        match v {
            IPVS_CMD_NEW_SERVICE => NewService,
            IPVS_CMD_SET_SERVICE => SetService,
            IPVS_CMD_DEL_SERVICE => DelService,
            IPVS_CMD_GET_SERVICE => GetService,
            IPVS_CMD_NEW_DEST => NewDest,
            IPVS_CMD_SET_DEST => SetDest,
            IPVS_CMD_DEL_DEST => DelDest,
            IPVS_CMD_GET_DEST => GetDest,
            IPVS_CMD_NEW_DAEMON => NewDaemon,
            IPVS_CMD_DEL_DAEMON => DelDaemon,
            IPVS_CMD_GET_DAEMON => GetDaemon,
            IPVS_CMD_SET_CONFIG => SetConfig,
            IPVS_CMD_GET_CONFIG => GetConfig,
            IPVS_CMD_SET_INFO => SetInfo,
            IPVS_CMD_GET_INFO => GetInfo,
            IPVS_CMD_ZERO => Zero,
            IPVS_CMD_FLUSH => Flush,
            other => Other(other),
        }
    }
}

/// A top-level attribute (`IPVS_CMD_ATTR_*`, or `IPVS_INFO_ATTR_*` in a SET_INFO reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpvsAttr {
    /// `IPVS_CMD_ATTR_SERVICE` nest.
    Service(Vec<ServiceAttr>),
    /// `IPVS_CMD_ATTR_DEST` nest.
    Dest(Vec<DestAttr>),
    /// `IPVS_CMD_ATTR_DAEMON` nest.
    Daemon(Vec<DaemonAttr>),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP` (u32 seconds).
    TimeoutTcp(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP_FIN` (u32 seconds).
    TimeoutTcpFin(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_UDP` (u32 seconds).
    TimeoutUdp(u32),
    /// `IPVS_INFO_ATTR_VERSION` (u32, e.g. 0x010201) — only in `IPVS_CMD_SET_INFO`.
    InfoVersion(u32),
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE` (u32) — only in `IPVS_CMD_SET_INFO`.
    InfoConnTabSize(u32),
    Other(DefaultNla),
}

impl Nla for IpvsAttr {
    fn value_len(&self) -> usize {
        use IpvsAttr::*;
        match self {
            Service(v) => nested_len(v),
            Dest(v) => nested_len(v),
            Daemon(v) => nested_len(v),
            TimeoutTcp(_) | TimeoutTcpFin(_) | TimeoutUdp(_) | InfoVersion(_)
            | InfoConnTabSize(_) => 4,
            Other(nla) => nla.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use IpvsAttr::*;
        match self {
            Service(_) => IPVS_CMD_ATTR_SERVICE,
            Dest(_) => IPVS_CMD_ATTR_DEST,
            Daemon(_) => IPVS_CMD_ATTR_DAEMON,
            TimeoutTcp(_) => IPVS_CMD_ATTR_TIMEOUT_TCP,
            TimeoutTcpFin(_) => IPVS_CMD_ATTR_TIMEOUT_TCP_FIN,
            TimeoutUdp(_) => IPVS_CMD_ATTR_TIMEOUT_UDP,
            InfoVersion(_) => IPVS_INFO_ATTR_VERSION,
            InfoConnTabSize(_) => IPVS_INFO_ATTR_CONN_TAB_SIZE,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, b: &mut [u8]) {
        use IpvsAttr::*;
        match self {
            Service(v) => emit_nested(v, b),
            Dest(v) => emit_nested(v, b),
            Daemon(v) => emit_nested(v, b),
            TimeoutTcp(v) | TimeoutTcpFin(v) | TimeoutUdp(v) | InfoVersion(v)
            | InfoConnTabSize(v) => b.copy_from_slice(&v.to_ne_bytes()),
            Other(nla) => nla.emit_value(b),
        }
    }
}

impl IpvsAttr {
    /// Parse one top-level attribute of a message with command `cmd`.
    pub fn parse_for(cmd: IpvsCmd, buf: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        let p = buf.value();
        let kind = buf.kind() & NLA_TYPE_MASK;
        if cmd == IpvsCmd::SetInfo {
            return Ok(match kind {
                IPVS_INFO_ATTR_VERSION => Self::InfoVersion(u32_ne(p, "IPVS_INFO_ATTR_VERSION")?),
                IPVS_INFO_ATTR_CONN_TAB_SIZE => {
                    Self::InfoConnTabSize(u32_ne(p, "IPVS_INFO_ATTR_CONN_TAB_SIZE")?)
                }
                _ => Self::Other(DefaultNla::parse(buf)?),
            });
        }
        Ok(match kind {
            IPVS_CMD_ATTR_SERVICE => Self::Service(parse_nlas(p, "IPVS_CMD_ATTR_SERVICE")?),
            IPVS_CMD_ATTR_DEST => Self::Dest(parse_nlas(p, "IPVS_CMD_ATTR_DEST")?),
            IPVS_CMD_ATTR_DAEMON => Self::Daemon(parse_nlas(p, "IPVS_CMD_ATTR_DAEMON")?),
            IPVS_CMD_ATTR_TIMEOUT_TCP => Self::TimeoutTcp(u32_ne(p, "IPVS_CMD_ATTR_TIMEOUT_TCP")?),
            IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => {
                Self::TimeoutTcpFin(u32_ne(p, "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN")?)
            }
            IPVS_CMD_ATTR_TIMEOUT_UDP => Self::TimeoutUdp(u32_ne(p, "IPVS_CMD_ATTR_TIMEOUT_UDP")?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// An IPVS generic-netlink message (the part after `struct genlmsghdr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    pub cmd: IpvsCmd,
    pub attrs: Vec<IpvsAttr>,
}

impl IpvsMessage {
    pub fn new(cmd: IpvsCmd, attrs: Vec<IpvsAttr>) -> Self {
        IpvsMessage { cmd, attrs }
    }

    /// The first service nest, if any.
    pub fn service(&self) -> Option<&[ServiceAttr]> {
        self.attrs.iter().find_map(|a| match a {
            IpvsAttr::Service(v) => Some(v.as_slice()),
            _ => None,
        })
    }
    /// The first destination nest, if any.
    pub fn dest(&self) -> Option<&[DestAttr]> {
        self.attrs.iter().find_map(|a| match a {
            IpvsAttr::Dest(v) => Some(v.as_slice()),
            _ => None,
        })
    }
    /// The first daemon nest, if any.
    pub fn daemon(&self) -> Option<&[DaemonAttr]> {
        self.attrs.iter().find_map(|a| match a {
            IpvsAttr::Daemon(v) => Some(v.as_slice()),
            _ => None,
        })
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }
    fn command(&self) -> u8 {
        self.cmd.into()
    }
    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let cmd = IpvsCmd::from(header.cmd);
        let mut attrs = Vec::new();
        for nla in NlasIterator::new(buf) {
            let nla = nla.with_context(|| format!("invalid attribute in IPVS {cmd:?} message"))?;
            attrs.push(
                IpvsAttr::parse_for(cmd, &nla)
                    .with_context(|| format!("invalid attribute in IPVS {cmd:?} message"))?,
            );
        }
        Ok(IpvsMessage { cmd, attrs })
    }
}

/// Request builders: exactly what [`super::IpvsClient`] sends for each operation.
impl IpvsMessage {
    /// `IPVS_CMD_NEW_SERVICE` with the full service attribute set.
    pub fn new_service(svc: &super::Service) -> Self {
        Self::new(IpvsCmd::NewService, vec![IpvsAttr::Service(svc.to_attrs())])
    }
    /// `IPVS_CMD_SET_SERVICE` with the full service attribute set.
    pub fn set_service(svc: &super::Service) -> Self {
        Self::new(IpvsCmd::SetService, vec![IpvsAttr::Service(svc.to_attrs())])
    }
    /// `IPVS_CMD_DEL_SERVICE` with the identifying attributes.
    pub fn del_service(id: &super::ServiceId) -> Self {
        Self::new(IpvsCmd::DelService, vec![IpvsAttr::Service(id.to_attrs())])
    }
    /// `IPVS_CMD_GET_SERVICE`: a dump of all services (send with `NLM_F_DUMP`) when
    /// `id` is `None`, else one service.
    pub fn get_service(id: Option<&super::ServiceId>) -> Self {
        let attrs = id
            .map(|id| vec![IpvsAttr::Service(id.to_attrs())])
            .unwrap_or_default();
        Self::new(IpvsCmd::GetService, attrs)
    }
    /// `IPVS_CMD_NEW_DEST`: service identity + full destination.
    pub fn new_dest(id: &super::ServiceId, d: &super::Destination) -> Self {
        Self::new(
            IpvsCmd::NewDest,
            vec![
                IpvsAttr::Service(id.to_attrs()),
                IpvsAttr::Dest(d.to_attrs()),
            ],
        )
    }
    /// `IPVS_CMD_SET_DEST`: service identity + full destination.
    pub fn set_dest(id: &super::ServiceId, d: &super::Destination) -> Self {
        Self::new(
            IpvsCmd::SetDest,
            vec![
                IpvsAttr::Service(id.to_attrs()),
                IpvsAttr::Dest(d.to_attrs()),
            ],
        )
    }
    /// `IPVS_CMD_DEL_DEST`: service identity + destination identity.
    pub fn del_dest(id: &super::ServiceId, dest: std::net::SocketAddr) -> Self {
        Self::new(
            IpvsCmd::DelDest,
            vec![
                IpvsAttr::Service(id.to_attrs()),
                IpvsAttr::Dest(super::Destination::id_attrs(dest)),
            ],
        )
    }
    /// `IPVS_CMD_GET_DEST` (dump only) for one service.
    pub fn get_dest(id: &super::ServiceId) -> Self {
        Self::new(IpvsCmd::GetDest, vec![IpvsAttr::Service(id.to_attrs())])
    }
    /// `IPVS_CMD_NEW_DAEMON`.
    pub fn new_daemon(d: &super::SyncDaemon) -> Self {
        Self::new(IpvsCmd::NewDaemon, vec![IpvsAttr::Daemon(d.to_attrs())])
    }
    /// `IPVS_CMD_DEL_DAEMON`: only the state is needed.
    pub fn del_daemon(state: super::DaemonState) -> Self {
        Self::new(
            IpvsCmd::DelDaemon,
            vec![IpvsAttr::Daemon(vec![DaemonAttr::State(state.to_u32())])],
        )
    }
    /// `IPVS_CMD_GET_DAEMON` (dump only).
    pub fn get_daemon() -> Self {
        Self::new(IpvsCmd::GetDaemon, vec![])
    }
    /// `IPVS_CMD_SET_CONFIG`: zero timeouts are left out (and so left unchanged).
    pub fn set_config(t: &Timeouts) -> Self {
        let mut attrs = Vec::new();
        if t.tcp != 0 {
            attrs.push(IpvsAttr::TimeoutTcp(t.tcp));
        }
        if t.tcp_fin != 0 {
            attrs.push(IpvsAttr::TimeoutTcpFin(t.tcp_fin));
        }
        if t.udp != 0 {
            attrs.push(IpvsAttr::TimeoutUdp(t.udp));
        }
        Self::new(IpvsCmd::SetConfig, attrs)
    }
    /// `IPVS_CMD_GET_CONFIG` (reply: `IPVS_CMD_SET_CONFIG`).
    pub fn get_config() -> Self {
        Self::new(IpvsCmd::GetConfig, vec![])
    }
    /// `IPVS_CMD_GET_INFO` (reply: `IPVS_CMD_SET_INFO`).
    pub fn get_info() -> Self {
        Self::new(IpvsCmd::GetInfo, vec![])
    }
    /// `IPVS_CMD_ZERO` for one service or, with `None`, for everything.
    pub fn zero(id: Option<&super::ServiceId>) -> Self {
        let attrs = id
            .map(|id| vec![IpvsAttr::Service(id.to_attrs())])
            .unwrap_or_default();
        Self::new(IpvsCmd::Zero, attrs)
    }
    /// `IPVS_CMD_FLUSH`.
    pub fn flush() -> Self {
        Self::new(IpvsCmd::Flush, vec![])
    }
}
