//! `ipvsadm -Ln` output, byte for byte, from a table read with the client.
//!
//! Layout from ipvsadm's `ipvsadm.c` (`list_all`, `print_title`, `print_service_entry`
//! with `FMT_NUMERIC`): header line, title lines, then per service
//! `"%s %s"` (name, scheduler) [+ `" (sched-flags)"`] [+ `" persistent %u"` [+ `" mask %s"`]
//! [+ `" pe %s"`]] [+ `" ops"`] (flag and ops placement as ipvsadm 1.31 prints them),
//! the name being `"TCP  addr:port"` (two spaces, cut at 33 chars for IPv4) or
//! `"FWM  %d"`; per destination `"  -> %-28s %-7s %-6d %-10u %-10u"` (name cut at 28
//! chars for IPv4). Services are sorted by (fwmark, af, protocol, addr, port),
//! destinations by (addr, port), like `ipvs_cmp_services`/`ipvs_cmp_dests` in libipvs.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::client::IpvsInfo;
use super::constants::{
    IP_VS_SVC_F_ONEPACKET, IP_VS_SVC_F_SCHED1, IP_VS_SVC_F_SCHED2, IP_VS_SVC_F_SCHED3,
};
use super::service::{Family, Service, ServiceId};

fn addrport(addr: &SocketAddr) -> String {
    // FMT_NUMERIC: "%s%s%s:%u" with brackets for IPv6.
    match addr.ip() {
        IpAddr::V4(a) => format!("{a}:{}", addr.port()),
        IpAddr::V6(a) => format!("[{a}]:{}", addr.port()),
    }
}

fn svc_sort_key(a: &Service, b: &Service) -> Ordering {
    let key = |s: &Service| match s.id {
        ServiceId::Addr { protocol, addr } => (
            0u32,
            s.id.family(),
            protocol.to_ipproto(),
            addr.ip(),
            addr.port(),
        ),
        ServiceId::Fwmark { mark, family } => {
            (mark, family, 0, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        }
    };
    key(a).cmp(&key(b))
}

fn truncate(mut s: String, n: usize) -> String {
    s.truncate(n);
    s
}

/// Scheduler flags as ipvsadm 1.31 names them (`-b`): sh/mh have their own names.
fn sched_flags(scheduler: &str, flags: u32) -> Option<String> {
    let names: [&str; 3] = match scheduler {
        "sh" => ["sh-fallback", "sh-port", "flag-3"],
        "mh" => ["mh-fallback", "mh-port", "flag-3"],
        _ => ["flag-1", "flag-2", "flag-3"],
    };
    let bits = [IP_VS_SVC_F_SCHED1, IP_VS_SVC_F_SCHED2, IP_VS_SVC_F_SCHED3];
    let set: Vec<&str> = bits
        .iter()
        .zip(names)
        .filter(|(b, _)| flags & **b != 0)
        .map(|(_, n)| n)
        .collect();
    (!set.is_empty()).then(|| set.join(","))
}

/// Render `table` as `ipvsadm -Ln` prints it.
pub fn render_ipvsadm_ln(table: &[Service], info: &IpvsInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "IP Virtual Server version {} (size={})",
        info.version_string(),
        info.conn_tab_size
    );
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");

    let mut services: Vec<&Service> = table.iter().collect();
    services.sort_by(|a, b| svc_sort_key(a, b));
    for s in services {
        let v4 = s.id.family() == Family::Inet;
        let name = match s.id {
            ServiceId::Addr { protocol, addr } => {
                let n = format!("{}  {}", protocol.name(), addrport(&addr));
                if v4 { truncate(n, 33) } else { n }
            }
            ServiceId::Fwmark {
                mark,
                family: Family::Inet,
            } => format!("FWM  {mark}"),
            ServiceId::Fwmark {
                mark,
                family: Family::Inet6,
            } => format!("FWM  {mark} IPv6"),
        };
        let _ = write!(out, "{} {}", name, s.scheduler);
        if let Some(f) = sched_flags(&s.scheduler, s.flags) {
            let _ = write!(out, " ({f})");
        }
        if let Some(timeout) = s.persistence {
            let _ = write!(out, " persistent {timeout}");
            if v4 && s.netmask != 32 {
                let p = u32::from(s.netmask.min(32));
                let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                let _ = write!(out, " mask {}", Ipv4Addr::from(mask));
            } else if !v4 && s.netmask != 128 {
                let _ = write!(out, " mask {}", s.netmask);
            }
            if let Some(pe) = &s.pe_name {
                let _ = write!(out, " pe {pe}");
            }
        }
        if s.flags & IP_VS_SVC_F_ONEPACKET != 0 {
            out.push_str(" ops");
        }
        out.push('\n');

        let mut dests: Vec<_> = s.destinations.iter().collect();
        dests.sort_by_key(|d| (d.addr, d.port));
        for d in dests {
            let name = addrport(&d.socket_addr());
            let name = if v4 { truncate(name, 28) } else { name };
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                name,
                d.fwd.ipvsadm_name(),
                d.weight as i32,
                d.active_conns,
                d.inact_conns
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::dest::{Destination, Forward};

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matches_ipvsadm_layout() {
        let info = IpvsInfo {
            version: 0x010201,
            conn_tab_size: 4096,
        };
        let table = vec![
            Service::new(ServiceId::udp(sa("10.0.0.1:53")), "wrr")
                .with_destination(Destination::new(sa("10.0.0.3:53"), Forward::Masq, 3)),
            Service::new(ServiceId::fwmark(7), "sh"),
            Service::new(ServiceId::tcp(sa("10.0.0.1:80")), "rr")
                .persistent(50)
                .with_destination(Destination::new(sa("10.0.0.3:80"), Forward::Tunnel, 2))
                .with_destination(Destination::new(sa("10.0.0.2:80"), Forward::Route, 1)),
        ];
        let mut t = table;
        t[2].destinations[0].active_conns = 12;
        t[2].destinations[0].inact_conns = 345;
        let want = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:80 rr persistent 50
  -> 10.0.0.2:80                  Route   1      0          0         
  -> 10.0.0.3:80                  Tunnel  2      12         345       
UDP  10.0.0.1:53 wrr
  -> 10.0.0.3:53                  Masq    3      0          0         
FWM  7 sh
";
        assert_eq!(render_ipvsadm_ln(&t, &info), want);
    }

    #[test]
    fn scheduler_flags_persistence_engine_and_one_packet() {
        // Lines as ipvsadm 1.31 printed them on Linux 6.1 for the same rules.
        let info = IpvsInfo {
            version: 0x010201,
            conn_tab_size: 4096,
        };
        let mut mh = Service::new(ServiceId::tcp(sa("10.0.0.1:80")), "mh");
        mh.flags = IP_VS_SVC_F_SCHED2;
        let mut ops = Service::new(ServiceId::udp(sa("10.0.0.1:81")), "rr");
        ops.flags = IP_VS_SVC_F_ONEPACKET;
        let mut sip = Service::new(ServiceId::udp(sa("10.0.0.1:82")), "sh").persistent(10);
        sip.flags = IP_VS_SVC_F_SCHED1 | IP_VS_SVC_F_SCHED2 | IP_VS_SVC_F_ONEPACKET;
        sip.pe_name = Some("sip".into());
        let out = render_ipvsadm_ln(&[sip, ops, mh], &info);
        let lines: Vec<&str> = out.lines().skip(3).collect();
        assert_eq!(
            lines,
            [
                "TCP  10.0.0.1:80 mh (mh-port)",
                "UDP  10.0.0.1:81 rr ops",
                "UDP  10.0.0.1:82 sh (sh-fallback,sh-port) persistent 10 pe sip ops",
            ]
        );
    }

    #[test]
    fn mask_and_ipv6() {
        let info = IpvsInfo {
            version: 0x010201,
            conn_tab_size: 4096,
        };
        let mut s = Service::new(ServiceId::tcp(sa("10.0.0.1:443")), "lc").persistent(300);
        s.netmask = 24;
        let v6 = Service::new(ServiceId::tcp(sa("[2001:db8::1]:80")), "rr")
            .with_destination(Destination::new(sa("[2001:db8::2]:80"), Forward::Masq, 1));
        let out = render_ipvsadm_ln(&[v6, s], &info);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[3],
            "TCP  10.0.0.1:443 lc persistent 300 mask 255.255.255.0"
        );
        assert_eq!(lines[4], "TCP  [2001:db8::1]:80 rr");
        assert_eq!(
            lines[5],
            "  -> [2001:db8::2]:80             Masq    1      0          0         "
        );
    }
}
