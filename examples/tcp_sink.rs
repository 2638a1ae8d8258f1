//! The real servers of `benches/scale_bench.sh`: accepts TCP connections on
//! a range of ports (every address of its network namespace), closes them at
//! once, and records when each destination (local address and port) was
//! connected to: a health checker's connection per check, so the intervals
//! between two of them are the checker's real check interval.
//!
//! ```text
//! tcp_sink FIRST_PORT LAST_PORT STATS_FILE
//! ```
//! SIGUSR1 starts a new measurement window (forgets what was recorded);
//! SIGUSR2 writes the window's statistics to STATS_FILE as one JSON object:
//! destinations seen, checks, the intervals' percentiles in ms, the longest
//! interval's destination and end (Unix time), and the accepts that failed or
//! gave a connection without a readable local address (not counted). Runs
//! until killed. Hand-written: a C-speed accept loop is needed (10,000
//! checks a second under the lab VM's emulation), and no crate does this.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Default)]
struct Window {
    started: Option<Instant>,
    last: HashMap<SocketAddr, Instant>,
    intervals_ms: Vec<f64>,
    checks: u64,
    /// the longest interval so far: its destination and when it ended (Unix
    /// time), to find it in the checker's log
    longest: Option<(f64, SocketAddr, f64)>,
    /// accepts that failed, and accepted connections whose local address
    /// could not be read: checks that reached the sink but are not counted
    accept_errors: u64,
    addr_errors: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn stats(w: &Window) -> String {
    let mut v = w.intervals_ms.clone();
    v.sort_by(|a, b| a.total_cmp(b));
    let secs = w.started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
    format!(
        "{{\"window_s\": {secs:.1}, \"destinations\": {}, \"checks\": {}, \"intervals\": {}, \
         \"p50_ms\": {:.1}, \"p90_ms\": {:.1}, \"p99_ms\": {:.1}, \"max_ms\": {:.1}, \"min_ms\": {:.1}, \
         \"max_destination\": \"{}\", \"max_ended_unix_s\": {:.3}, \"accept_errors\": {}, \"addr_errors\": {}}}",
        w.last.len(),
        w.checks,
        v.len(),
        percentile(&v, 0.5),
        percentile(&v, 0.9),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(0.0),
        v.first().copied().unwrap_or(0.0),
        w.longest.map(|l| l.1.to_string()).unwrap_or_default(),
        w.longest.map(|l| l.2).unwrap_or(0.0),
        w.accept_errors,
        w.addr_errors,
    )
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [first, last, out] = args.as_slice() else {
        return Err("usage: tcp_sink FIRST_PORT LAST_PORT STATS_FILE".into());
    };
    let (first, last): (u16, u16) = (first.parse()?, last.parse()?);
    let out = out.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let window = Arc::new(Mutex::new(Window {
            started: Some(Instant::now()),
            ..Window::default()
        }));
        for port in first..=last {
            let l = TcpListener::bind(("0.0.0.0", port)).await?;
            let window = window.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((conn, _)) = l.accept().await else {
                        if let Ok(mut w) = window.lock() {
                            w.accept_errors += 1;
                        }
                        continue;
                    };
                    let now = Instant::now();
                    let Ok(local) = conn.local_addr() else {
                        if let Ok(mut w) = window.lock() {
                            w.addr_errors += 1;
                        }
                        continue;
                    };
                    if let Ok(mut w) = window.lock() {
                        w.checks += 1;
                        if let Some(prev) = w.last.insert(local, now) {
                            let ms = now.duration_since(prev).as_secs_f64() * 1000.0;
                            w.intervals_ms.push(ms);
                            if w.longest.is_none_or(|l| ms > l.0) {
                                let unix = std::time::SystemTime::now()
                                    .duration_since(std::time::UNIX_EPOCH)
                                    .map(|d| d.as_secs_f64())
                                    .unwrap_or(0.0);
                                w.longest = Some((ms, local, unix));
                            }
                        }
                    }
                    drop(conn);
                }
            });
        }
        eprintln!("tcp_sink: listening on ports {first}-{last}");
        let mut usr1 = signal(SignalKind::user_defined1())?;
        let mut usr2 = signal(SignalKind::user_defined2())?;
        loop {
            tokio::select! {
                _ = usr1.recv() => {
                    if let Ok(mut w) = window.lock() {
                        *w = Window { started: Some(Instant::now()), ..Window::default() };
                    }
                }
                _ = usr2.recv() => {
                    let s = window.lock().map(|w| stats(&w)).unwrap_or_default();
                    std::fs::write(&out, s + "\n")?;
                }
            }
        }
        #[allow(unreachable_code)]
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
