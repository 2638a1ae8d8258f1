//! The checks that disrupt nothing: VIP holder, real servers, reachability,
//! scheduling (and its spread over several client addresses).

use super::*;

pub(super) async fn check_static(cx: &Ctx<'_>) -> Vec<DirectorFacts> {
    let spec = cx.spec;
    let dirs = cx.director_facts().await;
    cx.add(CheckRow::from_verdict(
        "vip-holder",
        // every VIP of the cluster (services may have their own)
        &spec
            .vips()
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        analysis::check_vip_holder(spec, &dirs),
    ));
    let rs_futs = spec.real_servers.iter().map(|r| async move {
        match cx.sh(&r.name, &live::rs_facts_command()).await {
            Ok(out) => live::parse_rs_facts(&r.name, &out),
            Err(e) => RealServerFacts {
                name: r.name.clone(),
                error: Some(e),
                ..Default::default()
            },
        }
    });
    for f in futures::future::join_all(rs_futs).await {
        cx.add(CheckRow::from_verdict(
            "real-server",
            &f.name,
            analysis::check_real_server(spec, &f),
        ));
    }
    for svc in &spec.services {
        let label = svc.label();
        let kind = probe_kind(svc);
        let b = probe::batch(vip_addr(spec, svc), &kind, 10, PROBE_TIMEOUT).await;
        cx.traffic_sent();
        let mut row = CheckRow::from_verdict(
            "reachability",
            &label,
            analysis::check_answers(
                &label,
                b.sent,
                b.ok,
                kind.describe(),
                b.first_error.as_deref(),
            ),
        )
        .figure("answered", u64::from(b.ok));
        if !b.replies.is_empty() {
            row.measured.push_str(&format!(
                "; replies: {}",
                analysis::describe_replies(&b.replies)
            ));
        }
        cx.add(row);
    }
    dirs
}

pub(super) async fn check_scheduling(cx: &Ctx<'_>, active: Option<&str>) {
    let spec = cx.spec;
    for svc in spec.services.iter() {
        let label = svc.label();
        let Some(active) = active else {
            cx.add(CheckRow::skipped(
                "scheduling",
                &label,
                "no single active director (see vip-holder)",
            ));
            continue;
        };
        let weights: Vec<u32> = spec
            .real_servers_of(svc)
            .map(|r| r.weight_for(svc))
            .collect();
        let n = cx
            .opts
            .batch
            .unwrap_or_else(|| analysis::batch_size(&svc.scheduler, &weights));
        let kind = probe_kind(svc);
        // Connections held open across the batch where the rule reads active
        // connections (lc, wlc, sed, nq, ovf): the counters read next include
        // them, and the batch is replayed from those counters.
        let to_hold = if svc.protocol == Protocol::Tcp {
            analysis::connections_to_hold(&svc.scheduler, svc.persistence.is_some(), &weights)
        } else {
            0
        };
        let held = if to_hold > 0 {
            let path = match &kind {
                ProbeKind::Http { path, .. } => path.clone(),
                _ => "/".to_string(),
            };
            let h = probe::hold(vip_addr(spec, svc), &path, to_hold, PROBE_TIMEOUT).await;
            cx.traffic_sent();
            Some(h)
        } else {
            None
        };
        // Counters that already include every earlier connection (the
        // reachability batch, the previous service's batch, the held ones).
        cx.counters_settled().await;
        let before = match cx.table(active).await {
            Ok(t) => t,
            Err(e) => {
                cx.add(CheckRow::from_verdict(
                    "scheduling",
                    &label,
                    analysis::Verdict::failed(
                        "read the active director's IPVS counters",
                        format!("cannot read the IPVS table of {active}: {e}"),
                    ),
                ));
                continue;
            }
        };
        // Client ports the director still has an entry for would not be
        // counted as new connections (see probe::batch_avoiding). UDP the
        // same: a datagram from a port with an entry (300 s by default)
        // follows it; each new port is a new entry, scheduled and counted.
        let avoid = cx
            .sh(
                active,
                &live::conn_ports_command(svc.protocol.as_str(), vip_addr(spec, svc)),
            )
            .await
            .map(|o| live::parse_conn_ports(&o))
            .unwrap_or_default();
        let b = probe::batch_avoiding(vip_addr(spec, svc), &kind, n, PROBE_TIMEOUT, &avoid).await;
        cx.traffic_sent();
        let t_batch = Instant::now();
        let sb = find_service(&before, spec, svc);
        let after = counters_after(cx, active, svc, sb, b.ok, t_batch).await;
        let counters_ms = ms_since(t_batch);
        let sa = find_service(&after, spec, svc);
        let dests = samples(spec, svc, sb, sa);
        let counted: u64 = dests.iter().map(|d| d.delta).sum();
        let batch = Batch {
            scheduler: svc.scheduler.clone(),
            persistent: svc.persistence.is_some(),
            sent: b.sent,
            accepted: b.ok,
            one_source: true,
            dests,
        };
        let mut v = analysis::analyse_batch(&batch);
        if let Some(h) = &held {
            let active: Vec<String> = batch
                .dests
                .iter()
                .filter_map(|d| d.load_before.map(|l| format!("{} {}", d.name, l.active)))
                .collect();
            v.measured.push_str(&format!(
                "; {} of {to_hold} connections held open across the batch (active before it: {})",
                h.len(),
                if active.is_empty() {
                    "-".into()
                } else {
                    active.join(", ")
                }
            ));
        }
        if let (true, Some(e)) = (b.ok < b.sent, &b.first_error) {
            v.reasons.push(format!("the first failed connection: {e}"));
        }
        // UDP: the replies name the servers that answered; where they name
        // real servers they must agree with the counters.
        let agree = analysis::replies_vs_counters(&b.replies, &batch.dests);
        if let Some(reasons) = &agree {
            for r in reasons {
                v.fail_with(r.clone());
            }
        }
        if !b.replies.is_empty() {
            v.measured.push_str(&format!(
                "; replies: {}{}",
                analysis::describe_replies(&b.replies),
                match &agree {
                    Some(r) if r.is_empty() => " (agree with the counters)",
                    Some(_) => " (disagree with the counters)",
                    None => " (not server names: not compared)",
                }
            ));
        }
        if sa.is_none() {
            v.fail_with(format!(
                "the active director {active} has no virtual service {label}"
            ));
        } else if counted < u64::from(b.ok)
            && cx
                .sh(active, "cat /proc/sys/net/ipv4/vs/run_estimation")
                .await
                .is_ok_and(|o| o.trim() == "0")
        {
            v.reasons.push(format!(
                "net.ipv4.vs.run_estimation is 0 on {active}: the kernel does not update \
                 the IPVS connection counters verify reads (set it to 1)"
            ));
        }
        let mut row = CheckRow::from_verdict("scheduling", &label, v)
            .figure("sent", u64::from(b.sent))
            .figure("accepted", u64::from(b.ok))
            .figure("counted", counted)
            .figure("counters_read_after_ms", counters_ms);
        // Released (closed) now that the counters after the batch are read.
        if let Some(h) = held {
            row = row.figure("held_open", h.len() as u64);
        }
        cx.add(row);
        let by_source = matches!(svc.scheduler.as_str(), "sh" | "mh")
            && svc.persistence.is_none()
            && cx.opts.sources.len() >= 2;
        if by_source {
            check_source_spread(cx, active, svc, &kind).await;
        } else if let Some(spread) = analysis::spread_verdict(&batch) {
            cx.add(CheckRow::from_verdict("scheduling-spread", &label, spread));
        }
    }
}

/// The active director's table once its counters account for the `ok`
/// connections a batch sent at `sent` (see [`COUNTER_PERIOD`]), or after
/// [`COUNTER_WAIT_MAX`].
async fn counters_after(
    cx: &Ctx<'_>,
    active: &str,
    svc: &Service,
    before: Option<&live::SvcSnap>,
    ok: u32,
    sent: Instant,
) -> Vec<live::SvcSnap> {
    let spec = cx.spec;
    loop {
        sleep_ms(if sent.elapsed() < COUNTER_SETTLE {
            u64::try_from(COUNTER_SETTLE.as_millis()).unwrap_or(2500)
        } else {
            500
        })
        .await;
        let after = cx.table(active).await.unwrap_or_default();
        let counted: u64 = samples(spec, svc, before, find_service(&after, spec, svc))
            .iter()
            .map(|d| d.delta)
            .sum();
        if counted >= u64::from(ok) || sent.elapsed() >= COUNTER_WAIT_MAX {
            return after;
        }
    }
}

/// Connections per client address in the source-spread check: enough to
/// see that they all land on one server.
pub(super) const PER_SOURCE: u32 = 4;

/// sh/mh with `--source`: a small batch from each client address, the
/// director's counters read after each, then [`analysis::analyse_source_spread`].
pub(super) async fn check_source_spread(
    cx: &Ctx<'_>,
    active: &str,
    svc: &Service,
    kind: &ProbeKind,
) {
    let spec = cx.spec;
    let label = svc.label();
    let mut per_source = Vec::new();
    for src in &cx.opts.sources {
        cx.counters_settled().await;
        let Ok(before) = cx.table(active).await else {
            continue;
        };
        let b = probe::batch_from(vip_addr(spec, svc), kind, PER_SOURCE, PROBE_TIMEOUT, *src).await;
        cx.traffic_sent();
        let t = Instant::now();
        let sb = find_service(&before, spec, svc);
        let after = counters_after(cx, active, svc, sb, b.ok, t).await;
        let got = samples(spec, svc, sb, find_service(&after, spec, svc))
            .into_iter()
            .map(|d| (d.name, d.delta))
            .collect();
        per_source.push((src.to_string(), got));
    }
    let s = analysis::SourceSpread {
        scheduler: svc.scheduler.clone(),
        servers: spec
            .real_servers_of(svc)
            .map(|r| (r.name.clone(), if r.drain { 0 } else { r.weight_for(svc) }))
            .collect(),
        per_source,
    };
    let sources = s.per_source.len() as u64;
    cx.add(
        CheckRow::from_verdict(
            "scheduling-spread",
            &label,
            analysis::analyse_source_spread(&s),
        )
        .figure("sources", sources),
    );
}
