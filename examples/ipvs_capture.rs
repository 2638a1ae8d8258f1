//! Capture raw IPVS generic-netlink replies from the running kernel as test fixtures.
//!
//! Needs root and ip_vs; runs in its own network namespace so it never touches the host's
//! table. In the lab VM:
//!
//! ```text
//! cargo build --example ipvs_capture
//! LVSUP_VM_RWDIRS=$PWD/tests/fixtures/ipvs tests/lab/in-vm \
//!     target/debug/examples/ipvs_capture tests/fixtures/ipvs
//! ```
//!
//! It programs a small table through [`IpvsClient`], then sends GET requests on a plain
//! netlink socket and writes every reply (genlmsghdr + attributes, without the
//! nlmsghdr) to `DIR/kernel_<what>_<n>.hex`, one commented line per attribute.
//! `tests/ipvs_codec.rs` round-trips every `kernel_*.hex` it finds.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use lvsup::ipvs::*;
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd, nlas::GenlCtrlAttrs};
use netlink_sys::{Socket, SocketAddr as NlAddr, protocols::NETLINK_GENERIC};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("address literal")
}

fn main() -> Res<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "tests/fixtures/ipvs".into()),
    );
    // SAFETY: plain syscall on this (only) thread before any other is started.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {} (run as root)",
            std::io::Error::last_os_error()
        )
        .into());
    }
    let _ = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    let _ = std::process::Command::new("sh")
        .args(["-c", "ip link add cap0 type veth peer name cap1 && ip link set cap0 up && ip link set cap1 up"])
        .status();

    // 1. Program a table with the library (current-thread runtime: stays in this netns).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut c = IpvsClient::connect().await?;
        c.flush().await?;
        let mut fwm = Service::new(ServiceId::fwmark(7), "lc").persistent(300);
        fwm.netmask = 24;
        let mut t = dest_t("10.0.3.1:53", Forward::Tunnel, 2);
        t.u_thresh = 100;
        t.l_thresh = 10;
        let table =
            vec![
                Service::new(ServiceId::tcp(sa("10.0.0.1:80")), "rr")
                    .persistent(50)
                    .with_destination(dest_t("10.0.1.1:80", Forward::Route, 1)),
                Service::new(ServiceId::udp(sa("10.0.0.2:53")), "wrr")
                    .with_destination(t)
                    .with_destination(dest_t("10.0.3.2:5353", Forward::Masq, 0)),
                fwm.with_destination(dest_t("10.0.4.1:0", Forward::Route, 1)),
                Service::new(ServiceId::tcp(sa("[2001:db8::1]:443")), "sh")
                    .with_destination(dest_t("[2001:db8::2]:443", Forward::Masq, 1)),
            ];
        let plan = reconcile(&table, &[], &ReconcileOptions::default());
        apply(&mut c, &plan.ops).await?;
        c.set_timeouts(&Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        })
        .await?;
        let mut d = SyncDaemon::new(DaemonState::Master, "cap0", 9);
        d.mcast_port = Some(8848);
        c.start_daemon(&d).await?;
        Ok::<_, IpvsError>(())
    })?;

    // 2. Raw requests on a plain socket.
    let mut sock = Socket::new(NETLINK_GENERIC)?;
    sock.bind_auto()?;
    sock.connect(&NlAddr::new(0, 0))?;
    let family = resolve(&sock)?;
    let mut n = 0;
    let mut save = |what: &str, replies: Vec<Vec<u8>>| -> Res<()> {
        for (i, r) in replies.iter().enumerate() {
            let path = dir.join(format!("kernel_{what}_{i}.hex"));
            std::fs::write(&path, annotate(what, r))?;
            println!("wrote {} ({} bytes)", path.display(), r.len());
            n += 1;
        }
        Ok(())
    };
    save(
        "get_info_reply",
        request(&sock, family, IpvsMessage::get_info(), false)?,
    )?;
    save(
        "get_config_reply",
        request(&sock, family, IpvsMessage::get_config(), false)?,
    )?;
    save(
        "get_service_dump",
        request(&sock, family, IpvsMessage::get_service(None), true)?,
    )?;
    let one = ServiceId::tcp(sa("10.0.0.1:80"));
    save(
        "get_service_one",
        request(&sock, family, IpvsMessage::get_service(Some(&one)), false)?,
    )?;
    save(
        "get_dest_tcp80",
        request(&sock, family, IpvsMessage::get_dest(&one), true)?,
    )?;
    let udp = ServiceId::udp(sa("10.0.0.2:53"));
    save(
        "get_dest_udp53",
        request(&sock, family, IpvsMessage::get_dest(&udp), true)?,
    )?;
    let v6 = ServiceId::tcp(sa("[2001:db8::1]:443"));
    save(
        "get_dest_v6",
        request(&sock, family, IpvsMessage::get_dest(&v6), true)?,
    )?;
    save(
        "get_daemon_dump",
        request(&sock, family, IpvsMessage::get_daemon(), true)?,
    )?;
    println!("{n} fixtures written to {}", dir.display());
    Ok(())
}

fn dest_t(a: &str, fwd: Forward, w: u32) -> Destination {
    Destination::new(sa(a), fwd, w)
}

fn send<T: netlink_packet_core::NetlinkSerializable + std::fmt::Debug>(
    sock: &Socket,
    mut nl: NetlinkMessage<T>,
    flags: u16,
) -> Res<()> {
    nl.header.flags = flags;
    nl.header.sequence_number = 1;
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    sock.send(&buf, 0)?;
    Ok(())
}

/// Receive until DONE / ACK / error; returns the payload (after nlmsghdr) of each data message.
fn recv_all(sock: &Socket) -> Res<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let (buf, _) = sock.recv_from_full()?;
        let mut off = 0;
        while off + 16 <= buf.len() {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into()?) as usize;
            let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into()?);
            if len < 16 || off + len > buf.len() {
                return Err("truncated netlink message".into());
            }
            let payload = &buf[off + 16..off + len];
            match ty {
                3 => return Ok(out), // NLMSG_DONE
                2 => {
                    let code = i32::from_ne_bytes(payload[..4].try_into()?);
                    if code != 0 {
                        return Err(format!(
                            "kernel error {}",
                            std::io::Error::from_raw_os_error(-code)
                        )
                        .into());
                    }
                    return Ok(out); // ACK
                }
                _ => out.push(payload.to_vec()),
            }
            off += (len + 3) & !3;
        }
    }
}

fn resolve(sock: &Socket) -> Res<u16> {
    let genl = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName("IPVS".into())],
    });
    send(sock, NetlinkMessage::from(genl), NLM_F_REQUEST | NLM_F_ACK)?;
    let replies = recv_all(sock)?;
    for r in replies {
        let g = GenlMessage::<GenlCtrl>::parse_with_param(&r, 0x10)?;
        for a in g.payload.nlas {
            if let GenlCtrlAttrs::FamilyId(id) = a {
                return Ok(id);
            }
        }
    }
    Err("no IPVS family id (is ip_vs loaded?)".into())
}

fn request(sock: &Socket, family: u16, msg: IpvsMessage, dump: bool) -> Res<Vec<Vec<u8>>> {
    let mut genl = GenlMessage::from_payload(msg);
    genl.set_resolved_family_id(family);
    let flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
    send(sock, NetlinkMessage::from(genl), flags)?;
    recv_all(sock)
}

use netlink_packet_core::ParseableParametrized as _;

// ---- annotation -----------------------------------------------------------------------

const TOP: &[&str] = &[
    "",
    "SERVICE",
    "DEST",
    "DAEMON",
    "TIMEOUT_TCP",
    "TIMEOUT_TCP_FIN",
    "TIMEOUT_UDP",
];
const INFO: &[&str] = &["", "INFO_ATTR_VERSION", "INFO_ATTR_CONN_TAB_SIZE"];
const SVC: &[&str] = &[
    "",
    "SVC_ATTR_AF",
    "SVC_ATTR_PROTOCOL",
    "SVC_ATTR_ADDR",
    "SVC_ATTR_PORT",
    "SVC_ATTR_FWMARK",
    "SVC_ATTR_SCHED_NAME",
    "SVC_ATTR_FLAGS",
    "SVC_ATTR_TIMEOUT",
    "SVC_ATTR_NETMASK",
    "SVC_ATTR_STATS",
    "SVC_ATTR_PE_NAME",
    "SVC_ATTR_STATS64",
];
const DEST: &[&str] = &[
    "",
    "DEST_ATTR_ADDR",
    "DEST_ATTR_PORT",
    "DEST_ATTR_FWD_METHOD",
    "DEST_ATTR_WEIGHT",
    "DEST_ATTR_U_THRESH",
    "DEST_ATTR_L_THRESH",
    "DEST_ATTR_ACTIVE_CONNS",
    "DEST_ATTR_INACT_CONNS",
    "DEST_ATTR_PERSIST_CONNS",
    "DEST_ATTR_STATS",
    "DEST_ATTR_ADDR_FAMILY",
    "DEST_ATTR_STATS64",
    "DEST_ATTR_TUN_TYPE",
    "DEST_ATTR_TUN_PORT",
    "DEST_ATTR_TUN_FLAGS",
];
const DAEMON: &[&str] = &[
    "",
    "DAEMON_ATTR_STATE",
    "DAEMON_ATTR_MCAST_IFN",
    "DAEMON_ATTR_SYNC_ID",
    "DAEMON_ATTR_SYNC_MAXLEN",
    "DAEMON_ATTR_MCAST_GROUP",
    "DAEMON_ATTR_MCAST_GROUP6",
    "DAEMON_ATTR_MCAST_PORT",
    "DAEMON_ATTR_MCAST_TTL",
];
const STATS: &[&str] = &[
    "",
    "STATS_ATTR_CONNS",
    "STATS_ATTR_INPKTS",
    "STATS_ATTR_OUTPKTS",
    "STATS_ATTR_INBYTES",
    "STATS_ATTR_OUTBYTES",
    "STATS_ATTR_CPS",
    "STATS_ATTR_INPPS",
    "STATS_ATTR_OUTPPS",
    "STATS_ATTR_INBPS",
    "STATS_ATTR_OUTBPS",
    "STATS_ATTR_PAD",
];

#[derive(Clone, Copy)]
enum Set {
    Top,
    Info,
    Svc,
    Dest,
    Daemon,
    Stats,
}

fn names(set: Set) -> &'static [&'static str] {
    match set {
        Set::Top => TOP,
        Set::Info => INFO,
        Set::Svc => SVC,
        Set::Dest => DEST,
        Set::Daemon => DAEMON,
        Set::Stats => STATS,
    }
}

fn nest_of(set: Set, kind: u16) -> Option<Set> {
    match (set, kind) {
        (Set::Top, 1) => Some(Set::Svc),
        (Set::Top, 2) => Some(Set::Dest),
        (Set::Top, 3) => Some(Set::Daemon),
        (Set::Svc, 10 | 12) | (Set::Dest, 10 | 12) => Some(Set::Stats),
        _ => None,
    }
}

fn hexs(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn walk(b: &[u8], set: Set, depth: usize, lines: &mut Vec<(String, String)>) {
    let mut off = 0;
    while off + 4 <= b.len() {
        let len = u16::from_ne_bytes([b[off], b[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([b[off + 2], b[off + 3]]) & 0x3fff;
        if len < 4 || off + len > b.len() {
            lines.push((hexs(&b[off..]), "?? malformed".into()));
            return;
        }
        let padded = ((len + 3) & !3).min(b.len() - off);
        let name = names(set).get(kind as usize).copied().unwrap_or("unknown");
        let ind = "  ".repeat(depth);
        match nest_of(set, kind) {
            Some(inner) => {
                lines.push((
                    format!("{ind}{}", hexs(&b[off..off + 4])),
                    format!("IPVS_{name} (nest, len {len})"),
                ));
                walk(&b[off + 4..off + len], inner, depth + 1, lines);
            }
            None => lines.push((
                format!("{ind}{}", hexs(&b[off..off + padded])),
                format!("IPVS_{name}"),
            )),
        }
        off += padded;
    }
}

fn annotate(what: &str, payload: &[u8]) -> String {
    let mut lines = vec![(
        hexs(&payload[..4.min(payload.len())]),
        format!("genlmsghdr: cmd={}", payload[0]),
    )];
    let set = if payload.first() == Some(&14) {
        Set::Info
    } else {
        Set::Top
    };
    if payload.len() > 4 {
        walk(&payload[4..], set, 0, &mut lines);
    }
    let width = lines.iter().map(|(h, _)| h.len()).max().unwrap_or(0);
    let mut out = format!(
        "# {what}: captured from Linux {} by examples/ipvs_capture.rs\n",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    for (h, c) in lines {
        let _ = writeln!(out, "{h:width$}  # {c}");
    }
    out
}
