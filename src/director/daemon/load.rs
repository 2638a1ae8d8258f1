//! Reading `director.toml`.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, anyhow};

use crate::contract::director_config::{DirectorConfig, check};
use crate::director::core::Loaded;

/// Gives the heap's free pages back to the kernel (glibc's `malloc_trim`)
/// after the work that leaves the most behind: reading director.toml at
/// start and on a reload (at 1,000 × 10, 43 MB at the peak for 4 MB kept,
/// heaptrack; [`parse_compact`] calls it once more between parse and copy)
/// and every reconcile that read the kernel's whole table (at start, every
/// 30 s, on a reload). glibc keeps freed memory inside its heap for reuse.
/// After the load that is tens of megabytes given back for good; after a
/// periodic reconcile, little for long: sampled every 100 ms at 1,000 × 10
/// under the lab VM (docs/benchmarks.md, run (j)), anonymous memory fell
/// ~2.6 MB at each such trim and was back ~6 s later, the checks'
/// allocations touching again the free pages scattered through the heap.
/// The call holds the allocator while it walks the free chunks, one
/// `madvise` per free run of pages: 3–14 ms each at that size, even under
/// the VM's emulation (measured 2026-12-03: the earlier suspicion that
/// trims stalled the thread for seconds, run (e), does not hold). Logged at
/// debug, at info over 100 ms. No-op on other C libraries. `after`: what it
/// follows, for the log.
pub fn trim_heap(after: &str) {
    let t = std::time::Instant::now();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: a plain libc call without arguments to keep alive.
    unsafe {
        libc::malloc_trim(0);
    }
    let took_ms = t.elapsed().as_secs_f64() * 1e3;
    if took_ms > 100.0 {
        tracing::info!(after, took_ms, "heap trimmed (slow)");
    } else {
        tracing::debug!(after, took_ms, "heap trimmed");
    }
}

/// Opts the daemon out of transparent huge pages (`PR_SET_THP_DISABLE`),
/// first thing at start, so that what [`trim_heap`] gives back stays given
/// back. Where THP is `always` (the default of Debian's and RHEL's kernels),
/// khugepaged visits every 2 MiB of anonymous memory every 10 s and turns a
/// region that still has a page in use back into one huge page, zero-filling
/// the pages a trim had returned. In the lab VM (Debian 12's kernel) at
/// 1,000 × 10 the daemon's anonymous memory went from 8.9 MB after each
/// trim to 17.0 MB in one step ~10 s later, with no work of the daemon's in
/// between (2026-12-04, `BENCH_SAMPLE`; docs/benchmarks.md, run (l)). The
/// daemon's heap is small and sparse after a trim: huge pages buy it
/// nothing but that. Returns whether the kernel took it (it has since 3.15);
/// a refusal is logged and harmless.
pub fn no_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a plain prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if r != 0 {
            tracing::debug!(
                "PR_SET_THP_DISABLE: {}: transparent huge pages stay as the system has them",
                std::io::Error::last_os_error()
            );
        }
        r == 0
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// [`DirectorConfig::parse`], then a copy of the result made once the
/// parse's scratch is free and consolidated, the parsed one dropped: what
/// the daemon keeps lies together in the heap.
///
/// The parse builds a tree of the whole document (at 1,000 × 10, 1.2 MB of
/// TOML: 42 MB at the peak, heaptrack) and allocates the config (~4 MB)
/// among it: once the tree was freed, the config's pieces kept pages of
/// the heap resident that held little else, and no trim could give those
/// back (natively at that size: 22.7 MB anonymous after the start's trim,
/// for 9.6 MB of live heap). After [`trim_heap`] has merged the tree's
/// free chunks, the copy is carved from them in order; the scattered
/// original then goes back with the trim that follows the load. (Parsing
/// on a thread of its own, in a glibc arena of its own, was tried: that
/// arena's free top is never given back by `malloc_trim`, 10.5 MB stayed.)
/// Elsewhere than glibc it is one copy more of a few megabytes.
fn parse_compact(text: &str) -> Result<DirectorConfig, toml::de::Error> {
    let parsed = DirectorConfig::parse(text)?;
    trim_heap("parse");
    Ok(parsed.clone())
}

/// Read, parse and check a director.toml.
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| anyhow!("{} is not UTF-8", path.display()))?;
    let cfg = parse_compact(text).map_err(|e| {
        // One line (journald splits multi-line messages): message + position.
        let pos = e.span().map_or(String::new(), |sp| {
            let before = text.get(..sp.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" at line {line}, column {col}")
        });
        anyhow!("{}{pos}: {}", path.display(), e.message().trim())
    })?;
    check(&cfg).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(Loaded {
        cfg: std::sync::Arc::new(cfg),
        sha256: crate::contract::sha256_hex(&bytes),
        loaded_at: SystemTime::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_opts_out_of_transparent_huge_pages() {
        // The kernel's own answer, read back: /proc/self/status says
        // `THP_enabled: 0` once the process has opted out (Linux 5.0+).
        let read = || {
            std::fs::read_to_string("/proc/self/status")
                .expect("/proc/self/status")
                .lines()
                .find_map(|l| l.strip_prefix("THP_enabled:").map(|v| v.trim().to_string()))
                .expect("a THP_enabled line")
        };
        assert!(no_huge_pages(), "PR_SET_THP_DISABLE refused");
        assert_eq!(read(), "0", "THP still enabled for the process");
        // SAFETY: a plain prctl query.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) },
            1
        );
    }

    #[test]
    fn load_reports_a_broken_file_on_one_line() {
        let dir = std::env::temp_dir().join(format!("lvsup-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("director.toml");
        std::fs::write(&p, "cluster = \"web\"\nbogus = [\n").expect("write");
        let e = format!("{:#}", load(&p).expect_err("broken"));
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What the daemon keeps is the parse's result, field for field, and a
    /// file that does not parse fails with the parse's own error.
    #[test]
    fn the_kept_copy_is_the_parsed_config() {
        // the daemon's own file for a config the unit tests share
        let cfg = crate::contract::director_config::test_config(
            r#"
[[services]]
protocol = "tcp"
port = 80
scheduler = "rr"
health = { check = "tcp", interval = "2s", timeout = "1s", fall = 3, rise = 2 }
real_servers = [{ name = "n1", address = "192.0.2.11", port = 80, weight = 3, forward = "route" }]
"#,
        );
        let text = &toml::to_string(&cfg).expect("serializes");
        let parsed = DirectorConfig::parse(text).expect("parses");
        assert_eq!(parsed, cfg);
        assert_eq!(parse_compact(text).expect("parses"), parsed);
        let broken = "cluster = \"web\"\nbogus = [\n";
        assert_eq!(
            parse_compact(broken).expect_err("broken").to_string(),
            DirectorConfig::parse(broken)
                .expect_err("broken")
                .to_string()
        );
    }
}
