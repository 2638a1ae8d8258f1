//! `lvsup ipvs list --json`: the kernel's IPVS table as the director's lvsup
//! reads it over generic netlink (`cmd::ipvs` prints it). Read back by facts
//! gathering (persistence timeouts in seconds, which `/proc/net/ip_vs` gives
//! in jiffies) and by `lvsup verify` (weights, counters, active/inactive
//! connections).
//!
//! The services are the IPVS model itself ([`crate::ipvs::Service`]); every
//! field below has been in the document since the command first printed it.
//! Printed with `"format_version": 1` first and, after it, every object's
//! keys in alphabetical order (the command has always printed it through a
//! `serde_json::Value`, whose maps are sorted): see [`IpvsList::to_json`].

use serde::{Deserialize, Serialize};

use crate::ipvs::Service;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvsList {
    /// `IP_VS_VERSION_CODE`, e.g. 66049 (0x010201, "1.2.1").
    pub version: u32,
    /// Size of the connection hash table.
    pub conn_tab_size: u32,
    pub services: Vec<Service>,
}

impl IpvsList {
    /// The document as printed, without `format_version` (the edge adds it):
    /// a `serde_json::Value`, so keys come out sorted as they always have.
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(self)
    }

    /// Read what `lvsup ipvs list --json` printed (`format_version` and any
    /// field this build does not know are ignored).
    pub fn parse(text: &str) -> serde_json::Result<IpvsList> {
        serde_json::from_str(text.trim())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ipvs::{Destination, Forward, ServiceId, Stats};

    /// The table of `tests/fixtures/contract/ipvs-list.json`.
    pub(crate) fn sample() -> IpvsList {
        let mut d1 = Destination::new("192.168.0.171:80".parse().expect("a"), Forward::Route, 100);
        d1.active_conns = 3;
        d1.inact_conns = 7;
        d1.stats = Some(Box::new(Stats {
            conns: 42,
            in_pkts: 420,
            in_bytes: 25200,
            ..Stats::default()
        }));
        let d2 = Destination::new("192.168.0.172:80".parse().expect("a"), Forward::Route, 0);
        let mut tcp = Service::new(
            ServiceId::tcp("192.168.0.100:80".parse().expect("a")),
            "wlc",
        )
        .with_destination(d1)
        .with_destination(d2);
        tcp.stats = Some(Box::new(Stats {
            conns: 42,
            cps: 1,
            ..Stats::default()
        }));
        let udp = Service::new(ServiceId::udp("192.168.0.100:53".parse().expect("a")), "rr")
            .persistent(300);
        let fwmark = Service::new(ServiceId::fwmark(7), "sh");
        IpvsList {
            version: 0x01_02_01,
            conn_tab_size: 4096,
            services: vec![tcp, udp, fwmark],
        }
    }

    /// `lvsup ipvs list --json` as this version prints it (captured).
    pub(crate) const FIXTURE: &str = include_str!("../../tests/fixtures/contract/ipvs-list.json");

    #[test]
    fn readers_get_back_what_the_command_printed() {
        assert_eq!(IpvsList::parse(FIXTURE).expect("captured"), sample());
        let text = serde_json::to_string(&sample().to_json().expect("json")).expect("text");
        assert_eq!(IpvsList::parse(&text).expect("round trip"), sample());
        // a newer lvsup's extra fields are ignored
        let mut v: serde_json::Value = serde_json::from_str(FIXTURE).expect("json");
        v["services"][0]["new_flag"] = true.into();
        v["services"][0]["destinations"][0]["zone"] = "b".into();
        assert_eq!(IpvsList::parse(&v.to_string()).expect("newer"), sample());
        // not the document: an error, never an empty table
        assert!(IpvsList::parse("usage: lvsup ...").is_err());
        assert!(IpvsList::parse(r#"{"services":[{"id":{"kind":"addr"}}]}"#).is_err());
    }
}
