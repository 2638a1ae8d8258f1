//! verify's probes against listeners on 127.0.0.1 (loopback only): TCP, HTTP
//! and UDP verdicts, failure wording, the 10 ms timeline prober and its bounds.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use lvsup::verify::analysis::outage;
use lvsup::verify::probe::{ProbeKind, Prober, ProberLimits, batch, probe_once};

/// A tiny HTTP server answering every request with `status`.
fn http_server(status: u16) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut buf = [0u8; 512];
            let _ = c.read(&mut buf);
            let _ = write!(c, "HTTP/1.0 {status} X\r\nContent-Length: 3\r\n\r\nok\n");
        }
    });
    addr
}

fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn tcp_and_http_probes() {
    let rt = rt();
    let ok = http_server(200);
    let bad = http_server(503);
    let t = Duration::from_secs(2);
    let get = ProbeKind::Http {
        path: "/".into(),
        expect_status: 200,
    };
    rt.block_on(async {
        assert_eq!(probe_once(ok, &ProbeKind::Tcp, t).await, Ok(()));
        assert_eq!(probe_once(ok, &get, t).await, Ok(()));
        assert_eq!(
            probe_once(bad, &get, t).await,
            Err("HTTP status 503, expected 200".into())
        );
        let refused = probe_once(closed_port(), &ProbeKind::Tcp, t).await;
        assert!(
            refused.as_ref().is_err_and(|e| e.starts_with("connect: ")),
            "{refused:?}"
        );
        let b = batch(ok, &get, 20, t).await;
        assert_eq!((b.sent, b.ok, b.first_error), (20, 20, None));
        let b = batch(bad, &get, 3, t).await;
        assert_eq!(b.ok, 0);
        assert_eq!(
            b.first_error.as_deref(),
            Some("HTTP status 503, expected 200")
        );
    });
}

#[test]
fn timeline_probes_every_10ms_and_sees_an_outage() {
    let rt = rt();
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // Accept for ~300 ms, then close the port for good.
    std::thread::spawn(move || {
        l.set_nonblocking(true).expect("nonblocking");
        let end = Instant::now() + Duration::from_millis(300);
        while Instant::now() < end {
            let _ = l.accept();
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(l);
        let _ = tx.send(());
    });
    let t0 = Instant::now();
    let timeline = rt.block_on(async {
        let p = Prober::start(addr, ProbeKind::Tcp, t0, ProberLimits::default());
        tokio::time::sleep(Duration::from_millis(600)).await;
        p.finish().await
    });
    rx.recv().expect("listener closed");
    let o = outage(&timeline);
    // ~60 probes in 600 ms (10 ms apart), the later ones refused.
    assert!((25..=70).contains(&o.probes), "{o:?}");
    assert!(o.failed > 10 && o.failed < o.probes, "{o:?}");
    assert!(!o.recovered, "{o:?}");
    let first = o.first_failure_ms.expect("a failure");
    assert!((250..=600).contains(&first), "{o:?}");
    // Probes are spaced by the 10 ms tick (a loaded machine may skip a tick).
    let mut gaps: Vec<u64> = timeline
        .windows(2)
        .map(|w| w[1].at_ms - w[0].at_ms)
        .collect();
    gaps.sort_unstable();
    let median = gaps[gaps.len() / 2];
    assert!((8..=20).contains(&median), "{gaps:?}");
    assert!(gaps.iter().all(|g| *g <= 150), "{gaps:?}");
}

#[test]
fn prober_is_bounded_in_count_and_time() {
    let rt = rt();
    let ok = http_server(200);
    let t0 = Instant::now();
    let lim = ProberLimits {
        max_probes: 5,
        ..ProberLimits::default()
    };
    let n = rt.block_on(async {
        let p = Prober::start(ok, ProbeKind::Tcp, t0, lim);
        tokio::time::sleep(Duration::from_millis(300)).await;
        p.finish().await.len()
    });
    assert_eq!(n, 5);
    let lim = ProberLimits {
        max_time: Duration::from_millis(100),
        ..ProberLimits::default()
    };
    let n = rt.block_on(async {
        let p = Prober::start(ok, ProbeKind::Tcp, Instant::now(), lim);
        tokio::time::sleep(Duration::from_millis(400)).await;
        p.finish().await.len()
    });
    assert!((2..=15).contains(&n), "{n}");
}

/// The scheduling batch never connects from a port the director still has a
/// connection entry for: every connection comes from a port outside `avoid`.
#[test]
fn batch_avoiding_uses_no_avoided_port() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let _ = tx.send(c.peer_addr().map(|p| p.port()).unwrap_or(0));
        }
    });
    // Avoid most of the ephemeral range: what is left must be used.
    let avoid: std::collections::HashSet<u16> = (32768..60000).collect();
    let b = rt().block_on(lvsup::verify::probe::batch_avoiding(
        addr,
        &ProbeKind::Tcp,
        20,
        Duration::from_secs(2),
        &avoid,
    ));
    assert_eq!((b.sent, b.ok), (20, 20), "{:?}", b.first_error);
    let ports: Vec<u16> = (0..20)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).expect("accepted"))
        .collect();
    assert!(ports.iter().all(|p| !avoid.contains(p)), "{ports:?}");
}

/// A UDP responder on 127.0.0.1 answering every datagram with `name`
/// (`None`: it reads them and never answers); each sender's port is sent on
/// the channel.
fn udp_responder(name: Option<&'static str>) -> (SocketAddr, std::sync::mpsc::Receiver<u16>) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let addr = s.local_addr().expect("addr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = s.recv_from(&mut buf) {
            assert_eq!(&buf[..n], lvsup::verify::probe::UDP_PAYLOAD);
            let _ = tx.send(peer.port());
            if let Some(name) = name {
                let _ = s.send_to(format!("{name}\n").as_bytes(), peer);
            }
        }
    });
    (addr, rx)
}

fn closed_udp_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    s.local_addr().expect("addr")
}

#[test]
fn udp_probe_is_answered_and_the_reply_names_the_server() {
    let rt = rt();
    let (ok, _ports) = udp_responder(Some("rs1"));
    let t = Duration::from_secs(2);
    rt.block_on(async {
        assert_eq!(probe_once(ok, &ProbeKind::Udp, t).await, Ok(()));
        let b = batch(ok, &ProbeKind::Udp, 10, t).await;
        assert_eq!((b.sent, b.ok, b.first_error.clone()), (10, 10, None));
        assert_eq!(
            b.replies,
            std::collections::BTreeMap::from([("rs1".to_string(), 10)])
        );
    });
}

/// Nothing listening: every datagram is refused (ICMP port unreachable on
/// loopback), the batch says how many and why.
#[test]
fn udp_without_a_responder_fails_with_the_numbers() {
    let rt = rt();
    let t = Duration::from_secs(2);
    let addr = closed_udp_port();
    rt.block_on(async {
        let r = probe_once(addr, &ProbeKind::Udp, t).await;
        assert!(r.as_ref().is_err_and(|e| e.starts_with("recv: ")), "{r:?}");
        let b = batch(addr, &ProbeKind::Udp, 5, t).await;
        assert_eq!((b.sent, b.ok), (5, 0));
        assert!(b.replies.is_empty());
        assert!(
            b.first_error
                .as_deref()
                .is_some_and(|e| e.starts_with("recv: ")),
            "{b:?}"
        );
        let v = lvsup::verify::analysis::check_answers(
            "UDP 127.0.0.1",
            b.sent,
            b.ok,
            ProbeKind::Udp.describe(),
            b.first_error.as_deref(),
        );
        assert!(!v.passed);
        assert_eq!(v.measured, "0/5 answered");
        assert!(
            v.reasons[0].starts_with("UDP 127.0.0.1: 5 of 5 UDP datagrams failed (recv: "),
            "{v:?}"
        );
    });
}

/// A responder that reads but never answers: the probe times out.
#[test]
fn udp_probe_times_out_without_a_reply() {
    let rt = rt();
    let (silent, ports) = udp_responder(None);
    let r = rt.block_on(probe_once(
        silent,
        &ProbeKind::Udp,
        Duration::from_millis(200),
    ));
    assert_eq!(r, Err("no answer within 200 ms".into()));
    // The datagram did arrive: the timeout is about the reply.
    ports
        .recv_timeout(Duration::from_secs(2))
        .expect("datagram received");
}

/// UDP scheduling batch: each datagram from a new source port outside
/// `avoid` (a port with an IPVS UDP entry would follow the entry).
#[test]
fn udp_batch_avoiding_uses_new_ports_outside_avoid() {
    let (addr, rx) = udp_responder(Some("rs2"));
    let avoid: std::collections::HashSet<u16> = (32768..60000).collect();
    let b = rt().block_on(lvsup::verify::probe::batch_avoiding(
        addr,
        &ProbeKind::Udp,
        20,
        Duration::from_secs(2),
        &avoid,
    ));
    assert_eq!((b.sent, b.ok), (20, 20), "{:?}", b.first_error);
    assert_eq!(b.replies.get("rs2"), Some(&20));
    let ports: Vec<u16> = (0..20)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).expect("received"))
        .collect();
    assert!(ports.iter().all(|p| !avoid.contains(p)), "{ports:?}");
    let distinct: std::collections::HashSet<&u16> = ports.iter().collect();
    assert_eq!(distinct.len(), 20, "{ports:?}");
}

/// The timeline prober works on UDP too (the director failover of a
/// UDP-only cluster): answered while the responder runs.
#[test]
fn udp_timeline_probes() {
    let rt = rt();
    let (ok, _ports) = udp_responder(Some("rs1"));
    let lim = ProberLimits {
        max_probes: 10,
        ..ProberLimits::default()
    };
    let timeline = rt.block_on(async {
        let p = Prober::start(ok, ProbeKind::Udp, Instant::now(), lim);
        tokio::time::sleep(Duration::from_millis(400)).await;
        p.finish().await
    });
    assert_eq!(timeline.len(), 10);
    assert!(timeline.iter().all(|p| p.ok), "{timeline:?}");
}

/// Connections held across a (simulated) failover: a server that waits for
/// the whole request head answers each; one that resets after the request
/// line (like a director without the synced entry) breaks each.
#[test]
fn held_connections_answered_or_broken() {
    use lvsup::verify::analysis::HeldOutcome;
    use lvsup::verify::probe::{complete, hold};
    let patient = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 256];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = write!(c, "HTTP/1.0 200 OK\r\n\r\nlvs\n");
                });
            }
        });
        addr
    };
    let resetting = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            let mut keep = Vec::new();
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let mut buf = [0u8; 256];
                let _ = c.read(&mut buf);
                // SO_LINGER 0: close sends a reset, as a director without
                // the connection's entry answers its next segment.
                let s = socket2::SockRef::from(&c);
                let _ = s.set_linger(Some(Duration::ZERO));
                drop(c);
                keep.push(());
            }
        });
        addr
    };
    let rt = rt();
    rt.block_on(async {
        let held = hold(patient, "/", 3, Duration::from_secs(2)).await;
        assert_eq!(held.len(), 3);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let out = complete(held, Duration::from_secs(2)).await;
        assert!(
            out.iter()
                .all(|o| matches!(o, HeldOutcome::Answered(n) if *n > 10)),
            "{out:?}"
        );

        let held = hold(resetting, "/", 3, Duration::from_secs(2)).await;
        assert_eq!(held.len(), 3);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let out = complete(held, Duration::from_secs(2)).await;
        assert!(
            out.iter().all(|o| matches!(o, HeldOutcome::Broken(_))),
            "{out:?}"
        );

        // Nothing listening: nothing held.
        let held = hold(closed_port(), "/", 3, Duration::from_secs(1)).await;
        assert!(held.is_empty());
    });
}
