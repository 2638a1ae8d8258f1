//! The blocking side of the IPVS client: one raw generic-netlink socket for
//! batched writes (many requests per datagram, their acks read back; see
//! [`super::batch`]) and for dumps (`NLM_F_DUMP` read to NLMSG_DONE), used on
//! tokio's blocking pool by [`super::client::IpvsClient`].

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage};
use netlink_packet_generic::GenlMessage;

use super::batch::{Chunk, ChunkAcks, parse_acks};
use super::dest::Destination;
use super::error::{Ctx, IpvsError, errno_error, malformed};
use super::message::IpvsMessage;
use super::service::Service;

/// Receive buffer asked for on the batch socket (the kernel doubles it). Every ack is
/// its own skb (~0.5–1 KiB of truesize however small), and all acks of a datagram are
/// queued during our `send`, before we can read any: if they do not fit, the kernel
/// drops them (ENOBUFS). 4 MiB holds the acks of thousands of messages, far more than
/// one 64 KiB datagram carries. Needs `SO_RCVBUFFORCE` (CAP_NET_ADMIN, which IPVS needs
/// anyway) to exceed `net.core.rmem_max`; plain `SO_RCVBUF` is the fallback.
const BATCH_RCVBUF: libc::c_int = 4 << 20;
/// A kernel that never acks (it always does) must not hang us for ever.
const BATCH_RECV_TIMEOUT: Duration = Duration::from_secs(30);

/// Send each chunk and collect its acks, on a blocking thread. Returns, per fully
/// acknowledged chunk, (index of its first request, acks), and the transport failure
/// that stopped the run, if any (the socket is then dropped).
pub(super) fn run_batch(
    slot: &Mutex<Option<netlink_sys::Socket>>,
    fresh: Option<netlink_sys::Socket>,
    chunks: &[Chunk],
) -> (Vec<(usize, ChunkAcks)>, Option<String>) {
    let mut out = Vec::with_capacity(chunks.len());
    let mut guard = match lock_socket(slot, fresh) {
        Ok(g) => g,
        Err(e) => return (out, Some(e)),
    };
    let sock = guard.as_ref().expect("locked with a socket");
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut failure = None;
    'chunks: for c in chunks {
        match sock.send(&c.bytes, 0) {
            Ok(n) if n == c.bytes.len() => {}
            Ok(n) => {
                failure = Some(format!("short send: {n} of {} bytes", c.bytes.len()));
                break;
            }
            Err(e) => {
                failure = Some(format!("send: {e}"));
                break;
            }
        }
        let mut acks = ChunkAcks::new(c);
        while !acks.done {
            buf.clear();
            match sock.recv(&mut buf, 0) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    failure =
                        Some("acks were dropped: the socket's receive buffer overflowed".into());
                    break 'chunks;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failure = Some(format!("recv: {e}"));
                    break 'chunks;
                }
            }
            let parsed =
                parse_acks(&buf).and_then(|v| v.into_iter().try_for_each(|a| acks.feed(a)));
            if let Err(e) = parsed {
                failure = Some(format!("bad ack: {e}"));
                break 'chunks;
            }
        }
        out.push((c.first, acks));
    }
    if failure.is_some() {
        *guard = None;
    }
    (out, failure)
}

/// Lock the shared socket, installing `fresh` (or, failing that, a new one) if it was
/// dropped. The guard always holds a socket.
pub(super) fn lock_socket(
    slot: &Mutex<Option<netlink_sys::Socket>>,
    fresh: Option<netlink_sys::Socket>,
) -> Result<std::sync::MutexGuard<'_, Option<netlink_sys::Socket>>, String> {
    let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        *guard = fresh;
    }
    if guard.is_none() {
        *guard =
            Some(open_batch_socket().map_err(|e| format!("cannot open the batch socket: {e}"))?);
    }
    Ok(guard)
}

/// Services from which [`read_table`] splits the destination dumps over two threads
/// and sockets (the kernel builds dump skbs inside our `recv`, so one thread
/// alternates kernel work and parsing; two overlap them on a 2-CPU machine).
const PARALLEL_READ_MIN_SERVICES: usize = 8;

/// The whole table, blocking: service dump, then a destination dump per service
/// (split over `second` in another thread when there are many services).
pub(super) fn read_table(
    sock: &netlink_sys::Socket,
    second: Option<&netlink_sys::Socket>,
    family: u16,
) -> Result<Vec<Service>, IpvsError> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let op = "list services";
    let mut services = read_services(sock, family, &mut buf)?;
    match second {
        Some(second) if services.len() >= PARALLEL_READ_MIN_SERVICES => {
            let half = services.len() / 2;
            let (left, right) = services.split_at_mut(half);
            std::thread::scope(|scope| {
                let other = scope.spawn(move || {
                    let mut buf = Vec::with_capacity(64 * 1024);
                    read_dests(second, family, right, &mut buf)
                });
                let mine = read_dests(sock, family, left, &mut buf);
                let theirs = other.join().unwrap_or_else(|_| {
                    Err(IpvsError::Transport {
                        op: op.into(),
                        msg: "reader thread panicked".into(),
                    })
                });
                mine.and(theirs)
            })?;
        }
        _ => read_dests(sock, family, &mut services, &mut buf)?,
    }
    Ok(services)
}

/// The services (one dump of `IPVS_CMD_GET_SERVICE`), without destinations.
fn read_services(
    sock: &netlink_sys::Socket,
    family: u16,
    buf: &mut Vec<u8>,
) -> Result<Vec<Service>, IpvsError> {
    let op = "list services";
    let replies = dump_blocking(sock, family, IpvsMessage::get_service(None), buf)
        .map_err(|e| e.into_error(op, Ctx::Plain))?;
    let mut services = Vec::with_capacity(replies.len());
    for m in &replies {
        let attrs = m
            .service()
            .ok_or_else(|| malformed(op, "reply without a service nest"))?;
        services.push(Service::from_attrs(attrs).map_err(|e| malformed(op, e))?);
    }
    Ok(services)
}

/// The whole table like [`read_table`], but handed over one service at a
/// time, with its destinations, as each is read: `each` gets every service
/// (or the error that ended the read) and returns `false` to stop. One
/// thread and socket: the caller works on each service while the next is
/// read, so what is held is one service, not the table.
pub(super) fn stream_table(
    sock: &netlink_sys::Socket,
    family: u16,
    mut each: impl FnMut(Result<Service, IpvsError>) -> bool,
) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let services = match read_services(sock, family, &mut buf) {
        Ok(s) => s,
        Err(e) => {
            each(Err(e));
            return;
        }
    };
    for svc in services {
        let mut one = [svc];
        let r = read_dests(sock, family, &mut one, &mut buf);
        let [svc] = one;
        let stop = r.is_err();
        if !each(r.map(|()| svc)) || stop {
            return;
        }
    }
}

/// Fill in the destinations of `services`, one dump each.
fn read_dests(
    sock: &netlink_sys::Socket,
    family: u16,
    services: &mut [Service],
    buf: &mut Vec<u8>,
) -> Result<(), IpvsError> {
    for svc in services {
        let id = svc.id;
        let op = format!("list destinations of {id}");
        let replies =
            dump_blocking(sock, family, IpvsMessage::get_dest(&id), buf).map_err(|e| {
                e.into_error(
                    &op,
                    Ctx::Service {
                        id: &id,
                        scheduler: None,
                    },
                )
            })?;
        let mut dests = Vec::with_capacity(replies.len());
        for m in &replies {
            let attrs = m
                .dest()
                .ok_or_else(|| malformed(&op, "reply without a dest nest"))?;
            dests.push(Destination::from_attrs(attrs, id.family()).map_err(|e| malformed(&op, e))?);
        }
        dests.sort_by_key(|d| d.socket_addr());
        svc.destinations = dests;
    }
    Ok(())
}

enum DumpError {
    Errno(i32),
    Transport(String),
    Malformed(String),
}

impl DumpError {
    fn into_error(self, op: &str, ctx: Ctx<'_>) -> IpvsError {
        match self {
            DumpError::Errno(code) => errno_error(op, code, ctx),
            DumpError::Transport(msg) => IpvsError::Transport {
                op: op.to_string(),
                msg,
            },
            DumpError::Malformed(msg) => malformed(op, msg),
        }
    }
}

/// Sequence number of dumps on the batch socket (batches use 1..; any value works on
/// our own socket as long as replies are checked against it).
const DUMP_SEQ: u32 = 0x4450_0000;

/// One `NLM_F_DUMP` request on the blocking socket; the reply messages, until NLMSG_DONE.
fn dump_blocking(
    sock: &netlink_sys::Socket,
    family: u16,
    msg: IpvsMessage,
    buf: &mut Vec<u8>,
) -> Result<Vec<IpvsMessage>, DumpError> {
    use netlink_packet_core::Emitable;
    let mut genl = GenlMessage::from_payload(msg);
    genl.set_resolved_family_id(family);
    let mut nl = NetlinkMessage::from(genl);
    nl.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    nl.header.sequence_number = DUMP_SEQ;
    nl.finalize();
    let mut req = vec![0; nl.buffer_len()];
    nl.emit(&mut req);
    sock.send(&req, 0)
        .map_err(|e| DumpError::Transport(format!("send: {e}")))?;
    let mut out = Vec::new();
    loop {
        buf.clear();
        match sock.recv(buf, 0) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DumpError::Transport(format!("recv: {e}"))),
        }
        if parse_dump_part(buf, family, DUMP_SEQ, &mut out)? {
            return Ok(out);
        }
    }
}

/// Parse what one `recv` of a dump returned: IPVS messages (type `family`) are appended
/// to `out`; returns whether the dump ended (NLMSG_DONE, or an NLMSG_ERROR: its errno).
/// Messages with another seq are skipped.
fn parse_dump_part(
    buf: &[u8],
    family: u16,
    seq: u32,
    out: &mut Vec<IpvsMessage>,
) -> Result<bool, DumpError> {
    use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR, ParseableParametrized};
    let mut rest = buf;
    while !rest.is_empty() {
        if rest.len() < 16 {
            return Err(DumpError::Malformed(format!(
                "{} trailing bytes, shorter than a header",
                rest.len()
            )));
        }
        let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        let mseq = u32::from_ne_bytes(rest[8..12].try_into().expect("4 bytes"));
        if len < 16 || len > rest.len() {
            return Err(DumpError::Malformed(format!(
                "message length {len} with {} bytes left",
                rest.len()
            )));
        }
        let body = &rest[16..len];
        rest = &rest[((len + 3) & !3).min(rest.len())..];
        if mseq != seq {
            continue;
        }
        match kind {
            NLMSG_DONE | NLMSG_ERROR => {
                let code = body
                    .get(0..4)
                    .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                    .unwrap_or(0);
                return if code < 0 {
                    Err(DumpError::Errno(-code))
                } else {
                    Ok(true)
                };
            }
            k if k == family => {
                let g = GenlMessage::<IpvsMessage>::parse_with_param(body, k)
                    .map_err(|e| DumpError::Malformed(e.to_string()))?;
                out.push(g.payload);
            }
            _ => {}
        }
    }
    Ok(false)
}

pub(super) fn open_batch_socket() -> io::Result<netlink_sys::Socket> {
    use std::os::fd::AsRawFd;
    let mut s = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_GENERIC)?;
    s.bind_auto()?;
    s.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    // Error acks carry only the request's header, not the whole request (kernel >= 4.3;
    // harmless to lack, so best effort). NETLINK_EXT_ACK is not asked for: the IPVS
    // handlers set no extack message, and the errno is all the wording needs.
    let _ = s.set_cap_ack(true);
    let fd = s.as_raw_fd();
    let setopt = |name: libc::c_int, val: *const libc::c_void, len: usize| {
        // SAFETY: fd is a live socket; val points to `len` readable bytes.
        let r =
            unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, name, val, len as libc::socklen_t) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    let rcvbuf = BATCH_RCVBUF;
    let p = &rcvbuf as *const libc::c_int as *const libc::c_void;
    let n = std::mem::size_of::<libc::c_int>();
    if setopt(libc::SO_RCVBUFFORCE, p, n).is_err() {
        setopt(libc::SO_RCVBUF, p, n)?;
    }
    let tv = libc::timeval {
        tv_sec: BATCH_RECV_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    setopt(
        libc::SO_RCVTIMEO,
        &tv as *const libc::timeval as *const libc::c_void,
        std::mem::size_of::<libc::timeval>(),
    )?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::message::IpvsCmd;

    /// A dump as two recvs would return it: two NEW_DEST messages captured from the
    /// kernel (fixture payloads under nlmsghdrs), a message of another seq, then DONE.
    #[test]
    fn dump_parts_are_parsed_until_done() {
        fn hex(name: &str) -> Vec<u8> {
            let p = format!("{}/tests/fixtures/ipvs/{name}", env!("CARGO_MANIFEST_DIR"));
            let t = std::fs::read_to_string(p).unwrap();
            let d: String = t
                .lines()
                .map(|l| l.split('#').next().unwrap())
                .collect::<String>()
                .split_whitespace()
                .collect();
            (0..d.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&d[i..i + 2], 16).unwrap())
                .collect()
        }
        fn nl(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
            let len = 16 + body.len();
            let mut v = Vec::new();
            v.extend((len as u32).to_ne_bytes());
            v.extend(kind.to_ne_bytes());
            v.extend(2u16.to_ne_bytes()); // NLM_F_MULTI
            v.extend(seq.to_ne_bytes());
            v.extend(0u32.to_ne_bytes());
            v.extend(body);
            v.resize((len + 3) & !3, 0);
            v
        }
        let (fam, seq) = (0x1d, 9);
        let d0 = hex("kernel_get_dest_udp53_0.hex");
        let d1 = hex("kernel_get_dest_udp53_1.hex");
        let mut out = Vec::new();
        let mut part1 = nl(fam, seq, &d0);
        part1.extend(nl(fam, seq + 1, &d1)); // someone else's: skipped
        assert!(!parse_dump_part(&part1, fam, seq, &mut out).ok().unwrap());
        let mut part2 = nl(fam, seq, &d1);
        part2.extend(nl(3, seq, &0i32.to_ne_bytes()));
        assert!(parse_dump_part(&part2, fam, seq, &mut out).ok().unwrap());
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|m| m.cmd == IpvsCmd::NewDest && m.dest().is_some())
        );
        // DONE carrying an error, and an NLMSG_ERROR, end it with the errno.
        let done_err = nl(3, seq, &(-3i32).to_ne_bytes());
        assert!(matches!(
            parse_dump_part(&done_err, fam, seq, &mut out),
            Err(DumpError::Errno(3))
        ));
        let mut err = (-1i32).to_ne_bytes().to_vec();
        err.extend([0; 16]);
        assert!(matches!(
            parse_dump_part(&nl(2, seq, &err), fam, seq, &mut out),
            Err(DumpError::Errno(1))
        ));
        assert!(matches!(
            parse_dump_part(&part2[..20], fam, seq, &mut out),
            Err(DumpError::Malformed(_))
        ));
    }
}
