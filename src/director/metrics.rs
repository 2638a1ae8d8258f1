//! Optional Prometheus metrics listener of the director daemon (off unless
//! `[cluster] metrics = "ADDR:PORT"` → director.toml `metrics`).
//!
//! `GET /metrics` answers the [`Status`] the control socket gives, in the
//! Prometheus text exposition format 0.0.4: VRRP state and counters, every
//! real server's health and weights, the kernel's IPVS counters. Plain
//! HTTP/1.0, one request per connection, no TLS and no authentication: bind it
//! to an address only your monitoring can reach (`127.0.0.1` with a local
//! agent, or a management network).
//!
//! [`render`] is pure (tested on a fixed status); [`serve`] is the socket.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::control::snapshot;
use crate::contract::status::Status;
use crate::ipvs::IpvsClient;

/// `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const STATES: [&str; 3] = ["Initialize", "Backup", "Master"];
const HEALTH: [&str; 3] = ["unknown", "up", "down"];

/// A label value, escaped as the format wants (`\\`, `\"`, `\n`).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one unlabelled sample.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// The status as Prometheus text exposition (every family with HELP and TYPE;
/// kernel counters only when the daemon could read the IPVS table).
pub fn render(st: &Status) -> String {
    let mut o = Out(String::new());
    let v = &st.vrrp;
    let c = &v.counters;
    o.family(
        "lvsup_director_info",
        "gauge",
        "The daemon: version, cluster, director (always 1).",
    );
    o.sample(
        "lvsup_director_info",
        &[
            ("version", &st.version),
            ("cluster", &st.cluster),
            ("director", &st.director),
        ],
        1,
    );
    o.family(
        "lvsup_director_vrrp_state",
        "gauge",
        "VRRP state: 1 for the current one.",
    );
    for s in STATES {
        o.sample(
            "lvsup_director_vrrp_state",
            &[("state", s)],
            u8::from(v.state == s),
        );
    }
    o.one(
        "lvsup_director_vrrp_priority",
        "gauge",
        "This director's VRRP priority.",
        v.priority,
    );
    o.one(
        "lvsup_director_vip_held",
        "gauge",
        "Floating addresses (VIP, NAT gateway) this director holds.",
        v.addresses_held.len(),
    );
    o.one(
        "lvsup_director_health_gate_open",
        "gauge",
        "1 when the health of every real server is known (mastership allowed).",
        u8::from(v.health_gate_open),
    );
    o.one(
        "lvsup_director_vrrp_transitions_total",
        "counter",
        "VRRP state changes since the daemon started.",
        c.transitions,
    );
    for (name, help, value) in [
        ("adverts_sent", "VRRP adverts sent.", c.adverts_sent),
        (
            "adverts_received",
            "VRRP adverts received for our VRID.",
            c.adverts_received,
        ),
        (
            "priority_zero_received",
            "Priority-0 adverts received (a master leaving).",
            c.priority_zero_received,
        ),
        (
            "adverts_discarded",
            "Adverts discarded by RFC 5798 rules (lower priority).",
            c.adverts_discarded,
        ),
        (
            "other_vrid",
            "Valid adverts for another VRID on the link.",
            c.other_vrid,
        ),
        (
            "unknown_peer",
            "Adverts from an address that is not one of the cluster's directors (dropped).",
            c.unknown_peer,
        ),
        (
            "interval_mismatch",
            "Adverts with another advert interval (ignored for timing).",
            c.interval_mismatch,
        ),
        (
            "send_errors",
            "Adverts that could not be sent.",
            c.send_errors,
        ),
        (
            "gratuitous_arps_sent",
            "Gratuitous ARP frames sent.",
            c.gratuitous_arps_sent,
        ),
    ] {
        o.one(
            &format!("lvsup_director_vrrp_{name}_total"),
            "counter",
            help,
            value,
        );
    }
    o.family(
        "lvsup_director_vrrp_bad_packets_total",
        "counter",
        "Malformed VRRP packets dropped, by reason.",
    );
    for (reason, n) in &c.bad_packets {
        o.sample(
            "lvsup_director_vrrp_bad_packets_total",
            &[("reason", reason)],
            n,
        );
    }
    o.one(
        "lvsup_director_ipvs_reconcile_ok",
        "gauge",
        "1 when the last IPVS reconcile succeeded (0 also before the first).",
        u8::from(st.ipvs.last_reconcile.as_ref().is_some_and(|r| r.ok)),
    );
    o.one(
        "lvsup_director_config_reload_ok",
        "gauge",
        "0 when the last SIGHUP was refused (the old config runs), else 1.",
        u8::from(st.config.last_reload.as_ref().is_none_or(|r| r.ok)),
    );
    o.one(
        "lvsup_director_health_checks_total",
        "counter",
        "Health checks run to their end since the daemon started, every real server.",
        st.checks.completed,
    );
    o.one(
        "lvsup_director_health_checks_skipped_total",
        "counter",
        "Health checks left out since the daemon started: due while the same real server's last one still ran.",
        st.checks.skipped,
    );

    // Per real server.
    // `tcp/VIP:PORT`, a fwmark service `fwm/MARK`
    let svc_label = |s: &crate::contract::status::ServiceStatus| match s.fwmark {
        Some(m) => format!("fwm/{m}"),
        None => format!("{}/{}:{}", s.protocol, s.vip, s.port),
    };
    if st.services.iter().any(|s| s.sorry_server.is_some()) {
        o.family(
            "lvsup_director_sorry_server_in_use",
            "gauge",
            "1 while the service's sorry server is in IPVS (no real server can take a connection).",
        );
        for s in &st.services {
            if let Some(ss) = &s.sorry_server {
                o.sample(
                    "lvsup_director_sorry_server_in_use",
                    &[("service", &svc_label(s))],
                    u8::from(ss.in_use),
                );
            }
        }
    }
    o.family(
        "lvsup_director_real_server_health",
        "gauge",
        "Health of a real server as this director's checks see it: 1 for the current state.",
    );
    for s in &st.services {
        let svc = svc_label(s);
        for r in &s.real_servers {
            let addr = format!("{}:{}", r.address, r.port);
            for h in HEALTH {
                o.sample(
                    "lvsup_director_real_server_health",
                    &[
                        ("service", &svc),
                        ("real_server", &r.name),
                        ("address", &addr),
                        ("state", h),
                    ],
                    u8::from(r.health == h),
                );
            }
        }
    }
    for (name, help) in [
        ("weight", "Configured weight."),
        (
            "effective_weight",
            "Weight the daemon wants in the kernel (0 while down).",
        ),
        (
            "health_flips_total",
            "Health changes since the daemon started.",
        ),
        (
            "failed_checks_total",
            "Failed health checks since the daemon started (not those the director could not run).",
        ),
    ] {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let full = format!("lvsup_director_real_server_{name}");
        o.family(&full, kind, help);
        for s in &st.services {
            let svc = svc_label(s);
            for r in &s.real_servers {
                let addr = format!("{}:{}", r.address, r.port);
                let value = match name {
                    "weight" => u64::from(r.weight),
                    "effective_weight" => u64::from(r.effective_weight),
                    "failed_checks_total" => r.failed_checks,
                    _ => r.flips,
                };
                o.sample(
                    &full,
                    &[
                        ("service", &svc),
                        ("real_server", &r.name),
                        ("address", &addr),
                    ],
                    value,
                );
            }
        }
    }

    // Kernel counters (IPVS table read at scrape time).
    type DestField = fn(&crate::contract::status::DestCounters) -> u64;
    let dest: [(&str, &str, &str, DestField); 7] = [
        (
            "weight",
            "gauge",
            "Weight in the kernel's IPVS table.",
            |k| u64::from(k.weight),
        ),
        (
            "active_connections",
            "gauge",
            "Active connections (IPVS).",
            |k| u64::from(k.active_conns),
        ),
        (
            "inactive_connections",
            "gauge",
            "Inactive connections (IPVS).",
            |k| u64::from(k.inact_conns),
        ),
        (
            "connections_total",
            "counter",
            "Connections scheduled to it (IPVS).",
            |k| k.conns,
        ),
        ("in_packets_total", "counter", "Packets in (IPVS).", |k| {
            k.in_pkts
        }),
        ("in_bytes_total", "counter", "Bytes in (IPVS).", |k| {
            k.in_bytes
        }),
        (
            "out_bytes_total",
            "counter",
            "Bytes out (IPVS; NAT only, DR/TUN replies bypass the director).",
            |k| k.out_bytes,
        ),
    ];
    for (name, kind, help, get) in dest {
        let full = format!("lvsup_director_ipvs_real_server_{name}");
        let mut header = false;
        for s in &st.services {
            let svc = svc_label(s);
            for r in &s.real_servers {
                let Some(k) = &r.kernel else { continue };
                if !header {
                    o.family(&full, kind, help);
                    header = true;
                }
                let addr = format!("{}:{}", r.address, r.port);
                o.sample(
                    &full,
                    &[
                        ("service", &svc),
                        ("real_server", &r.name),
                        ("address", &addr),
                    ],
                    get(k),
                );
            }
        }
    }
    type SvcField = fn(&crate::contract::status::ServiceCounters) -> u64;
    let svc: [(&str, &str, SvcField); 3] = [
        (
            "connections_total",
            "Connections to the virtual service (IPVS).",
            |k| k.conns,
        ),
        ("in_packets_total", "Packets in (IPVS).", |k| k.in_pkts),
        ("in_bytes_total", "Bytes in (IPVS).", |k| k.in_bytes),
    ];
    for (name, help, get) in svc {
        let full = format!("lvsup_director_ipvs_service_{name}");
        let mut header = false;
        for s in &st.services {
            let Some(k) = &s.kernel else { continue };
            if !header {
                o.family(&full, "counter", help);
                header = true;
            }
            o.sample(&full, &[("service", &svc_label(s))], get(k));
        }
    }
    o.0
}

/// At most this many scrapes are answered at once; a connection over the cap is
/// closed at once. Without a cap, idle connections to the listener (no auth, and
/// each held up to [`REQUEST_TIMEOUT`]) used up the daemon's file descriptors and
/// starved its health probes ("Too many open files"). A Prometheus server scrapes
/// with one connection at a time; 16 leaves room for a few scrapers and curl.
pub(crate) const MAX_CONNECTIONS: usize = 16;

/// How long a client may take to send its request head, and separately to take
/// the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Bind `addr` and answer scrapes in a task, at most [`MAX_CONNECTIONS`] at once.
pub(crate) async fn serve(
    addr: SocketAddr,
    tx: super::control::StatusRequests,
    ipvs: Option<IpvsClient>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((
        bound,
        tokio::spawn(async move {
            let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
            let mut refused: u64 = 0;
            loop {
                let Ok((conn, peer)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    refused += 1;
                    // Logged at powers of two: a flood must not flood the journal too.
                    if refused.is_power_of_two() {
                        warn!(%peer, refused, "metrics: connection cap reached, closing");
                    }
                    drop(conn);
                    continue;
                };
                let tx = tx.clone();
                let ipvs = ipvs.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(2 * REQUEST_TIMEOUT, answer(conn, tx, ipvs)).await {
                        Ok(Err(e)) => debug!("metrics: {e}"),
                        Err(_) => debug!(%peer, "metrics: client too slow, closed"),
                        Ok(Ok(())) => {}
                    }
                });
            }
        }),
    ))
}

/// The request's method and path, from its first line (`GET /metrics
/// HTTP/1.1`); any client that reaches the listener sends it (fuzzed:
/// tests/fuzz.rs).
pub fn request_path(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut words = line.split(' ');
    let method = words.next()?;
    let path = words.next()?;
    Some((method, path))
}

async fn answer(
    mut conn: TcpStream,
    tx: super::control::StatusRequests,
    ipvs: Option<IpvsClient>,
) -> std::io::Result<()> {
    // Read the request head (up to 8 KiB, 5 s): only its first line matters.
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<(), std::io::Error>(())
    };
    if tokio::time::timeout(REQUEST_TIMEOUT, read).await.is_err() {
        return Ok(());
    }
    let (status, ctype, body) = match request_path(&head) {
        Some(("GET", "/metrics")) => match snapshot(&tx, ipvs).await {
            Some(st) => ("200 OK", CONTENT_TYPE, render(&st)),
            None => (
                "503 Service Unavailable",
                "text/plain",
                "the daemon is shutting down\n".to_string(),
            ),
        },
        Some(("GET", _)) => ("404 Not Found", "text/plain", "try /metrics\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics only\n".to_string(),
        ),
    };
    let resp = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(resp.as_bytes()).await?;
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::status::{DestCounters, ReconcileStatus};
    use tokio::sync::mpsc;

    fn sample() -> Status {
        let mut st = crate::contract::status::tests::sample();
        st.vrrp.counters.adverts_sent = 12;
        st.vrrp.counters.transitions = 2;
        st.vrrp.counters.unknown_peer = 5;
        st.vrrp.counters.interval_mismatch = 3;
        st.ipvs.last_reconcile = Some(ReconcileStatus {
            at: "2026-11-21T07:00:01.000Z".into(),
            trigger: "start".into(),
            ok: true,
            ops: 3,
            error: None,
        });
        st.services[0].real_servers[0].kernel = Some(DestCounters {
            weight: 0,
            active_conns: 3,
            inact_conns: 4,
            conns: 99,
            ..Default::default()
        });
        st
    }

    /// A stand-in main loop: every status request is answered with [`sample`].
    fn answers_with_sample() -> crate::director::control::StatusRequests {
        let (tx, mut rx) = mpsc::channel::<tokio::sync::oneshot::Sender<Status>>(8);
        tokio::spawn(async move {
            while let Some(reply) = rx.recv().await {
                let _ = reply.send(sample());
            }
        });
        tx
    }

    #[test]
    fn renders_the_text_exposition_format() {
        let text = render(&sample());
        for line in [
            "# TYPE lvsup_director_vrrp_state gauge",
            "lvsup_director_vrrp_state{state=\"Master\"} 1",
            "lvsup_director_vrrp_state{state=\"Backup\"} 0",
            "lvsup_director_vip_held 1",
            "lvsup_director_vrrp_transitions_total 2",
            "lvsup_director_vrrp_adverts_sent_total 12",
            "lvsup_director_vrrp_bad_packets_total{reason=\"ttl\"} 2",
            "lvsup_director_vrrp_unknown_peer_total 5",
            "lvsup_director_vrrp_interval_mismatch_total 3",
            "lvsup_director_ipvs_reconcile_ok 1",
            "lvsup_director_config_reload_ok 0",
            "# TYPE lvsup_director_health_checks_total counter",
            "lvsup_director_health_checks_total 9",
            "lvsup_director_health_checks_skipped_total 2",
            "lvsup_director_real_server_health{service=\"tcp/192.168.0.100:80\",real_server=\"node1\",address=\"192.168.0.171:80\",state=\"down\"} 1",
            "lvsup_director_real_server_health{service=\"tcp/192.168.0.100:80\",real_server=\"node1\",address=\"192.168.0.171:80\",state=\"up\"} 0",
            "lvsup_director_real_server_weight{service=\"tcp/192.168.0.100:80\",real_server=\"node1\",address=\"192.168.0.171:80\"} 100",
            "lvsup_director_real_server_effective_weight{service=\"tcp/192.168.0.100:80\",real_server=\"node1\",address=\"192.168.0.171:80\"} 0",
            "# TYPE lvsup_director_real_server_failed_checks_total counter",
            "lvsup_director_real_server_failed_checks_total{service=\"tcp/192.168.0.100:80\",real_server=\"node1\",address=\"192.168.0.171:80\"} 4",
            "# TYPE lvsup_director_ipvs_real_server_connections_total counter",
            "lvsup_director_ipvs_real_server_active_connections{service=\"tcp/192.168.0.100:80\",real_server=\"node1\",address=\"192.168.0.171:80\"} 3",
            "lvsup_director_ipvs_real_server_connections_total{service=\"tcp/192.168.0.100:80\",real_server=\"node1\",address=\"192.168.0.171:80\"} 99",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample belongs to a family declared (HELP + TYPE) before it,
        // each family once; every line is a comment or `name{labels} number`.
        let mut declared = std::collections::BTreeSet::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().expect("name");
                assert!(declared.insert(name.to_string()), "{name} declared twice");
                continue;
            }
            if l.starts_with("# HELP ") {
                continue;
            }
            let name = l.split(['{', ' ']).next().expect("name");
            assert!(declared.contains(name), "{name} used before its TYPE: {l}");
            let value = l.rsplit(' ').next().expect("value");
            assert!(value.parse::<f64>().is_ok(), "not a number: {l}");
        }
        // No kernel counters without a kernel read.
        let mut st = sample();
        st.services[0].real_servers[0].kernel = None;
        assert!(!render(&st).contains("lvsup_director_ipvs_real_server"));
    }

    #[test]
    fn fwmark_services_and_sorry_servers() {
        let text = render(&sample());
        assert!(!text.contains("sorry_server"), "only with a sorry server");
        let mut st = sample();
        st.services[0].fwmark = Some(5);
        st.services[0].sorry_server = Some(crate::contract::status::SorryStatus {
            address: std::net::Ipv4Addr::new(192, 168, 0, 50),
            port: 0,
            in_use: true,
        });
        let text = render(&st);
        assert!(
            text.contains("lvsup_director_sorry_server_in_use{service=\"fwm/5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "lvsup_director_real_server_weight{service=\"fwm/5\",real_server=\"node1\""
            ),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut st = sample();
        st.services[0].real_servers[0].name = "a\"b\\c\nd".into();
        let text = render(&st);
        assert!(text.contains("real_server=\"a\\\"b\\\\c\\nd\""), "{text}");
    }

    #[test]
    fn request_line_is_parsed() {
        assert_eq!(
            request_path(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(request_path(b"\xff\xfe"), None);
    }

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut c = TcpStream::connect(addr).await.expect("connect");
        c.write_all(request.as_bytes()).await.expect("write");
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_string(&mut out))
            .await
            .expect("answer in time")
            .expect("read");
        out
    }

    /// The listener on a real loopback socket, with a stand-in for the
    /// daemon's main loop answering status requests.
    #[tokio::test]
    async fn serves_metrics_over_http_on_loopback() {
        let tx = answers_with_sample();
        let (addr, task) = serve("127.0.0.1:0".parse().expect("addr"), tx, None)
            .await
            .expect("bind");
        let resp = get(addr, "GET /metrics HTTP/1.1\r\nHost: lvs\r\n\r\n").await;
        let (head, body) = resp.split_once("\r\n\r\n").expect("head");
        assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
        assert!(head.contains(CONTENT_TYPE), "{head}");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        assert_eq!(body, render(&sample()));
        let resp = get(addr, "GET / HTTP/1.0\r\n\r\n").await;
        assert!(resp.starts_with("HTTP/1.0 404"), "{resp}");
        let resp = get(addr, "POST /metrics HTTP/1.0\r\n\r\n").await;
        assert!(resp.starts_with("HTTP/1.0 405"), "{resp}");
        task.abort();
    }

    /// A flood of idle connections to the metrics port once used up the daemon's
    /// file descriptors ("Too many open files" in the health probes): over the cap
    /// a connection is closed at once, and scrapes work again when the idle ones go.
    #[tokio::test]
    async fn idle_connections_over_the_cap_are_closed_at_once() {
        let tx = answers_with_sample();
        let (addr, task) = serve("127.0.0.1:0".parse().expect("addr"), tx, None)
            .await
            .expect("bind");
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.expect("connect"));
        }
        // Let the listener take them all before the next one.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut extra = TcpStream::connect(addr).await.expect("connect");
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf))
            .await
            .expect("closed at once, not held")
            .unwrap_or(0);
        assert_eq!(n, 0, "the connection over the cap got data");
        drop(idle);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let resp = get(addr, "GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(resp.starts_with("HTTP/1.0 200 OK"), "{resp}");
        task.abort();
    }
}
