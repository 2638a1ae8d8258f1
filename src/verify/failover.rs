//! The disruptive checks: director failover (planned stop, crash, connection
//! sync) and real-server failover, each undone as recorded.

use super::*;

/// Connections held open across the planned-stop failover (connection sync).
pub(super) const HELD_CONNECTIONS: u32 = 5;

pub(super) async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

pub(super) fn ms_since(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Poll the VIP holder until `want(holder)` or the deadline; returns the last holder.
pub(super) async fn wait_holder(
    cx: &Ctx<'_>,
    deadline: Duration,
    want: impl Fn(Option<&str>) -> bool,
) -> (Option<String>, bool) {
    let end = Instant::now() + deadline;
    loop {
        let h = cx.vip_holder().await;
        if want(h.as_deref()) {
            return (h, true);
        }
        if Instant::now() >= end {
            return (h, false);
        }
        sleep_ms(200).await;
    }
}

/// Whether `director` holds the VIP (read over ssh; false when unreadable).
pub(super) async fn holds_vip(cx: &Ctx<'_>, director: &str) -> bool {
    match cx.sh(director, &live::addresses_command()).await {
        Ok(out) => live::parse_addresses(&out)
            .map(|a| a.iter().any(|(_, x)| *x == cx.spec.vip))
            .unwrap_or(false),
        Err(_) => false,
    }
}

pub(super) async fn check_director_failover(
    cx: &Ctx<'_>,
    master: &str,
    svc: &Service,
    mode: FailoverMode,
) {
    let spec = cx.spec;
    let unit = director_unit(&spec.name);
    let Some(backup_d) = spec
        .directors_by_priority()
        .into_iter()
        .find(|d| d.name != master)
    else {
        return;
    };
    let backup = backup_d.name.clone();
    let backup_priority = backup_d.priority;
    let subject = format!("{master} → {backup} ({})", mode.as_str());
    let fail = |why: String| {
        CheckRow::from_verdict(
            "director-failover",
            &subject,
            analysis::Verdict::failed(
                format!(
                    "the backup takes over when the master fails ({})",
                    mode.as_str()
                ),
                why,
            ),
        )
    };
    for d in [master, backup.as_str()] {
        if let Err(e) = cx.sh(d, &commands::is_active(&unit)).await {
            cx.add(fail(format!(
                "the director daemon {unit} is not active on {d}: {e}"
            )));
            return;
        }
    }
    let advert = spec.advert_interval;
    let advert_ms = u64::try_from(advert.as_millis()).unwrap_or(u64::MAX);
    let takeover_limit = advert * 3 + Duration::from_secs(10);
    let addr = vip_addr(spec, svc);
    let kind = probe_kind(svc);
    // Preemption puts the VIP on the higher priority of the two.
    let preferred = spec
        .directors_by_priority()
        .into_iter()
        .find(|d| d.name == master || d.name == backup)
        .map_or_else(|| master.to_string(), |d| d.name.clone());
    let (fail_cmd, recover_cmd) = commands::failover_commands(mode, &unit);

    // Connections that must survive the failover when sync_daemon is on:
    // opened with their first data before it, finished after the takeover.
    let held = if mode == FailoverMode::PlannedStop && svc.protocol == Protocol::Tcp {
        let path = match &kind {
            ProbeKind::Http { path, .. } => path.clone(),
            _ => "/".to_string(),
        };
        let h = probe::hold(addr, &path, HELD_CONNECTIONS, PROBE_TIMEOUT).await;
        // The kernel's sync daemon sends its buffer at least every 2 s.
        sleep_ms(2500).await;
        Some(h)
    } else {
        None
    };

    // Make the master fail (undo recorded first).
    let undo_id = match cx
        .record_undo(
            master,
            &recover_cmd,
            &format!("{recover_cmd} on {master}"),
            &format!(
                "{unit} {} on {master}",
                match mode {
                    FailoverMode::PlannedStop => "stopped",
                    FailoverMode::Crash => "frozen (SIGSTOP)",
                }
            ),
        )
        .await
    {
        Ok(id) => id,
        Err(e) => {
            cx.add(fail(e));
            return;
        }
    };
    let t0 = Instant::now();
    let prober = Prober::start(addr, kind.clone(), t0, ProberLimits::default());
    // The same failover seen by a UDP service's datagrams too, when the
    // timeline above is a TCP one (its own row: UDP needs no handshake and
    // has its own IPVS entries).
    let also_udp = spec
        .services
        .iter()
        .find(|s| s.protocol == Protocol::Udp && svc.protocol != Protocol::Udp);
    let uprober = also_udp.map(|u| {
        Prober::start(
            vip_addr(spec, u),
            ProbeKind::Udp,
            t0,
            ProberLimits::default(),
        )
    });
    sleep_ms(200).await;
    let t_stop = ms_since(t0);
    // Crash: the master's clock right after the freeze (read after the
    // signal, in the same command): the takeover is measured against it (see
    // `DirectorFailover::takeover_exact`). A planned stop is timed by the
    // probes alone and its command is sent as it is.
    let stamped = commands::fail_command_sent(mode, &unit);
    let failed_at = match cx.sh(master, &stamped).await {
        Ok(out) => facts::parse_epoch_ms(&out),
        Err(e) => {
            let _ = prober.finish().await;
            if let Some(u) = uprober {
                let _ = u.finish().await;
            }
            // Whatever happened, put it back now.
            if cx.sh(master, &recover_cmd).await.is_ok() {
                cx.undone(undo_id).await;
            }
            cx.add(fail(format!("cannot {fail_cmd} on {master}: {e}")));
            return;
        }
    };
    let (after_stop, takeover_ms) = match mode {
        FailoverMode::PlannedStop => {
            let (h, _) = wait_holder(cx, takeover_limit, |h| h == Some(backup.as_str())).await;
            (h, None)
        }
        // The frozen master keeps the VIP on its interface: wait for the
        // backup to add it.
        FailoverMode::Crash => {
            let end = Instant::now() + takeover_limit;
            let mut seen = None;
            loop {
                if holds_vip(cx, &backup).await {
                    seen = Some(ms_since(t0).saturating_sub(t_stop));
                    break;
                }
                if Instant::now() >= end {
                    break;
                }
                sleep_ms(200).await;
            }
            (seen.map(|_| backup.clone()), seen)
        }
    };
    // The daemon's own view, where its status command exists (best effort).
    let backup_status = cx.sh(&backup, &commands::director_status()).await.ok();
    let backup_state = backup_status.as_deref().and_then(facts::parse_vrrp_state);
    // Crash: the backup's own transition time against the master's clock
    // when the two agree with the poll (not before the freeze, not after
    // the poll saw the VIP plus one ssh read); else the poll's figure.
    let exact = match (mode, takeover_ms, failed_at) {
        (FailoverMode::Crash, Some(seen), Some(at)) => backup_status
            .as_deref()
            .and_then(facts::parse_master_since_ms)
            .and_then(|m| m.checked_sub(at))
            .filter(|t| *t <= seen + analysis::HOLDER_POLL_SLACK_MS),
        _ => None,
    };
    let takeover_exact = exact.is_some();
    let takeover_ms = exact.or(takeover_ms);
    sleep_ms(1000).await;
    let since_stop = |t: Vec<analysis::ProbeResult>| -> Vec<analysis::ProbeResult> {
        t.into_iter()
            .filter(|p| p.at_ms >= t_stop)
            .map(|p| analysis::ProbeResult {
                at_ms: p.at_ms - t_stop,
                ok: p.ok,
            })
            .collect()
    };
    let outage = analysis::outage(&since_stop(prober.finish().await));
    let uoutage = match uprober {
        Some(u) => Some(analysis::outage(&since_stop(u.finish().await))),
        None => None,
    };
    // Before the master comes back: the held connections now run through
    // the backup.
    let sync_row = match held {
        Some(h) => {
            let outcomes = probe::complete(h, Duration::from_secs(3)).await;
            let c = analysis::ConnectionSync {
                sync_daemon: spec.sync_daemon,
                wanted: HELD_CONNECTIONS,
                outcomes,
            };
            let kept = c
                .outcomes
                .iter()
                .filter(|o| !matches!(o, analysis::HeldOutcome::Broken(_)))
                .count() as u64;
            let opened = c.outcomes.len() as u64;
            Some(
                CheckRow::from_verdict(
                    "connection-sync",
                    &format!("{} ({master} → {backup})", svc.label()),
                    analysis::analyse_connection_sync(&c),
                )
                .figure("kept", kept)
                .figure("opened", opened),
            )
        }
        None => None,
    };

    // Start (resume) it again and watch where the VIP goes.
    let t1 = Instant::now();
    let prober2 = Prober::start(addr, kind.clone(), t1, ProberLimits::default());
    let uprober2 = also_udp.map(|u| {
        Prober::start(
            vip_addr(spec, u),
            ProbeKind::Udp,
            t1,
            ProberLimits::default(),
        )
    });
    let start_res = cx.sh(master, &recover_cmd).await;
    if start_res.is_ok() {
        cx.undone(undo_id).await;
    }
    let h = &svc.health;
    let health_known = h.interval * h.rise.max(h.fall) + h.timeout;
    let after_start = match (spec.preempt, mode) {
        (true, _) => {
            wait_holder(
                cx,
                advert * 3 + health_known + Duration::from_secs(10),
                |x| x == Some(preferred.as_str()),
            )
            .await
            .0
        }
        (false, FailoverMode::PlannedStop) => {
            // Preempt off: the VIP must stay on the backup for a while.
            let window = advert * 3 + health_known + Duration::from_secs(2);
            let (h, moved) = wait_holder(cx, window, |x| x != Some(backup.as_str())).await;
            if moved { h } else { Some(backup.clone()) }
        }
        // A resumed master: one of the two ends up alone with the VIP.
        (false, FailoverMode::Crash) => {
            wait_holder(cx, advert * 3 + Duration::from_secs(10), |x| x.is_some())
                .await
                .0
        }
    };
    sleep_ms(500).await;
    let failback = analysis::outage(&prober2.finish().await);
    let ufailback = match uprober2 {
        Some(u) => Some(analysis::outage(&u.finish().await)),
        None => None,
    };
    let make_row = |subject: &str, outage: analysis::Outage, failback: analysis::Outage| {
        let mut v = analysis::analyse_director_failover(&DirectorFailover {
            mode,
            master: master.into(),
            backup: backup.clone(),
            holder_after_stop: after_stop.clone(),
            outage,
            takeover_ms,
            takeover_exact,
            advert_ms,
            backup_priority,
            holder_after_start: after_start.clone(),
            preempt: spec.preempt,
            preferred: preferred.clone(),
            backup_state: backup_state.clone(),
            nat: spec.mode == crate::config::Mode::Nat,
        });
        if let Err(e) = &start_res {
            v.fail_with(format!("cannot {recover_cmd} on {master} again: {e}"));
        }
        let mut row = CheckRow::from_verdict("director-failover", subject, v)
            .figure("gap_ms", outage.longest_gap_ms)
            .figure("failed_probes", u64::from(outage.failed))
            .figure("probes", u64::from(outage.probes))
            .figure("failback_gap_ms", failback.longest_gap_ms)
            .figure("failback_failed_probes", u64::from(failback.failed));
        if let Some(t) = takeover_ms {
            row = row.figure("takeover_ms", t);
        }
        if mode == FailoverMode::Crash {
            row = row.figure(
                "gap_limit_ms",
                analysis::crash_gap_limit_ms(advert_ms, backup_priority),
            );
        }
        row.measured
            .push_str(&format!("; failback {}", failback.describe()));
        row
    };
    let mut rows = vec![make_row(&subject, outage, failback)];
    if let (Some(u), Some(o), Some(f)) = (also_udp, uoutage, ufailback) {
        rows.push(make_row(
            &format!("{master} → {backup} ({}, {})", mode.as_str(), u.label()),
            o,
            f,
        ));
    }

    // The VIP left on the backup (preempt = false): hand it back so the
    // cluster is as verify found it (stop the backup's daemon until the
    // master holds the VIP, then start it again).
    if after_start.as_deref() == Some(backup.as_str()) && !spec.preempt {
        let start_cmd = commands::start(&unit);
        let id = cx
            .record_undo(
                &backup,
                &start_cmd,
                &format!("start {unit} on {backup}"),
                &format!("{unit} stopped on {backup} (to hand the VIP back to {master})"),
            )
            .await;
        let restored = match &id {
            Err(e) => {
                tracing::warn!("lvsup verify: {e}");
                false
            }
            Ok(_) => match cx.sh(&backup, &commands::stop(&unit)).await {
                Ok(_) => {
                    wait_holder(cx, takeover_limit, |x| x == Some(master))
                        .await
                        .1
                }
                Err(_) => false,
            },
        };
        let started = id.is_err() || cx.sh(&backup, &start_cmd).await.is_ok();
        if let (true, Ok(id)) = (started, id) {
            cx.undone(id).await;
        }
        for row in &mut rows {
            if !restored {
                row.result = report::Outcome::Fail;
                row.reasons.push(format!(
                    "could not hand the VIP back to {master} (preempt = false): it is on {backup} now"
                ));
            } else {
                row.measured
                    .push_str(&format!("; VIP handed back to {master}"));
            }
        }
    }
    rows.extend(sync_row);
    for row in rows {
        cx.add(row);
    }
}

pub(super) async fn check_rs_failover(cx: &Ctx<'_>, active: &str, svc: &Service) {
    let spec = cx.spec;
    let table = cx.table(active).await.unwrap_or_default();
    let in_pool = |t: &[live::SvcSnap], r: &crate::config::RealServer| {
        find_service(t, spec, svc).and_then(|s| {
            s.dests
                .iter()
                .find(|d| d.addr == IpAddr::V4(r.address.addr()) && d.port == r.port_for(svc))
                .map(|d| d.weight)
        })
    };
    let live: Vec<&crate::config::RealServer> = spec
        .real_servers_of(svc)
        .filter(|r| r.weight_for(svc) > 0 && in_pool(&table, r).unwrap_or(0) > 0)
        .collect();
    let Some(rs) = live.first().copied() else {
        cx.add(CheckRow::skipped(
            "real-server-failover",
            &svc.label(),
            "no real server in the pool",
        ));
        return;
    };
    if live.len() < 2 {
        cx.add(CheckRow::skipped(
            "real-server-failover",
            &rs.name,
            "needs two real servers in the pool (the VIP must keep answering)",
        ));
        return;
    }
    // How to make it fail: prohibit routes to the directors' check sources.
    let (fail_cmd, recover_cmd, serving) = match (&cx.opts.rs_fail_cmd, &cx.opts.rs_recover_cmd) {
        (Some(f), Some(r)) => (f.clone(), r.clone(), false),
        _ => {
            let existing = cx
                .sh(&rs.name, &commands::prohibit_list())
                .await
                .unwrap_or_default();
            let srcs: Vec<Ipv4Addr> = spec
                .directors
                .iter()
                .flat_map(|d| [Some(d.address.addr()), d.internal_address.map(|i| i.addr())])
                .flatten()
                .filter(|a| {
                    !existing
                        .lines()
                        .any(|l| l.split_whitespace().nth(1) == Some(&a.to_string()))
                })
                .collect();
            if srcs.is_empty() {
                cx.add(CheckRow::skipped(
                    "real-server-failover",
                    &rs.name,
                    "the prohibit routes verify would add exist already; use --rs-fail-cmd",
                ));
                return;
            }
            (
                commands::prohibit_add(&srcs),
                commands::prohibit_del(&srcs),
                true,
            )
        }
    };
    let h = &svc.health;
    let out_limit = h.interval * (h.fall + 1) + h.timeout + Duration::from_secs(5);
    let back_limit = h.interval * (h.rise + 1) + h.timeout + Duration::from_secs(5);
    let undo_id = match cx
        .record_undo(
            &rs.name,
            &recover_cmd,
            &format!("recover {} ({recover_cmd})", rs.name),
            &format!("{} failing its health checks ({fail_cmd})", rs.name),
        )
        .await
    {
        Ok(id) => id,
        Err(e) => {
            cx.add(CheckRow::from_verdict(
                "real-server-failover",
                &rs.name,
                analysis::Verdict::failed("make one real server fail and recover it", e),
            ));
            return;
        }
    };
    let t0 = Instant::now();
    let prober = Prober::start(
        vip_addr(spec, svc),
        probe_kind(svc),
        t0,
        ProberLimits::default(),
    );
    sleep_ms(200).await;
    let t_fail = ms_since(t0);
    let mut errors = Vec::new();
    if let Err(e) = cx.sh(&rs.name, &fail_cmd).await {
        errors.push(format!("cannot make {} fail: {e}", rs.name));
    }
    let mut out_ms = None;
    while errors.is_empty() && ms_since(t0) - t_fail <= out_limit.as_millis() as u64 {
        if let Ok(t) = cx.table(active).await
            && in_pool(&t, rs).unwrap_or(0) == 0
        {
            out_ms = Some(ms_since(t0) - t_fail);
            break;
        }
        sleep_ms(250).await;
    }
    let t_rec = ms_since(t0);
    if let Err(e) = cx.sh(&rs.name, &recover_cmd).await {
        errors.push(format!("cannot recover {}: {e}", rs.name));
    } else {
        cx.undone(undo_id).await;
    }
    let mut back_ms = None;
    while ms_since(t0) - t_rec <= back_limit.as_millis() as u64 {
        if let Ok(t) = cx.table(active).await
            && in_pool(&t, rs) == Some(rs.weight_for(svc))
        {
            back_ms = Some(ms_since(t0) - t_rec);
            break;
        }
        sleep_ms(250).await;
    }
    sleep_ms(500).await;
    let timeline = prober.finish().await;
    let out_at = out_ms.map(|o| o + t_fail);
    let failed_after_out = timeline
        .iter()
        .filter(|p| !p.ok && out_at.is_some_and(|o| p.at_ms >= o))
        .count();
    let outage = analysis::outage(&timeline);
    let mut v = analysis::analyse_rs_failover(&RealServerFailover {
        server: rs.name.clone(),
        out_ms,
        back_ms,
        out_limit_ms: out_limit.as_millis() as u64,
        back_limit_ms: back_limit.as_millis() as u64,
        outage,
        failed_after_out: u32::try_from(failed_after_out).unwrap_or(u32::MAX),
        serving_while_failed: serving,
    });
    if !errors.is_empty() {
        v.passed = false;
        v.reasons.splice(0..0, errors);
    }
    let mut row = CheckRow::from_verdict("real-server-failover", &rs.name, v)
        .figure("failed_probes", u64::from(outage.failed))
        .figure("probes", u64::from(outage.probes));
    if let Some(o) = out_ms {
        row = row.figure("out_ms", o);
    }
    if let Some(b) = back_ms {
        row = row.figure("back_ms", b);
    }
    cx.add(row);
}
