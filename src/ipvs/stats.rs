//! Statistics nests: `IPVS_SVC_ATTR_STATS`/`IPVS_DEST_ATTR_STATS` (32-bit layout) and
//! `IPVS_SVC_ATTR_STATS64`/`IPVS_DEST_ATTR_STATS64` (64-bit layout).
//!
//! `ip_vs_ctl.c` `ip_vs_genl_fill_stats()` sends CONNS/INPKTS/OUTPKTS and the five rates
//! as u32 and INBYTES/OUTBYTES as u64; `ip_vs_genl_fill_stats64()` sends all ten as u64.
//! Kernels may add `IPVS_STATS_ATTR_PAD` before a u64 on architectures that need it.

use netlink_packet_core::{DecodeError, DefaultNla, NLA_TYPE_MASK, Nla, NlaBuffer, Parseable};
use serde::{Deserialize, Serialize};

use super::constants::*;
use super::nla::counter;

/// One attribute of a statistics nest. `WIDE = false` is the `*_ATTR_STATS` layout,
/// `WIDE = true` the `*_ATTR_STATS64` one; values are always held as u64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsAttr<const WIDE: bool> {
    Conns(u64),
    InPkts(u64),
    OutPkts(u64),
    InBytes(u64),
    OutBytes(u64),
    Cps(u64),
    InPps(u64),
    OutPps(u64),
    InBps(u64),
    OutBps(u64),
    Other(DefaultNla),
}

/// Attribute of `IPVS_*_ATTR_STATS` (32-bit counters, 64-bit byte counts).
pub type Stats32Attr = StatsAttr<false>;
/// Attribute of `IPVS_*_ATTR_STATS64` (all 64-bit).
pub type Stats64Attr = StatsAttr<true>;

impl<const WIDE: bool> StatsAttr<WIDE> {
    fn value(&self) -> Option<u64> {
        use StatsAttr::*;
        match self {
            Conns(v) | InPkts(v) | OutPkts(v) | InBytes(v) | OutBytes(v) | Cps(v) | InPps(v)
            | OutPps(v) | InBps(v) | OutBps(v) => Some(*v),
            Other(_) => None,
        }
    }
    fn is_u64(&self) -> bool {
        WIDE || matches!(self, StatsAttr::InBytes(_) | StatsAttr::OutBytes(_))
    }
}

impl<const WIDE: bool> Nla for StatsAttr<WIDE> {
    fn value_len(&self) -> usize {
        match self {
            StatsAttr::Other(nla) => nla.value_len(),
            _ if self.is_u64() => 8,
            _ => 4,
        }
    }
    fn kind(&self) -> u16 {
        use StatsAttr::*;
        match self {
            Conns(_) => IPVS_STATS_ATTR_CONNS,
            InPkts(_) => IPVS_STATS_ATTR_INPKTS,
            OutPkts(_) => IPVS_STATS_ATTR_OUTPKTS,
            InBytes(_) => IPVS_STATS_ATTR_INBYTES,
            OutBytes(_) => IPVS_STATS_ATTR_OUTBYTES,
            Cps(_) => IPVS_STATS_ATTR_CPS,
            InPps(_) => IPVS_STATS_ATTR_INPPS,
            OutPps(_) => IPVS_STATS_ATTR_OUTPPS,
            InBps(_) => IPVS_STATS_ATTR_INBPS,
            OutBps(_) => IPVS_STATS_ATTR_OUTBPS,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        match (self, self.value()) {
            (StatsAttr::Other(nla), _) => nla.emit_value(buffer),
            (_, Some(v)) if self.is_u64() => buffer.copy_from_slice(&v.to_ne_bytes()),
            // 32-bit layout: the kernel truncates with a cast, so do we.
            (_, Some(v)) => buffer.copy_from_slice(&(v as u32).to_ne_bytes()),
            (_, None) => {}
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized, const WIDE: bool> Parseable<NlaBuffer<&'a T>>
    for StatsAttr<WIDE>
{
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let p = buf.value();
        Ok(match buf.kind() & NLA_TYPE_MASK {
            IPVS_STATS_ATTR_CONNS => Self::Conns(counter(p, "IPVS_STATS_ATTR_CONNS")?),
            IPVS_STATS_ATTR_INPKTS => Self::InPkts(counter(p, "IPVS_STATS_ATTR_INPKTS")?),
            IPVS_STATS_ATTR_OUTPKTS => Self::OutPkts(counter(p, "IPVS_STATS_ATTR_OUTPKTS")?),
            IPVS_STATS_ATTR_INBYTES => Self::InBytes(counter(p, "IPVS_STATS_ATTR_INBYTES")?),
            IPVS_STATS_ATTR_OUTBYTES => Self::OutBytes(counter(p, "IPVS_STATS_ATTR_OUTBYTES")?),
            IPVS_STATS_ATTR_CPS => Self::Cps(counter(p, "IPVS_STATS_ATTR_CPS")?),
            IPVS_STATS_ATTR_INPPS => Self::InPps(counter(p, "IPVS_STATS_ATTR_INPPS")?),
            IPVS_STATS_ATTR_OUTPPS => Self::OutPps(counter(p, "IPVS_STATS_ATTR_OUTPPS")?),
            IPVS_STATS_ATTR_INBPS => Self::InBps(counter(p, "IPVS_STATS_ATTR_INBPS")?),
            IPVS_STATS_ATTR_OUTBPS => Self::OutBps(counter(p, "IPVS_STATS_ATTR_OUTBPS")?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// Traffic counters of a service or destination (`struct ip_vs_kstats` as exported).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    pub in_bps: u64,
    pub out_bps: u64,
}

impl Stats {
    /// Collect the counters of one nest (unknown attributes are skipped).
    pub fn from_attrs<const WIDE: bool>(attrs: &[StatsAttr<WIDE>]) -> Self {
        let mut s = Stats::default();
        for a in attrs {
            use StatsAttr::*;
            match *a {
                Conns(v) => s.conns = v,
                InPkts(v) => s.in_pkts = v,
                OutPkts(v) => s.out_pkts = v,
                InBytes(v) => s.in_bytes = v,
                OutBytes(v) => s.out_bytes = v,
                Cps(v) => s.cps = v,
                InPps(v) => s.in_pps = v,
                OutPps(v) => s.out_pps = v,
                InBps(v) => s.in_bps = v,
                OutBps(v) => s.out_bps = v,
                Other(_) => {}
            }
        }
        s
    }

    /// The ten counters as attributes, in the kernel's order.
    pub fn to_attrs<const WIDE: bool>(&self) -> Vec<StatsAttr<WIDE>> {
        use StatsAttr::*;
        vec![
            Conns(self.conns),
            InPkts(self.in_pkts),
            OutPkts(self.out_pkts),
            InBytes(self.in_bytes),
            OutBytes(self.out_bytes),
            Cps(self.cps),
            InPps(self.in_pps),
            OutPps(self.out_pps),
            InBps(self.in_bps),
            OutBps(self.out_bps),
        ]
    }
}
