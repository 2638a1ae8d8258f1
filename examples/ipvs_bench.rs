//! Programming speed: lvsup's IPVS client vs. `ipvsadm -R` with the same rules.
//!
//! ```text
//! ipvs_bench SERVICES DESTS_PER_SERVICE      # e.g. 100 10  (1,000 dests), 100 100 (10,000)
//! ```
//! Needs root and ip_vs; runs in its own network namespace. For each tool: flush, program
//! the whole table from empty, and time it; then check both produced the same table
//! (`ipvsadm -Sn` output compared). Prints one line per tool and the ratio: lvsup timed
//! in-process after a warm-up (its own cost, no process start: not comparable with
//! `ipvsadm -R`). Then the fair comparison: both tools as fresh processes (this binary
//! re-run with `--program S D`), timed from spawn to exit, `IPVS_BENCH_REPS` (default 5)
//! times each in alternating order, every run checked: one JSON line per run on stdout
//! (`benches/ipvs_bench.sh` collects them; `tools/bench-report` makes the table).
//! `benches/ipvs_bench.sh` runs it for 100×10 and 100×100 (in the lab VM if needed).
//! `LVSUP_BENCH_ACKS=every` / `LVSUP_BENCH_BYTES=N` select batch variants.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lvsup::ipvs::*;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn svc_addr(i: usize) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250 + 1) as u8),
        80,
    ))
}
fn dest_addr(i: usize, j: usize) -> SocketAddr {
    let n = i * 1000 + j;
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(
            10,
            (2 + n / 62500) as u8,
            ((n / 250) % 250) as u8,
            (n % 250 + 1) as u8,
        ),
        80,
    ))
}

fn table(services: usize, dests: usize) -> Vec<Service> {
    (0..services)
        .map(|i| {
            let mut s = Service::new(ServiceId::tcp(svc_addr(i)), "wrr");
            for j in 0..dests {
                s.destinations.push(Destination::new(
                    dest_addr(i, j),
                    Forward::Route,
                    1 + (j % 5) as u32,
                ));
            }
            s
        })
        .collect()
}

fn ipvsadm_rules(t: &[Service]) -> String {
    let mut r = String::new();
    for s in t {
        let ServiceId::Addr { addr, .. } = s.id else {
            continue;
        };
        r.push_str(&format!("-A -t {addr} -s {}\n", s.scheduler));
        for d in &s.destinations {
            r.push_str(&format!(
                "-a -t {addr} -r {} -g -w {}\n",
                d.socket_addr(),
                d.weight
            ));
        }
    }
    r
}

fn run(cmd: &str) -> Res<String> {
    let out = Command::new("sh").arg("-c").arg(cmd).output()?;
    if !out.status.success() {
        return Err(format!("`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `BIN -R` with `rules` on its stdin; whether it exited 0.
fn ipvsadm_restore(bin: &std::path::Path, rules: &str) -> Res<bool> {
    let mut child = Command::new(bin).arg("-R").stdin(Stdio::piped()).spawn()?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(rules.as_bytes())?;
    Ok(child.wait()?.success())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// `--program S D`: program the table into this process's network namespace
/// (inherited from the parent bench) and exit: lvsup timed as a fresh
/// process, from spawn to exit, the way `ipvsadm -R` is.
fn program_child(services: usize, dests: usize) -> Res<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut c = IpvsClient::connect().await?;
        let plan = reconcile(&table(services, dests), &[], &ReconcileOptions::default());
        apply(&mut c, &plan.ops).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// Both tools as fresh processes, `reps` times each, alternating which goes
/// first; every run starts from an empty table and must produce `want`
/// (`ipvsadm -Sn`). Rep 1 is each binary's first run in this namespace;
/// the others run with its pages cached ("warm"). One JSON line per run.
fn fresh_processes(services: usize, dests: usize, rules: &str, want: &str, reps: usize) -> Res<()> {
    // Both binaries from the same tmpfs, not the VM's uncached 9p root.
    let dir = std::path::PathBuf::from(format!("/dev/shm/ipvs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let me = dir.join("ipvs_bench");
    std::fs::copy(std::env::current_exe()?, &me)?;
    let ipvsadm = dir.join("ipvsadm");
    std::fs::copy(run("command -v ipvsadm")?.trim(), &ipvsadm)?;
    let n = services * dests;
    for rep in 1..=reps {
        let order = if rep % 2 == 1 {
            ["lvsup", "ipvsadm"]
        } else {
            ["ipvsadm", "lvsup"]
        };
        for tool in order {
            run("ipvsadm -C")?;
            let start = Instant::now();
            let ok = if tool == "lvsup" {
                Command::new(&me)
                    .args(["--program", &services.to_string(), &dests.to_string()])
                    .status()?
                    .success()
            } else {
                ipvsadm_restore(&ipvsadm, rules)?
            };
            let took = start.elapsed();
            let same = ok && run("ipvsadm -Sn")? == want;
            println!(
                "{{\"bench\": \"ipvs\", \"tool\": \"{tool}\", \"mode\": \"process\", \"services\": {services}, \"dests\": {n}, \"rep\": {rep}, \"s\": {:.4}, \"ok\": {same}}}",
                secs(took)
            );
            if !same {
                return Err(format!("{tool} run {rep}: exit or table wrong").into());
            }
        }
    }
    run("ipvsadm -C")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> Res<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--program") {
        let n = |i: usize| -> Res<usize> { Ok(argv.get(i).ok_or("--program S D")?.parse()?) };
        return program_child(n(1)?, n(2)?);
    }
    let mut args = argv.iter().map(|a| a.parse::<usize>());
    let services = args.next().unwrap_or(Ok(100))?;
    let dests = args.next().unwrap_or(Ok(10))?;
    let reps: usize = std::env::var("IPVS_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    // SAFETY: plain syscall on this (only) thread before any other is started.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {} (run as root)",
            std::io::Error::last_os_error()
        )
        .into());
    }
    // Without lo up the kernel refuses destinations (EINVAL from the address-type check).
    run("ip link set lo up")?;
    let t = table(services, dests);
    let n = services * dests;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (lvsup_time, read_time, lvsup_rules, detail) = rt.block_on(async {
        let mut c = IpvsClient::connect().await?;
        // Knobs to measure the batch path's variants (passed into the lab VM as LVSUP_*):
        // LVSUP_BENCH_ACKS=every (an ack per request) | last (default), LVSUP_BENCH_BYTES.
        let acks = match std::env::var("LVSUP_BENCH_ACKS").as_deref() {
            Ok("every") => Acks::Every,
            _ => Acks::ErrorsAndLast,
        };
        let bytes = std::env::var("LVSUP_BENCH_BYTES")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(lvsup::ipvs::batch::BATCH_BYTES);
        c.set_batch_options(acks, bytes);
        c.flush().await?;
        // Warm-up, untimed: program and remove a one-destination table first. The first
        // batch of a fresh process pays one-off costs (code pages faulted in over the
        // VM's 9p root, the blocking-pool thread) that ipvsadm -R never pays in this
        // bench: `ipvsadm -Sn` below runs before it and warms its binary and libraries.
        let start = Instant::now();
        let warm = reconcile(&table(1, 1), &[], &ReconcileOptions::default());
        apply(&mut c, &warm.ops).await?;
        c.services().await?;
        c.flush().await?;
        let warmup = start.elapsed();
        let start = Instant::now();
        let plan = reconcile(&t, &[], &ReconcileOptions::default());
        apply(&mut c, &plan.ops).await?;
        let programmed = start.elapsed();
        let start = Instant::now();
        let back = c.services().await?;
        let read = start.elapsed();
        let got: usize = back.iter().map(|s| s.destinations.len()).sum();
        if got != n {
            return Err(format!("lvsup programmed {got} destinations, expected {n}").into());
        }
        let rules = run("ipvsadm -Sn")?;
        c.flush().await?;
        // Where lvsup's time goes (second, untimed-above run): encoding alone, then
        // the services phase and the destinations phase as separate batches.
        let start = Instant::now();
        let reqs: Vec<Request> = plan.ops.iter().map(lvsup::ipvs::reconcile::request).collect();
        let chunks = lvsup::ipvs::batch::encode_requests(c.family_id(), &reqs, 1, bytes, acks);
        let encode = start.elapsed();
        let (svc_ops, dest_ops): (Vec<Op>, Vec<Op>) = plan
            .ops
            .iter()
            .cloned()
            .partition(|o| matches!(o, Op::AddService { .. }));
        let start = Instant::now();
        apply(&mut c, &svc_ops).await?;
        let svc_phase = start.elapsed();
        let start = Instant::now();
        apply(&mut c, &dest_ops).await?;
        let dest_phase = start.elapsed();
        c.flush().await?;
        let detail = format!(
            "  detail   lvsup: encode {:.3} s ({} datagrams), {} services {:.3} s, {} destinations {:.3} s",
            secs(encode),
            chunks.len(),
            svc_ops.len(),
            secs(svc_phase),
            dest_ops.len(),
            secs(dest_phase)
        );
        let detail = format!("{detail}\n  detail   lvsup: warm-up (1 destination, then flush) {:.3} s", secs(warmup));
        Ok::<_, Box<dyn std::error::Error>>((programmed, read, rules, detail))
    })?;

    let rules = ipvsadm_rules(&t);
    let start = Instant::now();
    if !ipvsadm_restore(std::path::Path::new("ipvsadm"), &rules)? {
        return Err("ipvsadm -R failed".into());
    }
    let ipvsadm_time = start.elapsed();
    let start = Instant::now();
    let _ = run("ipvsadm -Ln")?;
    let ipvsadm_read = start.elapsed();
    let ipvsadm_table = run("ipvsadm -Sn")?;
    run("ipvsadm -C")?;
    if ipvsadm_table != lvsup_rules {
        return Err("lvsup and ipvsadm -R produced different tables (ipvsadm -Sn differs)".into());
    }

    println!(
        "ipvs_bench: {services} services x {dests} destinations = {n} destinations (tables identical)"
    );
    println!("  program  lvsup        {:>8.3} s", secs(lvsup_time));
    println!("  program  ipvsadm -R   {:>8.3} s", secs(ipvsadm_time));
    println!(
        "  ratio    lvsup/ipvsadm {:>7.2}",
        secs(lvsup_time) / secs(ipvsadm_time)
    );
    println!("  read     lvsup        {:>8.3} s", secs(read_time));
    println!("  read     ipvsadm -Ln  {:>8.3} s", secs(ipvsadm_read));
    println!("{detail}");
    println!(
        "{{\"bench\": \"ipvs\", \"tool\": \"lvsup\", \"mode\": \"in_process\", \"services\": {services}, \"dests\": {n}, \"rep\": 1, \"s\": {:.4}, \"ok\": true}}",
        secs(lvsup_time)
    );
    fresh_processes(services, dests, &rules, &ipvsadm_table, reps)
}
