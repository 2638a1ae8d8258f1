//! Batched IPVS writes: many requests as concatenated netlink messages in one datagram.
//!
//! The kernel handles a multi-message datagram in order, all of it inside the sender's
//! `sendmsg` (`netlink_unicast_kernel` → `genl_rcv` → `netlink_rcv_skb`, which walks
//! every `nlmsghdr` and keeps going after a failed one). So one `send` of ~64 KiB
//! programs a few hundred destinations, and by the time it returns every ack is
//! already queued on our socket.
//!
//! Acks: netlink queues each ack as its own skb and `recvmsg` returns one skb per
//! call, so asking for an ack on every message costs one `recvmsg` per operation —
//! the very per-syscall cost batching is meant to remove (expensive under TCG). With
//! [`Acks::ErrorsAndLast`] (the default) only the last message of a datagram carries
//! `NLM_F_ACK`; the kernel still acks every *failed* message (`netlink_rcv_skb` acks
//! when `NLM_F_ACK` is set **or** the handler returned an error), and because
//! processing is in order, the last message's ack proves all before it were handled:
//! no error ack for a seq = applied. [`Acks::Every`] is the textbook variant (kept to
//! measure the difference, and for paranoia).
//!
//! This module is the pure part (encoding, splitting, ack parsing and matching);
//! [`super::IpvsClient::batch`] does the I/O.

use std::net::SocketAddr;

use netlink_packet_core::{
    Emitable, NLM_F_ACK, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN,
    NetlinkMessage,
};
use netlink_packet_generic::GenlMessage;

use super::constants::IPVS_GENL_VERSION;
use super::dest::Destination;
use super::error::{Ctx, IpvsError, errno_error};
use super::message::{IpvsAttr, IpvsCmd, IpvsMessage};
use super::service::{Service, ServiceId};

/// Default upper bound of one datagram. The kernel refuses a datagram larger than the
/// socket's send buffer (`wmem_default`, 208 KiB); 64 KiB is ~440 NEW_DEST messages,
/// beyond which the per-`send` saving is noise.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Which messages of a datagram ask for an ack. See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Acks {
    /// Only the last message of each datagram; failures are acked anyway.
    #[default]
    ErrorsAndLast,
    /// `NLM_F_ACK` on every message (one ack, one `recvmsg`, per operation).
    Every,
}

/// One write operation of a batch.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    AddService(&'a Service),
    EditService(&'a Service),
    DeleteService(&'a ServiceId),
    AddDestination(&'a ServiceId, &'a Destination),
    EditDestination(&'a ServiceId, &'a Destination),
    DeleteDestination(&'a ServiceId, SocketAddr),
}

impl Request<'_> {
    /// The IPVS message, exactly as the one-at-a-time client methods send it.
    pub fn message(&self) -> IpvsMessage {
        match *self {
            Request::AddService(s) => IpvsMessage::new_service(s),
            Request::EditService(s) => IpvsMessage::set_service(s),
            Request::DeleteService(id) => IpvsMessage::del_service(id),
            Request::AddDestination(id, d) => IpvsMessage::new_dest(id, d),
            Request::EditDestination(id, d) => IpvsMessage::set_dest(id, d),
            Request::DeleteDestination(id, a) => IpvsMessage::del_dest(id, a),
        }
    }

    /// What the operation is, in the words the one-at-a-time methods use.
    pub fn describe(&self) -> String {
        match *self {
            Request::AddService(s) => format!("add service {}", s.id),
            Request::EditService(s) => format!("edit service {}", s.id),
            Request::DeleteService(id) => format!("delete service {id}"),
            Request::AddDestination(id, d) => {
                format!("add destination {} of {id}", d.socket_addr())
            }
            Request::EditDestination(id, d) => {
                format!("edit destination {} of {id}", d.socket_addr())
            }
            Request::DeleteDestination(id, a) => format!("delete destination {a} of {id}"),
        }
    }

    /// The kernel's positive errno for this request, as the same [`IpvsError`] the
    /// one-at-a-time method would return.
    pub fn error(&self, errno: i32) -> IpvsError {
        let op = self.describe();
        let ctx = match *self {
            Request::AddService(s) | Request::EditService(s) => Ctx::Service {
                id: &s.id,
                scheduler: Some(&s.scheduler),
            },
            Request::DeleteService(id) => Ctx::Service {
                id,
                scheduler: None,
            },
            Request::AddDestination(id, d) | Request::EditDestination(id, d) => Ctx::Dest {
                id,
                dest: d.socket_addr(),
            },
            Request::DeleteDestination(id, dest) => Ctx::Dest { id, dest },
        };
        errno_error(&op, errno, ctx)
    }
}

/// One datagram: requests `first..first + count`, sequence numbers
/// `first_seq..=last_seq` (request `first + k` has `first_seq + k`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    pub first: usize,
    pub count: usize,
    pub first_seq: u32,
}

impl Chunk {
    pub fn last_seq(&self) -> u32 {
        self.first_seq.wrapping_add(self.count as u32 - 1)
    }
}

/// Encode `msgs` (request `i` gets seq `seq0 + i`) into datagrams of at most
/// `max_bytes` each (a single larger message gets a datagram of its own). Every
/// message is `NLM_F_REQUEST` with the IPVS family id `family`; `acks` decides which
/// also carry `NLM_F_ACK` (always the last of each datagram).
pub fn encode_chunks(
    family: u16,
    msgs: impl IntoIterator<Item = IpvsMessage>,
    seq0: u32,
    max_bytes: usize,
    acks: Acks,
) -> Vec<Chunk> {
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut cur: Option<Chunk> = None;
    // Offset of the flags field of the last message of `cur` (to add NLM_F_ACK).
    let mut last_flags_at = 0;
    for (i, msg) in msgs.into_iter().enumerate() {
        let seq = seq0.wrapping_add(i as u32);
        let mut genl = GenlMessage::from_payload(msg);
        genl.set_resolved_family_id(family);
        let mut nl = NetlinkMessage::from(genl);
        nl.header.flags = NLM_F_REQUEST
            | match acks {
                Acks::Every => NLM_F_ACK,
                Acks::ErrorsAndLast => 0,
            };
        nl.header.sequence_number = seq;
        nl.finalize();
        let len = nl.buffer_len();
        if let Some(c) = cur.as_ref()
            && c.bytes.len() + len > max_bytes
        {
            let mut done = cur.take().expect("checked");
            set_ack(&mut done.bytes, last_flags_at);
            chunks.push(done);
        }
        let c = cur.get_or_insert_with(|| Chunk {
            bytes: Vec::with_capacity(max_bytes.min(1 << 20)),
            first: i,
            count: 0,
            first_seq: seq,
        });
        let at = c.bytes.len();
        c.bytes.resize(at + len, 0);
        nl.emit(&mut c.bytes[at..]);
        c.count += 1;
        last_flags_at = at + 6;
    }
    if let Some(mut done) = cur {
        set_ack(&mut done.bytes, last_flags_at);
        chunks.push(done);
    }
    chunks
}

/// [`encode_chunks`] for requests, faster: destination requests of the same service
/// reuse its identity nest's bytes (consecutive requests usually share the service),
/// and messages are written straight into the datagram, with no intermediate
/// `IpvsMessage` for destinations. Byte for byte the same output (unit-tested).
/// Encoding was a third of lvsup's time for 10k destinations under TCG before this.
pub fn encode_requests(
    family: u16,
    reqs: &[Request<'_>],
    seq0: u32,
    max_bytes: usize,
    acks: Acks,
) -> Vec<Chunk> {
    let flags = NLM_F_REQUEST
        | match acks {
            Acks::Every => NLM_F_ACK,
            Acks::ErrorsAndLast => 0,
        };
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut cur = Chunk {
        bytes: Vec::with_capacity(max_bytes.min(1 << 20) + 1024),
        first: 0,
        count: 0,
        first_seq: seq0,
    };
    let mut msg: Vec<u8> = Vec::with_capacity(1024);
    let mut svc_nest: Option<(ServiceId, Vec<u8>)> = None;
    for (i, r) in reqs.iter().enumerate() {
        let seq = seq0.wrapping_add(i as u32);
        msg.clear();
        msg.extend_from_slice(&[0; 4]); // length, patched below
        msg.extend_from_slice(&family.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        let dest = match *r {
            Request::AddDestination(id, d) => {
                Some((IpvsCmd::NewDest, id, IpvsAttr::Dest(d.to_attrs())))
            }
            Request::EditDestination(id, d) => {
                Some((IpvsCmd::SetDest, id, IpvsAttr::Dest(d.to_attrs())))
            }
            Request::DeleteDestination(id, a) => Some((
                IpvsCmd::DelDest,
                id,
                IpvsAttr::Dest(Destination::id_attrs(a)),
            )),
            _ => None,
        };
        match dest {
            Some((cmd, id, dest)) => {
                msg.extend_from_slice(&[u8::from(cmd), IPVS_GENL_VERSION, 0, 0]);
                if svc_nest.as_ref().is_none_or(|(k, _)| k != id) {
                    svc_nest = Some((*id, emitted(&IpvsAttr::Service(id.to_attrs()))));
                }
                msg.extend_from_slice(&svc_nest.as_ref().expect("just set").1);
                emit_into(&mut msg, &dest);
            }
            None => {
                let m = r.message();
                msg.extend_from_slice(&[u8::from(m.cmd), IPVS_GENL_VERSION, 0, 0]);
                for a in &m.attrs {
                    emit_into(&mut msg, a);
                }
            }
        }
        let len = msg.len() as u32;
        msg[0..4].copy_from_slice(&len.to_ne_bytes());
        if cur.count > 0 && cur.bytes.len() + msg.len() > max_bytes {
            let next = Chunk {
                bytes: Vec::with_capacity(cur.bytes.capacity()),
                first: i,
                count: 0,
                first_seq: seq,
            };
            chunks.push(std::mem::replace(&mut cur, next));
        }
        cur.bytes.extend_from_slice(&msg);
        cur.count += 1;
    }
    if cur.count > 0 {
        chunks.push(cur);
    }
    // The last message of every datagram asks for an ack (offsets recomputed: cheap).
    for c in &mut chunks {
        let mut at = 0;
        let mut last = 0;
        while at < c.bytes.len() {
            last = at;
            let len = u32::from_ne_bytes(c.bytes[at..at + 4].try_into().expect("4 bytes"));
            at += len as usize;
        }
        set_ack(&mut c.bytes, last + 6);
    }
    chunks
}

fn emitted(a: &IpvsAttr) -> Vec<u8> {
    let mut v = Vec::with_capacity(a.buffer_len());
    emit_into(&mut v, a);
    v
}

fn emit_into(buf: &mut Vec<u8>, a: &IpvsAttr) {
    let at = buf.len();
    buf.resize(at + a.buffer_len(), 0);
    a.emit(&mut buf[at..]);
}

fn set_ack(bytes: &mut [u8], flags_at: usize) {
    let f = u16::from_ne_bytes([bytes[flags_at], bytes[flags_at + 1]]) | NLM_F_ACK;
    bytes[flags_at..flags_at + 2].copy_from_slice(&f.to_ne_bytes());
}

/// An `NLMSG_ERROR` from the kernel: `errno` 0 is a plain ack, else the positive errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub seq: u32,
    pub errno: i32,
}

/// Parse what one `recv` returned: a run of netlink messages. Acks are returned;
/// `NLMSG_NOOP`/`NLMSG_DONE` and any other message type are skipped (a write batch
/// expects no data replies); `NLMSG_OVERRUN` and truncated messages are errors.
pub fn parse_acks(mut buf: &[u8]) -> Result<Vec<Ack>, String> {
    const HDR: usize = 16;
    let mut out = Vec::new();
    while !buf.is_empty() {
        if buf.len() < HDR {
            return Err(format!(
                "{} trailing bytes, shorter than a header",
                buf.len()
            ));
        }
        let len = u32::from_ne_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes(buf[8..12].try_into().expect("4 bytes"));
        if len < HDR || len > buf.len() {
            return Err(format!(
                "message length {len} with {} bytes left",
                buf.len()
            ));
        }
        match kind {
            NLMSG_ERROR => {
                if len < HDR + 4 {
                    return Err(format!("NLMSG_ERROR of {len} bytes has no error code"));
                }
                let code = i32::from_ne_bytes(buf[HDR..HDR + 4].try_into().expect("4 bytes"));
                // The echoed request header (after the code) carries the same seq; the
                // outer one is enough. With NETLINK_CAP_ACK nothing else follows.
                out.push(Ack {
                    seq,
                    errno: code.saturating_neg(),
                });
            }
            NLMSG_OVERRUN => return Err("netlink overrun".into()),
            NLMSG_NOOP | NLMSG_DONE => {}
            _ => {}
        }
        // Messages are 4-byte aligned within a datagram.
        let step = (len + 3) & !3;
        buf = &buf[step.min(buf.len())..];
    }
    Ok(out)
}

/// Collects the acks of one [`Chunk`]: which requests failed and when it is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkAcks {
    first_seq: u32,
    count: usize,
    /// (index within the chunk, positive errno), in arrival (= request) order.
    pub errors: Vec<(usize, i32)>,
    /// The last message's ack arrived: every request of the chunk was processed.
    pub done: bool,
}

impl ChunkAcks {
    pub fn new(chunk: &Chunk) -> Self {
        ChunkAcks {
            first_seq: chunk.first_seq,
            count: chunk.count,
            errors: Vec::new(),
            done: false,
        }
    }

    /// Take one ack. An ack whose seq is not one of this chunk's is an error (the
    /// socket is ours alone, so it would mean a confused kernel or a bug).
    pub fn feed(&mut self, ack: Ack) -> Result<(), String> {
        let k = ack.seq.wrapping_sub(self.first_seq) as usize;
        if k >= self.count {
            return Err(format!(
                "ack for seq {} outside this batch ({}..={})",
                ack.seq,
                self.first_seq,
                self.first_seq.wrapping_add(self.count as u32 - 1)
            ));
        }
        if ack.errno != 0 {
            self.errors.push((k, ack.errno));
        }
        if k == self.count - 1 {
            self.done = true;
        }
        Ok(())
    }

    /// Requests of the chunk that were applied (valid once `done`).
    pub fn applied(&self) -> usize {
        self.count - self.errors.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::dest::Forward;

    const FAMILY: u16 = 0x1d;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Hex in the style of tests/fixtures/ipvs (whitespace ignored, `#` comments).
    fn hex(s: &str) -> Vec<u8> {
        let digits: String = s
            .lines()
            .map(|l| l.split('#').next().unwrap())
            .collect::<String>()
            .split_whitespace()
            .collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    fn fixture(name: &str) -> Vec<u8> {
        let p = format!("{}/tests/fixtures/ipvs/{name}", env!("CARGO_MANIFEST_DIR"));
        hex(&std::fs::read_to_string(p).unwrap())
    }

    fn svc() -> Service {
        Service::new(ServiceId::tcp(sa("10.0.0.1:80")), "rr")
    }

    /// Split a datagram into (len, type, flags, seq, payload).
    fn split(mut b: &[u8]) -> Vec<(usize, u16, u16, u32, Vec<u8>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
            let t = u16::from_ne_bytes([b[4], b[5]]);
            let f = u16::from_ne_bytes([b[6], b[7]]);
            let s = u32::from_ne_bytes(b[8..12].try_into().unwrap());
            out.push((len, t, f, s, b[16..len].to_vec()));
            b = &b[(len + 3) & !3..];
        }
        out
    }

    #[test]
    fn one_datagram_of_concatenated_messages_with_fixture_payloads() {
        // The same operations as the fixtures: TCP 10.0.0.1:80 rr persistent 50, a
        // destination 10.0.0.2:80 (route, weight 1), and 10.0.0.4:0 out of fwmark 7.
        let s = svc().persistent(50);
        let d = Destination::new(sa("10.0.0.2:80"), Forward::Route, 1);
        let fwm = ServiceId::fwmark(7);
        let reqs = [
            Request::AddService(&s),
            Request::AddDestination(&s.id, &d),
            Request::DeleteDestination(&fwm, sa("10.0.0.4:0")),
        ];
        let chunks = encode_chunks(
            FAMILY,
            reqs.iter().map(Request::message),
            100,
            BATCH_BYTES,
            Acks::ErrorsAndLast,
        );
        assert_eq!(chunks.len(), 1);
        let c = &chunks[0];
        assert_eq!(
            (c.first, c.count, c.first_seq, c.last_seq()),
            (0, 3, 100, 102)
        );
        let msgs = split(&c.bytes);
        assert_eq!(msgs.len(), 3);
        for (k, (len, t, f, seq, _)) in msgs.iter().enumerate() {
            assert_eq!(*t, FAMILY);
            assert_eq!(*seq, 100 + k as u32);
            assert_eq!(*len % 4, 0);
            let want = if k == 2 {
                NLM_F_REQUEST | NLM_F_ACK
            } else {
                NLM_F_REQUEST
            };
            assert_eq!(*f, want, "flags of message {k}");
        }
        // Payloads are byte for byte the hand-built fixtures.
        assert_eq!(msgs[0].4, fixture("new_service_request.hex"));
        assert_eq!(msgs[1].4, fixture("new_dest_request.hex"));
        assert_eq!(msgs[2].4, fixture("del_dest_request.hex"));
    }

    #[test]
    fn fast_encoder_is_byte_identical_to_the_generic_one() {
        let a = svc().persistent(50);
        let b = Service::new(ServiceId::fwmark(7), "wlc");
        let v6 = Service::new(ServiceId::udp(sa("[2001:db8::1]:53")), "sh");
        let mut d: Vec<Destination> = (0..30)
            .map(|i| Destination::new(sa(&format!("10.0.1.{}:80", i + 1)), Forward::Route, i))
            .collect();
        d[3].fwd = Forward::Tunnel;
        d[4].u_thresh = 100;
        let d6 = Destination::new(sa("[2001:db8::2]:53"), Forward::Masq, 2);
        let mut reqs = vec![
            Request::AddService(&a),
            Request::AddService(&b),
            Request::EditService(&v6),
            Request::DeleteService(&b.id),
        ];
        for (k, x) in d.iter().enumerate() {
            let id = [&a.id, &b.id][k % 3 / 2];
            reqs.push(match k % 3 {
                0 => Request::AddDestination(id, x),
                1 => Request::EditDestination(id, x),
                _ => Request::DeleteDestination(id, x.socket_addr()),
            });
        }
        reqs.push(Request::AddDestination(&v6.id, &d6));
        reqs.push(Request::DeleteDestination(&v6.id, d6.socket_addr()));
        for acks in [Acks::ErrorsAndLast, Acks::Every] {
            for max in [BATCH_BYTES, 700, 1] {
                let slow = encode_chunks(FAMILY, reqs.iter().map(Request::message), 5, max, acks);
                let fast = encode_requests(FAMILY, &reqs, 5, max, acks);
                assert_eq!(fast, slow, "{acks:?} {max}");
            }
        }
        assert!(encode_requests(FAMILY, &[], 1, BATCH_BYTES, Acks::Every).is_empty());
    }

    #[test]
    fn ack_every_sets_the_flag_on_all() {
        let s = svc();
        let chunks = encode_chunks(
            FAMILY,
            [
                IpvsMessage::new_service(&s),
                IpvsMessage::del_service(&s.id),
            ],
            1,
            BATCH_BYTES,
            Acks::Every,
        );
        assert!(
            split(&chunks[0].bytes)
                .iter()
                .all(|m| m.2 == NLM_F_REQUEST | NLM_F_ACK)
        );
    }

    #[test]
    fn splits_at_the_byte_limit_and_keeps_seqs_contiguous() {
        let s = svc();
        let dests: Vec<Destination> = (0..100)
            .map(|i| Destination::new(sa(&format!("10.0.1.{}:80", i + 1)), Forward::Route, 1))
            .collect();
        let msgs: Vec<IpvsMessage> = dests
            .iter()
            .map(|d| IpvsMessage::new_dest(&s.id, d))
            .collect();
        let one = msgs[0].clone();
        let msg_len = {
            let mut g = GenlMessage::from_payload(one);
            g.set_resolved_family_id(FAMILY);
            let mut nl = NetlinkMessage::from(g);
            nl.finalize();
            nl.buffer_len()
        };
        let max = msg_len * 7 + 3; // room for 7 whole messages
        let chunks = encode_chunks(FAMILY, msgs, u32::MAX - 50, max, Acks::ErrorsAndLast);
        assert_eq!(chunks.len(), 15); // 14 × 7 + 2
        let mut next = 0;
        let mut seq = u32::MAX - 50;
        for c in &chunks {
            assert!(c.bytes.len() <= max);
            assert_eq!(c.first, next);
            assert_eq!(c.first_seq, seq);
            let m = split(&c.bytes);
            assert_eq!(m.len(), c.count);
            for (k, msg) in m.iter().enumerate() {
                assert_eq!(msg.3, seq.wrapping_add(k as u32)); // seq wraps around u32::MAX
                assert_eq!(msg.2 & NLM_F_ACK != 0, k + 1 == c.count);
            }
            next += c.count;
            seq = seq.wrapping_add(c.count as u32);
        }
        assert_eq!(next, 100);
        // A limit below one message still makes progress: one message per datagram.
        let tiny = encode_chunks(
            FAMILY,
            dests[..3].iter().map(|d| IpvsMessage::new_dest(&s.id, d)),
            1,
            10,
            Acks::ErrorsAndLast,
        );
        assert_eq!(tiny.iter().map(|c| c.count).collect::<Vec<_>>(), [1, 1, 1]);
    }

    /// An ack as netlink_ack() builds it with NETLINK_CAP_ACK: nlmsghdr (type 2,
    /// flags NLM_F_CAPPED 0x100 on errors), then struct nlmsgerr = error code + the
    /// request's nlmsghdr.
    fn ack_bytes(seq: u32, code: i32) -> String {
        let le = |v: &[u8]| v.iter().map(|b| format!("{b:02x} ")).collect::<String>();
        let flags: u16 = if code != 0 { 0x100 } else { 0 };
        format!(
            "24 00 00 00 02 00 {f} {s} 11 22 33 44   # nlmsghdr: len 36, NLMSG_ERROR, seq, port id\n\
             {c}                                   # error (negative errno, 0 = ack)\n\
             a0 00 00 00 1d 00 01 00 {s} 00 00 00 00 # the request's header (capped)\n",
            f = le(&flags.to_ne_bytes()),
            s = le(&seq.to_ne_bytes()),
            c = le(&code.to_ne_bytes()),
        )
    }

    #[test]
    fn error_in_the_middle_is_matched_by_seq_and_counted() {
        // Five requests at seq 40..=44; the one at 42 fails with EEXIST (17): the kernel
        // acks only the failure and the last message, and those two acks can arrive in
        // one buffer or in two recvs.
        let s = svc();
        let d: Vec<Destination> = (0..5)
            .map(|i| Destination::new(sa(&format!("10.0.0.{}:80", i + 2)), Forward::Route, 1))
            .collect();
        let reqs: Vec<Request> = d
            .iter()
            .map(|d| Request::AddDestination(&s.id, d))
            .collect();
        let chunks = encode_chunks(
            FAMILY,
            reqs.iter().map(Request::message),
            40,
            BATCH_BYTES,
            Acks::ErrorsAndLast,
        );
        let wire = hex(&(ack_bytes(42, -17) + &ack_bytes(44, 0)));
        let acks = parse_acks(&wire).unwrap();
        assert_eq!(
            acks,
            [Ack { seq: 42, errno: 17 }, Ack { seq: 44, errno: 0 }]
        );
        let mut t = ChunkAcks::new(&chunks[0]);
        t.feed(acks[0]).unwrap();
        assert!(!t.done);
        t.feed(acks[1]).unwrap();
        assert!(t.done);
        assert_eq!(t.errors, [(2, 17)]);
        assert_eq!(t.applied(), 4);
        let (k, errno) = t.errors[0];
        assert_eq!(
            reqs[chunks[0].first + k].error(errno).to_string(),
            "destination 10.0.0.4:80 already exists in service TCP 10.0.0.1:80"
        );
        // A stray seq is refused rather than miscounted.
        assert!(t.feed(Ack { seq: 45, errno: 0 }).is_err());
        assert!(t.feed(Ack { seq: 39, errno: 0 }).is_err());
    }

    #[test]
    fn every_ack_mode_and_last_message_failing() {
        let s = svc();
        let reqs = [Request::AddService(&s), Request::EditService(&s)];
        let chunks = encode_chunks(
            FAMILY,
            reqs.iter().map(Request::message),
            7,
            BATCH_BYTES,
            Acks::Every,
        );
        let mut t = ChunkAcks::new(&chunks[0]);
        for a in parse_acks(&hex(&ack_bytes(7, 0))).unwrap() {
            t.feed(a).unwrap();
        }
        assert!(!t.done);
        // The last one fails (ESRCH): its error ack also completes the chunk.
        for a in parse_acks(&hex(&ack_bytes(8, -3))).unwrap() {
            t.feed(a).unwrap();
        }
        assert!(t.done);
        assert_eq!(t.applied(), 1);
        assert_eq!(
            reqs[1].error(3).to_string(),
            "service TCP 10.0.0.1:80 does not exist"
        );
        assert_eq!(
            reqs[0].error(2).to_string(),
            "scheduler \"rr\" for service TCP 10.0.0.1:80 is not available (modprobe ip_vs_rr)"
        );
    }

    #[test]
    fn parse_skips_noise_and_refuses_garbage() {
        // NLMSG_DONE (16 + 4 bytes) then an ack: only the ack comes out.
        let done = "14 00 00 00 03 00 02 00 05 00 00 00 00 00 00 00  00 00 00 00";
        let wire = hex(&(done.to_string() + &ack_bytes(5, 0)));
        assert_eq!(parse_acks(&wire).unwrap(), [Ack { seq: 5, errno: 0 }]);
        assert!(parse_acks(&hex("10 00 00 00 04 00 00 00 01 00 00 00 00 00 00 00")).is_err());
        assert!(parse_acks(&hex("24 00 00 00 02 00 00 00 01 00 00 00")).is_err());
        assert!(parse_acks(&hex("ff 00 00 00 02 00 00 00 01 00 00 00 00 00 00 00")).is_err());
        assert!(parse_acks(&hex("10 00 00 00 02 00 00 00 01 00 00 00 00 00 00 00")).is_err());
        assert!(parse_acks(&[]).unwrap().is_empty());
    }

    #[test]
    fn requests_describe_themselves_like_the_single_methods() {
        let s = svc();
        let d = Destination::new(sa("10.0.0.2:80"), Forward::Route, 1);
        assert_eq!(
            Request::AddService(&s).describe(),
            "add service TCP 10.0.0.1:80"
        );
        assert_eq!(
            Request::EditDestination(&s.id, &d).describe(),
            "edit destination 10.0.0.2:80 of TCP 10.0.0.1:80"
        );
        assert_eq!(
            Request::DeleteDestination(&s.id, d.socket_addr())
                .error(2)
                .to_string(),
            "destination 10.0.0.2:80 does not exist in service TCP 10.0.0.1:80"
        );
        assert_eq!(
            Request::DeleteService(&s.id).error(22).to_string(),
            "delete service TCP 10.0.0.1:80: kernel refused: Invalid argument (os error 22)"
        );
    }
}
