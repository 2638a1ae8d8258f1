//! What every check shares: the hosts, the options, the rows, the counters
//! and the helpers that read a director's table or a real server's facts.

use super::*;

pub(super) struct Ctx<'a> {
    pub(super) spec: &'a ClusterSpec,
    pub(super) exec: Arc<dyn HostExec>,
    pub(super) undo: UndoLog,
    pub(super) opts: &'a Options,
    pub(super) rows: Arc<Mutex<Vec<CheckRow>>>,
    pub(super) counters_from: Arc<Mutex<Option<String>>>,
    pub(super) inflight: Arc<AtomicUsize>,
    /// When verify last sent connections to the VIP (see [`COUNTER_PERIOD`]).
    pub(super) last_traffic: Arc<Mutex<Option<Instant>>>,
}

impl Ctx<'_> {
    pub(super) fn add(&self, row: CheckRow) {
        if let Ok(mut r) = self.rows.lock() {
            r.push(row);
        }
    }

    /// Run a command on a host (blocking ssh off the runtime). Err: ssh failed or exit ≠ 0.
    pub(super) async fn sh(&self, host: &str, cmd: &str) -> Result<String, String> {
        let o = self.sh_raw(host, cmd).await?;
        if o.success() {
            Ok(o.stdout)
        } else {
            // Long scripts (the table command) are not worth repeating; the
            // first lines of stderr say what went wrong.
            let what = if cmd.len() <= 60 {
                format!("`{cmd}`")
            } else {
                "the command".into()
            };
            let err: Vec<&str> = o.stderr.trim().lines().take(2).collect();
            Err(format!(
                "{what} on {host} exited {}: {}",
                o.code.map_or("by signal".into(), |c| c.to_string()),
                err.join(" / ")
            ))
        }
    }

    /// Write the undo step of a change to the host it is on, before the
    /// change ([`undo`]): Err (with why) means verify must not make it.
    /// `what`: the undo step (in failure messages); `left`: the change,
    /// as a later run describes what this one left (`… stopped on dr1`).
    pub(super) async fn record_undo(
        &self,
        host: &str,
        cmd: &str,
        what: &str,
        left: &str,
    ) -> Result<u64, String> {
        let id = self.undo.push(host, cmd, what);
        let rec = undo::Record {
            version: undo::VERSION,
            cluster: self.spec.name.clone(),
            host: host.into(),
            what: left.into(),
            undo: cmd.into(),
            at: undo::now_secs(),
            user: or_unknown(&self.opts.user),
            machine: or_unknown(&self.opts.machine),
            pid: std::process::id(),
        };
        let path = undo::path(&self.spec.name, &rec.file_name(id));
        // Known before the write: an interrupt during it still removes it.
        self.undo.set_record(id, &path);
        match self.sh(host, &undo::write_command(&rec, &path)).await {
            Ok(_) => Ok(id),
            Err(e) => {
                self.undone(id).await;
                Err(format!(
                    "cannot write the undo record on {host}, so verify does not make the \
                     change ({what}): {e}"
                ))
            }
        }
    }

    /// The change of step `id` was undone: its step and record go.
    pub(super) async fn undone(&self, id: u64) {
        if let Some((host, path)) = self.undo.done(id)
            && let Err(e) = self.sh(&host, &undo::remove_command(&path)).await
        {
            tracing::warn!(
                "lvsup verify: cannot remove the undo record {path} on {host} ({e}); \
                 the next run undoes it again (harmless)"
            );
        }
    }

    pub(super) async fn sh_raw(&self, host: &str, cmd: &str) -> Result<ExecOutput, String> {
        let exec = self.exec.clone();
        let (h, c) = (host.to_string(), cmd.to_string());
        let inflight = self.inflight.clone();
        inflight.fetch_add(1, Ordering::SeqCst);
        let r = tokio::task::spawn_blocking(move || {
            let r = exec.run(&h, &c);
            inflight.fetch_sub(1, Ordering::SeqCst);
            r
        })
        .await;
        match r {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(format!("{host}: {e}")),
            Err(e) => Err(format!("{host}: {e}")),
        }
    }

    /// Note that verify has just sent connections to the VIP.
    pub(super) fn traffic_sent(&self) {
        if let Ok(mut t) = self.last_traffic.lock() {
            *t = Some(Instant::now());
        }
    }

    /// Wait until the IPVS counters include every connection verify has
    /// sent so far (one [`COUNTER_SETTLE`] after the last of them).
    pub(super) async fn counters_settled(&self) {
        let last = self.last_traffic.lock().ok().and_then(|t| *t);
        if let Some(wait) = last.and_then(|t| COUNTER_SETTLE.checked_sub(t.elapsed())) {
            tokio::time::sleep(wait).await;
        }
    }

    pub(super) fn directors(&self) -> Vec<String> {
        self.spec.directors.iter().map(|d| d.name.clone()).collect()
    }

    pub(super) async fn director_facts(&self) -> Vec<DirectorFacts> {
        let futs = self.spec.directors.iter().map(|d| async move {
            match self.sh(&d.name, &live::addresses_command()).await {
                Ok(out) => match live::parse_addresses(&out) {
                    Ok(addrs) => DirectorFacts {
                        name: d.name.clone(),
                        addrs,
                        error: None,
                    },
                    Err(e) => DirectorFacts {
                        name: d.name.clone(),
                        addrs: vec![],
                        error: Some(e.to_string()),
                    },
                },
                Err(e) => DirectorFacts {
                    name: d.name.clone(),
                    addrs: vec![],
                    error: Some(e),
                },
            }
        });
        futures::future::join_all(futs).await
    }

    /// The single director holding the VIP, if exactly one does.
    pub(super) async fn vip_holder(&self) -> Option<String> {
        let f = self.director_facts().await;
        match analysis::holders(&f, self.spec.vip).as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    pub(super) async fn table(&self, director: &str) -> Result<Vec<live::SvcSnap>, String> {
        let out = self.sh(director, &live::table_command()).await?;
        let (t, from) = live::parse_table_output(&out).map_err(|e| format!("{director}: {e}"))?;
        if let Ok(mut c) = self.counters_from.lock() {
            *c = Some(from.to_string());
        }
        Ok(t)
    }
}

pub fn probe_kind(svc: &Service) -> ProbeKind {
    if svc.protocol == Protocol::Udp {
        return ProbeKind::Udp;
    }
    match &svc.health.check {
        // verify's own probe is plain HTTP: an https service gets a connect.
        Check::Http(h) => ProbeKind::Http {
            path: h.path.clone(),
            expect_status: h.expect_status,
        },
        _ => ProbeKind::Tcp,
    }
}

/// The service the director failover timeline probes: the first TCP service,
/// else the first UDP one (a datagram answered is as good a sign of the VIP
/// working as a connect; TCP first, as it was before UDP was probed).
pub fn failover_service(spec: &ClusterSpec) -> Option<&Service> {
    spec.services
        .iter()
        .find(|s| s.protocol == Protocol::Tcp)
        .or_else(|| spec.services.iter().find(|s| s.protocol == Protocol::Udp))
}

/// The service whose pool the real-server failover watches: the first TCP
/// service, else the first UDP service with a health check (with `check =
/// "none"` nothing takes a failed server out of the pool).
pub fn rs_failover_service(spec: &ClusterSpec) -> Option<&Service> {
    spec.services
        .iter()
        .find(|s| s.protocol == Protocol::Tcp)
        .or_else(|| {
            spec.services
                .iter()
                .find(|s| s.protocol == Protocol::Udp && s.health.check != Check::None)
        })
}

/// Where verify sends its probes: the service's own VIP (`[[services]]
/// vip`, default the cluster's, so every VIP with a service is probed) and
/// its port; for a fwmark service its first port.
pub(super) fn vip_addr(_spec: &ClusterSpec, svc: &Service) -> SocketAddr {
    let port = svc.ports().first().copied().unwrap_or(svc.port);
    SocketAddr::new(IpAddr::V4(svc.vip), port)
}

/// Timeout of one connection of the reachability and scheduling batches.
/// These ask whether and where a connection lands, not how fast: 3 s lets a
/// connection survive one lost SYN (Linux retransmits it after 1 s) and a
/// stall of a slow host, such as the lab under emulation, where 1 s failed
/// one connection of a hundred now and then. The failover timelines measure
/// gaps with their own, short timeout ([`ProberLimits`]).
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How often the kernel publishes the IPVS counters verify reads.
///
/// The scheduling check compares each destination's cumulative `conns`
/// counter (IPVS_DEST_ATTR_STATS(64) → IPVS_STATS_ATTR_CONNS over netlink,
/// `lvsup ipvs list --json`; the Conns column of `ipvsadm -Ln --stats`)
/// before and after a batch. Those are totals, not the current-entry counts
/// of /proc/net/ip_vs (ActiveConn/InActConn, which drop as entries expire),
/// but they are not live. In net/netfilter/ipvs/ip_vs_core.c
/// `ip_vs_conn_stats()` increments only per-CPU counters (`cpustats`) when a
/// connection is scheduled; ip_vs_ctl.c `ip_vs_copy_stats()`, which every
/// reader goes through, reports `kstats - kstats0`, and `kstats` is written
/// only by the rate estimator in ip_vs_est.c, which sums the per-CPU counters
/// into it once every 2 s (`estimation_timer`, re-armed at `jiffies + 2*HZ`,
/// up to 6.1; since 6.2 estimation kthreads that visit each estimator once
/// per 2 s as well). So a read right after a batch sees only the connections
/// made before the estimator's last pass: 23 of 100, or none. That was the
/// "under-count" in the VM lab; it is not lost traffic. (With
/// `net.ipv4.vs.run_estimation = 0`, kernel ≥ 5.16, the estimator does not
/// run and the counters do not move at all.)
///
/// Hence both reads are made only once the estimator has run since verify's
/// last connection to the VIP: [`COUNTER_SETTLE`] after it, and the read
/// after the batch is repeated until it accounts for every accepted
/// connection or [`COUNTER_WAIT_MAX`] has passed (a late timer or kthread on
/// a loaded director).
pub(super) const COUNTER_PERIOD: Duration = Duration::from_secs(2);
pub(super) const COUNTER_SETTLE: Duration =
    COUNTER_PERIOD.saturating_add(Duration::from_millis(500));
pub(super) const COUNTER_WAIT_MAX: Duration = Duration::from_secs(4 * 2);

pub(super) fn find_service<'a>(
    t: &'a [live::SvcSnap],
    spec: &ClusterSpec,
    svc: &Service,
) -> Option<&'a live::SvcSnap> {
    t.iter().find(|s| match &svc.fwmark {
        Some(f) => s.fwmark == Some(f.mark),
        None => s.addr == Some(vip_addr(spec, svc)) && s.protocol == svc.protocol.as_str(),
    })
}

/// Join a table's destinations with the file's real servers.
pub(super) fn samples(
    spec: &ClusterSpec,
    svc: &Service,
    before: Option<&live::SvcSnap>,
    after: Option<&live::SvcSnap>,
) -> Vec<DestSample> {
    let conns = |s: Option<&live::SvcSnap>, a: IpAddr, p: u16| {
        s.and_then(|s| s.dests.iter().find(|d| d.addr == a && d.port == p))
            .map(|d| (d.weight, d.conns))
    };
    let load = |s: Option<&live::SvcSnap>, a: IpAddr, p: u16| {
        s.and_then(|s| s.dests.iter().find(|d| d.addr == a && d.port == p))
            .and_then(|d| d.load)
    };
    // The kernel's list order (the order the table lists them in); servers
    // not in the table last.
    let rank = |a: IpAddr, p: u16| {
        after
            .and_then(|s| s.dests.iter().position(|d| d.addr == a && d.port == p))
            .unwrap_or(usize::MAX)
    };
    let mut out: Vec<(usize, DestSample)> = spec
        .real_servers_of(svc)
        .map(|r| {
            let a = IpAddr::V4(r.address.addr());
            let p = r.port_for(svc);
            let b = conns(before, a, p);
            let af = conns(after, a, p);
            let d = DestSample {
                name: r.name.clone(),
                configured_weight: Some(r.weight_for(svc)),
                kernel_weight: af.map(|x| x.0),
                delta: match (b, af) {
                    (Some(b), Some(a)) => a.1.saturating_sub(b.1),
                    (None, Some(a)) => a.1,
                    _ => 0,
                },
                load_before: load(before, a, p),
                load_after: load(after, a, p),
            };
            (rank(a, p), d)
        })
        .collect();
    if let Some(after) = after {
        for d in &after.dests {
            let known = spec
                .real_servers_of(svc)
                .any(|r| IpAddr::V4(r.address.addr()) == d.addr && r.port_for(svc) == d.port);
            if !known {
                let b = conns(before, d.addr, d.port).map_or(0, |x| x.1);
                out.push((
                    rank(d.addr, d.port),
                    DestSample {
                        name: format!("{}:{}", d.addr, d.port),
                        configured_weight: None,
                        kernel_weight: Some(d.weight),
                        delta: d.conns.saturating_sub(b),
                        load_before: load(before, d.addr, d.port),
                        load_after: d.load,
                    },
                ));
            }
        }
    }
    // Stable: servers not in the table keep the file's order.
    out.sort_by_key(|(r, _)| *r);
    out.into_iter().map(|(_, d)| d).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fwmark_service_is_probed_on_its_first_port_and_found_by_its_mark() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fwmark.toml"))
                .expect("example");
        let spec = crate::config::parse_str("fwmark.toml", &text).expect("valid");
        let svc = &spec.services[0];
        assert_eq!(
            vip_addr(&spec, svc),
            "192.168.0.100:80".parse().expect("addr")
        );
        let snap = |fwmark: Option<u32>| live::SvcSnap {
            protocol: String::new(),
            addr: None,
            fwmark,
            scheduler: "wlc".into(),
            dests: vec![],
        };
        let t = [snap(Some(4)), snap(Some(1))];
        assert_eq!(find_service(&t, &spec, svc).and_then(|s| s.fwmark), Some(1));
        assert!(find_service(&t[..1], &spec, svc).is_none());
    }
}
