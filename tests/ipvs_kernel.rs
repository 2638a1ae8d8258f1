//! IPVS against a real kernel, with `ipvsadm` as the independent referee.
//!
//! Every test is `#[ignore]`: they need root and the ip_vs module, which this project's
//! build machine does not have. Run them in the lab VM:
//!
//! ```text
//! tests/lab/in-vm cargo test --test ipvs_kernel -- --ignored --test-threads=1
//! ```
//!
//! Each test first moves its thread into a fresh network namespace (`unshare(CLONE_NEWNET)`):
//! IPVS tables are per namespace, so tests never see each other's or the host's rules, and
//! `ipvsadm` (a child of that thread) sees the same table. When run explicitly and ip_vs
//! or root is missing they FAIL with a message saying why; they never pass vacuously.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use lvsup::ipvs::reconcile::Plan;
use lvsup::ipvs::*;

const HOW: &str = "run them in the lab VM: tests/lab/in-vm cargo test --test ipvs_kernel -- --ignored --test-threads=1";

/// Move this thread into a new network namespace with `lo` up and ip_vs loaded.
fn isolate() {
    // SAFETY: plain syscall; affects only the calling thread's namespaces.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc != 0 {
        panic!(
            "unshare(CLONE_NEWNET) failed ({}): the IPVS kernel tests need root; {HOW}",
            std::io::Error::last_os_error()
        );
    }
    let _ = Command::new("modprobe").arg("-q").arg("ip_vs").status();
    sh("ip link set lo up");
}

async fn client() -> IpvsClient {
    match IpvsClient::connect().await {
        Ok(c) => c,
        Err(e) => panic!("IPVS kernel tests cannot run on this kernel: {e}; {HOW}"),
    }
}

/// Run a shell command in this thread's namespace; panic with its output on failure.
fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{cmd}`: {e}"));
    if !out.status.success() {
        panic!(
            "`{cmd}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ipvsadm_ln() -> String {
    if Command::new("ipvsadm").arg("--version").output().is_err() {
        panic!("ipvsadm is not installed (apt-get install ipvsadm); {HOW}");
    }
    sh("ipvsadm -Ln")
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
fn dest(a: &str, fwd: Forward, w: u32) -> Destination {
    Destination::new(sa(a), fwd, w)
}

/// Drop what the kernel reports but we do not configure (counters), and sort.
fn normalize(mut t: Vec<Service>) -> Vec<Service> {
    for s in &mut t {
        s.stats = None;
        for d in &mut s.destinations {
            d.stats = None;
            d.active_conns = 0;
            d.inact_conns = 0;
            d.persist_conns = 0;
        }
        s.destinations.sort_by_key(|d| d.socket_addr());
    }
    t.sort_by_key(|s| s.id);
    t
}

/// Services in all three forwarding methods, several schedulers, persistence with and
/// without a netmask, thresholds, a fwmark service, weight 0.
fn sample_table() -> Vec<Service> {
    let mut fwm = Service::new(ServiceId::fwmark(7), "lc").persistent(300);
    fwm.netmask = 24;
    let fwm = fwm.with_destination(dest("10.0.4.1:0", Forward::Route, 1));
    let mut thresh = dest("10.0.2.2:8443", Forward::Masq, 3);
    thresh.u_thresh = 100;
    thresh.l_thresh = 10;
    vec![
        Service::new(ServiceId::tcp(sa("10.0.0.1:80")), "rr")
            .persistent(50)
            .with_destination(dest("10.0.1.1:80", Forward::Route, 1))
            .with_destination(dest("10.0.1.2:80", Forward::Route, 1)),
        Service::new(ServiceId::tcp(sa("10.0.0.1:443")), "wlc")
            .with_destination(dest("10.0.2.1:8443", Forward::Masq, 1))
            .with_destination(thresh),
        Service::new(ServiceId::udp(sa("10.0.0.2:53")), "sh")
            .with_destination(dest("10.0.3.1:53", Forward::Tunnel, 1))
            .with_destination(dest("10.0.3.2:53", Forward::Tunnel, 2)),
        fwm,
        Service::new(ServiceId::tcp(sa("10.0.0.3:8080")), "wrr")
            .with_destination(dest("10.0.5.1:8080", Forward::Masq, 0))
            .with_destination(dest("10.0.5.2:8080", Forward::Masq, 5)),
        Service::new(ServiceId::tcp(sa("10.0.0.3:8081")), "sed").with_destination(dest(
            "10.0.5.1:8081",
            Forward::Route,
            1,
        )),
        Service::new(ServiceId::tcp(sa("10.0.0.3:8082")), "dh"),
        Service::new(ServiceId::tcp(sa("[2001:db8::1]:443")), "nq")
            .persistent(30)
            .with_destination(dest("[2001:db8::2]:443", Forward::Masq, 1))
            .with_destination(dest("[2001:db8::3]:443", Forward::Route, 2)),
    ]
}

async fn program(c: &mut IpvsClient, desired: &[Service]) -> Plan {
    let current = c.services().await.expect("list services");
    let plan = reconcile(desired, &current, &ReconcileOptions::default());
    apply(c, &plan.ops).await.expect("apply plan");
    plan
}

/// Our rendering of what we read must equal ipvsadm's own listing.
async fn assert_referee_agrees(c: &mut IpvsClient) {
    let table = c.services().await.expect("list services");
    let info = c.info().await.expect("info");
    let ours = render_ipvsadm_ln(&table, &info);
    let theirs = ipvsadm_ln();
    assert_eq!(
        ours, theirs,
        "lvsup's view (left) differs from ipvsadm -Ln (right)"
    );
}

#[tokio::test]
#[ignore = "needs root + ip_vs: run in the lab VM"]
async fn lvsup_programs_table_and_ipvsadm_reads_it_back() {
    isolate();
    let mut c = client().await;
    c.flush().await.unwrap();
    let desired = sample_table();
    let plan = program(&mut c, &desired).await;
    let n_dests: usize = desired.iter().map(|s| s.destinations.len()).sum();
    assert_eq!(
        plan.ops.len(),
        desired.len() + n_dests,
        "one op per service and per destination"
    );

    let back = normalize(c.services().await.unwrap());
    assert_eq!(
        back,
        normalize(desired.clone()),
        "kernel table differs from the desired one"
    );
    assert_referee_agrees(&mut c).await;
    // The exact lines ipvsadm prints for a few of them.
    let ln = ipvsadm_ln();
    assert!(ln.contains("\nTCP  10.0.0.1:80 rr persistent 50\n"), "{ln}");
    assert!(
        ln.contains("\nTCP  [2001:db8::1]:443 nq persistent 30\n"),
        "{ln}"
    );
    assert!(
        ln.contains("\n  -> [2001:db8::3]:443            Route   2 "),
        "{ln}"
    );
    assert!(
        ln.contains("\n  -> 10.0.1.1:80                  Route   1      0          0         \n"),
        "{ln}"
    );
    assert!(
        ln.contains("\nFWM  7 lc persistent 300 mask 255.255.255.0\n"),
        "{ln}"
    );
    assert!(
        ln.contains("\n  -> 10.0.3.2:53                  Tunnel  2      0          0         \n"),
        "{ln}"
    );
    assert!(
        ln.contains("\n  -> 10.0.2.2:8443                Masq    3      0          0         \n"),
        "{ln}"
    );
    // Thresholds are not in -Ln: check them with ipvsadm's --thresholds view.
    let th = sh("ipvsadm -Ln --thresholds");
    assert!(
        th.contains("10.0.2.2:8443                100        10"),
        "{th}"
    );
    // Reconciling again is a no-op (the kernel's HASHED flag must not show up as a diff).
    let again = reconcile(
        &desired,
        &c.services().await.unwrap(),
        &ReconcileOptions::default(),
    );
    assert!(
        again.ops.is_empty(),
        "second run not idempotent: {:?}",
        again.ops
    );
    c.flush().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root + ip_vs: run in the lab VM"]
async fn ipvsadm_programs_table_and_lvsup_reads_it() {
    isolate();
    let mut c = client().await;
    sh("ipvsadm -C");
    sh("ipvsadm -A -t 10.0.0.1:80 -s wrr -p 120 \
        && ipvsadm -a -t 10.0.0.1:80 -r 10.0.1.1 -g -w 3 \
        && ipvsadm -a -t 10.0.0.1:80 -r 10.0.1.2 -g -w 1 -x 50 -y 5 \
        && ipvsadm -A -u 10.0.0.1:53 -s rr \
        && ipvsadm -a -u 10.0.0.1:53 -r 10.0.2.1:5353 -m -w 2 \
        && ipvsadm -a -u 10.0.0.1:53 -r 10.0.2.2 -i \
        && ipvsadm -A -f 5 -s lc -p 60 -M 255.255.0.0 \
        && ipvsadm -a -f 5 -r 10.0.3.1 -g");
    let mut th = dest("10.0.1.2:80", Forward::Route, 1);
    th.u_thresh = 50;
    th.l_thresh = 5;
    let mut fwm = Service::new(ServiceId::fwmark(5), "lc").persistent(60);
    fwm.netmask = 16;
    let expected = vec![
        Service::new(ServiceId::tcp(sa("10.0.0.1:80")), "wrr")
            .persistent(120)
            .with_destination(dest("10.0.1.1:80", Forward::Route, 3))
            .with_destination(th),
        Service::new(ServiceId::udp(sa("10.0.0.1:53")), "rr")
            .with_destination(dest("10.0.2.1:5353", Forward::Masq, 2))
            .with_destination(dest("10.0.2.2:53", Forward::Tunnel, 1)),
        fwm.with_destination(dest("10.0.3.1:0", Forward::Route, 1)),
    ];
    let back = normalize(c.services().await.unwrap());
    assert_eq!(back, normalize(expected.clone()));
    assert_referee_agrees(&mut c).await;
    // Single-service lookup agrees with the dump.
    let one = c
        .service(&ServiceId::fwmark(5))
        .await
        .unwrap()
        .expect("FWM 5 exists");
    assert_eq!(normalize(vec![one]), normalize(vec![expected[2].clone()]));
    assert!(c.service(&ServiceId::fwmark(6)).await.unwrap().is_none());
    sh("ipvsadm -C");
}

#[tokio::test]
#[ignore = "needs root + ip_vs: run in the lab VM"]
async fn reconcile_sends_only_needed_ops_and_converges() {
    isolate();
    let mut c = client().await;
    c.flush().await.unwrap();
    let mut desired = sample_table();
    program(&mut c, &desired).await;

    // Weight change: exactly one destination edit.
    desired[0].destinations[1].weight = 7;
    let plan = program(&mut c, &desired).await;
    assert_eq!(plan.ops.len(), 1, "{:?}", plan.ops);
    assert!(matches!(plan.ops[0], Op::EditDestination { .. }));
    assert!(ipvsadm_ln().contains("\n  -> 10.0.1.2:80                  Route   7 "));

    // Scheduler change: exactly one service edit, destinations untouched.
    desired[1].scheduler = "lc".into();
    let plan = program(&mut c, &desired).await;
    assert_eq!(plan.ops.len(), 1, "{:?}", plan.ops);
    assert!(ipvsadm_ln().contains("\nTCP  10.0.0.1:443 lc\n"));

    // Persistence on, then off.
    desired[1] = desired[1].clone().persistent(90);
    assert_eq!(program(&mut c, &desired).await.ops.len(), 1);
    assert!(ipvsadm_ln().contains("\nTCP  10.0.0.1:443 lc persistent 90\n"));
    desired[0].persistence = None;
    assert_eq!(program(&mut c, &desired).await.ops.len(), 1);
    assert!(ipvsadm_ln().contains("\nTCP  10.0.0.1:80 rr\n"));

    // Forwarding method change in place, destination add and remove.
    desired[4].destinations[0].fwd = Forward::Route;
    desired[4].destinations.remove(1);
    desired[4]
        .destinations
        .push(dest("10.0.5.3:8080", Forward::Masq, 1));
    let plan = program(&mut c, &desired).await;
    assert_eq!(plan.ops.len(), 3, "{:?}", plan.ops);

    // Drain instead of delete.
    let mut drained = desired.clone();
    drained[5].destinations.clear();
    let current = c.services().await.unwrap();
    let opts = ReconcileOptions {
        drain: true,
        ..Default::default()
    };
    let plan = reconcile(&drained, &current, &opts);
    assert_eq!(plan.ops.len(), 1);
    apply(&mut c, &plan.ops).await.unwrap();
    assert!(ipvsadm_ln().contains("\n  -> 10.0.5.1:8081                Route   0 "));

    // Unowned service (added by someone else) is reported and left alone; prune removes it.
    sh("ipvsadm -A -t 10.0.0.9:25 -s rr");
    let current = c.services().await.unwrap();
    let plan = reconcile(&desired, &current, &ReconcileOptions::default());
    assert_eq!(plan.unowned, vec![ServiceId::tcp(sa("10.0.0.9:25"))]);
    assert!(
        plan.ops
            .iter()
            .all(|o| !matches!(o, Op::DeleteService { .. }))
    );
    apply(&mut c, &plan.ops).await.unwrap();
    assert!(ipvsadm_ln().contains("TCP  10.0.0.9:25 rr"));
    let plan = reconcile(
        &desired,
        &c.services().await.unwrap(),
        &ReconcileOptions {
            prune: true,
            ..Default::default()
        },
    );
    assert_eq!(
        plan.ops,
        vec![Op::DeleteService {
            id: ServiceId::tcp(sa("10.0.0.9:25"))
        }]
    );
    apply(&mut c, &plan.ops).await.unwrap();

    // Converged: the kernel is in the desired state and nothing more to do.
    assert_eq!(
        normalize(c.services().await.unwrap()),
        normalize(desired.clone())
    );
    assert!(reconcile(&desired, &c.services().await.unwrap(), &Default::default()).is_empty());
    assert_referee_agrees(&mut c).await;
    c.flush().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root + ip_vs: run in the lab VM"]
async fn kernel_errors_come_back_in_plain_words() {
    isolate();
    let mut c = client().await;
    c.flush().await.unwrap();
    let svc = Service::new(ServiceId::tcp(sa("10.0.0.1:80")), "rr");
    c.add_service(&svc).await.unwrap();
    let e = c.add_service(&svc).await.unwrap_err();
    assert_eq!(e.to_string(), "service TCP 10.0.0.1:80 already exists");
    let missing = Service::new(ServiceId::tcp(sa("10.0.0.1:81")), "rr");
    assert!(matches!(
        c.edit_service(&missing).await,
        Err(IpvsError::NoSuchService(_))
    ));
    let d = dest("10.0.1.1:80", Forward::Route, 1);
    assert!(matches!(
        c.add_destination(&missing.id, &d).await,
        Err(IpvsError::NoSuchService(_))
    ));
    c.add_destination(&svc.id, &d).await.unwrap();
    let e = c.add_destination(&svc.id, &d).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "destination 10.0.1.1:80 already exists in service TCP 10.0.0.1:80"
    );
    let e = c
        .delete_destination(&svc.id, sa("10.0.1.9:80"))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "destination 10.0.1.9:80 does not exist in service TCP 10.0.0.1:80"
    );
    let bad = Service::new(ServiceId::tcp(sa("10.0.0.1:82")), "nosuchsched");
    let e = c.add_service(&bad).await.unwrap_err();
    assert!(matches!(e, IpvsError::UnknownScheduler { .. }), "{e}");
    c.delete_service(&svc.id).await.unwrap();
    assert!(matches!(
        c.delete_service(&svc.id).await,
        Err(IpvsError::NoSuchService(_))
    ));
}

/// The batched path: a failure in the middle of a datagram is reported with the
/// one-at-a-time wording, the requests after it are still applied (the kernel carries
/// on, in order), and the count says so; tables bigger than one datagram arrive whole,
/// with either ack mode.
#[tokio::test]
#[ignore = "needs root + ip_vs: run in the lab VM"]
async fn batch_reports_the_first_failure_and_counts_the_rest() {
    isolate();
    let mut c = client().await;
    c.flush().await.unwrap();
    let svc = Service::new(ServiceId::tcp(sa("10.0.0.1:80")), "rr");
    let missing = ServiceId::tcp(sa("10.0.0.1:81"));
    let (d1, d2, d3) = (
        dest("10.0.1.1:80", Forward::Route, 1),
        dest("10.0.1.2:80", Forward::Route, 2),
        dest("10.0.1.3:80", Forward::Route, 3),
    );
    let reqs = [
        Request::AddService(&svc),
        Request::AddDestination(&svc.id, &d1),
        Request::AddDestination(&svc.id, &d1),  // EEXIST
        Request::AddDestination(&missing, &d2), // ESRCH
        Request::AddDestination(&svc.id, &d2),
        Request::AddDestination(&svc.id, &d3),
    ];
    let out = c.batch(&reqs).await;
    assert_eq!((out.applied, out.failed), (4, 2), "{out:?}");
    let (i, e) = out.first_error.expect("a failure");
    assert_eq!(i, 2);
    assert_eq!(
        e.to_string(),
        "destination 10.0.1.1:80 already exists in service TCP 10.0.0.1:80"
    );
    let got = c.service(&svc.id).await.unwrap().expect("service");
    let addrs: Vec<SocketAddr> = got.destinations.iter().map(|d| d.socket_addr()).collect();
    assert_eq!(
        addrs,
        [sa("10.0.1.1:80"), sa("10.0.1.2:80"), sa("10.0.1.3:80")]
    );

    // apply: the failing phase is finished, later phases are not started.
    c.flush().await.unwrap();
    let plan = reconcile(
        &[svc.clone().with_destination(d1.clone())],
        &[],
        &Default::default(),
    );
    let mut ops = plan.ops.clone();
    ops.push(Op::DeleteDestination {
        service: svc.id,
        addr: sa("10.0.1.9:80"),
    });
    ops.push(Op::DeleteService { id: svc.id });
    let r = apply_report(&mut c, &ops).await;
    assert_eq!((r.applied, r.failed), (2, 2), "{r:?}");
    assert_eq!(
        r.error.expect("an error").to_string(),
        "destination 10.0.1.9:80 does not exist in service TCP 10.0.0.1:80"
    );
    assert!(c.service(&svc.id).await.unwrap().is_some());

    // Several datagrams (2 × 600 destinations ≈ 180 KiB), both ack modes.
    for acks in [Acks::ErrorsAndLast, Acks::Every] {
        c.flush().await.unwrap();
        c.set_batch_options(acks, 64 * 1024);
        let table: Vec<Service> = (0..2u8)
            .map(|s| {
                let mut svc =
                    Service::new(ServiceId::tcp(sa(&format!("10.0.0.{}:80", s + 1))), "wrr");
                for j in 0..600u32 {
                    let a =
                        SocketAddr::from(([10, 2 + s, (j / 250) as u8, (j % 250 + 1) as u8], 80));
                    svc.destinations
                        .push(Destination::new(a, Forward::Route, 1 + j % 5));
                }
                svc
            })
            .collect();
        let plan = reconcile(&table, &[], &Default::default());
        assert_eq!(apply(&mut c, &plan.ops).await.unwrap(), 1202, "{acks:?}");
        let back = c.services().await.unwrap();
        let again = reconcile(&table, &back, &Default::default());
        assert!(again.is_empty(), "{acks:?}: not converged: {:?}", again.ops);
        assert_eq!(sh("ipvsadm -Ln | grep -c Route").trim(), "1200");
    }
    c.flush().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root + ip_vs: run in the lab VM"]
async fn info_timeouts_zero_flush_and_sync_daemon() {
    isolate();
    let mut c = client().await;
    let info = c.info().await.unwrap();
    assert_eq!(info.version_string(), "1.2.1");
    assert!(ipvsadm_ln().starts_with(&format!(
        "IP Virtual Server version 1.2.1 (size={})\n",
        info.conn_tab_size
    )));

    c.set_timeouts(&Timeouts {
        tcp: 800,
        tcp_fin: 100,
        udp: 250,
    })
    .await
    .unwrap();
    assert_eq!(
        c.timeouts().await.unwrap(),
        Timeouts {
            tcp: 800,
            tcp_fin: 100,
            udp: 250
        }
    );
    assert_eq!(
        sh("ipvsadm -L --timeout"),
        "Timeout (tcp tcpfin udp): 800 100 250\n"
    );
    c.set_timeouts(&Timeouts {
        tcp: 0,
        tcp_fin: 0,
        udp: 300,
    })
    .await
    .unwrap();
    assert_eq!(
        c.timeouts().await.unwrap(),
        Timeouts {
            tcp: 800,
            tcp_fin: 100,
            udp: 300
        }
    );
    c.set_timeouts(&Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    })
    .await
    .unwrap();

    program(&mut c, &sample_table()).await;
    c.zero(None).await.unwrap();
    c.zero(Some(&ServiceId::fwmark(7))).await.unwrap();
    assert!(
        c.services()
            .await
            .unwrap()
            .iter()
            .all(|s| s.stats.as_ref().map_or(0, |st| st.conns) == 0)
    );
    c.flush().await.unwrap();
    assert!(c.services().await.unwrap().is_empty());
    assert_eq!(
        ipvsadm_ln().lines().count(),
        3,
        "only the three header lines after flush"
    );

    // Sync daemon on a veth inside this namespace.
    sh(
        "ip link add lvsv0 type veth peer name lvsv1 && ip link set lvsv0 up && ip link set lvsv1 up",
    );
    let mut d = SyncDaemon::new(DaemonState::Master, "lvsv0", 9);
    d.mcast_port = Some(8848);
    d.mcast_ttl = Some(1);
    c.start_daemon(&d).await.unwrap();
    let list = c.daemons().await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0].state, list[0].mcast_ifn.as_str(), list[0].sync_id),
        (DaemonState::Master, "lvsv0", 9)
    );
    let ipvsadm_daemon = sh("ipvsadm -L --daemon");
    assert!(
        ipvsadm_daemon.contains("master sync daemon (mcast=lvsv0, syncid=9"),
        "{ipvsadm_daemon}"
    );
    c.stop_daemon(DaemonState::Master).await.unwrap();
    assert!(c.daemons().await.unwrap().is_empty());
}

/// When run explicitly without ip_vs this must fail, not pass: the very first step says why.
#[tokio::test]
#[ignore = "needs root + ip_vs: run in the lab VM"]
async fn ipvs_is_present() {
    isolate();
    let mut c = client().await;
    c.info().await.expect("GET_INFO answers");
    // A table read with a writer pipe to ipvsadm -R shows the restore path works too.
    let mut child = Command::new("ipvsadm")
        .arg("-R")
        .stdin(Stdio::piped())
        .spawn()
        .expect("ipvsadm -R");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"-A -t 10.9.9.9:80 -s rr\n-a -t 10.9.9.9:80 -r 10.9.9.10:80 -g -w 1\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let t = c.services().await.unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].destinations.len(), 1);
    c.flush().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root + ip_vs: run in the lab VM"]
async fn ipvsadm_scheduler_flags_tunnels_pe_and_one_packet_round_trip() {
    isolate();
    let mut c = client().await;
    sh("ipvsadm -C");
    sh("ipvsadm -A -t 10.0.0.1:80 -s mh -b mh-port \
        && ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 5555 --tun-nocsum \
        && ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.3 -i --tun-type gre --tun-csum \
        && ipvsadm -A -u 10.0.0.1:81 -s rr -o \
        && ipvsadm -A -u 10.0.0.1:82 -s sh -b sh-fallback,sh-port -p 10 -o --pe sip");
    let t = normalize(c.services().await.unwrap());
    assert_eq!(t.len(), 3);
    let mh = &t[0];
    assert_eq!(
        (mh.scheduler.as_str(), mh.flags),
        ("mh", lvsup::ipvs::constants::IP_VS_SVC_F_SCHED2)
    );
    let gue = &mh.destinations[0];
    assert_eq!(
        gue.tunnel,
        Tunnel {
            kind: TunnelType::Gue,
            port: 5555,
            flags: 0
        }
    );
    let gre = &mh.destinations[1];
    assert_eq!((gre.tunnel.kind, gre.tunnel.flags), (TunnelType::Gre, 1));
    let sip = t
        .iter()
        .find(|s| s.pe_name.is_some())
        .expect("pe sip service");
    assert_eq!(sip.persistence, Some(10));
    assert_eq!(sip.pe_name.as_deref(), Some("sip"));
    assert_referee_agrees(&mut c).await;

    // Writing the same model back with lvsup gives the same rules as ipvsadm wrote.
    let before = sh("ipvsadm -Sn");
    c.flush().await.unwrap();
    program(&mut c, &t).await;
    assert_eq!(sh("ipvsadm -Sn"), before);
    c.flush().await.unwrap();
}

/// Drop CAP_NET_ADMIN from the calling thread's effective set (capset on pid 0).
fn drop_net_admin() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    let mut h = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data structs, as capabilities(7) says.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()),
            0
        );
        d[0].effective &= !(1 << CAP_NET_ADMIN);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()),
            0
        );
    }
}

#[test]
#[ignore = "needs root + ip_vs: run in the lab VM"]
fn without_cap_net_admin_the_error_says_so() {
    // Own thread: the capability drop must not leak into other tests.
    let r = std::thread::spawn(|| {
        isolate();
        drop_net_admin();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = client().await;
            c.info().await
        })
    })
    .join()
    .expect("test thread");
    match r {
        Err(IpvsError::PermissionDenied) => {}
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    assert_eq!(
        IpvsError::PermissionDenied.to_string(),
        "permission denied: IPVS needs CAP_NET_ADMIN (run as root)"
    );
}

/// The daemon carries out a health change during its periodic sweep on a
/// client with a batch socket of its own: that batch runs while the table
/// is streamed (the stream holds the shared socket, its reader waiting on a
/// full channel), and the services streamed after it show the change. The
/// same batch on the shared socket waits for the stream's end: the case
/// that fails.
#[tokio::test]
#[ignore = "needs root + ip_vs: run in the lab VM"]
async fn a_batch_on_its_own_socket_runs_while_the_table_is_streamed() {
    isolate();
    let mut c = client().await;
    let table: Vec<Service> = (0..40u16)
        .map(|i| {
            Service::new(ServiceId::tcp(sa(&format!("10.0.0.1:{}", 1000 + i))), "rr")
                .with_destination(dest(&format!("10.0.1.1:{}", 1000 + i), Forward::Route, 1))
                .with_destination(dest(&format!("10.0.1.2:{}", 1000 + i), Forward::Route, 1))
        })
        .collect();
    program(&mut c, &table).await;
    let last = table[39].id;
    let fall = |w| Op::EditDestination {
        service: last,
        dest: dest("10.0.1.2:1039", Forward::Route, w),
    };

    let mut rx = c.services_streamed(1);
    let first = rx.recv().await.expect("a service").expect("read");
    let mut own = c.with_own_batch_socket().expect("a second batch socket");
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        apply(&mut own, &[fall(0)]),
    )
    .await
    .expect("the batch on its own socket does not wait for the stream")
    .expect("applied");
    assert_eq!(n, 1);
    let mut seen = vec![first];
    while let Some(s) = rx.recv().await {
        seen.push(s.expect("read"));
    }
    assert_eq!(seen.len(), 40, "the whole table streamed");
    let l = seen
        .iter()
        .find(|s| s.id == last)
        .expect("the last service");
    let d = (l.destinations.iter())
        .find(|d| d.socket_addr() == sa("10.0.1.2:1039"))
        .expect("its destination");
    assert_eq!(d.weight, 0, "streamed after the change: {l:?}");

    // the same batch on the stream's own client waits for the stream
    let mut rx = c.services_streamed(1);
    let _ = rx.recv().await.expect("a service").expect("read");
    let blocked =
        tokio::time::timeout(std::time::Duration::from_secs(2), apply(&mut c, &[fall(1)])).await;
    assert!(
        blocked.is_err(),
        "a batch on the shared socket ran while the stream held it"
    );
    drop(rx);
    assert!(sh("ipvsadm -Ln").contains("10.0.1.2:1039"));
}
