//! Probes from the operator's machine to VIP:port: a TCP connect, an HTTP
//! GET when the service's health check is http, or for a UDP service one
//! datagram that must be answered (the reply's text names the real server
//! where the application says who it is, as the lab's demo responder does). A timeline prober starts one
//! probe every 10 ms (without waiting for the previous one), bounded in count
//! and time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::{Mutex, watch};

use super::analysis::ProbeResult;

/// What a probe asks of the VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeKind {
    Tcp,
    Http {
        path: String,
        expect_status: u16,
    },
    /// One datagram to VIP:port, answered by one datagram back.
    Udp,
}

/// What a UDP probe sends (any payload does for a responder that answers
/// every datagram; this one says who asks).
pub const UDP_PAYLOAD: &[u8] = b"lvsup-verify\n";

impl ProbeKind {
    pub fn describe(&self) -> &'static str {
        match self {
            ProbeKind::Tcp => "TCP connects",
            ProbeKind::Http { .. } => "HTTP GETs",
            ProbeKind::Udp => "UDP datagrams",
        }
    }
}

/// One probe; Err carries a short reason ("connect: Connection refused").
pub async fn probe_once(
    addr: SocketAddr,
    kind: &ProbeKind,
    timeout: Duration,
) -> Result<(), String> {
    probe_from(addr, kind, timeout, None).await.map(|_| ())
}

fn local_addr(addr: SocketAddr, port: u16) -> SocketAddr {
    if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], port))
    } else {
        SocketAddr::from(([0u16; 8], port))
    }
}

/// One UDP probe from local port `port` (0: the kernel picks one): send
/// [`UDP_PAYLOAD`], wait for one datagram back. Ok: the reply's text
/// (trimmed, at most 64 characters; may be empty). The socket is connected,
/// so only a reply from `addr` counts and an ICMP port unreachable is an
/// error ("Connection refused").
async fn udp_from(addr: SocketAddr, local: SocketAddr) -> Result<String, String> {
    let sock = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("bind: {e}"))?;
    sock.connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    sock.send(UDP_PAYLOAD)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 512];
    let n = sock
        .recv(&mut buf)
        .await
        .map_err(|e| format!("recv: {e}"))?;
    let text = String::from_utf8_lossy(&buf[..n]);
    Ok(text.trim().chars().take(64).collect())
}

/// [`probe_once`] from the local address `local` (None: the kernel picks
/// address and port). Ok(Some(text)): a UDP probe's reply.
async fn probe_from(
    addr: SocketAddr,
    kind: &ProbeKind,
    timeout: Duration,
    local: Option<SocketAddr>,
) -> Result<Option<String>, String> {
    if *kind == ProbeKind::Udp {
        let local = local.unwrap_or_else(|| local_addr(addr, 0));
        return match tokio::time::timeout(timeout, udp_from(addr, local)).await {
            Ok(r) => r.map(Some),
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        };
    }
    let work = async {
        let mut s = match local {
            None => TcpStream::connect(addr).await,
            Some(local) => {
                let sock = if addr.is_ipv4() {
                    TcpSocket::new_v4()
                } else {
                    TcpSocket::new_v6()
                }
                .map_err(|e| format!("socket: {e}"))?;
                sock.bind(local).map_err(|e| format!("bind: {e}"))?;
                sock.connect(addr).await
            }
        }
        .map_err(|e| format!("connect: {e}"))?;
        if let ProbeKind::Http {
            path,
            expect_status,
        } = kind
        {
            let req = format!(
                "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: lvsup-verify\r\nConnection: close\r\n\r\n",
                addr.ip()
            );
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("send: {e}"))?;
            let mut buf = vec![0u8; 256];
            let mut n = 0;
            while n < 12 {
                let r = s
                    .read(&mut buf[n..])
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                if r == 0 {
                    break;
                }
                n += r;
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse::<u16>().ok());
            if status != Some(*expect_status) {
                return Err(format!(
                    "HTTP status {}, expected {expect_status}",
                    status.map_or("none".into(), |s| s.to_string())
                ));
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r.map(|()| None),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// A sequential batch of `n` new connections (new source port each).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchResult {
    pub sent: u32,
    pub ok: u32,
    pub first_error: Option<String>,
    /// UDP: how many replies said each text (the real server's name, where
    /// the application answers with it). Empty for TCP and HTTP.
    pub replies: BTreeMap<String, u32>,
}

impl BatchResult {
    fn record(&mut self, r: Result<Option<String>, String>) {
        self.sent += 1;
        match r {
            Ok(text) => {
                self.ok += 1;
                if let Some(t) = text {
                    *self.replies.entry(t).or_default() += 1;
                }
            }
            Err(e) => {
                self.first_error.get_or_insert(e);
            }
        }
    }
}

pub async fn batch(addr: SocketAddr, kind: &ProbeKind, n: u32, timeout: Duration) -> BatchResult {
    let mut r = BatchResult::default();
    for _ in 0..n {
        r.record(probe_from(addr, kind, timeout, None).await);
    }
    r
}

/// Like [`batch`], but every connection from the local address `source`
/// (a port the kernel picks): one client address of several (`verify
/// --source`), for the schedulers that hash the source address.
pub async fn batch_from(
    addr: SocketAddr,
    kind: &ProbeKind,
    n: u32,
    timeout: Duration,
    source: std::net::IpAddr,
) -> BatchResult {
    let mut r = BatchResult::default();
    for _ in 0..n {
        r.record(probe_from(addr, kind, timeout, Some(SocketAddr::new(source, 0))).await);
    }
    r
}

/// Like [`batch`], but from local ports not in `avoid` (ports the director's
/// IPVS table still has a connection entry for, from this client to this
/// VIP:port). With the default `net.ipv4.vs.conn_reuse_mode = 1` a SYN that
/// matches an entry which is not in TIME_WAIT or CLOSE (a DR/TUN director
/// sees only the client's half: its entries sit in FIN_WAIT for 2 min) is
/// not scheduled anew (ip_vs_core.c `is_new_conn_expected()`): it goes to
/// the old real server and is not counted. The kernel's own port choice
/// avoids only its local TIME_WAIT sockets (60 s), so a second run within 2
/// minutes of a first (the 10 ms prober sends thousands) can meet such an
/// entry. Ports that cannot be bound (in use here) are skipped.
pub async fn batch_avoiding(
    addr: SocketAddr,
    kind: &ProbeKind,
    n: u32,
    timeout: Duration,
    avoid: &std::collections::HashSet<u16>,
) -> BatchResult {
    // The ephemeral range of Linux's default, from a point that moves with the clock.
    const LO: u32 = 32768;
    const SPAN: u32 = 60999 - 32768 + 1;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut next = seed % SPAN;
    let mut r = BatchResult::default();
    let mut tried = 0u32;
    while r.sent < n && tried < SPAN {
        let port = u16::try_from(LO + next).unwrap_or(0);
        next = (next + 1) % SPAN;
        tried += 1;
        if avoid.contains(&port) {
            continue;
        }
        match probe_from(addr, kind, timeout, Some(local_addr(addr, port))).await {
            Err(e) if e.starts_with("bind:") => continue,
            res => r.record(res),
        }
    }
    r
}

/// Probing every `every` in the background until stopped or a bound is hit.
pub struct Prober {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<ProbeResult>>,
}

/// Bounds of a timeline prober.
#[derive(Debug, Clone, Copy)]
pub struct ProberLimits {
    pub every: Duration,
    pub timeout: Duration,
    pub max_probes: u32,
    pub max_time: Duration,
}

impl Default for ProberLimits {
    fn default() -> Self {
        ProberLimits {
            every: Duration::from_millis(10),
            timeout: Duration::from_millis(500),
            max_probes: 20_000,
            max_time: Duration::from_secs(180),
        }
    }
}

impl Prober {
    /// Start probing; results are in ms after `t0`.
    pub fn start(addr: SocketAddr, kind: ProbeKind, t0: Instant, lim: ProberLimits) -> Prober {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let results = Arc::new(Mutex::new(Vec::new()));
            let mut tick = tokio::time::interval(lim.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut inflight = tokio::task::JoinSet::new();
            let end = Instant::now() + lim.max_time;
            let mut n = 0u32;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                if n >= lim.max_probes || Instant::now() >= end {
                    break;
                }
                n += 1;
                let at_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
                let kind = kind.clone();
                let results = results.clone();
                inflight.spawn(async move {
                    let ok = probe_once(addr, &kind, lim.timeout).await.is_ok();
                    results.lock().await.push(ProbeResult { at_ms, ok });
                });
                while inflight.try_join_next().is_some() {}
            }
            while inflight.join_next().await.is_some() {}
            let mut v = results.lock().await.clone();
            v.sort_by_key(|p| p.at_ms);
            v
        });
        Prober { stop, task }
    }

    /// Stop and collect the timeline (probes still in flight finish first).
    pub async fn finish(self) -> Vec<ProbeResult> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// Connections held open across a director failover: each has sent the
/// first line of an HTTP/1.0 request (so the director saw a data segment:
/// IPVS syncs a TCP connection once it has passed 3 packets, with the
/// kernel's default `sync_threshold`) and waits for the rest.
pub struct Held {
    streams: Vec<TcpStream>,
    addr: SocketAddr,
}

impl Held {
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

/// Open `n` connections to `addr` and send each the request line for
/// `path`; connections that cannot be opened are left out (the caller
/// compares the count with `n`).
pub async fn hold(addr: SocketAddr, path: &str, n: u32, timeout: Duration) -> Held {
    let mut streams = Vec::new();
    for _ in 0..n {
        let open = async {
            let mut s = TcpStream::connect(addr).await.ok()?;
            s.write_all(format!("GET {path} HTTP/1.0\r\n").as_bytes())
                .await
                .ok()?;
            Some(s)
        };
        if let Ok(Some(s)) = tokio::time::timeout(timeout, open).await {
            streams.push(s);
        }
    }
    Held { streams, addr }
}

/// Finish every held request (the rest of the head) and read the answer:
/// data back, an orderly close, or broken (reset, no answer within
/// `timeout`).
pub async fn complete(held: Held, timeout: Duration) -> Vec<super::analysis::HeldOutcome> {
    use super::analysis::HeldOutcome;
    let rest = format!(
        "Host: {}\r\nUser-Agent: lvsup-verify\r\nConnection: close\r\n\r\n",
        held.addr.ip()
    );
    let mut out = Vec::new();
    for mut s in held.streams {
        let one = async {
            s.write_all(rest.as_bytes())
                .await
                .map_err(|e| format!("send: {e}"))?;
            let mut buf = [0u8; 512];
            let mut total = 0usize;
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => total += n,
                    Err(e) if total > 0 => {
                        // Data came back, then the connection ended badly: the
                        // answer still crossed the failover.
                        let _ = e;
                        break;
                    }
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
            Ok(total)
        };
        out.push(match tokio::time::timeout(timeout, one).await {
            Ok(Ok(0)) => HeldOutcome::ClosedByServer,
            Ok(Ok(n)) => HeldOutcome::Answered(n),
            Ok(Err(e)) => HeldOutcome::Broken(e),
            Err(_) => HeldOutcome::Broken(format!("no answer within {} ms", timeout.as_millis())),
        });
    }
    out
}
